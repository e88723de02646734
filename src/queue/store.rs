//! The durable queue of a node: writes by sequence, waiting for the
//! batcher, and the outcomes of those committed, for `wait_for`.

use crate::proto::v1::ExecuteResponse;
use crate::raft::QueuedWrite;
use prost::Message as _;
use std::sync::Mutex;
use tokio::sync::{Notify, watch};

const ENTRIES: &str = "queue.entries";
const OUTCOMES: &str = "queue.outcomes";
const META: &str = "queue.meta";
const NEXT: &[u8] = b"next";
const DONE: &[u8] = b"done";
const CLIENT_ID: &[u8] = b"client_id";

#[derive(Clone, Copy, Debug)]
pub struct QueueSettings {
    /// Writes the queue holds at most; more are refused.
    pub max_entries: u64,
    /// Writes per Raft entry at most.
    pub batch: usize,
    /// Outcomes kept for `wait_for`.
    pub keep_outcomes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "the write queue is full ({0} writes wait to be committed; is a majority of the cluster up?): retry later, or send without queueing"
    )]
    Full(u64),
    #[error("no queued write {0} on this node (its last is {1})")]
    Unknown(u64, u64),
    #[error("write queue storage: {0}")]
    Storage(String),
}

fn storage(e: impl ToString) -> QueueError {
    QueueError::Storage(e.to_string())
}

/// Where a queued write stands.
#[derive(Debug)]
pub enum WriteState {
    Waiting,
    /// Committed; its outcome, if still kept.
    Done(Option<ExecuteResponse>),
}

pub struct WriteQueue {
    db: sled::Db,
    entries: sled::Tree,
    outcomes: sled::Tree,
    meta: sled::Tree,
    settings: QueueSettings,
    /// The queue's name in the cluster's idempotency records: unique per
    /// queue (a re-imaged node starts a new one).
    client_id: String,
    /// Serializes pushes (sequence assignment).
    push_lock: Mutex<()>,
    /// Woken on every push.
    pub pushed: Notify,
    /// The greatest sequence committed (all below it are too).
    done: watch::Sender<u64>,
}

fn read_u64(tree: &sled::Tree, key: &[u8]) -> Result<u64, QueueError> {
    match tree.get(key).map_err(storage)? {
        None => Ok(0),
        Some(v) => v
            .as_ref()
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| storage(format!("bad counter {}", String::from_utf8_lossy(key)))),
    }
}

impl WriteQueue {
    pub fn open(db: &sled::Db, node: &str, settings: QueueSettings) -> Result<WriteQueue, QueueError> {
        let entries = db.open_tree(ENTRIES).map_err(storage)?;
        let outcomes = db.open_tree(OUTCOMES).map_err(storage)?;
        let meta = db.open_tree(META).map_err(storage)?;
        let client_id = match meta.get(CLIENT_ID).map_err(storage)? {
            Some(id) => String::from_utf8_lossy(&id).to_string(),
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let id = format!("queue/{node}/{nanos:x}");
                meta.insert(CLIENT_ID, id.as_bytes()).map_err(storage)?;
                db.flush().map_err(storage)?;
                id
            }
        };
        let done = read_u64(&meta, DONE)?;
        Ok(WriteQueue {
            db: db.clone(),
            entries,
            outcomes,
            meta,
            settings,
            client_id,
            push_lock: Mutex::new(()),
            pushed: Notify::new(),
            done: watch::channel(done).0,
        })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn settings(&self) -> QueueSettings {
        self.settings
    }

    /// Writes waiting.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queues a write durably (fsynced) and returns its sequence.
    pub fn push(&self, mut write: QueuedWrite) -> Result<u64, QueueError> {
        let _guard = self.push_lock.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = self.len();
        if waiting >= self.settings.max_entries {
            return Err(QueueError::Full(waiting));
        }
        let sequence = read_u64(&self.meta, NEXT)? + 1;
        write.sequence = sequence;
        let bytes = serde_json::to_vec(&write).map_err(storage)?;
        let mut batch_entries = sled::Batch::default();
        batch_entries.insert(&sequence.to_be_bytes(), bytes);
        self.entries.apply_batch(batch_entries).map_err(storage)?;
        self.meta.insert(NEXT, &sequence.to_be_bytes()).map_err(storage)?;
        self.db.flush().map_err(storage)?;
        self.pushed.notify_one();
        Ok(sequence)
    }

