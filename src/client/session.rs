//! Running SQL text from a user over a connection: statements are split
//! locally (so syntax errors name their line and column at once), queries
//! stream through Query, writes go through Execute, and BEGIN ... COMMIT is
//! collected and sent as one atomic Execute.

use super::connection::{Client, ClientError};
use super::format::{self, Format};
use crate::proto::row_from_proto;
use crate::proto::v1::StatementResult;
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
}

impl Session {
    pub fn new(client: Client, format: Format) -> Session {
        Session {
            client,
            format,
            transaction: None,
        }
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
        let response = self.client.execute(sql).await?;
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
        let text = match result.kind.as_str() {
            "SELECT" | "EXPLAIN" => {
                let columns: Vec<String> = result.columns.into_iter().map(|c| c.name).collect();
                let rows: Vec<_> = result.rows.into_iter().map(row_from_proto).collect();
                format::rows(self.format, &columns, &rows, elapsed)
            }
            kind => format::affected(self.format, kind, result.rows_affected, elapsed),
        };
        out.write_all(text.as_bytes())
    }
}
