//! What an applied entry writes besides its own effects, in the same
//! atomic batch: the change feed implements it (`changes::ChangeLog`, or
//! `changes::NoChangeLog` on a node that keeps none). Raft knows only this
//! interface, so it imports no feature that rides on it.

use crate::storage::{Engine, StorageError, Transaction};

pub trait EntryRecorder: Send + Sync + std::fmt::Debug {
    /// Whether this node keeps the records (and answers their readers).
    fn keeps(&self) -> bool;

    /// Readies the records for a state applied up to `applied`: at start,
    /// and after a snapshot replaced the state.
    fn prepare(&self, engine: &dyn Engine, applied: u64) -> Result<(), StorageError>;

    /// Records what the entry at `index` (stamped `hlc`) changed, in the
    /// entry's own transaction. Deterministic: every member writes the same.
    fn record_entry(&self, txn: &mut Transaction, index: u64, hlc: u64) -> Result<(), StorageError>;
}
