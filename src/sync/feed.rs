//! Reading a synced table's change feed into a batch to send.

use super::SyncError;
use super::batch::encode_changes;
use crate::sql::Database;
use crate::storage::sync::FeedFilter;

/// A batch read from the feed, ready to send.
pub struct Outgoing {
    pub signature: String,
    /// The changes in wire form, and how many.
    pub bytes: Vec<u8>,
    pub count: usize,
    /// Greatest hlc in the batch (the receiver checks it against its clock).
    pub max_hlc: u64,
    /// Where the next batch starts; unchanged when nothing was read.
    pub cursor: Vec<u8>,
    /// Nothing more to read after this batch, for now.
    pub complete: bool,
}

impl Outgoing {
    /// The batch as sent, with its checksum.
    pub fn into_batch(self, table: &str) -> crate::proto::sync::Batch {
        crate::proto::sync::Batch {
            table: table.to_string(),
            signature: self.signature,
            checksum: super::batch::checksum(&self.bytes),
            changes: self.bytes,
            count: self.count as u32,
            max_hlc: self.max_hlc,
            cursor: self.cursor,
            complete: self.complete,
        }
    }
}

/// About this much row data per batch, at most.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

pub fn read(
    db: &Database,
    table: &str,
    cursor: &[u8],
    max_changes: usize,
    filter: FeedFilter,
) -> Result<Outgoing, SyncError> {
    db.read_with(|txn| {
        let t = txn
            .table(table)?
            .ok_or_else(|| SyncError::UnknownTable(table.to_string()))?;
        if !t.synced {
            return Err(SyncError::Unavailable(format!(
                "table {table} has no change feed yet (its sync is starting); retry"
            )));
        }
        let page = txn.changes_since(&t, cursor, max_changes.max(1), MAX_BATCH_BYTES, filter)?;
        Ok(Outgoing {
            signature: t.signature(),
            bytes: encode_changes(&page.changes),
            count: page.changes.len(),
            max_hlc: page.changes.iter().map(|c| c.version.hlc).max().unwrap_or(0),
            cursor: page.cursor.unwrap_or_else(|| cursor.to_vec()),
            complete: page.complete,
        })
    })
}
