//! Running SQL text from a user over a connection: statements are split
//! locally (so syntax errors name their line and column at once), queries
//! stream through Query, writes go through Execute, and BEGIN ... COMMIT is
//! collected and sent as one atomic Execute.

use super::connection::{Client, ClientError};
use super::format::{self, Format};
use super::queue::OfflineQueue;
use crate::proto::row_from_proto;
use crate::proto::v1::{ExecuteResponse, StatementResult};
use crate::sql::parser::ast::Statement;
use crate::sql::parser::parse_script;
use std::io::Write;
use std::time::Instant;

/// Why a script stopped.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The statement failed; the message has been printed.
    #[error("{0}")]
    Statement(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

pub struct Session {
    client: Client,
    format: Format,
    /// Statements of an open BEGIN, sent together at COMMIT.
    transaction: Option<Vec<String>>,
    /// Where writes wait while no node answers.
    queue: Option<OfflineQueue>,
}

/// What replaying the offline queue did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// Writes answered (each removed from the queue).
    pub sent: usize,
    /// Of those, the ones the cluster refused (their errors were printed).
    pub failed: usize,
    /// Writes still waiting (no node answered).
    pub pending: usize,
}

impl Session {
    pub fn new(client: Client, format: Format) -> Session {
        Session {
            client,
            format,
            transaction: None,
            queue: None,
        }
    }

    /// Keeps writes in `queue` while no node answers, and replays them.
    pub fn with_queue(mut self, queue: OfflineQueue) -> Session {
        self.queue = Some(queue);
        self
    }

    pub fn queue(&self) -> Option<&OfflineQueue> {
        self.queue.as_ref()
    }

    /// Sends the queued writes, oldest first, until one finds no node.
    /// Writes the cluster answers leave the queue; a refused one (a SQL
    /// error) is reported on `out` and dropped, as retrying cannot help.
    pub async fn replay(&mut self, out: &mut dyn Write) -> Result<Replay, SessionError> {
        Ok(self.replay_until(out, None).await?.0)
    }

    /// Replays the queue; the answer to write `wanted` is returned rather
    /// than printed.
    async fn replay_until(
        &mut self,
        out: &mut dyn Write,
        wanted: Option<u64>,
    ) -> Result<(Replay, Option<ExecuteResponse>), SessionError> {
        let mut replay = Replay::default();
        let mut answer = None;
        let Some(queue) = &self.queue else {
            return Ok((replay, answer));
        };
        let pending = queue.pending()?;
        let total = pending.len();
        let client_id = queue.client_id().to_string();
        for (sequence, sql) in pending {
            let result = self.client.execute_keyed(&sql, &client_id, sequence).await;
            if matches!(&result, Err(e) if e.is_unavailable()) {
                break;
            }
            if let Some(queue) = &self.queue {
                queue.remove(sequence)?;
            }
            replay.sent += 1;
            match result {
                Ok(response) if Some(sequence) == wanted => answer = Some(response),
                Ok(response) => match response.error {
                    Some(e) => {
                        replay.failed += 1;
                        writeln!(
                            out,
                            "queued statement {sequence} failed on replay: {} ({}): {}",
                            e.message,
                            e.code,
                            sql.trim()
                        )?;
                    }
                    None => writeln!(out, "replayed queued statement {sequence}")?,
                },
                // The node refused the request itself (too large, say): it
                // never can succeed.
                Err(e) if Some(sequence) == wanted => return Err(e.into()),
                Err(e) => {
                    replay.failed += 1;
                    writeln!(out, "queued statement {sequence} refused: {e}: {}", sql.trim())?;
                }
            }
        }
        replay.pending = total - replay.sent;
        Ok((replay, answer))
    }

    pub fn in_transaction(&self) -> bool {
        self.transaction.is_some()
    }

    /// Runs every statement of `sql`, printing results to `out`, and stops
    /// at the first failure (whose message goes to `err`).
    pub async fn run(&mut self, sql: &str, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), SessionError> {
        let result = self.run_inner(sql, out).await;
        if let Err(e) = &result {
            writeln!(err, "ERROR: {e}")?;
        }
        out.flush()?;
        result
    }

