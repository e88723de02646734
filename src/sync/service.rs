//! The upstream's side of sync (gRPC `Sync` service), and every node's
//! sync status.

use super::batch::{checksum, decode_changes};
use super::ops::{MergeOp, OpFailure, OpReply, OpResult};
use super::settings::SyncSettings;
use super::status::{StatusBoard, cursor_position};
use super::{Op, SyncError, Timestamp, feed, ops};
use crate::proto::sync::sync_client::SyncClient;
use crate::proto::sync::sync_server::Sync;
use crate::proto::sync::{
    Batch, HelloRequest, HelloResponse, PullRequest, PullResponse, PushRequest, PushResponse, SyncStatusRequest,
    SyncStatusResponse, TableSyncStatus,
};
use crate::raft::RaftNode;
use crate::security::{Gate, Need, Role};
use crate::storage::sync::FeedFilter;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Largest batch a pull returns.
const MAX_PULL: u32 = 100_000;
/// Largest sync message (a batch is bounded to a few MiB of rows).
pub const MAX_SYNC_MESSAGE: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct SyncService {
    node: Arc<RaftNode>,
    settings: Arc<SyncSettings>,
    status: Arc<StatusBoard>,
    gate: Arc<Gate>,
}

/// The status a sync error is answered with.
pub fn status_of(e: &SyncError) -> Status {
    let message = e.to_string();
    match e {
        SyncError::UnknownSite(_) => Status::permission_denied(message),
        SyncError::UnknownTable(_) | SyncError::SchemaMismatch { .. } | SyncError::Clock { .. } => {
            Status::failed_precondition(message)
        }
        SyncError::Corrupt { .. } => Status::invalid_argument(message),
        SyncError::Storage(_) => Status::internal(message),
        SyncError::Unavailable(_) => Status::unavailable(message),
    }
}

fn failure_status(f: OpFailure) -> Status {
    let message = f.message;
    match f.code.as_str() {
        "unknown_table" | "schema_mismatch" | "clock_offset" => Status::failed_precondition(message),
        "corrupt_batch" => Status::invalid_argument(message),
        "unavailable" => Status::unavailable(message),
        _ => Status::internal(message),
    }
}

/// Checks a batch received from a peer: the checksum, every change's
/// encoding, and the stamps against this node's clock. Returns the changes
/// (wire form) and their greatest hlc.
pub fn check_batch(batch: &Batch, clock: &super::Clock, max_offset_ms: i64) -> Result<(Vec<u8>, u64), SyncError> {
    if checksum(&batch.changes) != batch.checksum {
        return Err(SyncError::Corrupt {
            table: batch.table.clone(),
            detail: format!(
                "checksum mismatch ({} bytes received): the batch was truncated or damaged in transit",
                batch.changes.len()
            ),
        });
    }
    let changes = decode_changes(&batch.table, &batch.changes)?;
    if changes.len() != batch.count as usize {
        return Err(SyncError::Corrupt {
            table: batch.table.clone(),
            detail: format!("{} changes announced, {} found", batch.count, changes.len()),
        });
    }
    let max = changes.iter().map(|c| c.version.hlc).max().unwrap_or(0);
    if max > 0 {
        clock
            .receive(Timestamp::from_u64(max), max_offset_ms)
            .map_err(|source| SyncError::Clock {
                table: batch.table.clone(),
                source,
            })?;
    }
    Ok((batch.changes.clone(), max))
}

impl SyncService {
    pub fn new(
        node: Arc<RaftNode>,
        settings: Arc<SyncSettings>,
        status: Arc<StatusBoard>,
        gate: Arc<Gate>,
    ) -> SyncService {
        SyncService {
            node,
            settings,
            status,
            gate,
        }
    }

    fn check_site(&self, site: &str) -> Result<(), Status> {
        match self.settings.sites.contains(site) {
            true => Ok(()),
            false => {
                let e = SyncError::UnknownSite(site.to_string());
                tracing::warn!(site, "sync refused: unknown site");
                Err(status_of(&e))
            }
        }
    }

    /// The leader's Sync client, when this node is not the leader.
    fn leader(&self, forwarded: bool) -> Result<Option<SyncClient<tonic::transport::Channel>>, Status> {
        if self.node.is_leader() {
            return Ok(None);
        }
        if forwarded {
            return Err(Status::unavailable("this node is no longer the leader; retry"));
        }
        let address = self
            .node
            .leader_address()
            .ok_or_else(|| Status::unavailable("the upstream has no leader right now; retry"))?;
        let channel = self.node.channel_to(&address)?;
        Ok(Some(
            SyncClient::new(channel)
                .max_decoding_message_size(MAX_SYNC_MESSAGE)
                .max_encoding_message_size(MAX_SYNC_MESSAGE),
        ))
    }