    /// The oldest waiting writes, in order.
    pub fn head(&self, limit: usize) -> Result<Vec<QueuedWrite>, QueueError> {
        self.entries
            .iter()
            .take(limit)
            .map(|item| {
                let (_, v) = item.map_err(storage)?;
                serde_json::from_slice(&v).map_err(storage)
            })
            .collect()
    }

    /// Records that `writes` (the head of the queue) were committed with
    /// these outcomes (None: applied by an earlier entry, outcome lost).
    pub fn complete(&self, writes: &[QueuedWrite], outcomes: Vec<Option<ExecuteResponse>>) -> Result<(), QueueError> {
        let Some(last) = writes.last().map(|w| w.sequence) else {
            return Ok(());
        };
        let mut removed = sled::Batch::default();
        let mut kept = sled::Batch::default();
        for (w, outcome) in writes.iter().zip(outcomes) {
            removed.remove(&w.sequence.to_be_bytes());
            if let Some(o) = outcome {
                kept.insert(&w.sequence.to_be_bytes(), o.encode_to_vec());
            }
        }
        // Outcomes older than the ones kept are forgotten.
        let forget_below = last.saturating_sub(self.settings.keep_outcomes);
        for item in self.outcomes.range(..forget_below.to_be_bytes()) {
            let (k, _) = item.map_err(storage)?;
            kept.remove(k);
        }
        self.outcomes.apply_batch(kept).map_err(storage)?;
        self.entries.apply_batch(removed).map_err(storage)?;
        self.meta.insert(DONE, &last.to_be_bytes()).map_err(storage)?;
        self.db.flush().map_err(storage)?;
        self.done.send_replace(last);
        Ok(())
    }

    /// Where write `sequence` stands.
    pub fn state(&self, sequence: u64) -> Result<WriteState, QueueError> {
        let last = read_u64(&self.meta, NEXT)?;
        if sequence == 0 || sequence > last {
            return Err(QueueError::Unknown(sequence, last));
        }
        if sequence > *self.done.borrow() {
            return Ok(WriteState::Waiting);
        }
        let outcome = self.outcomes.get(sequence.to_be_bytes()).map_err(storage)?;
        let decoded = outcome
            .map(|b| ExecuteResponse::decode(b.as_ref()))
            .transpose()
            .map_err(storage)?;
        Ok(WriteState::Done(decoded))
    }

    /// Waits until write `sequence` is committed (or `limit` passes).
    pub async fn wait(&self, sequence: u64, limit: std::time::Duration) -> Result<WriteState, QueueError> {
        if let WriteState::Done(o) = self.state(sequence)? {
            return Ok(WriteState::Done(o));
        }
        let mut done = self.done.subscribe();
        let _ = tokio::time::timeout(limit, done.wait_for(|d| *d >= sequence)).await;
        self.state(sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(sql: &str) -> QueuedWrite {
        QueuedWrite {
            sql: sql.into(),
            ..QueuedWrite::default()
        }
    }

    fn settings(max_entries: u64) -> QueueSettings {
        QueueSettings {
            max_entries,
            batch: 10,
            keep_outcomes: 2,
        }
    }

    #[test]
    fn sequences_survive_reopening_and_a_full_queue_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let q = WriteQueue::open(&db, "n1", settings(3)).unwrap();
        assert_eq!(q.push(write("a")).unwrap(), 1);
        assert_eq!(q.push(write("b")).unwrap(), 2);
        assert_eq!(q.push(write("c")).unwrap(), 3);
        assert!(matches!(q.push(write("d")), Err(QueueError::Full(3))));
        let head = q.head(2).unwrap();
        assert_eq!(head.iter().map(|w| w.sequence).collect::<Vec<_>>(), [1, 2]);
        q.complete(&head, vec![Some(ExecuteResponse::default()), None]).unwrap();
        let id = q.client_id().to_string();
        drop(q);
        let q = WriteQueue::open(&db, "n1", settings(3)).unwrap();
        assert_eq!(q.client_id(), id);
        assert_eq!(q.push(write("d")).unwrap(), 4);
        assert!(matches!(q.state(1), Ok(WriteState::Done(Some(_)))));
        assert!(matches!(q.state(2), Ok(WriteState::Done(None))));
        assert!(matches!(q.state(3), Ok(WriteState::Waiting)));
        assert!(matches!(q.state(9), Err(QueueError::Unknown(9, 4))));
        assert_eq!(
            q.head(10).unwrap().iter().map(|w| w.sql.as_str()).collect::<Vec<_>>(),
            ["c", "d"]
        );
    }
}
