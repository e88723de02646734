use super::engine::{Bytes, Engine, KeyRange, Result, ScanIter, Visit, WriteBatch};
use super::rowcodec::RowVersion;
use std::collections::BTreeSet;
use std::iter::Peekable;
use std::sync::Arc;

/// A unit of atomic change over an [`Engine`]: writes are buffered in memory,
/// reads see them, and [`Transaction::commit`] applies them all at once (and
/// durably) or, when the transaction is dropped, not at all.
///
/// Only one writing transaction runs at a time (the caller serializes them),
/// so there are no write conflicts to detect.
pub struct Transaction {
    engine: Arc<dyn Engine>,
    /// Shared until written, so a read snapshot ([`Transaction::snapshot`])
    /// costs nothing until the transaction writes again.
    batch: Arc<WriteBatch>,
    dropped: BTreeSet<String>,
    version: RowVersion,
    change: u64,
}

impl Transaction {
    /// Starts a transaction whose written rows carry `version`.
    pub fn new(engine: Arc<dyn Engine>, version: RowVersion) -> Transaction {
        Transaction {
            engine,
            batch: Arc::default(),
            dropped: BTreeSet::new(),
            version,
            change: 0,
        }
    }

    /// The engine under this transaction, for what it can tell of itself
    /// (sizes, cache counters); reads and writes go through the transaction.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// Sets the change position recorded with every row this transaction
    /// writes: in a cluster, the index of the Raft entry being applied. It
    /// orders the change feed of synced tables ([`Transaction::changes_since`]).
    pub fn at_change(mut self, change: u64) -> Transaction {
        self.change = change;
        self
    }

    pub fn version(&self) -> RowVersion {
        self.version
    }

    pub fn change(&self) -> u64 {
        self.change
    }

    pub fn get(&self, space: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.batch.writes.get(space).and_then(|w| w.get(key)) {
            return Ok(v.clone());
        }
        if self.dropped.contains(space) {
            return Ok(None);
        }
        self.engine.get(space, key)
    }

    pub fn set(&mut self, space: &str, key: Vec<u8>, value: Vec<u8>) {
        self.writes_of(space).insert(key, Some(value));
    }

    pub fn delete(&mut self, space: &str, key: Vec<u8>) {
        self.writes_of(space).insert(key, None);
    }

    fn writes_of(&mut self, space: &str) -> &mut std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        let batch = Arc::make_mut(&mut self.batch);
        if !batch.writes.contains_key(space) {
            batch.writes.insert(space.to_string(), Default::default());
        }
        batch.writes.get_mut(space).expect("inserted just above")
    }

    /// Scans a range, merging the engine's data with this transaction's own
    /// writes (which win).
    pub fn scan(&self, space: &str, range: KeyRange) -> Result<ScanIter> {
        if is_empty_range(&range) {
            return Ok(Box::new(std::iter::empty()));
        }
        let base: ScanIter = if self.dropped.contains(space) {
            Box::new(std::iter::empty())
        } else {
            self.engine.scan(space, range.clone())?
        };
        let pending: Vec<(Vec<u8>, Option<Vec<u8>>)> = match self.batch.writes.get(space) {
            Some(w) if !w.is_empty() => w.range(range).map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => return Ok(base),
        };
        Ok(Box::new(MergeIter {
            base: base.peekable(),
            pending: pending.into_iter().peekable(),
        }))
    }

    /// [`Transaction::scan`] that lends each key and value to `f` (false
    /// stops it). With none of this transaction's writes in the range it
    /// reads the engine's data in place; otherwise it merges as `scan` does.
    pub fn scan_each(&self, space: &str, range: KeyRange, f: Visit<'_>) -> Result<()> {
        if is_empty_range(&range) || self.dropped.contains(space) {
            return Ok(());
        }
        let pending = self
            .batch
            .writes
            .get(space)
            .is_some_and(|w| w.range(range.clone()).next().is_some());
        if !pending {
            return self.engine.scan_each(space, range, f);
        }
        for item in self.scan(space, range)? {
            let (k, v) = item?;
            if !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    /// The writes waiting to commit, by keyspace (a value of None deletes).
    pub fn pending(&self) -> impl Iterator<Item = (&str, &std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>)> {
        self.batch.writes.iter().map(|(space, writes)| (space.as_str(), writes))
    }

    /// A key's value as committed before this transaction.
    pub fn committed(&self, space: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.engine.get(space, key)
    }

    /// The committed keys and values in a range, without this
    /// transaction's writes.
    pub fn committed_scan(&self, space: &str, range: KeyRange) -> Result<ScanIter> {
        if is_empty_range(&range) {
            return Ok(Box::new(std::iter::empty()));
        }
        self.engine.scan(space, range)
    }

    /// Removes a keyspace when the transaction commits.
    pub fn drop_space(&mut self, space: &str) {
        Arc::make_mut(&mut self.batch).writes.remove(space);
        self.dropped.insert(space.to_string());
    }

    /// A read-only view of the data as this transaction sees it now, its own
    /// writes included; later writes to either one do not show in the other.
    /// Subqueries read through one, so a statement's subqueries see the data
    /// as it was when the statement began.
    pub fn snapshot(&self) -> Transaction {
        Transaction {
            engine: self.engine.clone(),
            batch: self.batch.clone(),
            dropped: self.dropped.clone(),
            version: self.version,
            change: self.change,
        }
    }

    /// Marks the current state so that later writes can be undone with
    /// [`Transaction::rollback_to`] (shares the pending writes until the
    /// next write copies them).
    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            batch: self.batch.clone(),
            dropped: self.dropped.clone(),
        }
    }

    /// Undoes every write made since the savepoint.
    pub fn rollback_to(&mut self, savepoint: Savepoint) {
        self.batch = savepoint.batch;
        self.dropped = savepoint.dropped;
    }

    pub fn is_read_only(&self) -> bool {
        self.batch.is_empty() && self.dropped.is_empty()
    }

    /// Applies every write atomically and durably.
    pub fn commit(self) -> Result<()> {
        self.finish(true)
    }

    /// Applies every write atomically, without waiting for the disk: for
    /// changes whose durability comes from elsewhere (a replicated log entry
    /// that is already on disk and is applied again after a crash).
    pub fn apply(self) -> Result<()> {
        self.finish(false)
    }

    fn finish(self, durable: bool) -> Result<()> {
        match durable {
            true => self.engine.commit(Arc::unwrap_or_clone(self.batch))?,
            false => self.engine.apply(Arc::unwrap_or_clone(self.batch))?,
        }
        // A crash before this point leaves an orphaned keyspace that nothing
        // refers to; opening the database removes such leftovers.
        for space in &self.dropped {
            self.engine.drop_space(space)?;
        }
        Ok(())
    }
}

