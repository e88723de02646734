//! The site's sync agent. It runs on every member of a site cluster and
//! acts only while its member leads: each round it pushes the changes of
//! every push table since the cursor the upstream holds for this site, and
//! pulls the upstream's changes of every pull table since the cursor this
//! site holds. The receiver merges each batch through its own Raft together
//! with the new cursor, so a cursor never passes a change that was not
//! committed; a batch cut off by a lost link or a crash is simply sent
//! again, and merging it twice changes nothing.
//!
//! Besides, while leading (site or not), the agent proposes the periodic
//! purge of old tombstones and idempotency records.

use super::feed::{self, Outgoing};
use super::ops::{MergeOp, OpReply};
use super::service::{MAX_SYNC_MESSAGE, check_batch, pull_cursor_name};
use super::settings::SyncSettings;
use super::status::{StatusBoard, cursor_position};
use super::{Op, SyncError, Timestamp, ops};
use crate::config::Direction;
use crate::proto::sync::sync_client::SyncClient;
use crate::proto::sync::{HelloRequest, PullRequest, PushRequest};
use crate::raft::RaftNode;
use crate::storage::sync::FeedFilter;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// How long one sync call may take before the link counts as down.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the leader purges old tombstones and idempotency records.
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How often the rows waiting are counted for status (a scan of the feed
/// after the push cursor): often while the link is down (the backlog is
/// the news then), rarely while syncing; in between, pushed rows are
/// taken off the count.
const COUNT_OFFLINE_EVERY: Duration = Duration::from_secs(5);
const COUNT_EVERY: Duration = Duration::from_secs(30);

pub struct Agent {
    node: Arc<RaftNode>,
    settings: Arc<SyncSettings>,
    status: Arc<StatusBoard>,
}

fn unavailable(e: impl std::fmt::Display) -> SyncError {
    SyncError::Unavailable(e.to_string())
}

fn from_status(s: tonic::Status) -> SyncError {
    let message = s.message().to_string();
    let transport = s.code() == tonic::Code::Unknown && message.contains("transport");
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            SyncError::Unavailable(format!("upstream unavailable: {message}"))
        }
        _ if transport => SyncError::Unavailable(format!("upstream unavailable: {message}")),
        _ => SyncError::Unavailable(format!("upstream refused: {message} ({:?})", s.code())),
    }
}

impl Agent {
    pub fn new(node: Arc<RaftNode>, settings: Arc<SyncSettings>, status: Arc<StatusBoard>) -> Agent {
        Agent { node, settings, status }
    }

