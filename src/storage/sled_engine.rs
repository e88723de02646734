use super::engine::{Engine, KeyRange, Result, ScanIter, WriteBatch};
use super::error::StorageError;
use super::synced_db::SyncedDb;
use sled::Transactional;
use std::path::Path;

pub use crate::config::DEFAULT_CACHE_BYTES;

/// The engine of a real node: one sled database, one sled tree per keyspace.
pub struct SledEngine {
    db: SyncedDb,
}

impl SledEngine {
    /// Opens (or creates) the database in `path`. Damage sled detects,
    /// including damage it would panic on, comes back as an error naming
    /// the file.
    pub fn open(path: &Path) -> Result<SledEngine> {
        SledEngine::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Like `open`, with sled's page cache limited to `cache_bytes`.
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<SledEngine> {
        let config = sled::Config::new()
            .mode(sled::Mode::HighThroughput)
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
            Ok(Ok(db)) => Ok(SledEngine { db }),
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
        Ok(self.db.open_tree(space)?)
    }
}

impl Engine for SledEngine {
    fn get(&self, space: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree(space)?.get(key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, space: &str, range: KeyRange) -> Result<ScanIter> {
        let iter = self.tree(space)?.range(range);
        Ok(Box::new(iter.map(|item| item.map_err(StorageError::from))))
    }

    fn apply(&self, batch: WriteBatch) -> Result<()> {
        let spaces: Vec<_> = batch.writes.iter().filter(|(_, w)| !w.is_empty()).collect();
        match spaces.as_slice() {
            [] => return Ok(()),
            // One tree: a sled batch is atomic on its own and cheaper.
            [(space, writes)] => {
                let mut b = sled::Batch::default();
                for (k, v) in writes.iter() {
                    match v {
                        Some(v) => b.insert(k.as_slice(), v.as_slice()),
                        None => b.remove(k.as_slice()),
                    }
                }
                self.tree(space)?.apply_batch(b)?;
            }
            // Several trees: one sled transaction across all of them.
            _ => {
                let trees = spaces.iter().map(|(s, _)| self.tree(s)).collect::<Result<Vec<_>>>()?;
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
        self.db.drop_tree(space)?;
        Ok(())
    }

    fn spaces(&self) -> Result<Vec<String>> {
        Ok(self
            .db
            .tree_names()
            .into_iter()
            .filter_map(|n| String::from_utf8(n.to_vec()).ok())
            .collect())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}
