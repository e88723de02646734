//! The replicated operations of sync. Each travels in a Raft entry and is
//! applied by every member in log order; applying reads nothing but the
//! operation and the state, so all members end up identical.

use super::SyncError;
use super::batch::decode_changes;
use crate::raft::{FeatureOp, OpError, OpHandler, RaftNode};
use crate::sql::{ApplyContext, Database};
use crate::storage::sync::{Merged, Origin, check_change};
use crate::storage::{StorageError, Transaction};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use tonic::Status;

/// Where cursors and counters live (part of the replicated state).
pub const CURSORS: &str = "sync.cursors";
const STATS: &str = "sync.stats";
const CONFLICTS: &[u8] = b"conflicts";
const MERGED: &[u8] = b"merged";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Merges a batch of changes into a synced table and moves a cursor, in
    /// one atomic step: the cursor never passes changes not committed.
    Merge(MergeOp),
    /// Starts change feeds for these tables (existing rows included), or,
    /// with `feed` false, only makes them take merges (tombstones, no feed:
    /// an upstream's table that sites push to and none pulls from).
    EnableSync {
        tables: Vec<String>,
        #[serde(default = "yes")]
        feed: bool,
    },
    /// Drops tombstones of deletes stamped before `before_hlc`, and
    /// idempotency records last used before `sessions_before_hlc`.
    Purge { before_hlc: u64, sessions_before_hlc: u64 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergeOp {
    pub table: String,
    /// The sender's [`crate::storage::Table::signature`].
    pub signature: String,
    /// The changes, in the wire form of [`super::batch`], base64.
    pub changes: String,
    /// Pulled from this cluster's upstream (not to be pushed back).
    pub pulled: bool,
    /// The cursor to set once merged: its name and value (base64).
    pub cursor_name: String,
    pub cursor: String,
    /// The greatest hlc among the changes, found when the batch was
    /// checked (apply verifies it), so stamping needs no second decode.
    #[serde(default)]
    pub max_hlc: u64,
}

/// Applies sync's operations for the state machine, which knows them only
/// as [`FeatureOp`]s (raft/operation.rs).
#[derive(Debug)]
pub struct SyncOps;

impl OpHandler for SyncOps {
    /// A merge's entry is stamped at least as late as its newest change.
    fn least_stamp(&self, op: &FeatureOp) -> u64 {
        // Read in place: a merge's batch need not be copied for this.
        op.0.get("Merge")
            .and_then(|m| m.get("max_hlc"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    }

    fn apply(&self, txn: &mut Transaction, op: &FeatureOp) -> Result<Vec<u8>, OpError> {
        let applied = Op::deserialize(&op.0)
            .map_err(|e| SyncError::Unavailable(format!("cannot read the operation: {e}")))
            .and_then(|op| apply_op(txn, &op));
        match applied {
            Ok(reply) => Ok(encode(&Ok(reply))),
            Err(SyncError::Storage(e)) => Err(OpError::Storage(e)),
            Err(e) => Err(OpError::Refused {
                reason: e.to_string(),
                reply: encode(&Err(OpFailure {
                    code: e.code().to_string(),
                    message: e.to_string(),
                })),
            }),
        }
    }
}

fn apply_op(txn: &mut Transaction, op: &Op) -> Result<OpReply, SyncError> {
    Ok(match op {
        Op::Merge(m) => OpReply::Merged(m.apply(txn)?),
        Op::EnableSync { tables, feed } => OpReply::Enabled(enable_sync(txn, tables, *feed)?),
        Op::Purge {
            before_hlc,
            sessions_before_hlc,
        } => {
            let tombstones = purge_tombstones(txn, *before_hlc)?;
            let sessions = crate::raft::purge_sessions(txn, *sessions_before_hlc)?;
            OpReply::Purged { tombstones, sessions }
        }
    })
}

fn encode(result: &OpResult) -> Vec<u8> {
    // Plain enums and strings always encode.
    serde_json::to_vec(result).unwrap_or_default()
}

/// Replicates `op` through `node`, which must lead, and returns its
/// outcome once applied there.
pub async fn propose(node: &RaftNode, op: Op) -> Result<OpResult, Status> {
    let op = serde_json::to_value(&op).map_err(|e| Status::internal(format!("cannot encode the operation: {e}")))?;
    let reply = node.propose(FeatureOp(op)).await.map_err(Status::from)?;
    serde_json::from_slice(&reply).map_err(|e| Status::internal(format!("bad apply result: {e}")))
}

/// The answer to an operation, as stored in its reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OpReply {
    Merged(MergeReport),
    Enabled(Vec<String>),
    Purged { tombstones: u64, sessions: u64 },
}

/// Why an operation was refused (nothing of it was applied).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpFailure {
    pub code: String,
    pub message: String,
}

/// The decoded reply of an applied operation.
pub type OpResult = Result<OpReply, OpFailure>;

fn yes() -> bool {
    true
}

/// What a merge did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeReport {
    pub applied: u64,
    pub kept: u64,
    pub conflicts: u64,
}

impl MergeOp {
    /// A merge of checked changes (wire form) whose greatest hlc is
    /// `max_hlc`.
    pub fn new(
        table: &str,
        signature: &str,
        (changes, max_hlc): (&[u8], u64),
        pulled: bool,
        cursor_name: String,
        cursor: &[u8],
    ) -> Self {
        MergeOp {
            table: table.to_string(),
            signature: signature.to_string(),
            changes: BASE64.encode(changes),
            pulled,
            cursor_name,
            cursor: BASE64.encode(cursor),
            max_hlc,
        }
    }

    fn corrupt(&self, detail: String) -> SyncError {
        SyncError::Corrupt {
            table: self.table.clone(),
            detail,
        }
    }

