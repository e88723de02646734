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

pub fn insert(
    txn: &mut Transaction,
    table: &Table,
    targets: &[usize],
    count: usize,
    rows: impl Iterator<Item = Result<Row>>,
    ctx: &EvalContext,
) -> Result<u64> {
    let mut prepared = Vec::with_capacity(count);
    for values in rows {
        let values = values?;
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
        prepared.push(row);
    }
    let keys: Vec<Vec<u8>> = match table.has_rowid() {
        true => {
            // A row id is the table's counter plus the writing site, so
            // rows appended at different sites never share a key.
            let first = txn.next_rowids(table, prepared.len() as u64)?;
            let site = Value::Int(txn.version().site as i64);
            (0..prepared.len() as i64)
                .map(|i| encode_values([&Value::Int(first + i), &site]))
                .collect()
        }
        false => {
            let keys: Vec<Vec<u8>> = prepared.iter().map(|row| primary_key(table, row)).collect();
            if let Some(i) = first_taken_key(txn, table, &keys)? {
                return Err(duplicate_key(table, &prepared[i]));
            }
            keys
        }
    };
    let count = prepared.len() as u64;
    for (key, row) in keys.into_iter().zip(prepared) {
        check_unique(txn, table, &row, None)?;
        txn.insert_row(table, key, &row)?;
    }
    Ok(count)
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
) -> Result<u64> {
    let targets = matching_rows(txn, table, access, filter, ctx)?;
    // Every new row is computed from the old one before anything changes, so
    // an UPDATE never sees its own writes.
    let mut changes = Vec::with_capacity(targets.len());
    for (key, old) in targets {
        let mut new = old.clone();
        for (i, e) in set {
            let column = &table.columns[*i];
            new[*i] = coerce(e.evaluate(&old, ctx)?, column.data_type, &column.name)?;
        }
        check_not_null(table, &new)?;
        changes.push((key, old, new));
    }
    for (key, old, _) in &changes {
        txn.delete_row(table, key, old)?;
    }
    let count = changes.len() as u64;
    for (old_key, _, new) in changes {
        let key = match table.has_rowid() {
            true => old_key,
            false => {
                let key = primary_key(table, &new);
                if txn.get_row(table, &key)?.is_some() {
                    return Err(duplicate_key(table, &new));
                }
                key
            }
        };
        check_unique(txn, table, &new, None)?;
        txn.insert_row(table, key, &new)?;
    }
    Ok(count)
}

pub fn delete(
    txn: &mut Transaction,
    table: &Table,
    access: &Access,
    filter: Option<&Expr>,
    ctx: &EvalContext,
) -> Result<u64> {
    let targets = matching_rows(txn, table, access, filter, ctx)?;
    for (key, row) in &targets {
        txn.delete_row(table, key, row)?;
    }
    Ok(targets.len() as u64)
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

fn primary_key(table: &Table, row: &[Value]) -> Vec<u8> {
    encode_values(table.primary_key.iter().map(|&i| &row[i]))
}

fn duplicate_key(table: &Table, row: &[Value]) -> SqlError {
    SqlError::DuplicateKey {
        target: format!("primary key of '{}'", table.name),
        key: show_values(table.primary_key.iter().map(|&i| &row[i])),
    }
}

/// Fails when another row already has these values in a UNIQUE index. NULLs
/// never collide (as in PostgreSQL and SQLite).
fn check_unique(txn: &Transaction, table: &Table, row: &[Value], except: Option<&[u8]>) -> Result<()> {
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

fn show_values<'a>(values: impl Iterator<Item = &'a Value>) -> String {
    let shown: Vec<String> = values.map(|v| v.to_string()).collect();
    format!("({})", shown.join(", "))
}
