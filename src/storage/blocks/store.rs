//! Row-level reads and writes over one keyspace stored as blocks in a sled
//! tree.
//!
//! A block's sled key is its first row key, so the block that holds (or
//! would hold) a row is the one with the greatest sled key at or below the
//! row's key; a key below every block goes to the first block, which is
//! then re-keyed. Writes rewrite the blocks they touch: a block that grows
//! past `max_block` bytes splits, and one that shrinks below a quarter of it
//! absorbs its right neighbour.
//!
//! This module never commits: [`BlockStore::plan`] turns row writes into
//! block writes, which the engine applies atomically with the rest of the
//! batch.

use super::cache::BlockCache;
use super::format::{self, Block};
use super::ids::Ids;
use crate::storage::engine::{Bytes, Result, ScanIter, Visit};
use sled::IVec;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// Everything the block layer shares between the engine and its scans.
#[derive(Clone)]
pub struct BlockStore {
    pub cache: Arc<BlockCache>,
    pub ids: Arc<Ids>,
    /// Bytes of entries (before compression) a block holds at most, unless
    /// one entry alone is larger.
    pub max_block: usize,
}

/// Block writes for one tree: sled key -> new block bytes, or None to
/// remove.
pub type Plan = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

impl BlockStore {
    /// The decoded block behind sled value `bytes`.
    pub fn load(&self, space: &str, bytes: &IVec) -> Result<Arc<Block>> {
        if let Some(block) = format::peek_id(bytes).and_then(|id| self.cache.get(id)) {
            return Ok(block);
        }
        let block = Arc::new(format::decode(space, bytes)?);
        self.cache.insert(block.clone());
        Ok(block)
    }

    /// The block whose range holds `key`: the one keyed at or below it, or
    /// else the first.
    fn holder(&self, tree: &sled::Tree, key: &[u8]) -> Result<Option<(IVec, IVec)>> {
        match tree.range(..=key).next_back() {
            Some(found) => Ok(Some(found?)),
            None => Ok(tree.iter().next().transpose()?),
        }
    }

    pub fn get(&self, tree: &sled::Tree, space: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some((_, bytes)) = tree.range(..=key).next_back().transpose()? else {
            return Ok(None);
        };
        let block = self.load(space, &bytes)?;
        Ok(block.search(key).ok().map(|i| block.value(i).to_vec()))
    }