/// The pending writes of a transaction at some point.
pub struct Savepoint {
    batch: Arc<WriteBatch>,
    dropped: BTreeSet<String>,
}

/// True when no key can fall in the range (BTreeMap::range panics on such
/// ranges, and predicates like `id > 5 AND id < 3` produce them).
pub fn is_empty_range(range: &KeyRange) -> bool {
    use std::ops::Bound::*;
    match (&range.0, &range.1) {
        (Included(s), Included(e)) => s > e,
        (Included(s), Excluded(e)) | (Excluded(s), Included(e)) | (Excluded(s), Excluded(e)) => s >= e,
        _ => false,
    }
}

/// A buffered write: the key, and the new value or None for a delete.
type PendingWrite = (Vec<u8>, Option<Vec<u8>>);

/// Merges two key-ordered streams; on equal keys the pending write wins, and a
/// pending delete hides the key.
struct MergeIter {
    base: Peekable<ScanIter>,
    pending: Peekable<std::vec::IntoIter<PendingWrite>>,
}

impl Iterator for MergeIter {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_pending = match (self.base.peek(), self.pending.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.base.next(),
                (Some(Ok(_)), None) => return self.base.next(),
                (None, Some(_)) => true,
                (Some(Ok((bk, _))), Some((pk, _))) => {
                    if bk.as_ref() == pk.as_slice() {
                        self.base.next(); // shadowed by the pending write
                        true
                    } else {
                        pk.as_slice() < bk.as_ref()
                    }
                }
            };
            if !take_pending {
                return self.base.next();
            }
            if let Some((k, Some(v))) = self.pending.next() {
                return Some(Ok((k.into(), v.into())));
            }
            // A pending delete: skip it and look again.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryEngine;
    use std::ops::Bound;

    fn all(t: &Transaction) -> Vec<(Vec<u8>, Vec<u8>)> {
        t.scan("s", (Bound::Unbounded, Bound::Unbounded))
            .unwrap()
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect()
    }

    #[test]
    fn reads_own_writes_and_commits_atomically() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let mut t = Transaction::new(engine.clone(), RowVersion::default());
        t.set("s", b"b".to_vec(), b"2".to_vec());
        t.set("s", b"a".to_vec(), b"1".to_vec());
        assert_eq!(t.get("s", b"a").unwrap(), Some(b"1".to_vec()));
        t.commit().unwrap();

        let mut t = Transaction::new(engine.clone(), RowVersion::default());
        t.delete("s", b"a".to_vec());
        t.set("s", b"c".to_vec(), b"3".to_vec());
        t.set("s", b"b".to_vec(), b"22".to_vec());
        assert_eq!(
            all(&t),
            vec![(b"b".to_vec(), b"22".to_vec()), (b"c".to_vec(), b"3".to_vec())]
        );
        // Base keys before and after pending ones interleave in key order.
        t.set("s", b"0".to_vec(), b"0".to_vec());
        assert_eq!(
            all(&t).into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            vec![b"0".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        drop(t); // rolled back
        let mut t = Transaction::new(engine.clone(), RowVersion::default());
        t.set("s", b"z".to_vec(), b"9".to_vec());
        assert_eq!(
            all(&t).into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            vec![b"a".to_vec(), b"b".to_vec(), b"z".to_vec()]
        );
        drop(t);
        let t = Transaction::new(engine, RowVersion::default());
        assert_eq!(
            all(&t),
            vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())]
        );
    }
}
