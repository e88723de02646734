//! The block layout against the in-memory engine: the same random writes,
//! deletes, scans and lookups must give the same answers, with blocks small
//! enough to split and merge all the time.

use super::tree_name;
use crate::storage::{Engine, MemoryEngine, SledEngine, WriteBatch};
use std::ops::Bound;

/// A small deterministic generator (no clock, no external crate).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn key(n: u64) -> Vec<u8> {
    format!("k{:05}", n).into_bytes()
}

/// A batch writing `value` (or deleting, with None) at each key of `keys`.
fn batch_of(space: &str, keys: impl Iterator<Item = u64>, value: Option<Vec<u8>>) -> WriteBatch {
    let mut batch = WriteBatch::default();
    let rows = batch.writes.entry(space.to_string()).or_default();
    for n in keys {
        rows.insert(key(n), value.clone());
    }
    batch
}

fn all(engine: &dyn Engine, space: &str, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Vec<(Vec<u8>, Vec<u8>)> {
    engine
        .scan(space, range)
        .unwrap()
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect()
}

/// The same through `scan_each`, stopping after `limit` entries.
fn each(
    engine: &dyn Engine,
    space: &str,
    range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
    limit: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut seen = Vec::new();
    engine
        .scan_each(space, range, &mut |k, v| {
            seen.push((k.to_vec(), v.to_vec()));
            Ok(seen.len() < limit)
        })
        .unwrap();
    seen
}

fn bound(rng: &mut Rng) -> Bound<Vec<u8>> {
    match rng.below(3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(key(rng.below(1200))),
        _ => Bound::Excluded(key(rng.below(1200))),
    }
}

#[test]
fn random_writes_read_back_like_the_memory_engine() {
    for seed in 1..=6 {
        let dir = tempfile::tempdir().unwrap();
        let blocks = SledEngine::open_with(dir.path(), 1 << 20, 300 + seed as usize * 100).unwrap();
        let model = MemoryEngine::new();
        let mut rng = Rng(seed);
        for round in 0..150 {
            let mut batch = WriteBatch::default();
            let spaces = ["t.1", "i.1.a", "catalog"];
            for _ in 0..rng.below(40) + 1 {
                let space = spaces[rng.below(3) as usize];
                // Mostly appends at the tail, some anywhere, some deletes.
                let n = match rng.below(4) {
                    0 => rng.below(1200),
                    _ => 600 + round * 4 + rng.below(8),
                };
                let value = match rng.below(5) {
                    0 => None,
                    _ => Some(vec![b'v'; rng.below(90) as usize]),
                };
                batch.writes.entry(space.to_string()).or_default().insert(key(n), value);
            }
            blocks.apply(batch.clone()).unwrap();
            model.apply(batch).unwrap();
            for space in ["t.1", "i.1.a", "catalog"] {
                let range = (bound(&mut rng), bound(&mut rng));
                let ordered = match (&range.0, &range.1) {
                    (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => a <= b,
                    _ => true,
                };
                if ordered && !crate::storage::txn::is_empty_range(&range) {
                    let expected = all(&model, space, range.clone());
                    assert_eq!(
                        all(&blocks, space, range.clone()),
                        expected,
                        "seed {seed} round {round}"
                    );
                    // Lent in place, whole and stopped part-way.
                    assert_eq!(
                        each(&blocks, space, range.clone(), usize::MAX),
                        expected,
                        "seed {seed} round {round}"
                    );
                    let limit = rng.below(50) as usize + 1;
                    let head: Vec<_> = expected.iter().take(limit).cloned().collect();
                    assert_eq!(each(&blocks, space, range, limit), head, "seed {seed} round {round}");
                }
                let k = key(rng.below(1200));
                assert_eq!(blocks.get(space, &k).unwrap(), model.get(space, &k).unwrap());
            }
        }
        let full = (Bound::Unbounded, Bound::Unbounded);
        assert_eq!(all(&blocks, "t.1", full.clone()), all(&model, "t.1", full));
        // Split and merged: many blocks, none empty, each within its limit
        // unless one entry alone is larger.
        let tree = blocks.db().open_tree(tree_name("t.1")).unwrap();
        assert!(tree.len() > 5, "seed {seed}: {} blocks", tree.len());
    }
}

#[test]
fn rows_survive_a_reopen_and_deletes_empty_a_keyspace() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = SledEngine::open_with(dir.path(), 1 << 20, 512).unwrap();
        engine.commit(batch_of("t.7", 0..500, Some(vec![1; 20]))).unwrap();
        assert!(engine.spaces().unwrap().contains(&"t.7".to_string()));
    }
    let engine = SledEngine::open_with(dir.path(), 1 << 20, 512).unwrap();
    assert_eq!(all(&engine, "t.7", (Bound::Unbounded, Bound::Unbounded)).len(), 500);
    assert_eq!(engine.get("t.7", &key(321)).unwrap(), Some(vec![1; 20]));
    engine.commit(batch_of("t.7", 0..500, None)).unwrap();
    assert!(all(&engine, "t.7", (Bound::Unbounded, Bound::Unbounded)).is_empty());
    assert_eq!(
        engine.db().open_tree(tree_name("t.7")).unwrap().len(),
        0,
        "no empty blocks left"
    );
}