    pub fn scan(&self, tree: sled::Tree, space: &str, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> ScanIter {
        Box::new(self.block_scan(tree, space, range))
    }

    fn block_scan(&self, tree: sled::Tree, space: &str, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> BlockScan {
        BlockScan {
            store: self.clone(),
            tree,
            space: space.to_string(),
            from: Some(range.0),
            end: range.1,
            current: None,
            done: false,
        }
    }

    /// [`BlockStore::scan`] that lends each key and value to `f` straight
    /// from the decoded block, with no copy or count per row; `f` returns
    /// false to stop.
    pub fn scan_each(
        &self,
        tree: sled::Tree,
        space: &str,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        f: Visit<'_>,
    ) -> Result<()> {
        let mut scan = self.block_scan(tree, space, range);
        while let Some((block, at, stop)) = scan.next_run()? {
            for i in at..stop {
                if !f(block.key(i), block.value(i))? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Turns row writes (key -> Some(value) or None to delete, in key order)
    /// into block writes. The caller holds the engine's write lock, so the
    /// blocks read here are the ones the plan replaces.
    pub fn plan(&self, tree: &sled::Tree, space: &str, rows: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Result<Plan> {
        let mut plan = Plan::default();
        let mut rows = rows.iter().peekable();
        while let Some((first, _)) = rows.peek() {
            // One run: the block that holds `first`, the writes inside its
            // range, and the right neighbours it absorbs while small.
            let mut held: Vec<Arc<Block>> = Vec::new();
            let mut old_keys: Vec<IVec> = Vec::new();
            let mut next = match self.holder(tree, first)? {
                Some((key, bytes)) => {
                    let block = self.load(space, &bytes)?;
                    let next = after(tree, &key)?;
                    // Appending past a nearly full last block (time-ordered
                    // keys): start the next block instead of rewriting it.
                    let full_tail = next.is_none()
                        && block.raw_len() >= self.max_block * 3 / 4
                        && block
                            .len()
                            .checked_sub(1)
                            .is_some_and(|last| first.as_slice() > block.key(last));
                    if !full_tail {
                        held.push(block);
                        old_keys.push(key);
                    }
                    next
                }
                None => None,
            };
            let mut merged: Vec<Entry> = Vec::new();
            let mut sizes: Vec<usize> = Vec::new();
            let mut at = 0;
            loop {
                let block = held.get(at).cloned();
                let len = block.as_ref().map_or(0, |b| b.len());
                let mut i = 0;
                let inside = |k: &Vec<u8>| {
                    next.as_ref()
                        .is_none_or(|(n, _): &(IVec, IVec)| k.as_slice() < n.as_ref())
                };
                while let Some((key, value)) = rows.next_if(|(k, _)| inside(k)) {
                    if let Some(b) = &block {
                        while i < len && b.key(i) < key.as_slice() {
                            sizes.push(format::entry_size(b.key(i), b.value(i)));
                            merged.push(Entry::Kept(at, i));
                            i += 1;
                        }
                        if i < len && b.key(i) == key.as_slice() {
                            i += 1; // replaced or deleted
                        }
                    }
                    if let Some(value) = value {
                        sizes.push(format::entry_size(key, value));
                        merged.push(Entry::Written(key, value));
                    }
                }
                if let Some(b) = &block {
                    for i in i..len {
                        sizes.push(format::entry_size(b.key(i), b.value(i)));
                        merged.push(Entry::Kept(at, i));
                    }
                }
                at += 1;
                let size: usize = sizes.iter().sum();
                match next.take() {
                    // Small but not empty: take in the right neighbour.
                    Some((key, bytes)) if size > 0 && size < self.max_block / 4 => {
                        held.push(self.load(space, &bytes)?);
                        next = after(tree, &key)?;
                        old_keys.push(key);
                    }
                    other => {
                        next = other;
                        break;
                    }
                }
            }
            for key in old_keys {
                plan.insert(key.to_vec(), None);
            }
            for range in chunks(&sizes, self.max_block, next.is_none()) {
                let part = &merged[range];
                let bytes = format::encode(self.ids.next()?, part.iter().map(|e| resolve(&held, e)))?;
                plan.insert(resolve(&held, &part[0]).0.to_vec(), Some(bytes));
            }
        }
        Ok(plan)
    }
}

/// One entry of a rewritten block: kept from block `.0` at index `.1`, or
/// written by the batch.
enum Entry<'a> {
    Kept(usize, usize),
    Written(&'a Vec<u8>, &'a Vec<u8>),
}

fn resolve<'h>(held: &'h [Arc<Block>], entry: &Entry<'h>) -> (&'h [u8], &'h [u8]) {
    match *entry {
        Entry::Kept(b, i) => (held[b].key(i), held[b].value(i)),
        Entry::Written(k, v) => (k.as_slice(), v.as_slice()),
    }
}

/// The block after the one keyed `key`.
fn after(tree: &sled::Tree, key: &[u8]) -> Result<Option<(IVec, IVec)>> {
    Ok(tree
        .range::<&[u8], _>((Bound::Excluded(key), Bound::Unbounded))
        .next()
        .transpose()?)
}

/// Cuts entries of `sizes` bytes into blocks of at most `max` bytes. At the
/// tail of the keyspace, where time-ordered keys arrive, blocks are filled
/// to `max`; elsewhere they are cut into even parts, so that inserts in the
/// middle do not split a full block every time.
fn chunks(sizes: &[usize], max: usize, tail: bool) -> Vec<std::ops::Range<usize>> {
    if sizes.is_empty() {
        return Vec::new();
    }
    let size: usize = sizes.iter().sum();
    let target = match tail || size <= max {
        true => max,
        false => size.div_ceil(size.div_ceil(max)),
    };
    let mut out = Vec::new();
    let (mut start, mut acc) = (0, 0);
    for (i, n) in sizes.iter().enumerate() {
        if acc > 0 && acc + n > target {
            out.push(start..i);
            (start, acc) = (i, 0);
        }
        acc += n;
    }
    out.push(start..sizes.len());
    out
}

/// A scan over blocks. It finds each next block from the last key it
/// returned, not from the block it left, so a block split or merged while
/// it runs can neither repeat a row nor skip one that was there throughout.
struct BlockScan {
    store: BlockStore,
    tree: sled::Tree,
    space: String,
    /// Where to look for the next block: the scan's start, then the last
    /// key of the block just finished.
    from: Option<Bound<Vec<u8>>>,
    end: Bound<Vec<u8>>,
    /// The block being read and the span of its rows still to return.
    current: Option<(Arc<Block>, usize, usize)>,
    done: bool,
}

impl BlockScan {
    /// The first block holding a key past `from`, positioned at that key.
    ///
    /// The block at or below `from` and the block after it are two reads;
    /// a write between them could merge rows past `from` into the first
    /// after it was read. So the first is read again, and the pair is used
    /// only if it has not changed (block ids are never reused).
    fn seek(&self, from: &Bound<Vec<u8>>) -> Result<Option<(Arc<Block>, usize)>> {
        let past = |b: &Block| match from {
            Bound::Included(k) => b.search(k).unwrap_or_else(|i| i),
            Bound::Excluded(k) => b.search(k).map_or_else(|i| i, |i| i + 1),
            Bound::Unbounded => 0,
        };
        let holder = || -> Result<Option<IVec>> {
            match from {
                Bound::Included(k) | Bound::Excluded(k) => Ok(self
                    .tree
                    .range(..=k.as_slice())
                    .next_back()
                    .transpose()?
                    .map(|(_, v)| v)),
                Bound::Unbounded => Ok(None),
            }
        };
        loop {
            let first = holder()?;
            if let Some(bytes) = &first {
                let block = self.store.load(&self.space, bytes)?;
                let at = past(&block);
                if at < block.len() {
                    return Ok(Some((block, at)));
                }
            }
            let next = match from {
                Bound::Included(k) | Bound::Excluded(k) => self
                    .tree
                    .range::<&[u8], _>((Bound::Excluded(k.as_slice()), Bound::Unbounded))
                    .next()
                    .transpose()?,
                Bound::Unbounded => self.tree.iter().next().transpose()?,
            };
            let id = |b: &Option<IVec>| b.as_ref().and_then(|b| format::peek_id(b));
            if id(&first) != id(&holder()?) {
                continue;
            }
            return match next {
                Some((_, bytes)) => {
                    let block = self.store.load(&self.space, &bytes)?;
                    let at = past(&block);
                    Ok(Some((block, at)))
                }
                None => Ok(None),
            };
        }
    }
}

impl BlockScan {
    /// The next block with rows in the range, and the span `at..stop` of
    /// them. The scan goes on from the block's last key, so a block split or
    /// merged meanwhile is found afresh.
    fn next_run(&mut self) -> Result<Option<(Arc<Block>, usize, usize)>> {
        if self.done {
            return Ok(None);
        }
        let from = self.from.take().unwrap_or(Bound::Unbounded);
        let Some((block, at)) = self.seek(&from)? else {
            self.done = true;
            return Ok(None);
        };
        // Rows before the end bound.
        let stop = match &self.end {
            Bound::Unbounded => block.len(),
            Bound::Included(e) => block.search(e).map_or_else(|i| i, |i| i + 1),
            Bound::Excluded(e) => block.search(e).unwrap_or_else(|i| i),
        };
        // An empty run (past the end, or an empty block) ends the scan: it
        // would make no progress.
        if stop <= at {
            self.done = true;
            return Ok(None);
        }
        match stop < block.len() {
            true => self.done = true,
            false => self.from = Some(Bound::Excluded(block.key(block.len() - 1).to_vec())),
        }
        Ok(Some((block, at, stop)))
    }
}

impl Iterator for BlockScan {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((block, at, stop)) = &mut self.current {
                if *at < *stop {
                    let i = *at;
                    *at += 1;
                    return Some(Ok((Bytes::from(block.key(i)), block.value_bytes(i))));
                }
                self.current = None;
            }
            match self.next_run() {
                Ok(Some(run)) => self.current = Some(run),
                Ok(None) => return None,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
