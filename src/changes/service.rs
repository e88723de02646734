//! Following the feed: the gRPC `Changes/Subscribe` stream, and the reader
//! that it, `GET /v1/changes` and the webhook share.

use super::store::{ChangeEvent, ChangeLog, TooOld};
use crate::proto::row_to_proto;
use crate::proto::v1::changes_server::Changes;
use crate::proto::v1::{ChangeEvent as ProtoEvent, SubscribeRequest};
use crate::raft::RaftNode;
use crate::storage::StorageError;
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Entries read per page of the feed.
const PAGE_ENTRIES: usize = 256;
/// A follower that hears of no new entry re-reads after this long anyway.
const IDLE_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("the change feed is off on this node (set [changes] enabled = true)")]
    Disabled,
    #[error(transparent)]
    TooOld(#[from] TooOld),
    #[error("reading the change feed: {0}")]
    Storage(#[from] StorageError),
}

impl From<FeedError> for Status {
    fn from(e: FeedError) -> Status {
        match e {
            FeedError::Disabled => Status::failed_precondition(e.to_string()),
            FeedError::TooOld(_) => Status::out_of_range(e.to_string()),
            FeedError::Storage(_) => Status::internal(e.to_string()),
        }
    }
}

/// A position in the feed and the tables wanted.
#[derive(Clone, Debug)]
pub struct Cursor {
    /// The next index to read (0: the oldest kept).
    pub index: u64,
    /// Events of `index` below this position were handled already.
    pub seq: u32,
    /// Only these tables; all when empty.
    pub tables: BTreeSet<String>,
}

impl Cursor {
    fn wants(&self, e: &ChangeEvent) -> bool {
        (e.index > self.index || e.seq >= self.seq) && (self.tables.is_empty() || self.tables.contains(&e.table))
    }
}

/// Reads the next events after `cursor` (at most a page of entries) and
/// moves the cursor past them. Empty when the feed has nothing newer.
pub async fn next_events(node: &Arc<RaftNode>, cursor: &mut Cursor) -> Result<Vec<ChangeEvent>, FeedError> {
    if !node.keeps_changes() {
        return Err(FeedError::Disabled);
    }
    let db = node.database().clone();
    let from = cursor.index;
    let page = tokio::task::spawn_blocking(move || ChangeLog::read(db.engine().as_ref(), from, PAGE_ENTRIES))
        .await
        .map_err(|e| FeedError::Storage(StorageError::Io(e.to_string())))???;
    let Some(last) = page.last() else { return Ok(Vec::new()) };
    let next = last.index + 1;
    let events = page.into_iter().filter(|e| cursor.wants(e)).collect();
    cursor.index = next;
    cursor.seq = 0;
    Ok(events)
}

/// Waits until the node has applied an entry at or past `index`, or a
/// while has passed.
pub async fn wait_for_index(node: &RaftNode, index: u64) {
    let mut metrics = node.raft().metrics();
    let _ = tokio::time::timeout(IDLE_CHECK, async {
        loop {
            let applied = metrics.borrow().last_applied.map_or(0, |l| l.index);
            if applied >= index || metrics.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
}

/// Sends events from `cursor` on into `tx` until the receiver goes away,
/// the node stops (`stopping` turns true) or, unless `follow`, the feed
/// has nothing newer. An error ends the stream.
pub async fn follow(
    node: Arc<RaftNode>,
    mut cursor: Cursor,
    follow: bool,
    mut stopping: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<ChangeEvent, FeedError>>,
) {
    loop {
        if *stopping.borrow() {
            return;
        }
        match next_events(&node, &mut cursor).await {
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Ok(events) if events.is_empty() => {
                if !follow || tx.is_closed() {
                    return;
                }
                tokio::select! {
                    _ = wait_for_index(&node, cursor.index.max(1)) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
            Ok(events) => {
                for e in events {
                    if tx.send(Ok(e)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

impl ChangeEvent {
    /// The event as one JSON object (a line of `/v1/changes`, an item of a
    /// webhook POST): rows as {column: value} objects.
    pub fn to_json(&self) -> Json {
        let row = |r: &Option<crate::sql::types::Row>| match r {
            None => Json::Null,
            Some(values) => Json::Object(
                self.columns
                    .iter()
                    .zip(values)
                    .map(|(c, v)| (c.clone(), v.to_json()))
                    .collect::<Map<_, _>>(),
            ),
        };
        json!({
            "index": self.index,
            "seq": self.seq,
            "hlc": self.hlc,
            "table": self.table,
            "op": self.op.as_str(),
            "before": row(&self.before),
            "after": row(&self.after),
        })
    }

    fn to_proto(&self) -> ProtoEvent {
        ProtoEvent {
            index: self.index,
            seq: self.seq,
            hlc: self.hlc,
            table: self.table.clone(),
            op: self.op.as_str().to_string(),
            columns: self.columns.clone(),
            before: self.before.as_deref().map(row_to_proto),
            after: self.after.as_deref().map(row_to_proto),
        }
    }
}

/// The gRPC `chronos.v1.Changes` service.
#[derive(Clone)]
pub struct ChangesService {
    node: Arc<RaftNode>,
    stopping: watch::Receiver<bool>,
    gate: Arc<crate::security::Gate>,
}

impl ChangesService {
    /// Streams end when `stopping` turns true, so a stopping node need not
    /// wait for its subscribers.
    pub fn new(
        node: Arc<RaftNode>,
        stopping: watch::Receiver<bool>,
        gate: Arc<crate::security::Gate>,
    ) -> ChangesService {
        ChangesService { node, stopping, gate }
    }
}

#[tonic::async_trait]
impl Changes for ChangesService {
    type SubscribeStream = ReceiverStream<Result<ProtoEvent, Status>>;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        use crate::security::{Need, Role};
        self.gate
            .admit(&request, Need::Role(Role::Read), "the change feed")
            .await?;
        let request = request.into_inner();
        let cursor = Cursor {
            index: request.from_index,
            seq: 0,
            tables: request.tables.into_iter().collect(),
        };
        // A position that is too old fails the call itself, not the stream.
        let mut probe = cursor.clone();
        next_events(&self.node, &mut probe).await?;
        let (events_tx, mut events) = mpsc::channel(1024);
        let (tx, rx) = mpsc::channel(64);
        let stopping = self.stopping.clone();
        tokio::spawn(follow(
            self.node.clone(),
            cursor,
            !request.no_follow,
            stopping,
            events_tx,
        ));
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let message = event.map(|e| e.to_proto()).map_err(Status::from);
                if tx.send(message).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
