//! What one transaction changed, row by row, read from its pending writes
//! and the committed state they replace.

use crate::sql::types::Value;
use crate::storage::{StorageError, Table, Transaction, column_fill};
use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Insert => "insert",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeOp> {
        [ChangeOp::Insert, ChangeOp::Update, ChangeOp::Delete]
            .into_iter()
            .find(|op| op.as_str() == s)
    }
}

/// A changed row as stored: the encoded rows before and after.
#[derive(Clone, Debug)]
pub struct RowChange {
    pub op: ChangeOp,
    pub before: Option<Vec<u8>>,
    pub after: Option<Vec<u8>>,
}

/// The changed rows of one table, with its columns at the time and the
/// values that fill rows stored before a column was added.
#[derive(Clone, Debug)]
pub struct TableChanges {
    pub table: String,
    pub columns: Vec<String>,
    pub fill: Vec<Value>,
    pub rows: Vec<RowChange>,
}

/// The row changes `txn` would commit: each written key of a table,
/// compared with its committed value. Deterministic: tables and keys come
/// in keyspace order. Rows stay encoded; they are decoded when read.
pub fn capture(txn: &Transaction) -> Result<Vec<TableChanges>, StorageError> {
    let touched: Vec<_> = txn.pending().filter(|(space, _)| space.starts_with("t.")).collect();
    if touched.is_empty() {
        return Ok(Vec::new());
    }
    let tables: BTreeMap<String, Table> = txn.tables()?.into_iter().map(|t| (t.space(), t)).collect();
    let mut out = Vec::new();
    for (space, writes) in touched {
        let Some(table) = tables.get(space) else { continue };
        let mut rows = Vec::new();
        let befores = committed_values(txn, space, writes)?;
        for ((_, after), before) in writes.iter().zip(befores) {
            let op = match (&before, after) {
                (None, None) => continue,
                (None, Some(_)) => ChangeOp::Insert,
                (Some(_), Some(_)) => ChangeOp::Update,
                (Some(_), None) => ChangeOp::Delete,
            };
            rows.push(RowChange {
                op,
                before,
                after: after.clone(),
            });
        }
        if !rows.is_empty() {
            out.push(TableChanges {
                table: table.name.clone(),
                columns: table.columns.iter().map(|c| c.name.clone()).collect(),
                fill: column_fill(table),
                rows,
            });
        }
    }
    Ok(out)
}

/// Writes below this many keys look each committed value up alone.
const SCAN_FROM: usize = 8;

/// The committed value of each written key, in the keys' order.
///
/// A large statement usually writes keys that are new and close together
/// (an append past every stored row), so one range read over [first, last]
/// answers for all of them instead of a lookup per key. When that range
/// holds many more stored rows than were written, each key is looked up.
fn committed_values(
    txn: &Transaction,
    space: &str,
    writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
    let lookup_each = || writes.keys().map(|key| txn.committed(space, key)).collect();
    let (Some((first, _)), Some((last, _))) = (writes.first_key_value(), writes.last_key_value()) else {
        return Ok(Vec::new());
    };
    if writes.len() < SCAN_FROM {
        return lookup_each();
    }
    let budget = writes.len() * 2 + 16;
    let range = (Bound::Included(first.clone()), Bound::Included(last.clone()));
    let mut stored = Vec::new();
    for item in txn.committed_scan(space, range)? {
        if stored.len() == budget {
            return lookup_each();
        }
        stored.push(item?);
    }
    // Both lists are in key order: walk them side by side.
    let mut stored = stored.into_iter().peekable();
    let mut out = Vec::with_capacity(writes.len());
    for key in writes.keys() {
        while stored.next_if(|(k, _)| k.as_ref() < key.as_slice()).is_some() {}
        out.push(
            stored
                .next_if(|(k, _)| k.as_ref() == key.as_slice())
                .map(|(_, v)| v.to_vec()),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Engine, MemoryEngine, RowVersion};
    use std::sync::Arc;

    fn key(n: u32) -> Vec<u8> {
        n.to_be_bytes().to_vec()
    }

    /// The range read gives what a lookup per key gives, whether the
    /// written keys are new, overwrite stored ones, or are spread over many
    /// stored rows (more than the range read may take).
    #[test]
    fn committed_values_match_a_lookup_per_key() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let mut setup = Transaction::new(engine.clone(), RowVersion::default());
        for n in (0..1000).step_by(3) {
            setup.set("s", key(n), format!("v{n}").into_bytes());
        }
        setup.commit().expect("commit");
        let cases: [Vec<u32>; 4] = [
            (2000..2040).collect(),          // an append past every row
            (90..130).collect(),             // new keys among stored ones
            (0..1000).step_by(50).collect(), // spread over many stored rows
            vec![3, 5],                      // below SCAN_FROM
        ];
        for written in cases {
            let mut txn = Transaction::new(engine.clone(), RowVersion::default());
            for &n in &written {
                txn.set("s", key(n), b"new".to_vec());
            }
            let (_, writes) = txn.pending().find(|(s, _)| *s == "s").expect("writes");
            let expected: Vec<_> = writes.keys().map(|k| txn.committed("s", k).expect("get")).collect();
            assert_eq!(
                committed_values(&txn, "s", writes).expect("values"),
                expected,
                "{written:?}"
            );
            assert!(expected.iter().any(Option::is_some) || written[0] >= 2000);
        }
    }
}
