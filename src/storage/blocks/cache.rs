//! Decoded blocks, kept so that reading a block again skips lz4 and the key
//! rebuild; bounded in bytes.
//!
//! Keyed by block id. A block's bytes never change under its id, so an
//! entry can only be unused, never wrong: rewritten blocks age out.
//! Eviction is the clock algorithm: a block read since the hand last passed
//! it gets a second chance.

use super::format::Block;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

struct Slot {
    block: Arc<Block>,
    weight: usize,
    referenced: bool,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<u64, Slot>,
    /// Ids in the order the clock hand visits them.
    hand: VecDeque<u64>,
    bytes: usize,
}

/// Hit and miss counts and the bytes held, for /metrics and SHOW TABLE STATS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub bytes: u64,
    pub capacity: u64,
}

pub struct BlockCache {
    inner: Mutex<Inner>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl BlockCache {
    pub fn new(capacity: usize) -> BlockCache {
        BlockCache {
            inner: Mutex::default(),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the maps consistent before it can panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: u64) -> Option<Arc<Block>> {
        let found = self.lock().slots.get_mut(&id).map(|slot| {
            slot.referenced = true;
            slot.block.clone()
        });
        let counter = match found {
            Some(_) => &self.hits,
            None => &self.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn insert(&self, block: Arc<Block>) {
        let weight = block.weight();
        if weight > self.capacity / 4 {
            return; // one block must not empty the cache
        }
        let mut inner = self.lock();
        let id = block.id;
        if inner.slots.contains_key(&id) {
            return;
        }
        inner.slots.insert(
            id,
            Slot {
                block,
                weight,
                referenced: false,
            },
        );
        inner.hand.push_back(id);
        inner.bytes += weight;
        while inner.bytes > self.capacity {
            let Some(victim) = inner.hand.pop_front() else { break };
            let second_chance = match inner.slots.get_mut(&victim) {
                Some(slot) if slot.referenced => {
                    slot.referenced = false;
                    true
                }
                _ => false,
            };
            if second_chance {
                inner.hand.push_back(victim);
            } else if let Some(slot) = inner.slots.remove(&victim) {
                inner.bytes -= slot.weight;
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes: self.lock().bytes as u64,
            capacity: self.capacity as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::{decode, encode};
    use super::*;

    fn block(id: u64) -> Arc<Block> {
        let value = vec![7u8; 1000];
        let bytes = encode(id, [(b"k".as_slice(), value.as_slice())].into_iter()).unwrap();
        Arc::new(decode("t.x", &sled::IVec::from(bytes)).unwrap())
    }

    #[test]
    fn stays_within_its_budget_and_keeps_what_is_read() {
        let weight = block(0).weight();
        let cache = BlockCache::new(weight * 10);
        for id in 0..100 {
            cache.insert(block(id));
            assert!(
                cache.get(0).is_some() || id == 0,
                "block 0 is read every time, so it stays"
            );
            assert!(cache.stats().bytes as usize <= weight * 10);
        }
        assert!(cache.get(50).is_none(), "an old block nobody read was evicted");
        assert!(cache.get(99).is_some());
        let stats = cache.stats();
        assert!(stats.hits >= 99 && stats.misses >= 1, "{stats:?}");
    }
}
