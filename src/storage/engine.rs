use super::error::StorageError;
use std::collections::BTreeMap;
use std::ops::Bound;

pub type Result<T> = std::result::Result<T, StorageError>;

/// A key range: (start, end) bounds over raw key bytes.
pub type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Bytes read from storage: sled's IVec keeps small values inline and shares
/// larger ones, so a scan hands out rows without copying them.
pub type Bytes = sled::IVec;

/// Key-value pairs in key order.
pub type ScanIter = Box<dyn Iterator<Item = Result<(Bytes, Bytes)>> + Send>;

/// What [`Engine::scan_each`] calls with each key and value it lends;
/// returning false stops the scan.
pub type Visit<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<bool>;

/// Writes to apply together: per keyspace, key -> Some(value) to set or None
/// to delete.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    pub writes: BTreeMap<String, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.writes.values().all(|w| w.is_empty())
    }
}

/// How a keyspace is stored, where the engine can tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpaceStats {
    pub rows: u64,
    /// sled entries: blocks for data keyspaces, rows for the rest.
    pub entries: u64,
    /// Bytes of keys and values before compression.
    pub raw_bytes: u64,
    /// Bytes of sled keys and values as written (after compression).
    pub stored_bytes: u64,
}

/// Ordered keyspaces with atomic, durable commits. Implemented over sled for
/// real nodes and in memory for tests.
pub trait Engine: Send + Sync {
    fn get(&self, space: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Iterates a key range of a keyspace in key order. A keyspace that does
    /// not exist scans as empty.
    fn scan(&self, space: &str, range: KeyRange) -> Result<ScanIter>;

    /// [`Engine::scan`] that lends each key and value to `f` in key order,
    /// without a copy per entry where the engine can; `f` returns false to
    /// stop. For scans that look at every row and keep few of them.
    fn scan_each(&self, space: &str, range: KeyRange, f: Visit<'_>) -> Result<()> {
        for item in self.scan(space, range)? {
            let (k, v) = item?;
            if !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    /// Applies every write in the batch atomically. It may not be on disk
    /// yet: a crash can lose it whole, never half of it.
    fn apply(&self, batch: WriteBatch) -> Result<()>;

    /// Applies every write in the batch atomically, and returns only once the
    /// batch is durable on disk.
    fn commit(&self, batch: WriteBatch) -> Result<()> {
        self.apply(batch)?;
        self.flush()
    }

    /// Removes a keyspace and everything in it.
    fn drop_space(&self, space: &str) -> Result<()>;

    /// The names of all keyspaces.
    fn spaces(&self) -> Result<Vec<String>>;

    /// Makes everything written so far durable.
    fn flush(&self) -> Result<()>;

    /// Sizes of a keyspace as stored; None from an engine that does not
    /// keep them (the in-memory one).
    fn space_stats(&self, _space: &str) -> Result<Option<SpaceStats>> {
        Ok(None)
    }

    /// The decoded-block cache's counters, for an engine that has one.
    fn block_cache(&self) -> Option<super::CacheStats> {
        None
    }
}
