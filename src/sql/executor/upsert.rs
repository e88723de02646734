//! INSERT with a conflict action (`ON CONFLICT ... DO NOTHING | DO UPDATE`,
//! `INSERT OR IGNORE`, `INSERT OR REPLACE`). Rows are handled one at a time
//! in statement order, as SQLite does: a later row of the same statement
//! conflicts with an earlier one and updates or replaces it.

use super::query::matches;
use super::write::{Written, assign, check_unique, duplicate_key, prepare_row, primary_key, rowid_key, store_changed};
use crate::sql::error::{Result, SqlError};
use crate::sql::planner::{Conflict, ConflictAction, ConflictTarget};
use crate::sql::types::{EvalContext, Row, Value};
use crate::storage::{Table, Transaction};

pub fn upsert(
    txn: &mut Transaction,
    table: &Table,
    targets: &[usize],
    rows: impl Iterator<Item = Result<Row>>,
    conflict: &Conflict,
    ctx: &EvalContext,
    keep: bool,
) -> Result<Written> {
    let mut written = Written::default();
    for values in rows {
        let row = prepare_row(table, targets, values?, ctx)?;
        let clashes = clashes(txn, table, &row)?;
        let Some(first) = clashes.first() else {
            let key = new_key(txn, table, &row)?;
            txn.insert_row(table, key, &row)?;
            written.add(row, keep);
            continue;
        };
        // The conflict this clause handles; any other one fails the
        // statement as a plain INSERT would.
        let handled = clashes.iter().find(|c| match &conflict.target {
            ConflictTarget::Any => true,
            ConflictTarget::PrimaryKey => c.on == On::PrimaryKey,
            ConflictTarget::Index(name) => c.on == On::Index(name),
        });
        let Some(handled) = handled else {
            return Err(first.error(table, &row));
        };
        match &conflict.action {
            ConflictAction::Nothing => {}
            ConflictAction::Replace => {
                let mut removed: Vec<&[u8]> = Vec::new();
                for clash in &clashes {
                    if removed.contains(&clash.key.as_slice()) {
                        continue;
                    }
                    if let Some(old) = txn.get_row(table, &clash.key)? {
                        txn.delete_row(table, &clash.key, &old)?;
                    }
                    removed.push(&clash.key);
                }
                let key = new_key(txn, table, &row)?;
                check_unique(txn, table, &row, None)?;
                txn.insert_row(table, key, &row)?;
                written.add(row, keep);
            }
            ConflictAction::Update { set, filter } => {
                let old = match &handled.stored {
                    Some(stored) => stored.clone(),
                    None => match txn.get_row(table, &handled.key)? {
                        Some(old) => old,
                        None => return Err(handled.error(table, &row)),
                    },
                };
                let mut input = old.clone();
                input.extend(row.iter().cloned());
                if let Some(f) = filter
                    && !matches(f, &input, ctx)?
                {
                    continue;
                }
                let new = assign(table, &old, &input, set, ctx)?;
                txn.delete_row(table, &handled.key, &old)?;
                store_changed(txn, table, handled.key.clone(), &new)?;
                written.add(new, keep);
            }
        }
    }
    Ok(written)
}

fn new_key(txn: &mut Transaction, table: &Table, row: &[Value]) -> Result<Vec<u8>> {
    Ok(match table.has_rowid() {
        true => {
            let rowid = txn.next_rowids(table, 1)?;
            rowid_key(txn, rowid)
        }
        false => primary_key(table, row),
    })
}

impl Written {
    fn add(&mut self, row: Row, keep: bool) {
        self.count += 1;
        if keep {
            self.rows.push(row);
        }
    }
}

#[derive(Debug, PartialEq)]
enum On<'a> {
    PrimaryKey,
    Index(&'a str),
}

/// A stored row that holds a key or unique values a new row needs.
struct Clash<'a> {
    on: On<'a>,
    key: Vec<u8>,
    values: Vec<Value>,
    /// The stored row, when finding the clash read it (a primary key), so
    /// DO UPDATE does not read it again.
    stored: Option<Row>,
}

impl Clash<'_> {
    fn error(&self, table: &Table, row: &[Value]) -> SqlError {
        match self.on {
            On::PrimaryKey => duplicate_key(table, row),
            On::Index(name) => SqlError::DuplicateKey {
                target: format!("unique index '{name}'"),
                key: super::write::show_values(self.values.iter()),
            },
        }
    }
}

/// Every stored row the new row collides with: on the primary key first,
/// then on each UNIQUE index in catalog order. NULLs never collide.
fn clashes<'a>(txn: &Transaction, table: &'a Table, row: &[Value]) -> Result<Vec<Clash<'a>>> {
    let mut out = Vec::new();
    if !table.has_rowid() {
        let key = primary_key(table, row);
        if let Some(stored) = txn.get_row(table, &key)? {
            out.push(Clash {
                on: On::PrimaryKey,
                key,
                values: Vec::new(),
                stored: Some(stored),
            });
        }
    }
    for index in table.indexes.iter().filter(|i| i.unique) {
        let values: Vec<_> = index.columns.iter().map(|&i| row[i].clone()).collect();
        if values.iter().any(|v| v.is_null()) {
            continue;
        }
        if let Some(key) = txn.index_holder(index, &values, None)? {
            out.push(Clash {
                on: On::Index(&index.name),
                key,
                values,
                stored: None,
            });
        }
    }
    Ok(out)
}
