use super::engine::{Engine, KeyRange, Result, ScanIter, WriteBatch};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

type Spaces = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// An in-memory engine with the same semantics as [`super::SledEngine`], for
/// tests and benchmarks of the layers above storage.
#[derive(Default)]
pub struct MemoryEngine {
    spaces: Mutex<Spaces>,
}

impl MemoryEngine {
    pub fn new() -> MemoryEngine {
        MemoryEngine::default()
    }

    fn lock(&self) -> MutexGuard<'_, Spaces> {
        // A panic while holding the lock cannot leave a half-applied batch
        // (batches are applied after all checks), so poisoning is harmless.
        self.spaces.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Engine for MemoryEngine {
    fn get(&self, space: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().get(space).and_then(|s| s.get(key).cloned()))
    }

    fn scan(&self, space: &str, range: KeyRange) -> Result<ScanIter> {
        if super::txn::is_empty_range(&range) {
            return Ok(Box::new(std::iter::empty()));
        }
        let items: Vec<_> = match self.lock().get(space) {
            Some(s) => s
                .range(range)
                .map(|(k, v)| Ok((k.as_slice().into(), v.as_slice().into())))
                .collect(),
            None => Vec::new(),
        };
        Ok(Box::new(items.into_iter()))
    }

    fn apply(&self, batch: WriteBatch) -> Result<()> {
        let mut spaces = self.lock();
        for (space, writes) in batch.writes {
            let s = spaces.entry(space).or_default();
            for (k, v) in writes {
                match v {
                    Some(v) => s.insert(k, v),
                    None => s.remove(&k),
                };
            }
        }
        Ok(())
    }

    fn drop_space(&self, space: &str) -> Result<()> {
        self.lock().remove(space);
        Ok(())
    }

    fn spaces(&self) -> Result<Vec<String>> {
        Ok(self.lock().keys().cloned().collect())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}
