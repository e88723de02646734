//! The durable queue of a node: writes by sequence, waiting for the
//! batcher, and the outcomes of those committed, for `wait_for`.

use crate::proto::v1::ExecuteResponse;
use crate::raft::QueuedWrite;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use tokio::sync::{Notify, watch};

/// Waiting writes under b"e" + sequence, and under b"k" + client id the
/// last key that client queued with, written together (one tree, one
/// atomic batch), so a retried write is recognised exactly when the first
/// attempt was queued.
const ENTRIES: &str = "queue.entries";
const ENTRY: u8 = b'e';
const CLIENT_KEY: u8 = b'k';
const OUTCOMES: &str = "queue.outcomes";
const META: &str = "queue.meta";
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

impl From<&crate::config::QueueConfig> for QueueSettings {
    fn from(c: &crate::config::QueueConfig) -> QueueSettings {
        QueueSettings {
            max_entries: c.max_entries,
            batch: c.batch,
            keep_outcomes: c.keep_outcomes,
        }
    }
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
    db: crate::storage::SyncedDb,
    entries: sled::Tree,
    outcomes: sled::Tree,
    meta: sled::Tree,
    settings: QueueSettings,
    /// The queue's name in the cluster's idempotency records: unique per
    /// queue (a re-imaged node starts a new one).
    client_id: String,
    /// The last sequence given and the writes waiting; also serializes
    /// pushes.
    counters: Mutex<Counters>,
    /// Woken on every push.
    pub pushed: Notify,
    /// The greatest sequence committed (all below it are too).
    done: watch::Sender<u64>,
}

#[derive(Default)]
struct Counters {
    last: u64,
    waiting: u64,
}

fn entry_key(sequence: u64) -> Vec<u8> {
    let mut k = vec![ENTRY];
    k.extend_from_slice(&sequence.to_be_bytes());
    k
}

fn client_key(client_id: &str) -> Vec<u8> {
    let mut k = vec![CLIENT_KEY];
    k.extend_from_slice(client_id.as_bytes());
    k
}

/// The client's idempotency key, and the sequence its write was given.
#[derive(Serialize, Deserialize)]
struct ClientRecord {
    sequence: u64,
    queued: u64,
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
    pub fn open(db: &crate::storage::SyncedDb, node: &str, settings: QueueSettings) -> Result<WriteQueue, QueueError> {
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
        // The last sequence given: the newest waiting write's, or the last
        // committed one's when none waits.
        let mut counters = Counters { last: done, waiting: 0 };
        for item in entries.scan_prefix([ENTRY]) {
            let (k, _) = item.map_err(storage)?;
            let seq = k.get(1..9).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
            let seq = seq.ok_or_else(|| storage("bad queue entry key"))?;
            counters.last = counters.last.max(seq);
            counters.waiting += 1;
        }
        Ok(WriteQueue {
            db: db.clone(),
            entries,
            outcomes,
            meta,
            settings,
            client_id,
            counters: Mutex::new(counters),
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

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes waiting.
    pub fn len(&self) -> u64 {
        self.counters().waiting
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a write durably (fsynced) and returns its sequence. With a
    /// client key (client id, sequence) seen before, the write is not
    /// queued again: the answer is the sequence it was given then.
    pub fn push(&self, mut write: QueuedWrite, key: Option<(&str, u64)>) -> Result<u64, QueueError> {
        let mut counters = self.counters();
        if let Some((client, sequence)) = key
            && let Some(bytes) = self.entries.get(client_key(client)).map_err(storage)?
        {
            let record: ClientRecord = serde_json::from_slice(&bytes).map_err(storage)?;
            if sequence <= record.sequence {
                return Ok(record.queued);
            }
        }
        if counters.waiting >= self.settings.max_entries {
            return Err(QueueError::Full(counters.waiting));
        }
        let queued = counters.last + 1;
        write.sequence = queued;
        let mut batch = sled::Batch::default();
        batch.insert(entry_key(queued), serde_json::to_vec(&write).map_err(storage)?);
        if let Some((client, sequence)) = key {
            let record = serde_json::to_vec(&ClientRecord { sequence, queued }).map_err(storage)?;
            batch.insert(client_key(client), record);
        }
        self.entries.apply_batch(batch).map_err(storage)?;
        counters.last = queued;
        counters.waiting += 1;
        drop(counters);
        // Flushed outside the lock: concurrent pushes share fsyncs (a
        // flush makes every write before it durable).
        self.db.flush().map_err(storage)?;
        self.pushed.notify_one();
        Ok(queued)
    }

    /// The oldest waiting writes, in order.
    pub fn head(&self, limit: usize) -> Result<Vec<QueuedWrite>, QueueError> {
        self.entries
            .scan_prefix([ENTRY])
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
            removed.remove(entry_key(w.sequence));
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
        let mut counters = self.counters();
        counters.waiting = counters.waiting.saturating_sub(writes.len() as u64);
        drop(counters);
        self.done.send_replace(last);
        Ok(())
    }

    /// Where write `sequence` stands.
    pub fn state(&self, sequence: u64) -> Result<WriteState, QueueError> {
        let last = self.counters().last;
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
        let db = crate::storage::SyncedDb::open(dir.path()).unwrap();
        let q = WriteQueue::open(&db, "n1", settings(3)).unwrap();
        assert_eq!(q.push(write("a"), Some(("c1", 1))).unwrap(), 1);
        assert_eq!(q.push(write("b"), None).unwrap(), 2);
        // A retry of c1's write is not queued twice.
        assert_eq!(q.push(write("a"), Some(("c1", 1))).unwrap(), 1);
        assert_eq!(q.push(write("c"), Some(("c1", 2))).unwrap(), 3);
        assert!(matches!(q.push(write("d"), None), Err(QueueError::Full(3))));
        let head = q.head(2).unwrap();
        assert_eq!(head.iter().map(|w| w.sequence).collect::<Vec<_>>(), [1, 2]);
        q.complete(&head, vec![Some(ExecuteResponse::default()), None]).unwrap();
        let id = q.client_id().to_string();
        drop(q);
        let q = WriteQueue::open(&db, "n1", settings(3)).unwrap();
        assert_eq!(q.client_id(), id);
        assert_eq!(q.push(write("d"), None).unwrap(), 4);
        assert_eq!(q.push(write("c"), Some(("c1", 2))).unwrap(), 3);
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
