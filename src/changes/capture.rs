//! What one transaction changed, row by row, read from its pending writes
//! and the committed state they replace.

use crate::sql::types::Value;
use crate::storage::{StorageError, Table, Transaction, column_fill};
use std::collections::BTreeMap;

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
        for (key, after) in writes {
            let before = txn.committed(space, key)?;
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
