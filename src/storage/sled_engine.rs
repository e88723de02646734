use super::blocks::{self, BlockCache, BlockStore, CacheStats, Ids, MAX_BLOCK_BYTES};
use super::catalog::{CHANGE_LOG_SPACE, is_data_space};
use super::engine::{Engine, KeyRange, Result, ScanIter, SpaceStats, Visit, WriteBatch};
use super::error::StorageError;
use super::synced_db::SyncedDb;
use sled::Transactional;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use crate::config::DEFAULT_CACHE_BYTES;

/// The engine of a real node: one sled database, one sled tree per keyspace.
/// Data keyspaces (rows, index entries, tombstones, change feeds) are stored
/// as blocks of many rows per sled entry (see `blocks`); the rest (catalog,
/// positions, sessions) one row per entry.
pub struct SledEngine {
    db: SyncedDb,
    blocks: BlockStore,
    /// Held while a batch is applied: a block rewrite reads the block it
    /// replaces, so two at once could each drop the other's rows.
    writing: Mutex<()>,
}

/// The sled writes for one tree: key -> value, or None to remove.
type TreeWrites<'a> = Cow<'a, BTreeMap<Vec<u8>, Option<Vec<u8>>>>;

/// The sled tree that holds keyspace `space`.
fn tree_name(space: &str) -> Cow<'_, str> {
    match stored_as_blocks(space) {
        true => blocks::tree_name(space).into(),
        false => space.into(),
    }
}

/// True for the keyspaces stored as blocks: the data keyspaces and the
/// change feed's log (one record per applied entry, appended in index
/// order, large: it compresses as well as the rows it copies).
fn stored_as_blocks(space: &str) -> bool {
    is_data_space(space) || space == CHANGE_LOG_SPACE
}

impl SledEngine {
    /// Opens (or creates) the database in `path`. Damage sled detects,
    /// including damage it would panic on, comes back as an error naming
    /// the file.
    pub fn open(path: &Path) -> Result<SledEngine> {
        SledEngine::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Like `open`, with `cache_bytes` shared between sled's page cache and
    /// the cache of decoded blocks.
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<SledEngine> {
        SledEngine::open_with(path, cache_bytes, MAX_BLOCK_BYTES)
    }

    /// Like `open_with_cache`, with blocks of at most `max_block` bytes (tests
    /// use small blocks to split and merge often).
    pub fn open_with(path: &Path, cache_bytes: u64, max_block: usize) -> Result<SledEngine> {
        let db = SledEngine::open_db(path, cache_bytes / 2)?;
        let blocks = BlockStore {
            cache: Arc::new(BlockCache::new((cache_bytes / 2) as usize)),
            ids: Arc::new(Ids::open(&db)?),
            max_block,
        };
        let converted = blocks::convert_row_trees(&db, &blocks, stored_as_blocks)?;
        if converted > 0 {
            tracing::info!(rows = converted, "data directory converted to blocks");
        }
        Ok(SledEngine {
            db,
            blocks,
            writing: Mutex::new(()),
        })
    }

    fn open_db(path: &Path, cache_bytes: u64) -> Result<SyncedDb> {
        // No background flusher: only flushes that end in fdatasync (the
        // Raft log's, the engine's) make data stable, so sled never treats
        // as stable what sync_file_range alone wrote.
        let config = sled::Config::new()
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None)
            .cache_capacity(cache_bytes);
        // sled panics on some damaged files; keep the panic message out of
        // the log (the error says it) and the process up.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || SyncedDb::open_with(path, config)));
        std::panic::set_hook(hook);
        let damaged = |detail: String| {
            StorageError::Damaged(format!(
                "{} is damaged ({detail}); the node will not serve from it: start it with --rebuild-from-peers, or restore a backup (docs/security.md#damaged-data-files)",
                path.join("db").display()
            ))
        };
        match opened {
            Ok(Ok(db)) => Ok(db),
            Ok(Err(sled::Error::Corruption { at, .. })) => Err(damaged(format!("corrupt record at {at:?}"))),
            Ok(Err(e)) => {
                let hint = match e.to_string().contains("lock") {
                    true => " (is another node using this directory?)",
                    false => "",
                };
                Err(StorageError::Io(format!("cannot open {}: {e}{hint}", path.display())))
            }
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "sled could not read it".into());
                Err(damaged(reason))
            }
        }
    }

    /// The underlying sled database, for components (such as the Raft log)
    /// that keep trees of their own in it.
    pub fn db(&self) -> &SyncedDb {
        &self.db
    }

    fn tree(&self, space: &str) -> Result<sled::Tree> {
        Ok(self.db.open_tree(tree_name(space).as_bytes())?)
    }

    /// Sled writes for one keyspace's row writes.
    fn tree_writes<'a>(
        &self,
        space: &str,
        rows: &'a BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Result<(sled::Tree, TreeWrites<'a>)> {
        let tree = self.tree(space)?;
        match stored_as_blocks(space) {
            true => {
                let plan = self.blocks.plan(&tree, space, rows)?;
                Ok((tree, Cow::Owned(plan)))
            }
            false => Ok((tree, Cow::Borrowed(rows))),
        }
    }
}

