//! INSERT, UPDATE and DELETE: values are coerced to column types, NOT NULL,
//! primary-key and UNIQUE constraints are checked, and rows and their index
//! entries change together inside the caller's transaction.

use super::query::{matches, scan};
use crate::sql::error::{Result, SqlError};
use crate::sql::planner::Access;
use crate::sql::types::{DataType, EvalContext, Expr, Row, Value, coerce};
use crate::storage::keycode::encode_values;
use crate::storage::{DefaultValue, Table, Transaction};
use std::collections::BTreeSet;
use std::ops::Bound;

/// What a write did: how many rows it changed and, when RETURNING asked
/// for them, those rows (new rows for INSERT and UPDATE, old for DELETE).
#[derive(Default)]
pub struct Written {
    pub count: u64,
    pub rows: Vec<Row>,
}

pub fn insert(
    txn: &mut Transaction,
    table: &Table,
    targets: &[usize],
    count: usize,
    rows: impl Iterator<Item = Result<Row>>,
    ctx: &EvalContext,
    keep: bool,
) -> Result<Written> {
    let mut prepared = Vec::with_capacity(count);
    for values in rows {
        prepared.push(prepare_row(table, targets, values?, ctx)?);
    }
    let keys: Vec<Vec<u8>> = match table.has_rowid() {
        true => {
            let first = txn.next_rowids(table, prepared.len() as u64)?;
            (0..prepared.len() as i64).map(|i| rowid_key(txn, first + i)).collect()
        }
        false => {
            let keys: Vec<Vec<u8>> = prepared.iter().map(|row| primary_key(table, row)).collect();
            if let Some(i) = first_taken_key(txn, table, &keys)? {
                return Err(duplicate_key(table, &prepared[i]));
            }
            keys
        }
    };
    let mut written = Written {
        count: prepared.len() as u64,
        rows: Vec::new(),
    };
    for (key, row) in keys.into_iter().zip(prepared) {
        check_unique(txn, table, &row, None)?;
        txn.insert_row(table, key, &row)?;
        if keep {
            written.rows.push(row);
        }
    }
    Ok(written)
}

/// A full row of `table` from the values given for `targets`: defaults
/// fill the rest, every value is converted to its column's type, and NOT
/// NULL is checked.
pub(super) fn prepare_row(table: &Table, targets: &[usize], values: Row, ctx: &EvalContext) -> Result<Row> {
    let mut given: Vec<Option<Value>> = vec![None; table.columns.len()];
    for (&i, v) in targets.iter().zip(values) {
        given[i] = Some(v);
    }
    let mut row = Vec::with_capacity(table.columns.len());
    for (column, value) in table.columns.iter().zip(given) {
        let value = match value {
            Some(v) => v,
            None => default_of(column.default.as_ref(), column.data_type, ctx),
        };
        row.push(coerce(value, column.data_type, &column.name)?);
    }
    check_not_null(table, &row)?;
    Ok(row)
}

/// The key of a table without a primary key: the table's row counter plus
/// the writing site, so rows appended at different sites never share a key.
pub(super) fn rowid_key(txn: &Transaction, rowid: i64) -> Vec<u8> {
    let site = Value::Int(txn.version().site as i64);
    encode_values([&Value::Int(rowid), &site])
}