    async fn run_inner(&mut self, sql: &str, out: &mut dyn Write) -> Result<(), SessionError> {
        let statements = parse_script(sql).map_err(|e| SessionError::Statement(e.to_string()))?;
        for s in statements {
            let started = Instant::now();
            match (&s.statement, self.transaction.as_mut()) {
                (Statement::Begin, None) => {
                    self.transaction = Some(Vec::new());
                    out.write_all(format::affected(self.format, "BEGIN", 0, started.elapsed()).as_bytes())?;
                }
                (Statement::Begin, Some(_)) => {
                    return Err(SessionError::Statement(
                        "already in a transaction; COMMIT or ROLLBACK it first".into(),
                    ));
                }
                (Statement::Rollback, Some(_)) => {
                    self.transaction = None;
                    out.write_all(format::affected(self.format, "ROLLBACK", 0, started.elapsed()).as_bytes())?;
                }
                (Statement::Commit, Some(_)) => {
                    let queued = self.transaction.take().unwrap_or_default();
                    let script = format!("BEGIN;\n{};\nCOMMIT;", queued.join(";\n"));
                    // The reply repeats BEGIN, which was printed already.
                    self.execute(&script, out, 1).await?;
                }
                (_, Some(queued)) => queued.push(s.text),
                (statement, None) if statement.is_query() => self.query(&s.text, out).await?,
                (_, None) => self.execute(&s.text, out, 0).await?,
            }
        }
        Ok(())
    }

    /// Checks that no transaction was left open at the end of a script.
    pub fn finish(&mut self) -> Result<(), SessionError> {
        match self.transaction.take() {
            Some(_) => Err(SessionError::Statement(
                "BEGIN without COMMIT: the transaction was not applied".into(),
            )),
            None => Ok(()),
        }
    }

    async fn query(&mut self, sql: &str, out: &mut dyn Write) -> Result<(), SessionError> {
        let started = Instant::now();
        let mut stream = self.client.query(sql).await?;
        let mut rows = Vec::new();
        let mut header_done = false;
        loop {
            let batch = stream.next_batch().await?;
            if batch.is_empty() {
                break;
            }
            if self.format == Format::Csv {
                // CSV streams: print each batch as it arrives.
                let mut text = format::rows(Format::Csv, &stream.columns, &batch, started.elapsed());
                if header_done {
                    text = text
                        .split_once('\n')
                        .map(|(_, rest)| rest.to_string())
                        .unwrap_or_default();
                }
                header_done = true;
                out.write_all(text.as_bytes())?;
            } else {
                rows.extend(batch);
            }
        }
        if self.format != Format::Csv || !header_done {
            out.write_all(format::rows(self.format, &stream.columns, &rows, started.elapsed()).as_bytes())?;
        }
        Ok(())
    }

    async fn execute(&mut self, sql: &str, out: &mut dyn Write, skip: usize) -> Result<(), SessionError> {
        let started = Instant::now();
        let response = match &self.queue {
            None => self.client.execute(sql).await?,
            Some(queue) => {
                let sequence = queue.push(sql)?;
                match self.replay_until(out, Some(sequence)).await? {
                    (_, Some(response)) => response,
                    (replay, None) => {
                        writeln!(out, "queued offline: {} statements pending", replay.pending)?;
                        return Ok(());
                    }
                }
            }
        };
        let elapsed = started.elapsed();
        for result in response.results.into_iter().skip(skip) {
            self.print_result(result, out, elapsed)?;
        }
        match response.error {
            Some(e) => Err(SessionError::Statement(format!("{} ({})", e.message, e.code))),
            None => Ok(()),
        }
    }

    fn print_result(
        &self,
        result: StatementResult,
        out: &mut dyn Write,
        elapsed: std::time::Duration,
    ) -> std::io::Result<()> {
        // A query, or a write with RETURNING, answers with rows.
        let text = match result.kind.as_str() {
            _ if !result.columns.is_empty() => {
                let columns: Vec<String> = result.columns.into_iter().map(|c| c.name).collect();
                let rows: Vec<_> = result.rows.into_iter().map(row_from_proto).collect();
                format::rows(self.format, &columns, &rows, elapsed)
            }
            "SELECT" | "EXPLAIN" => format::rows(self.format, &[], &[], elapsed),
            kind => format::affected(self.format, kind, result.rows_affected, elapsed),
        };
        out.write_all(text.as_bytes())
    }
}