#[test]
fn a_scan_sees_each_row_once_while_blocks_split_and_merge_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = std::sync::Arc::new(SledEngine::open_with(dir.path(), 1 << 20, 256).unwrap());
    engine
        .apply(batch_of("t.1", (0..2000).step_by(2), Some(vec![7; 10])))
        .unwrap();
    let writer = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            let mut rng = Rng(9);
            for _ in 0..300 {
                let mut batch = WriteBatch::default();
                for _ in 0..20 {
                    // Odd keys come and go; even keys stay throughout.
                    let n = rng.below(1000) * 2 + 1;
                    let value = (rng.below(2) == 0).then(|| vec![8; rng.below(40) as usize]);
                    batch.writes.entry("t.1".into()).or_default().insert(key(n), value);
                }
                engine.apply(batch).unwrap();
            }
        })
    };
    while !writer.is_finished() {
        let keys: Vec<Vec<u8>> = all(engine.as_ref(), "t.1", (Bound::Unbounded, Bound::Unbounded))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
        let evens = keys
            .iter()
            .filter(|k| k.last().is_some_and(|c| (c - b'0').is_multiple_of(2)))
            .count();
        assert_eq!(evens, 1000, "every row present throughout was seen");
    }
    writer.join().unwrap();
}

#[test]
fn a_directory_stored_a_row_per_entry_is_converted_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The 0.1.0 layout: data keyspaces as plain sled trees, one row per
        // entry, beside non-data trees that stay as they are.
        let db = sled::open(dir.path()).unwrap();
        for space in ["t.1", "i.1.by_name", "f.1", "x.1"] {
            let tree = db.open_tree(space).unwrap();
            for n in 0..3000 {
                tree.insert(key(n), format!("{space} row {n}").as_bytes()).unwrap();
            }
        }
        db.open_tree("catalog").unwrap().insert(b"t/readings", b"{}").unwrap();
        db.flush().unwrap();
    }
    let engine = SledEngine::open(dir.path()).unwrap();
    for space in ["t.1", "i.1.by_name", "f.1", "x.1"] {
        let rows = all(&engine, space, (Bound::Unbounded, Bound::Unbounded));
        assert_eq!(rows.len(), 3000, "{space}");
        assert_eq!(rows[1234].1, format!("{space} row 1234").into_bytes());
        let names: Vec<_> = engine.db().tree_names().into_iter().map(|n| n.to_vec()).collect();
        assert!(
            !names.contains(&space.as_bytes().to_vec()),
            "the row-per-entry tree {space} is gone"
        );
    }
    assert_eq!(engine.get("catalog", b"t/readings").unwrap(), Some(b"{}".to_vec()));
    let mut spaces = engine.spaces().unwrap();
    spaces.retain(|s| !s.starts_with("__"));
    spaces.sort();
    assert_eq!(spaces, ["catalog", "f.1", "i.1.by_name", "t.1", "x.1"]);
}