    /// Runs until the process ends.
    pub async fn run(self) {
        let mut last_purge = Instant::now();
        let mut last_count = Instant::now() - COUNT_EVERY;
        loop {
            let leading = self.node.is_leader();
            self.status
                .update(|s| s.active = leading && self.settings.upstream.is_some());
            if !leading {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            if last_purge.elapsed() >= PURGE_EVERY {
                self.purge().await;
                last_purge = Instant::now();
            }
            let Some(upstream) = self.settings.upstream.clone() else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            self.start_feeds().await;
            let wait = match self.round(&upstream).await {
                Ok(()) => {
                    self.status.update(|s| {
                        s.upstream_reachable = true;
                        s.last_success_ms = self.node.now_ms();
                        s.last_error.clear();
                    });
                    self.settings.interval
                }
                Err(e) => {
                    let down = matches!(&e, SyncError::Unavailable(m) if m.starts_with("upstream unavailable"));
                    // Said once per new error, not every round of an outage.
                    if self.status.snapshot().last_error != e.to_string() {
                        tracing::warn!(error = %e, "sync round failed; retrying");
                    }
                    self.status.update(|s| {
                        s.upstream_reachable = !down;
                        s.last_error = e.to_string();
                    });
                    self.settings.interval.max(Duration::from_secs(1))
                }
            };
            let every = match self.status.snapshot().upstream_reachable {
                true => COUNT_EVERY,
                false => COUNT_OFFLINE_EVERY,
            };
            if last_count.elapsed() >= every {
                self.count_waiting().await;
                last_count = Instant::now();
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Starts the change feeds of the configured tables that exist and
    /// have none yet (a table may be created after the node started).
    async fn start_feeds(&self) {
        let db = self.node.database();
        // Pushed tables need a feed; pull-only ones only take merges.
        for feed in [true, false] {
            let tables: Vec<String> = self
                .settings
                .tables
                .iter()
                .filter(|(_, direction)| direction.pushes() == feed)
                .filter(|(name, _)| {
                    matches!(db.read_with(|txn| txn.table(name)),
                        Ok(Some(t)) if !(t.synced || (!feed && t.merges)))
                })
                .map(|(name, _)| name.clone())
                .collect();
            if tables.is_empty() {
                continue;
            }
            match ops::propose(&self.node, Op::EnableSync { tables, feed }).await {
                Ok(Ok(_)) => {}
                Ok(Err(f)) => tracing::warn!(error = %f.message, "cannot start change feeds"),
                Err(s) => tracing::warn!(error = %s.message(), "cannot start change feeds"),
            }
        }
    }

    async fn purge(&self) {
        let now = self.node.clock().now();
        let before = |d: Duration| {
            Timestamp {
                physical_ms: now.physical_ms - d.as_millis() as i64,
                logical: 0,
            }
            .to_u64()
        };
        let op = Op::Purge {
            before_hlc: before(self.settings.tombstone_retention),
            sessions_before_hlc: before(self.settings.idempotency_retention),
        };
        match ops::propose(&self.node, op).await {
            Ok(Ok(OpReply::Purged { tombstones, sessions })) if tombstones + sessions > 0 => {
                tracing::info!(
                    tombstones,
                    sessions,
                    "purged expired tombstones and idempotency records"
                );
            }
            Ok(Err(f)) => tracing::warn!(error = %f.message, "purge refused"),
            Err(s) => tracing::debug!(error = %s.message(), "purge not replicated"),
            Ok(_) => {}
        }
    }

    fn client(&self, upstream: &str) -> Result<SyncClient<Channel>, SyncError> {
        let channel = self.node.channel_to(upstream).map_err(|s| unavailable(s.message()))?;
        Ok(SyncClient::new(channel)
            .max_decoding_message_size(MAX_SYNC_MESSAGE)
            .max_encoding_message_size(MAX_SYNC_MESSAGE))
    }

    fn site_id(&self) -> String {
        self.settings.site_id.clone().unwrap_or_default()
    }

    /// One round: every table, both directions, until caught up.
    async fn round(&self, upstream: &str) -> Result<(), SyncError> {
        let mut client = self.client(upstream)?;
        let mut first_error = None;
        for (table, direction) in self.settings.tables.clone() {
            self.status
                .table(&table, |t| t.direction = format!("{direction:?}").to_lowercase());
            let result = async {
                if direction.pushes() {
                    self.push_table(&mut client, &table).await?;
                }
                if direction.pulls() {
                    self.pull_table(&mut client, &table).await?;
                }
                Ok::<(), SyncError>(())
            }
            .await;
            if let Err(e) = result {
                // A link failure stops the round; a refusal of one table
                // (say its schema differs) does not stop the others.
                if matches!(&e, SyncError::Unavailable(m) if m.starts_with("upstream unavailable")) {
                    return Err(e);
                }
                tracing::debug!(table, error = %e, "table not synced");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn signature(&self, table: &str) -> Result<String, SyncError> {
        let t = self
            .node
            .database()
            .read_with(|txn| txn.table(table))?
            .ok_or_else(|| {
                SyncError::Unavailable(format!(
                    "table {table} (named in [sync] tables) does not exist on this site yet: create it with the upstream's definition"
                ))
            })?;
        Ok(t.signature())
    }

    async fn push_table(&self, client: &mut SyncClient<Channel>, table: &str) -> Result<(), SyncError> {
        let hello = HelloRequest {
            site_id: self.site_id(),
            table: table.to_string(),
            signature: self.signature(table)?,
            forwarded: false,
            feed: false,
        };
        let mut cursor = call(client.hello(hello)).await?.push_cursor;
        let mut out = self.read_feed(table, &cursor).await?;
        loop {
            if !self.node.is_leader() || out.cursor == cursor {
                self.status.table(table, |t| t.push_cursor = cursor_position(&cursor));
                return Ok(());
            }
            let (count, complete) = (out.count as u64, out.complete);
            let next = out.cursor.clone();
            let request = PushRequest {
                site_id: self.site_id(),
                batch: Some(out.into_batch(table)),
                forwarded: false,
            };
            // The next batch is read while this one is merged upstream; it
            // is sent only after this one is committed (cursors in order).
            let began = Instant::now();
            let (pushed, following) = tokio::join!(call(client.push(request)), async {
                match complete {
                    true => None,
                    false => Some(self.read_feed(table, &next).await),
                }
            });
            pushed?;
            tracing::debug!(
                table,
                rows = count,
                push_ms = began.elapsed().as_millis() as u64,
                "pushed a batch"
            );
            cursor = next;
            self.status.table(table, |t| {
                t.rows_pushed += count;
                t.push_cursor = cursor_position(&cursor);
                if t.rows_waiting > 0 {
                    t.bytes_waiting -= t.bytes_waiting / t.rows_waiting * (count as i64).min(t.rows_waiting);
                    t.rows_waiting = (t.rows_waiting - count as i64).max(0);
                }
            });
            match following {
                None => return Ok(()),
                Some(read) => out = read?,
            }
        }
    }

    async fn read_feed(&self, table: &str, cursor: &[u8]) -> Result<Outgoing, SyncError> {
        let db = self.node.database().clone();
        let (table, cursor) = (table.to_string(), cursor.to_vec());
        let filter = FeedFilter {
            skip_pulled: true,
            skip_site: None,
        };
        let max = self.settings.batch_size;
        tokio::task::spawn_blocking(move || feed::read(&db, &table, &cursor, max, filter))
            .await
            .map_err(unavailable)?
    }

    async fn pull_table(&self, client: &mut SyncClient<Channel>, table: &str) -> Result<(), SyncError> {
        let name = pull_cursor_name(table);
        loop {
            if !self.node.is_leader() {
                return Ok(());
            }
            let cursor = ops::cursor(self.node.database(), &name)?;
            let request = PullRequest {
                site_id: self.site_id(),
                table: table.to_string(),
                signature: self.signature(table)?,
                cursor: cursor.clone(),
                max_changes: self.settings.batch_size as u32,
            };
            let batch = call(client.pull(request))
                .await?
                .batch
                .ok_or_else(|| unavailable("upstream sent a pull reply without a batch"))?;
            if batch.cursor == cursor {
                return Ok(());
            }
            let (changes, max_hlc) = check_batch(&batch, self.node.clock(), self.settings.max_clock_offset_ms)?;
            let op = Op::Merge(MergeOp::new(
                table,
                &batch.signature,
                (&changes, max_hlc),
                true,
                name.clone(),
                &batch.cursor,
            ));
            match ops::propose(&self.node, op).await {
                Ok(Ok(_)) => {}
                Ok(Err(f)) => return Err(SyncError::Unavailable(format!("merge refused: {}", f.message))),
                Err(s) => return Err(unavailable(s.message())),
            }
            let count = u64::from(batch.count);
            self.status.table(table, |t| {
                t.rows_pulled += count;
                t.pull_cursor = cursor_position(&batch.cursor);
            });
            if batch.complete {
                return Ok(());
            }
        }
    }

    /// Counts the rows not yet pushed, for status.
    async fn count_waiting(&self) {
        let db = self.node.database().clone();
        let status = self.status.clone();
        let tables: Vec<(String, Direction)> = self.settings.tables.clone().into_iter().collect();
        let _ = tokio::task::spawn_blocking(move || {
            for (table, direction) in tables {
                if !direction.pushes() {
                    status.table(&table, |t| {
                        t.rows_waiting = 0;
                        t.bytes_waiting = 0;
                    });
                    continue;
                }
                let position = status.snapshot().tables.get(&table).map_or(0, |t| t.push_cursor);
                // Scanned outside the database lock (writers must not wait
                // on a count); an estimate is good enough here.
                let counted = (|| -> Result<(i64, i64), crate::storage::StorageError> {
                    let Some(t) = db.read_with(|txn| txn.table(&table))? else {
                        return Ok((0, 0));
                    };
                    let engine = db.engine();
                    let start = (position + 1).to_be_bytes().to_vec();
                    let range = (std::ops::Bound::Included(start), std::ops::Bound::Unbounded);
                    let (mut rows, mut bytes) = (0i64, 0i64);
                    for item in engine.scan(&t.feed_space(), range)? {
                        let (key, origin) = item?;
                        if origin.first() == Some(&(crate::storage::sync::Origin::Pulled as u8)) {
                            continue;
                        }
                        rows += 1;
                        // The first rows give the estimate of row size.
                        if rows <= 100
                            && let Some(v) = engine.get(&t.space(), &key[8.min(key.len())..])?
                        {
                            bytes += v.len() as i64 + key.len() as i64;
                        }
                    }
                    let estimate = match rows.min(100) {
                        0 => 0,
                        n => bytes / n * rows,
                    };
                    Ok((rows, estimate))
                })();
                if let Ok((rows, bytes)) = counted {
                    status.table(&table, |t| {
                        t.rows_waiting = rows;
                        t.bytes_waiting = bytes;
                    });
                }
            }
        })
        .await;
    }
}

async fn call<T>(
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, SyncError> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(from_status(s)),
        Err(_) => Err(SyncError::Unavailable(
            "upstream unavailable: no answer within 30 s".into(),
        )),
    }
}
