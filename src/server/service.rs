//! The Chronos gRPC service. Writes go through Raft (sent on to the
//! leader by the node); queries run here after the read barrier the client
//! asked for, on blocking threads (sled and the executor are synchronous),
//! and stream back in batches.

use super::errors::status_of;
use super::limits::Limits;
use super::membership;
use super::metrics::{Kind, Metrics};
use super::write::replicate;
use crate::proto::v1::chronos_server::Chronos;
use crate::proto::v1::{
    AddMemberRequest, BackupChunk, BackupRequest, ClusterStatusRequest, ClusterStatusResponse, Column, Consistency,
    ExecuteRequest, ExecuteResponse, QueryRequest, QueryResponse, RemoveMemberRequest,
};
use crate::proto::{execute_response, params_from_proto, request_script, row_to_proto};
use crate::queue::{QueueError, WriteQueue, WriteState};
use crate::raft::{QueuedWrite, RaftNode};
use crate::security::auth::role_for;
use crate::security::{Caller, Gate, Need, Role};
use crate::sql::ScriptOutcome;
use crate::sql::parser::ast::Statement;
use crate::sql::parser::parse_one_with;
use crate::sql::script::{Unit, prepare, prepare_batch};
use crate::sql::types::EvalContext;
use crate::sync::service::SyncService;
use prost::Message as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
    node: Arc<RaftNode>,
    /// This node's queue of writes acknowledged before they commit.
    queue: Arc<WriteQueue>,
    metrics: Arc<Metrics>,
    sync: Option<SyncService>,
    limits: Limits,
    gate: Arc<Gate>,
}

impl ChronosService {
    pub fn new(
        node: Arc<RaftNode>,
        queue: Arc<WriteQueue>,
        metrics: Arc<Metrics>,
        limits: Limits,
        gate: Arc<Gate>,
    ) -> ChronosService {
        ChronosService {
            node,
            queue,
            metrics,
            sync: None,
            limits,
            gate,
        }
    }

    /// Answers SHOW SYNC STATUS from this sync service.
    pub fn with_sync(mut self, sync: SyncService) -> ChronosService {
        self.sync = Some(sync);
        self
    }

    fn sync_status_rows(&self) -> QueryResponse {
        let (names, rows) = crate::sync::service::status_table(self.sync.as_ref().map(SyncService::report));
        let columns = names
            .iter()
            .map(|(n, t)| Column {
                name: n.to_string(),
                r#type: t.to_string(),
            })
            .collect();
        let rows = rows.iter().map(|r| row_to_proto(r)).collect();
        QueryResponse { columns, rows }
    }
}

/// Runs a script: answered here if it does not parse (it never enters the
/// replicated log), else replicated through the node. Shared by gRPC and
/// the HTTP API. `caller` must hold the role every statement needs.
pub async fn execute(
    node: &RaftNode,
    queue: &Arc<WriteQueue>,
    limits: &Limits,
    caller: &Caller,
    request: ExecuteRequest,
) -> Result<ExecuteResponse, Status> {
    if request.wait_for > 0 {
        caller.may(Need::Role(Role::Write), "waiting for a queued write")?;
        node.holds_data()?;
        return wait_for(queue, request.wait_for).await;
    }
    if !request.queued_batch.is_empty() {
        // Queued writes forwarded by a member: each was checked when queued.
        caller.may(Need::Member, "forwarding queued writes")?;
        return replicate(node, &request).await;
    }
    if !request.sql.is_empty() && !request.batch.is_empty() {
        return Err(Status::invalid_argument("send either sql or batch, not both"));
    }
    limits.check_text(&request.sql)?;
    for item in &request.batch {
        limits.check_text(&item.sql)?;
    }
    // Checked here so that a request that cannot run never enters the
    // replicated log; apply prepares it again, identically.
    let (params, batch) = request_script(&request);
    let sql = request.sql.clone();
    let prepared = tokio::task::spawn_blocking(move || match batch.is_empty() {
        true => prepare(&sql, &params),
        false => prepare_batch(&batch),
    })
    .await
    .map_err(|e| Status::internal(format!("parsing failed: {e}")))?;
    match prepared {
        Ok(units) => {
            limits.check_units(&units)?;
            check_roles(caller, &units)?;
            if !units.iter().all(Unit::is_read_only) {
                node.space().check_write().map_err(Status::resource_exhausted)?;
            }
        }
        Err(error) => {
            let outcome = ScriptOutcome {
                outputs: Vec::new(),
                error: Some(error),
            };
            return Ok(execute_response(&outcome));
        }
    }
    if request.queued {
        // A witness's queue would be answered by its own (empty) apply.
        node.holds_data()?;
        return enqueue(queue, request).await;
    }
    let response = replicate(node, &request).await?;
    if let Some(e) = &response.error
        && e.code == "storage_error"
    {
        tracing::error!(error = %e.message, "storage error");
    }
    Ok(response)
}

