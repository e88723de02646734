//! Merge, feed and tombstone behaviour of sync's storage (mod.rs).

use super::*;
use crate::storage::{Column, Engine, MemoryEngine};
use crate::types::DataType;
use std::sync::Arc;

fn table() -> Table {
    let column = |name: &str, data_type| Column {
        name: name.into(),
        data_type,
        nullable: true,
        default: None,
    };
    Table {
        id: 1,
        name: "kv".into(),
        columns: vec![column("k", DataType::Int), column("v", DataType::String)],
        primary_key: vec![0],
        indexes: Vec::new(),
        synced: true,
        merges: false,
    }
}

fn key(k: i64) -> Vec<u8> {
    keycode::encode_values([&Value::Int(k)])
}

fn row(k: i64, v: &str) -> Row {
    vec![Value::Int(k), Value::Text(v.into())]
}

fn version(hlc: u64, site: u64) -> RowVersion {
    RowVersion { hlc, site }
}

/// Runs `f` in a transaction at change position `change` and commits.
fn at(engine: &Arc<MemoryEngine>, change: u64, f: impl FnOnce(&mut Transaction)) {
    let dyn_engine: Arc<dyn Engine> = engine.clone();
    let mut txn = Transaction::new(dyn_engine, version(change * 10, 1)).at_change(change);
    f(&mut txn);
    txn.commit().unwrap();
}

fn read(engine: &Arc<MemoryEngine>) -> Transaction {
    Transaction::new(engine.clone(), RowVersion::default())
}

fn merge(engine: &Arc<MemoryEngine>, change: u64, k: i64, v: Option<&str>, ver: RowVersion) -> Merged {
    let mut result = None;
    at(engine, change, |txn| {
        let c = Change {
            key: key(k),
            version: ver,
            row: v.map(|v| row(k, v)),
        };
        result = Some(txn.merge_change(&table(), c, Origin::Local).unwrap());
    });
    result.unwrap()
}

fn all_changes(engine: &Arc<MemoryEngine>) -> Vec<Change> {
    read(engine)
        .changes_since(&table(), &[], 100, usize::MAX, FeedFilter::default())
        .unwrap()
        .changes
}

#[test]
fn the_greater_version_wins_and_a_repeat_changes_nothing() {
    let e = Arc::new(MemoryEngine::new());
    assert_eq!(
        merge(&e, 1, 1, Some("a"), version(100, 7)),
        Merged::Applied { conflict: false }
    );
    assert_eq!(
        merge(&e, 2, 1, Some("b"), version(90, 8)),
        Merged::Kept { conflict: true }
    );
    assert_eq!(
        merge(&e, 3, 1, Some("a"), version(100, 7)),
        Merged::Kept { conflict: false }
    );
    assert_eq!(
        merge(&e, 4, 1, Some("c"), version(100, 9)),
        Merged::Applied { conflict: true }
    );
    assert_eq!(read(&e).get_row(&table(), &key(1)).unwrap(), Some(row(1, "c")));
}

#[test]
fn a_tombstone_outranks_older_rows_and_yields_to_newer_ones() {
    let e = Arc::new(MemoryEngine::new());
    merge(&e, 1, 1, Some("a"), version(100, 7));
    assert!(matches!(merge(&e, 2, 1, None, version(200, 8)), Merged::Applied { .. }));
    assert_eq!(read(&e).get_row(&table(), &key(1)).unwrap(), None);
    assert!(matches!(
        merge(&e, 3, 1, Some("old"), version(150, 7)),
        Merged::Kept { .. }
    ));
    assert_eq!(read(&e).get_row(&table(), &key(1)).unwrap(), None);
    assert!(matches!(
        merge(&e, 4, 1, Some("new"), version(300, 7)),
        Merged::Applied { .. }
    ));
    assert_eq!(read(&e).get_row(&table(), &key(1)).unwrap(), Some(row(1, "new")));
    assert_eq!(read(&e).tombstone_count(&table()).unwrap(), 0);
}