    /// Checks a site's table against the local one. A table sites push to
    /// takes merges; one they pull from gets a change feed.
    async fn check_table(&self, table: &str, signature: &str, feed: bool) -> Result<(), Status> {
        let db = self.node.database();
        let local = db
            .read_with(|txn| txn.table(table))
            .map_err(|e| Status::internal(e.to_string()))?
            .ok_or_else(|| status_of(&SyncError::UnknownTable(table.to_string())))?;
        if local.signature() != signature {
            let e = SyncError::SchemaMismatch {
                table: table.to_string(),
                ours: local.signature(),
                theirs: signature.to_string(),
            };
            tracing::warn!(error = %e, "sync refused");
            return Err(status_of(&e));
        }
        let ready = match feed {
            true => local.synced,
            false => local.keeps_tombstones(),
        };
        if !ready {
            let op = Op::EnableSync {
                tables: vec![table.to_string()],
                feed,
            };
            ops::propose(&self.node, op).await?.map_err(failure_status)?;
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Sync for SyncService {
    async fn hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloResponse>, Status> {
        self.gate.admit(&request, Need::Role(Role::Admin), "sync").await?;
        let r = request.into_inner();
        self.check_site(&r.site_id)?;
        if let Some(mut leader) = self.leader(r.forwarded)? {
            return leader.hello(HelloRequest { forwarded: true, ..r }).await;
        }
        self.check_table(&r.table, &r.signature, r.feed).await?;
        let name = push_cursor_name(&r.site_id, &r.table);
        let cursor = ops::cursor(self.node.database(), &name).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(HelloResponse { push_cursor: cursor }))
    }

    async fn push(&self, request: Request<PushRequest>) -> Result<Response<PushResponse>, Status> {
        self.gate.admit(&request, Need::Role(Role::Admin), "sync").await?;
        self.node.space().check_write().map_err(Status::resource_exhausted)?;
        let r = request.into_inner();
        self.check_site(&r.site_id)?;
        let batch = r
            .batch
            .clone()
            .ok_or_else(|| Status::invalid_argument("push without a batch"))?;
        let began = std::time::Instant::now();
        let (changes, max_hlc) =
            check_batch(&batch, self.node.clock(), self.settings.max_clock_offset_ms).map_err(|e| {
                tracing::warn!(site = %r.site_id, error = %e, "sync push refused");
                status_of(&e)
            })?;
        if let Some(mut leader) = self.leader(r.forwarded)? {
            return leader.push(PushRequest { forwarded: true, ..r }).await;
        }
        let op = Op::Merge(MergeOp::new(
            &batch.table,
            &batch.signature,
            (&changes, max_hlc),
            false,
            push_cursor_name(&r.site_id, &batch.table),
            &batch.cursor,
        ));
        let checked_ms = began.elapsed().as_millis() as u64;
        let report = match ops::propose(&self.node, op).await? {
            Ok(OpReply::Merged(report)) => report,
            Ok(other) => return Err(Status::internal(format!("unexpected merge reply {other:?}"))),
            Err(failure) => {
                tracing::warn!(site = %r.site_id, error = %failure.message, "sync push refused");
                return Err(failure_status(failure));
            }
        };
        tracing::debug!(
            site = %r.site_id,
            table = %batch.table,
            rows = batch.count,
            checked_ms,
            committed_ms = began.elapsed().as_millis() as u64,
            "merged a pushed batch"
        );
        Ok(Response::new(PushResponse {
            applied: report.applied,
            kept: report.kept,
            conflicts: report.conflicts,
        }))
    }

    async fn pull(&self, request: Request<PullRequest>) -> Result<Response<PullResponse>, Status> {
        self.gate.admit(&request, Need::Role(Role::Admin), "sync").await?;
        let r = request.into_inner();
        self.check_site(&r.site_id)?;
        let db = self.node.database().clone();
        let filter = FeedFilter {
            skip_pulled: false,
            skip_site: Some(SyncSettings::site_hash(&r.site_id)),
        };
        let max = r.max_changes.clamp(1, MAX_PULL) as usize;
        let table = r.table.clone();
        let cursor = r.cursor.clone();
        let out = tokio::task::spawn_blocking(move || feed::read(&db, &table, &cursor, max, filter))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let out = match out {
            Err(SyncError::Unavailable(_)) => {
                // The feed starts (on the leader) with the first site that
                // asks.
                let hello = HelloRequest {
                    site_id: r.site_id.clone(),
                    table: r.table.clone(),
                    signature: r.signature.clone(),
                    forwarded: true,
                    feed: true,
                };
                match self.leader(false)? {
                    None => self.check_table(&r.table, &r.signature, true).await?,
                    Some(mut leader) => {
                        leader.hello(hello).await?;
                    }
                }
                return Err(Status::unavailable(format!(
                    "the change feed of {} is starting; retry",
                    r.table
                )));
            }
            other => other.map_err(|e| status_of(&e))?,
        };
        if out.signature != r.signature {
            return Err(status_of(&SyncError::SchemaMismatch {
                table: r.table,
                ours: out.signature,
                theirs: r.signature,
            }));
        }
        Ok(Response::new(PullResponse {
            batch: Some(out.into_batch(&r.table)),
        }))
    }

    async fn status(&self, request: Request<SyncStatusRequest>) -> Result<Response<SyncStatusResponse>, Status> {
        self.gate.admit(&request, Need::Role(Role::Read), "sync status").await?;
        Ok(Response::new(self.report()))
    }
}

impl SyncService {
    /// This node's sync status.
    pub fn report(&self) -> SyncStatusResponse {
        report(&self.node, &self.settings, &self.status)
    }
}

pub fn report(node: &RaftNode, settings: &SyncSettings, status: &StatusBoard) -> SyncStatusResponse {
    let snapshot = status.snapshot();
    let (conflicts, merged) = ops::counters(node.database()).unwrap_or((0, 0));
    let tables = settings
        .tables
        .iter()
        .map(|(name, direction)| {
            let t = snapshot.tables.get(name).cloned().unwrap_or_default();
            let pull = ops::cursor(node.database(), &pull_cursor_name(name)).unwrap_or_default();
            TableSyncStatus {
                table: name.clone(),
                direction: format!("{direction:?}").to_lowercase(),
                rows_waiting: if snapshot.active { t.rows_waiting } else { -1 },
                bytes_waiting: if snapshot.active { t.bytes_waiting } else { -1 },
                rows_pushed: t.rows_pushed,
                rows_pulled: t.rows_pulled,
                push_cursor: t.push_cursor,
                pull_cursor: cursor_position(&pull),
            }
        })
        .collect();
    SyncStatusResponse {
        role: settings.role().to_string(),
        site_id: settings.site_id.clone().unwrap_or_default(),
        upstream: settings.upstream.clone().unwrap_or_default(),
        upstream_reachable: snapshot.upstream_reachable,
        last_success_ms: snapshot.last_success_ms,
        last_error: snapshot.last_error,
        conflicts_resolved: conflicts,
        rows_merged: merged,
        tables,
        active: snapshot.active,
    }
}

/// SHOW SYNC STATUS: (column, type) names and one row per synced table
/// (one row of NULL table when none, or no rows without sync at all).
pub fn status_table(
    report: Option<SyncStatusResponse>,
) -> (Vec<(&'static str, &'static str)>, Vec<Vec<crate::sql::types::Value>>) {
    use crate::sql::types::Value;
    let names = vec![
        ("table", "STRING"),
        ("direction", "STRING"),
        ("role", "STRING"),
        ("site_id", "STRING"),
        ("upstream", "STRING"),
        ("upstream_reachable", "BOOL"),
        ("last_success", "TIMESTAMP"),
        ("rows_waiting", "BIGINT"),
        ("bytes_waiting", "BIGINT"),
        ("rows_pushed", "BIGINT"),
        ("rows_pulled", "BIGINT"),
        ("push_cursor", "BIGINT"),
        ("pull_cursor", "BIGINT"),
        ("conflicts_resolved", "BIGINT"),
        ("last_error", "STRING"),
    ];
    let Some(r) = report else { return (names, Vec::new()) };
    let text = |s: &str| match s.is_empty() {
        true => Value::Null,
        false => Value::Text(s.to_string()),
    };
    let count = |i: i64| match i < 0 {
        true => Value::Null,
        false => Value::Int(i),
    };
    let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let mut tables = r.tables.clone();
    if tables.is_empty() {
        // One row for the node itself; no table, so no per-table counts.
        tables.push(TableSyncStatus {
            rows_waiting: -1,
            bytes_waiting: -1,
            ..Default::default()
        });
    }
    let rows = tables
        .iter()
        .map(|t| {
            vec![
                text(&t.table),
                text(&t.direction),
                text(&r.role),
                text(&r.site_id),
                text(&r.upstream),
                Value::Bool(r.upstream_reachable),
                match r.last_success_ms {
                    0 => Value::Null,
                    ms => Value::Timestamp(ms),
                },
                count(t.rows_waiting),
                count(t.bytes_waiting),
                int(t.rows_pushed),
                int(t.rows_pulled),
                int(t.push_cursor),
                int(t.pull_cursor),
                int(r.conflicts_resolved),
                text(&r.last_error),
            ]
        })
        .collect();
    (names, rows)
}

/// Where the upstream keeps a site's push cursor for a table.
pub fn push_cursor_name(site: &str, table: &str) -> String {
    format!("push/{site}/{table}")
}

/// Where a site keeps its pull cursor for a table.
pub fn pull_cursor_name(table: &str) -> String {
    format!("pull/{table}")
}

/// Decodes an operation's reply (used by tests and tools).
pub fn decode_reply(bytes: &[u8]) -> Option<OpResult> {
    serde_json::from_slice(bytes).ok()
}
