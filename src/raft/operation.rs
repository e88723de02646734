//! The apply interface for the operations of features that ride on the
//! log (sync's merges, feed starts and purges): an entry carries such an
//! operation in the feature's own serde form, and the state machine applies
//! it through the handler the daemon gave it. Raft knows only this
//! interface, so it imports no feature.

use crate::storage::{StorageError, Transaction};
use serde::{Deserialize, Serialize};

/// A feature's operation, in the feature's serde form (entries are JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FeatureOp(pub serde_json::Value);

/// Why an operation was not applied.
#[derive(Debug)]
pub enum OpError {
    /// The disk failed: the state machine stops, as for any write.
    Storage(StorageError),
    /// The operation does not fit the state (a batch for a table that is
    /// not synced, say). Nothing of it is written, the entry still counts
    /// as applied, and `reply` tells the proposer why.
    Refused { reason: String, reply: Vec<u8> },
}

impl From<StorageError> for OpError {
    fn from(e: StorageError) -> Self {
        OpError::Storage(e)
    }
}

pub trait OpHandler: Send + Sync + std::fmt::Debug {
    /// The least stamp the entry carrying `op` must be applied with (a
    /// merge's greatest version, so later local writes outrank it).
    /// Deterministic: read from the operation alone.
    fn least_stamp(&self, op: &FeatureOp) -> u64;

    /// Applies `op` in the entry's transaction and returns the reply to its
    /// proposer. Deterministic: reads only the operation and the state.
    fn apply(&self, txn: &mut Transaction, op: &FeatureOp) -> Result<Vec<u8>, OpError>;
}

/// The handler of a node that takes no operations (tests of raft alone):
/// it refuses every one.
#[derive(Debug)]
pub struct NoOps;

impl OpHandler for NoOps {
    fn least_stamp(&self, _: &FeatureOp) -> u64 {
        0
    }

    fn apply(&self, _: &mut Transaction, _: &FeatureOp) -> Result<Vec<u8>, OpError> {
        Err(OpError::Refused {
            reason: "this node applies no feature operations".into(),
            reply: Vec::new(),
        })
    }
}