impl Engine for SledEngine {
    fn get(&self, space: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let tree = self.tree(space)?;
        match stored_as_blocks(space) {
            true => self.blocks.get(&tree, space, key),
            false => Ok(tree.get(key)?.map(|v| v.to_vec())),
        }
    }

    fn scan(&self, space: &str, range: KeyRange) -> Result<ScanIter> {
        let tree = self.tree(space)?;
        if stored_as_blocks(space) {
            return Ok(self.blocks.scan(tree, space, range));
        }
        let iter = tree.range(range);
        Ok(Box::new(iter.map(|item| item.map_err(StorageError::from))))
    }

    fn scan_each(&self, space: &str, range: KeyRange, f: Visit<'_>) -> Result<()> {
        let tree = self.tree(space)?;
        if stored_as_blocks(space) {
            return self.blocks.scan_each(tree, space, range, f);
        }
        for item in tree.range(range) {
            let (k, v) = item?;
            if !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    fn apply(&self, batch: WriteBatch) -> Result<()> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let spaces = batch
            .writes
            .iter()
            .filter(|(_, w)| !w.is_empty())
            .map(|(space, rows)| self.tree_writes(space, rows))
            .collect::<Result<Vec<_>>>()?;
        match spaces.as_slice() {
            [] => return Ok(()),
            // One tree: a sled batch is atomic on its own and cheaper.
            [(tree, writes)] => {
                let mut b = sled::Batch::default();
                for (k, v) in writes.iter() {
                    match v {
                        Some(v) => b.insert(k.as_slice(), v.as_slice()),
                        None => b.remove(k.as_slice()),
                    }
                }
                tree.apply_batch(b)?;
            }
            // Several trees: one sled transaction across all of them.
            _ => {
                let trees: Vec<sled::Tree> = spaces.iter().map(|(tree, _)| tree.clone()).collect();
                trees.as_slice().transaction(|txs| {
                    for (tx, (_, writes)) in txs.iter().zip(&spaces) {
                        for (k, v) in writes.iter() {
                            match v {
                                Some(v) => tx.insert(k.as_slice(), v.as_slice())?,
                                None => tx.remove(k.as_slice())?,
                            };
                        }
                    }
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })?;
            }
        }
        Ok(())
    }

    fn drop_space(&self, space: &str) -> Result<()> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        self.db.drop_tree(tree_name(space).as_bytes())?;
        Ok(())
    }

    fn spaces(&self) -> Result<Vec<String>> {
        Ok(self
            .db
            .tree_names()
            .into_iter()
            .filter_map(|n| String::from_utf8(n.to_vec()).ok())
            .filter(|n| n != blocks::META_TREE)
            .map(|n| blocks::space_of(&n).map(str::to_string).unwrap_or(n))
            .collect())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn space_stats(&self, space: &str) -> Result<Option<SpaceStats>> {
        let mut stats = SpaceStats::default();
        let name = tree_name(space);
        if !self.db.tree_names().iter().any(|n| n == name.as_bytes()) {
            return Ok(Some(stats)); // never written: opening it would create it
        }
        let tree = self.db.open_tree(name.as_bytes())?;
        for item in tree.iter() {
            let (key, value) = item?;
            stats.entries += 1;
            stats.stored_bytes += (key.len() + value.len()) as u64;
            match stored_as_blocks(space) {
                true => {
                    let (rows, raw) = blocks::header_counts(&value).ok_or_else(|| StorageError::Corrupt {
                        space: space.to_string(),
                        detail: format!("a block of {} bytes has no header", value.len()),
                    })?;
                    stats.rows += rows;
                    stats.raw_bytes += raw;
                }
                false => {
                    stats.rows += 1;
                    stats.raw_bytes += (key.len() + value.len()) as u64;
                }
            }
        }
        Ok(Some(stats))
    }

    fn block_cache(&self) -> Option<CacheStats> {
        Some(self.blocks.cache.stats())
    }
}