/// Refuses the script unless the caller's role covers each statement.
fn check_roles(caller: &Caller, units: &[Unit]) -> Result<(), Status> {
    for statement in units.iter().flat_map(|u| &u.statements) {
        let statement = &statement.statement;
        caller.may(Need::Role(role_for(statement)), statement.kind())?;
    }
    Ok(())
}

/// Queues a (checked) write on this node and answers with its sequence.
async fn enqueue(queue: &Arc<WriteQueue>, request: ExecuteRequest) -> Result<ExecuteResponse, Status> {
    let (params, batch) = request_script(&request);
    let write = QueuedWrite {
        sequence: 0,
        sql: request.sql,
        params,
        batch,
    };
    let queue = queue.clone();
    let client = request.client_id;
    let sequence = request.sequence;
    let pushed = tokio::task::spawn_blocking(move || {
        let key = (!client.is_empty()).then_some((client.as_str(), sequence));
        queue.push(write, key)
    })
    .await
    .map_err(|e| Status::internal(format!("queueing failed: {e}")))?;
    match pushed {
        Ok(sequence) => Ok(ExecuteResponse {
            queued_sequence: sequence,
            ..ExecuteResponse::default()
        }),
        Err(e @ QueueError::Full(_)) => Err(Status::resource_exhausted(e.to_string())),
        Err(e) => Err(Status::internal(e.to_string())),
    }
}

/// How long a `wait_for` call waits before answering that the write is
/// still queued.
const WAIT_FOR_LIMIT: Duration = Duration::from_secs(20);

/// Answers with the outcome of this node's queued write `sequence` once
/// it is committed.
async fn wait_for(queue: &WriteQueue, sequence: u64) -> Result<ExecuteResponse, Status> {
    match queue.wait(sequence, WAIT_FOR_LIMIT).await {
        Ok(WriteState::Done(outcome)) => Ok(ExecuteResponse {
            queued_sequence: sequence,
            // Committed, but its outcome is no longer kept: no results.
            ..outcome.unwrap_or_default()
        }),
        Ok(WriteState::Waiting) => Err(Status::deadline_exceeded(format!(
            "queued write {sequence} is not committed yet ({} writes wait in the queue); wait again",
            queue.len()
        ))),
        Err(e @ QueueError::Unknown(..)) => Err(Status::not_found(e.to_string())),
        Err(e) => Err(Status::internal(e.to_string())),
    }
}

#[tonic::async_trait]
impl Chronos for ChronosService {
    async fn execute(&self, request: Request<ExecuteRequest>) -> Result<Response<ExecuteResponse>, Status> {
        let began = Instant::now();
        let caller = self.gate.identify(&request).await?;
        let result = execute(&self.node, &self.queue, &self.limits, &caller, request.into_inner()).await;
        let ok = matches!(&result, Ok(r) if r.error.is_none());
        self.metrics.record(Kind::Execute, ok, began.elapsed());
        result.map(Response::new)
    }

