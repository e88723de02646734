//! Block ids: unique for the life of the data directory, so that the cache
//! can key decoded blocks by id.
//!
//! An id is `epoch << 40 | counter`. The epoch is kept in the `__blocks`
//! tree and raised (and flushed) every time the engine opens, so ids never
//! repeat across restarts, crashes included; 2^40 ids per open is more
//! rewrites than a node makes in its life.

use crate::storage::error::StorageError;
use crate::storage::synced_db::SyncedDb;
use std::sync::atomic::{AtomicU64, Ordering};

/// The sled tree that holds the block layer's own records.
pub const META_TREE: &str = "__blocks";
const EPOCH_KEY: &[u8] = b"epoch";
const COUNTER_BITS: u32 = 40;

pub struct Ids {
    next: AtomicU64,
    limit: u64,
}

impl Ids {
    /// Raises the stored epoch and starts counting under it.
    pub fn open(db: &SyncedDb) -> Result<Ids, StorageError> {
        let meta = db.open_tree(META_TREE)?;
        let epoch = match meta.get(EPOCH_KEY)? {
            Some(v) => {
                let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| StorageError::Corrupt {
                    space: META_TREE.into(),
                    detail: format!("the block epoch is {} bytes, not 8", v.len()),
                })?;
                u64::from_be_bytes(bytes) + 1
            }
            None => 1,
        };
        if epoch >= 1 << (64 - COUNTER_BITS) {
            return Err(StorageError::Corrupt {
                space: META_TREE.into(),
                detail: format!("the block epoch {epoch} is past its range"),
            });
        }
        meta.insert(EPOCH_KEY, &epoch.to_be_bytes())?;
        db.flush()?;
        Ok(Ids {
            next: AtomicU64::new(epoch << COUNTER_BITS),
            limit: (epoch + 1) << COUNTER_BITS,
        })
    }

    pub fn next(&self) -> Result<u64, StorageError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        match id < self.limit {
            true => Ok(id),
            false => Err(StorageError::Io(
                "this node has rewritten 2^40 blocks since it started; restart it to continue".into(),
            )),
        }
    }
}
