//! The feed's storage: one record per applied entry that changed rows,
//! keyed by its Raft index, and the oldest index from which the feed is
//! complete.

use super::capture::{ChangeOp, capture};
use super::record;
use crate::raft::EntryRecorder;
use crate::sql::types::Row;
use crate::storage::{Engine, StorageError, Transaction, WriteBatch};
use std::ops::Bound;

/// Feed records by big-endian Raft index.
const LOG: &str = crate::storage::CHANGE_LOG_SPACE;
const STATE: &str = "changes.state";
/// The oldest index from which every change is in the log.
const OLDEST: &[u8] = b"oldest";
/// Old records are cut every this many indexes at most (deterministically,
/// so every member keeps the same feed).
const TRIM_EVERY: u64 = 1024;

/// One changed row, as a subscriber sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEvent {
    /// The Raft index of the entry that made the change.
    pub index: u64,
    /// Position among that entry's changes: (index, seq) is unique.
    pub seq: u32,
    /// The entry's HLC stamp (packed).
    pub hlc: u64,
    pub table: String,
    pub op: ChangeOp,
    pub columns: Vec<String>,
    pub before: Option<Row>,
    pub after: Option<Row>,
}

/// Asked for changes older than the feed keeps.
#[derive(Debug, thiserror::Error)]
#[error(
    "changes before index {oldest} are no longer kept (asked from {asked}): read the tables afresh, then subscribe from index {oldest} or later"
)]
pub struct TooOld {
    pub asked: u64,
    pub oldest: u64,
}

fn key(index: u64) -> Vec<u8> {
    index.to_be_bytes().to_vec()
}

fn corrupt(detail: impl ToString) -> StorageError {
    StorageError::Corrupt {
        space: LOG.into(),
        detail: detail.to_string(),
    }
}

/// A node that keeps no feed: it removes one left from when it did, so
/// that turning the feed on again never presents one with a hole in it.
#[derive(Clone, Copy, Debug)]
pub struct NoChangeLog;

impl EntryRecorder for NoChangeLog {
    fn keeps(&self) -> bool {
        false
    }

    fn prepare(&self, engine: &dyn Engine, _applied: u64) -> Result<(), StorageError> {
        ChangeLog::remove(engine)
    }

    fn record_entry(&self, _txn: &mut Transaction, _index: u64, _hlc: u64) -> Result<(), StorageError> {
        Ok(())
    }
}

impl EntryRecorder for ChangeLog {
    fn keeps(&self) -> bool {
        true
    }

    fn prepare(&self, engine: &dyn Engine, applied: u64) -> Result<(), StorageError> {
        self.open(engine, applied)
    }

    fn record_entry(&self, txn: &mut Transaction, index: u64, hlc: u64) -> Result<(), StorageError> {
        self.record(txn, index, hlc)
    }
}

/// The feed of a node's state machine.
#[derive(Clone, Copy, Debug)]
pub struct ChangeLog {
    /// Indexes of history kept.
    pub retain_entries: u64,
}

impl ChangeLog {
    /// Readies the feed over a state that has applied up to `applied`: a
    /// feed that was off (or lost in a snapshot from a member without one)
    /// is complete only from the next index.
    pub fn open(&self, engine: &dyn Engine, applied: u64) -> Result<(), StorageError> {
        if engine.get(STATE, OLDEST)?.is_none() {
            let mut batch = WriteBatch::default();
            batch
                .writes
                .entry(STATE.to_string())
                .or_default()
                .insert(OLDEST.to_vec(), Some(key(applied + 1)));
            engine.commit(batch)?;
        }
        Ok(())
    }

    /// Removes the feed of a node that no longer keeps one, so that turning
    /// it on again never presents a feed with a hole in it.
    pub fn remove(engine: &dyn Engine) -> Result<(), StorageError> {
        for space in [LOG, STATE] {
            engine.drop_space(space)?;
        }
        Ok(())
    }

    /// Records the row changes of the entry at `index` in its own
    /// transaction, and cuts history past the retention.
    pub fn record(&self, txn: &mut Transaction, index: u64, hlc: u64) -> Result<(), StorageError> {
        let tables = capture(txn)?;
        if !tables.is_empty() {
            txn.set(LOG, key(index), record::encode(hlc, &tables));
        }
        let every = (self.retain_entries / 4).clamp(1, TRIM_EVERY);
        if index.is_multiple_of(every) && index > self.retain_entries {
            let cut = index - self.retain_entries;
            let oldest = oldest_in(txn)?;
            if cut > oldest {
                let old = txn.scan(LOG, (Bound::Unbounded, Bound::Excluded(key(cut))))?;
                let keys = old
                    .map(|item| item.map(|(k, _)| k.to_vec()))
                    .collect::<Result<Vec<_>, _>>()?;
                for k in keys {
                    txn.delete(LOG, k);
                }
                txn.set(STATE, OLDEST.to_vec(), key(cut));
            }
        }
        Ok(())
    }

    /// The oldest index the feed holds every change from.
    pub fn oldest(engine: &dyn Engine) -> Result<u64, StorageError> {
        decode_index(engine.get(STATE, OLDEST)?.as_deref())
    }

    /// The changes of up to `max_entries` entries from index `from` on, in
    /// order. `from` 0 means the oldest kept.
    pub fn read(
        engine: &dyn Engine,
        from: u64,
        max_entries: usize,
    ) -> Result<Result<Vec<ChangeEvent>, TooOld>, StorageError> {
        let oldest = Self::oldest(engine)?;
        if from != 0 && from < oldest {
            return Ok(Err(TooOld { asked: from, oldest }));
        }
        let range = (Bound::Included(key(from.max(oldest))), Bound::Unbounded);
        let mut events = Vec::new();
        for item in engine.scan(LOG, range)?.take(max_entries) {
            let (k, v) = item?;
            let index = decode_index(Some(&k))?;
            events.extend(record::decode(index, &v)?);
        }
        Ok(Ok(events))
    }
}

fn oldest_in(txn: &Transaction) -> Result<u64, StorageError> {
    decode_index(txn.get(STATE, OLDEST)?.as_deref())
}

fn decode_index(bytes: Option<&[u8]>) -> Result<u64, StorageError> {
    match bytes {
        None => Ok(1),
        Some(b) => b
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| corrupt(format!("bad index of {} bytes", b.len()))),
    }
}
