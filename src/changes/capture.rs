//! What one transaction changed, row by row, read from its pending writes
//! and the committed state they replace.

use crate::sql::types::Row;
use crate::storage::{StorageError, Table, Transaction, decode_table_row};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RowChange {
    pub op: ChangeOp,
    pub before: Option<Row>,
    pub after: Option<Row>,
}

/// The changed rows of one table, with its column names at the time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableChanges {
    pub table: String,
    pub columns: Vec<String>,
    pub rows: Vec<RowChange>,
}

/// The row changes `txn` would commit: each written key of a table,
/// compared with its committed value. Deterministic: tables and keys come
/// in keyspace order.
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
            let decode = |bytes: &Option<Vec<u8>>| bytes.as_deref().map(|b| decode_table_row(table, b)).transpose();
            let op = match (&before, after) {
                (None, None) => continue,
                (None, Some(_)) => ChangeOp::Insert,
                (Some(_), Some(_)) => ChangeOp::Update,
                (Some(_), None) => ChangeOp::Delete,
            };
            rows.push(RowChange {
                op,
                before: decode(&before)?,
                after: decode(after)?,
            });
        }
        if !rows.is_empty() {
            out.push(TableChanges {
                table: table.name.clone(),
                columns: table.columns.iter().map(|c| c.name.clone()).collect(),
                rows,
            });
        }
    }
    Ok(out)
}