    async fn cluster_status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.gate
            .admit(&request, Need::Role(Role::Read), "ClusterStatus")
            .await?;
        Ok(Response::new(membership::status_response(
            self.node.cluster_status().await,
        )))
    }

    async fn add_member(&self, request: Request<AddMemberRequest>) -> Result<Response<ClusterStatusResponse>, Status> {
        self.gate
            .admit(&request, Need::Role(Role::Admin), "adding a member")
            .await?;
        Ok(Response::new(
            membership::add_member(&self.node, request.into_inner()).await?,
        ))
    }

    async fn remove_member(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.gate
            .admit(&request, Need::Role(Role::Admin), "removing a member")
            .await?;
        Ok(Response::new(
            membership::remove_member(&self.node, request.into_inner()).await?,
        ))
    }

    type BackupStream = ReceiverStream<Result<BackupChunk, Status>>;

    async fn backup(&self, request: Request<BackupRequest>) -> Result<Response<Self::BackupStream>, Status> {
        self.gate.admit(&request, Need::Role(Role::Admin), "a backup").await?;
        self.node.holds_data()?;
        let node = self.node.clone();
        // Staged in the node's own directory: it has room for the data, and
        // a container may have no /tmp.
        let file = tempfile::NamedTempFile::new_in(node.dir()).map_err(|e| Status::internal(format!("backup: {e}")))?;
        let path = file.path().to_path_buf();
        let records = tokio::task::spawn_blocking(move || node.backup_to(&path))
            .await
            .map_err(|e| Status::internal(format!("backup: {e}")))?
            .map_err(|e| Status::internal(format!("backup: {e}")))?;
        tracing::info!(records, "backup taken");
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            // The temporary file is removed when `file` drops, at the end.
            let mut input = match file.reopen() {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.blocking_send(Err(Status::internal(format!("backup: {e}"))));
                    return;
                }
            };
            let mut total_bytes = input.metadata().map_or(0, |m| m.len());
            let mut buf = vec![0u8; BATCH_BYTES];
            loop {
                match input.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        let chunk = BackupChunk {
                            data: buf[..n].to_vec(),
                            total_bytes,
                        };
                        total_bytes = 0;
                        if tx.blocking_send(Ok(chunk)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::internal(format!("backup: {e}"))));
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type QueryStream = ReceiverStream<Result<QueryResponse, Status>>;

    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<Self::QueryStream>, Status> {
        let began = Instant::now();
        self.gate.admit(&request, Need::Role(Role::Read), "Query").await?;
        self.node.holds_data()?;
        let request = request.into_inner();
        self.limits.check_text(&request.sql)?;
        let params = params_from_proto(request.params.clone(), request.named_params.clone());
        let parsed = parse_one_with(&request.sql, &params);
        let show_sync = matches!(parsed, Ok(Statement::ShowSyncStatus));
        let prepared = async {
            let statement = parsed.map_err(|e| status_of(&e))?;
            if !statement.is_query() {
                return Err(Status::invalid_argument(format!(
                    "Query runs SELECT or EXPLAIN; send {} with Execute",
                    statement.kind()
                )));
            }
            if request.consistency() == Consistency::Strong {
                self.node.strong_read_barrier().await?;
            }
            Ok(statement)
        };
        if show_sync {
            self.metrics.record(Kind::Query, true, began.elapsed());
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.send(Ok(self.sync_status_rows())).await;
            return Ok(Response::new(ReceiverStream::new(rx)));
        }
        let statement = match prepared.await {
            Ok(s) => s,
            Err(e) => {
                self.metrics.record(Kind::Query, false, began.elapsed());
                return Err(e);
            }
        };
        let metrics = self.metrics.clone();
        let (tx, rx) = mpsc::channel(4);
        let db = self.node.database().clone();
        let now_ms = self.node.now_ms();
        let limits = self.limits;
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let send = |msg: Result<QueryResponse, Status>| -> bool {
                handle
                    .block_on(async { matches!(tokio::time::timeout(STALLED_CLIENT, tx.send(msg)).await, Ok(Ok(()))) })
            };
            let eval = EvalContext {
                now_ms,
                deadline: limits.deadline(),
            };
            let result = db.query_until(&statement, eval, |result| {
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
            metrics.record(Kind::Query, result.is_ok(), began.elapsed());
            if let Err(e) = result {
                send(Err(status_of(&e)));
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
