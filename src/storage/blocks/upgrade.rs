//! Converting a data directory written one row per sled entry (0.1.0) to
//! blocks, when the node opens it.
//!
//! Each old tree is copied, in key order, into its block tree; the copy is
//! flushed, and only then is the old tree dropped. A crash part-way leaves
//! the old tree whole, and the next start drops the partial copy and
//! converts again.

use super::store::BlockStore;
use super::tree_name;
use crate::storage::error::StorageError;
use crate::storage::synced_db::SyncedDb;
use std::collections::BTreeMap;

/// Rows per block-tree write while converting.
const BATCH_BYTES: usize = 4 << 20;

/// Converts every tree for which `stored_as_blocks` holds that is still
/// stored a row per entry; returns how many rows were converted.
pub fn convert_row_trees(
    db: &SyncedDb,
    store: &BlockStore,
    stored_as_blocks: impl Fn(&str) -> bool,
) -> Result<u64, StorageError> {
    let names: Vec<String> = db
        .tree_names()
        .into_iter()
        .filter_map(|n| String::from_utf8(n.to_vec()).ok())
        .filter(|n| stored_as_blocks(n))
        .collect();
    let mut total = 0;
    for space in names {
        total += convert(db, store, &space)?;
    }
    Ok(total)
}

fn convert(db: &SyncedDb, store: &BlockStore, space: &str) -> Result<u64, StorageError> {
    let old = db.open_tree(space)?;
    let rows_before = old.len();
    tracing::info!(
        space,
        rows = rows_before,
        "converting a keyspace from one row per entry to blocks"
    );
    db.drop_tree(tree_name(space))?;
    let new = db.open_tree(tree_name(space))?;
    let mut pending: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    let mut bytes = 0;
    let mut rows: u64 = 0;
    let mut report_at: u64 = 1_000_000;
    let write = |pending: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>| -> Result<(), StorageError> {
        let plan = store.plan(&new, space, pending)?;
        let mut batch = sled::Batch::default();
        for (key, value) in plan {
            match value {
                Some(v) => batch.insert(key, v),
                None => batch.remove(key),
            }
        }
        new.apply_batch(batch)?;
        pending.clear();
        Ok(())
    };
    for item in old.iter() {
        let (key, value) = item?;
        bytes += key.len() + value.len();
        pending.insert(key.to_vec(), Some(value.to_vec()));
        rows += 1;
        if bytes >= BATCH_BYTES {
            write(&mut pending)?;
            bytes = 0;
            if rows >= report_at {
                tracing::info!(space, rows, of = rows_before, "converting to blocks");
                report_at += 1_000_000;
            }
        }
    }
    write(&mut pending)?;
    db.flush()?;
    db.drop_tree(space)?;
    db.flush()?;
    tracing::info!(space, rows, "converted to blocks");
    Ok(rows)
}