#[test]
fn the_feed_holds_one_entry_per_row_at_its_latest_change() {
    let e = Arc::new(MemoryEngine::new());
    let t = table();
    at(&e, 1, |txn| {
        txn.insert_row(&t, key(1), &row(1, "a")).unwrap();
        txn.insert_row(&t, key(2), &row(2, "b")).unwrap();
    });
    let first = read(&e)
        .changes_since(&t, &[], 1, usize::MAX, FeedFilter::default())
        .unwrap();
    assert_eq!(first.changes.len(), 1);
    assert!(!first.complete);
    let cursor = first.cursor.unwrap();
    // Row 1 changes again: its entry moves past the cursor.
    at(&e, 2, |txn| {
        txn.delete_row(&t, &key(1), &row(1, "a")).unwrap();
        txn.insert_row(&t, key(1), &row(1, "a2")).unwrap();
    });
    let rest = read(&e)
        .changes_since(&t, &cursor, 10, usize::MAX, FeedFilter::default())
        .unwrap();
    let values: Vec<_> = rest.changes.iter().map(|c| c.row.clone()).collect();
    assert_eq!(values, vec![Some(row(2, "b")), Some(row(1, "a2"))]);
    assert_eq!(all_changes(&e).len(), 2);
    // A delete: the row leaves, its tombstone takes its feed entry.
    at(&e, 3, |txn| txn.delete_row(&t, &key(2), &row(2, "b")).unwrap());
    let changes = all_changes(&e);
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1].row, None);
    assert_eq!(changes[1].version, version(30, 1));
}

#[test]
fn filters_leave_out_pulled_changes_and_a_sites_own_writes() {
    let e = Arc::new(MemoryEngine::new());
    let t = table();
    at(&e, 1, |txn| {
        let pulled = Change {
            key: key(1),
            version: version(5, 99),
            row: Some(row(1, "from upstream")),
        };
        txn.merge_change(&t, pulled, Origin::Pulled).unwrap();
        txn.insert_row(&t, key(2), &row(2, "local")).unwrap();
    });
    let page = |filter| {
        read(&e)
            .changes_since(&t, &[], 10, usize::MAX, filter)
            .unwrap()
            .changes
            .len()
    };
    assert_eq!(page(FeedFilter::default()), 2);
    let push = FeedFilter {
        skip_pulled: true,
        skip_site: None,
    };
    assert_eq!(page(push), 1);
    let pull_by_99 = FeedFilter {
        skip_pulled: false,
        skip_site: Some(99),
    };
    assert_eq!(page(pull_by_99), 1);
}

#[test]
fn old_tombstones_are_purged_with_their_feed_entries() {
    let e = Arc::new(MemoryEngine::new());
    merge(&e, 1, 1, None, version(100, 7));
    merge(&e, 2, 2, None, version(300, 7));
    let mut purged = 0;
    at(&e, 3, |txn| purged = txn.purge_tombstones(&table(), 200).unwrap());
    assert_eq!(purged, 1);
    let left = all_changes(&e);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].key, key(2));
}

#[test]
fn changes_that_do_not_fit_the_table_are_named() {
    let t = table();
    let bad = |k: Vec<u8>, r: Option<Row>| {
        check_change(
            &t,
            &Change {
                key: k,
                version: version(1, 1),
                row: r,
            },
        )
        .unwrap_err()
    };
    assert!(bad(key(1), Some(vec![Value::Int(1)])).contains("1 values"));
    assert!(bad(key(2), Some(row(1, "x"))).contains("does not match"));
    assert!(bad(key(1), Some(vec![Value::Int(1), Value::Int(5)])).contains("does not fit column v"));
    assert!(bad(vec![0xff], None).contains("bad row key"));
    assert!(
        check_change(
            &t,
            &Change {
                key: key(1),
                version: version(1, 1),
                row: None
            }
        )
        .is_ok()
    );
}