/// The position of the first new primary key that is already taken, by an
/// existing row or an earlier row of the same statement.
///
/// Fast path: one range read over [smallest, largest] new key answers for
/// the whole statement when the range holds few rows (time-series appends
/// land past every existing key). Otherwise one lookup per key.
fn first_taken_key(txn: &Transaction, table: &Table, keys: &[Vec<u8>]) -> Result<Option<usize>> {
    let mut sorted: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    sorted.sort_unstable();
    let (Some(&low), Some(&high)) = (sorted.first(), sorted.last()) else {
        return Ok(None);
    };
    if sorted.windows(2).all(|w| w[0] != w[1]) {
        let range = (Bound::Included(low.to_vec()), Bound::Included(high.to_vec()));
        let budget = keys.len() * 2 + 16;
        let mut clash = false;
        let mut read = 0;
        for item in txn.scan(&table.space(), range)? {
            let (key, _) = item?;
            read += 1;
            if read > budget || sorted.binary_search(&key.as_ref()).is_ok() {
                clash = true;
                break;
            }
        }
        if !clash {
            return Ok(None);
        }
    }
    let mut seen = BTreeSet::new();
    for (i, key) in keys.iter().enumerate() {
        if !seen.insert(key.as_slice()) || txn.get_row(table, key)?.is_some() {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

pub fn update(
    txn: &mut Transaction,
    table: &Table,
    access: &Access,
    filter: Option<&Expr>,
    set: &[(usize, Expr)],
    ctx: &EvalContext,
    keep: bool,
) -> Result<Written> {
    let targets = matching_rows(txn, table, access, filter, ctx)?;
    // Every new row is computed from the old one before anything changes, so
    // an UPDATE never sees its own writes.
    let mut changes = Vec::with_capacity(targets.len());
    for (key, old) in targets {
        let new = assign(table, &old, &old, set, ctx)?;
        changes.push((key, old, new));
    }
    for (key, old, _) in &changes {
        txn.delete_row(table, key, old)?;
    }
    let mut written = Written {
        count: changes.len() as u64,
        rows: Vec::new(),
    };
    for (old_key, _, new) in changes {
        store_changed(txn, table, old_key, &new)?;
        if keep {
            written.rows.push(new);
        }
    }
    Ok(written)
}

/// `old` with the assignments of `set` applied; their expressions read
/// `input` (the old row, or the old row followed by an UPSERT's proposed
/// row).
pub(super) fn assign(
    table: &Table,
    old: &[Value],
    input: &Row,
    set: &[(usize, Expr)],
    ctx: &EvalContext,
) -> Result<Row> {
    let mut new = old.to_vec();
    for (i, e) in set {
        let column = &table.columns[*i];
        new[*i] = coerce(e.evaluate(input, ctx)?, column.data_type, &column.name)?;
    }
    check_not_null(table, &new)?;
    Ok(new)
}

/// Stores the new version of a row whose old version was deleted: under
/// its old key, or under its new primary key when that is free.
pub(super) fn store_changed(txn: &mut Transaction, table: &Table, old_key: Vec<u8>, new: &[Value]) -> Result<()> {
    let key = match table.has_rowid() {
        true => old_key,
        false => {
            let key = primary_key(table, new);
            if txn.get_row(table, &key)?.is_some() {
                return Err(duplicate_key(table, new));
            }
            key
        }
    };
    check_unique(txn, table, new, None)?;
    txn.insert_row(table, key, new)?;
    Ok(())
}

pub fn delete(
    txn: &mut Transaction,
    table: &Table,
    access: &Access,
    filter: Option<&Expr>,
    ctx: &EvalContext,
    keep: bool,
) -> Result<Written> {
    let targets = matching_rows(txn, table, access, filter, ctx)?;
    let mut written = Written {
        count: targets.len() as u64,
        rows: Vec::new(),
    };
    for (key, row) in targets {
        txn.delete_row(table, &key, &row)?;
        if keep {
            written.rows.push(row);
        }
    }
    Ok(written)
}

/// The (key, row) pairs a WHERE clause selects, read completely before any
/// of them changes.
fn matching_rows(
    txn: &Transaction,
    table: &Table,
    access: &Access,
    filter: Option<&Expr>,
    ctx: &EvalContext,
) -> Result<Vec<(Vec<u8>, Row)>> {
    let mut out = Vec::new();
    for item in scan(txn, table, access)? {
        let (key, row) = item?;
        let keep = match filter {
            Some(f) => matches(f, &row, ctx)?,
            None => true,
        };
        if keep {
            out.push((key.to_vec(), row));
        }
    }
    Ok(out)
}

fn default_of(default: Option<&DefaultValue>, ty: DataType, ctx: &EvalContext) -> Value {
    match default {
        None => Value::Null,
        Some(DefaultValue::Value(v)) => v.clone(),
        Some(DefaultValue::Now) if ty == DataType::Timestamp => Value::Timestamp(ctx.now_ms),
        Some(DefaultValue::Now) => Value::Int(ctx.now_ms),
    }
}

fn check_not_null(table: &Table, row: &[Value]) -> Result<()> {
    for (column, value) in table.columns.iter().zip(row) {
        if value.is_null() && !column.nullable {
            return Err(SqlError::NotNull {
                table: table.name.clone(),
                column: column.name.clone(),
            });
        }
    }
    Ok(())
}

pub(super) fn primary_key(table: &Table, row: &[Value]) -> Vec<u8> {
    encode_values(table.primary_key.iter().map(|&i| &row[i]))
}

pub(super) fn duplicate_key(table: &Table, row: &[Value]) -> SqlError {
    SqlError::DuplicateKey {
        target: format!("primary key of '{}'", table.name),
        key: show_values(table.primary_key.iter().map(|&i| &row[i])),
    }
}

/// Fails when another row already has these values in a UNIQUE index. NULLs
/// never collide (as in PostgreSQL and SQLite).
pub(super) fn check_unique(txn: &Transaction, table: &Table, row: &[Value], except: Option<&[u8]>) -> Result<()> {
    for index in table.indexes.iter().filter(|i| i.unique) {
        let values: Vec<Value> = index.columns.iter().map(|&i| row[i].clone()).collect();
        if values.iter().any(Value::is_null) {
            continue;
        }
        if txn.index_contains(index, &values, except)? {
            return Err(SqlError::DuplicateKey {
                target: format!("unique index '{}'", index.name),
                key: show_values(values.iter()),
            });
        }
    }
    Ok(())
}

pub(super) fn show_values<'a>(values: impl Iterator<Item = &'a Value>) -> String {
    let shown: Vec<String> = values.map(|v| v.to_string()).collect();
    format!("({})", shown.join(", "))
}