    /// The greatest hlc among the changes: the entry applying them must be
    /// stamped at least this late, so later local writes outrank them.
    pub fn max_hlc(&self) -> u64 {
        self.max_hlc
    }

    fn decode(&self) -> Result<(Vec<crate::storage::sync::Change>, Vec<u8>), SyncError> {
        let bytes = BASE64
            .decode(&self.changes)
            .map_err(|e| self.corrupt(format!("changes are not base64: {e}")))?;
        let cursor = BASE64
            .decode(&self.cursor)
            .map_err(|e| self.corrupt(format!("cursor is not base64: {e}")))?;
        Ok((decode_changes(&self.table, &bytes)?, cursor))
    }

    /// Merges the batch. Nothing is written when any change does not fit.
    pub fn apply(&self, txn: &mut Transaction) -> Result<MergeReport, SyncError> {
        let (changes, cursor) = self.decode()?;
        let max = changes.iter().map(|c| c.version.hlc).max().unwrap_or(0);
        if max != self.max_hlc {
            return Err(self.corrupt(format!(
                "the batch's greatest stamp is {max}, the entry says {}",
                self.max_hlc
            )));
        }
        let table = txn
            .table(&self.table)?
            .ok_or_else(|| SyncError::UnknownTable(self.table.clone()))?;
        if table.signature() != self.signature {
            return Err(SyncError::SchemaMismatch {
                table: self.table.clone(),
                ours: table.signature(),
                theirs: self.signature.clone(),
            });
        }
        if !table.keeps_tombstones() {
            return Err(SyncError::Unavailable(format!(
                "table {} is not synced here yet; retry",
                self.table
            )));
        }
        for (i, change) in changes.iter().enumerate() {
            check_change(&table, change).map_err(|e| self.corrupt(format!("change {i}: {e}")))?;
        }
        let origin = match self.pulled {
            true => Origin::Pulled,
            false => Origin::Local,
        };
        let mut report = MergeReport::default();
        for change in changes {
            match txn.merge_change(&table, change, origin)? {
                Merged::Applied { conflict } => {
                    report.applied += 1;
                    report.conflicts += u64::from(conflict);
                }
                Merged::Kept { conflict } => {
                    report.kept += 1;
                    report.conflicts += u64::from(conflict);
                }
            }
        }
        txn.set(CURSORS, self.cursor_name.as_bytes().to_vec(), cursor);
        add_counter(txn, CONFLICTS, report.conflicts)?;
        add_counter(txn, MERGED, report.applied)?;
        Ok(report)
    }
}

fn read_counter(txn: &Transaction, key: &[u8]) -> Result<u64, StorageError> {
    Ok(txn
        .get(STATS, key)?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_be_bytes))
}

fn add_counter(txn: &mut Transaction, key: &[u8], n: u64) -> Result<(), StorageError> {
    if n > 0 {
        let total = read_counter(txn, key)? + n;
        txn.set(STATS, key.to_vec(), total.to_be_bytes().to_vec());
    }
    Ok(())
}

/// Starts the change feed of each named table that exists and has none
/// (or, without `feed`, lets it take merges). Returns the tables found.
pub fn enable_sync(txn: &mut Transaction, tables: &[String], feed: bool) -> Result<Vec<String>, SyncError> {
    let mut enabled = Vec::new();
    for name in tables {
        let Some(mut table) = txn.table(name)? else { continue };
        if feed && !table.synced {
            let rows = txn.enable_sync(&mut table)?;
            txn.save_table(&table)?;
            tracing::info!(table = %name, rows, "started the change feed");
        } else if !feed && !table.keeps_tombstones() {
            table.merges = true;
            txn.save_table(&table)?;
            tracing::info!(table = %name, "table takes merges");
        }
        enabled.push(name.clone());
    }
    Ok(enabled)
}

/// Drops old tombstones from every synced table. Returns how many.
pub fn purge_tombstones(txn: &mut Transaction, before_hlc: u64) -> Result<u64, SyncError> {
    let mut purged = 0;
    for table in txn.tables()? {
        if table.keeps_tombstones() {
            purged += txn.purge_tombstones(&table, before_hlc)?;
        }
    }
    Ok(purged)
}

pub use crate::storage::positions::{feed_base, set_feed_base};

/// A cursor as stored (empty when never set).
pub fn cursor(db: &Database, name: &str) -> Result<Vec<u8>, StorageError> {
    Ok(db.engine().get(CURSORS, name.as_bytes())?.unwrap_or_default())
}

/// The cumulative (conflicts resolved, rows merged) counters.
pub fn counters(db: &Database) -> Result<(u64, u64), StorageError> {
    db.read_with(|txn| Ok((read_counter(txn, CONFLICTS)?, read_counter(txn, MERGED)?)))
}

/// Applies an operation outside Raft (tests, tools): one atomic batch.
pub fn apply_locally(db: &Database, ctx: ApplyContext, op: &MergeOp) -> Result<MergeReport, SyncError> {
    db.apply_with(ctx, |txn| op.apply(txn))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stamp is read from the operation's serde form in place, so that
    /// form and the reading must agree.
    #[test]
    fn a_merge_raises_its_entry_stamp_to_its_newest_change() {
        let merge = Op::Merge(MergeOp::new("t", "sig", (b"", 4242), false, "c".into(), b""));
        let op = FeatureOp(serde_json::to_value(&merge).unwrap());
        assert_eq!(SyncOps.least_stamp(&op), 4242);
        let purge = Op::Purge {
            before_hlc: 9999,
            sessions_before_hlc: 9999,
        };
        assert_eq!(
            SyncOps.least_stamp(&FeatureOp(serde_json::to_value(&purge).unwrap())),
            0
        );
    }
}
