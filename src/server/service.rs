//! The Chronos gRPC service. SQL runs on blocking threads (sled and the
//! executor are synchronous); query rows stream back in batches.

use super::errors::status_of;
use crate::proto::row_to_proto;
use crate::proto::v1::chronos_server::Chronos;
use crate::proto::v1::{
    Column, ExecuteRequest, ExecuteResponse, QueryRequest, QueryResponse, StatementError, StatementResult,
};
use crate::sql::parser::parse_one;
use crate::sql::{ApplyContext, Database, SqlError, StatementOutput};
use crate::storage::RowVersion;
use crate::sync::Clock;
use prost::Message as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Rows per streamed message, and a byte cap so wide rows stay well under
/// the client's message limit.
const BATCH_ROWS: usize = 1024;
const BATCH_BYTES: usize = 1 << 20;
/// A client that stops reading a stream for this long loses it, so it cannot
/// hold the read lock (and stall writers) forever.
const STALLED_CLIENT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct ChronosService {
    db: Arc<Database>,
    clock: Arc<Clock>,
    site: u64,
}

impl ChronosService {
    /// `site` identifies this node in row versions.
    pub fn new(db: Arc<Database>, clock: Arc<Clock>, site: u64) -> ChronosService {
        ChronosService { db, clock, site }
    }

    fn apply_context(&self) -> ApplyContext {
        let now = self.clock.now();
        ApplyContext {
            now_ms: now.physical_ms,
            version: RowVersion {
                hlc: now.to_u64(),
                site: self.site,
            },
        }
    }
}

#[tonic::async_trait]
impl Chronos for ChronosService {
    async fn execute(&self, request: Request<ExecuteRequest>) -> Result<Response<ExecuteResponse>, Status> {
        let sql = request.into_inner().sql;
        let db = self.db.clone();
        let ctx = self.apply_context();
        let outcome = tokio::task::spawn_blocking(move || db.execute_script(&sql, ctx))
            .await
            .map_err(|e| Status::internal(format!("statement execution failed: {e}")))?;
        let results = outcome.outputs.into_iter().map(statement_result).collect();
        let error = outcome.error.map(|(index, e)| {
            if let SqlError::Storage(_) = e {
                tracing::error!(error = %e, "storage error");
            }
            StatementError {
                statement_index: u32::try_from(index).unwrap_or(u32::MAX),
                code: e.code().to_string(),
                message: e.to_string(),
            }
        });
        Ok(Response::new(ExecuteResponse { results, error }))
    }

    type QueryStream = ReceiverStream<Result<QueryResponse, Status>>;

    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<Self::QueryStream>, Status> {
        // Consistency: a single node has applied every acknowledged write, so
        // STRONG and LOCAL read the same data.
        let request = request.into_inner();
        let statement = parse_one(&request.sql).map_err(|e| status_of(&e))?;
        if !statement.is_query() {
            return Err(Status::invalid_argument(format!(
                "Query runs SELECT or EXPLAIN; send {} with Execute",
                statement.kind()
            )));
        }
        let (tx, rx) = mpsc::channel(4);
        let db = self.db.clone();
        let now_ms = self.clock.now().physical_ms;
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let send = |msg: Result<QueryResponse, Status>| -> bool {
                handle
                    .block_on(async { matches!(tokio::time::timeout(STALLED_CLIENT, tx.send(msg)).await, Ok(Ok(()))) })
            };
            let result = db.query(&statement, now_ms, |result| {
                let columns = result
                    .columns
                    .iter()
                    .map(|c| Column {
                        name: c.name.clone(),
                        r#type: c.data_type.map_or_else(|| "NULL".to_string(), |t| t.to_string()),
                    })
                    .collect();
                if !send(Ok(QueryResponse {
                    columns,
                    rows: Vec::new(),
                })) {
                    return;
                }
                let mut batch = Vec::new();
                let mut bytes = 0;
                for row in result.rows {
                    match row {
                        Ok(row) => {
                            let row = row_to_proto(&row);
                            bytes += row.encoded_len();
                            batch.push(row);
                            if batch.len() >= BATCH_ROWS || bytes >= BATCH_BYTES {
                                let rows = std::mem::take(&mut batch);
                                bytes = 0;
                                if !send(Ok(QueryResponse {
                                    columns: Vec::new(),
                                    rows,
                                })) {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            send(Err(status_of(&e)));
                            return;
                        }
                    }
                }
                if !batch.is_empty() {
                    send(Ok(QueryResponse {
                        columns: Vec::new(),
                        rows: batch,
                    }));
                }
            });
            if let Err(e) = result {
                send(Err(status_of(&e)));
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn statement_result(output: StatementOutput) -> StatementResult {
    match output {
        StatementOutput::Affected { kind, count } => StatementResult {
            kind: kind.to_string(),
            rows_affected: count,
            columns: Vec::new(),
            rows: Vec::new(),
        },
        StatementOutput::Rows { kind, columns, rows } => StatementResult {
            kind: kind.to_string(),
            rows_affected: 0,
            columns: columns
                .into_iter()
                .map(|name| Column {
                    name,
                    r#type: String::new(),
                })
                .collect(),
            rows: rows.iter().map(|r| row_to_proto(r)).collect(),
        },
    }
}
