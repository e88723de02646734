//! Rows and index entries of tables, kept in step on every change.
//!
//! A row lives in its table's keyspace under the key codec's encoding of its
//! primary key (or hidden row id). An index entry is the encoding of the
//! indexed values followed by the row's key, with an empty value, so an index
//! scan yields row keys in index order.

use super::catalog::{DefaultValue, Index, Table};
use super::engine::{Bytes, KeyRange, Result};
use super::error::StorageError;
use super::keycode;
use super::rowcodec::{RowVersion, decode_row, decode_row_into, encode_row};
use super::sync::Origin;
use super::txn::Transaction;
use crate::types::{Row, Value};
use std::sync::Arc;

/// (row key, row) pairs.
pub type RowIter = Box<dyn Iterator<Item = Result<(Bytes, Row)>> + Send>;

/// The index entry key of a row.
fn index_key(index: &Index, row: &[Value], row_key: &[u8]) -> Vec<u8> {
    let mut key = keycode::encode_values(index.columns.iter().map(|&i| &row[i]));
    key.extend_from_slice(row_key);
    key
}

/// What a table's stored rows must look like.
struct RowShape {
    space: String,
    /// Per column, the value of a row stored before the column was added.
    fill: Vec<Value>,
}

impl RowShape {
    fn of(table: &Table) -> RowShape {
        RowShape {
            space: table.space(),
            fill: table
                .columns
                .iter()
                .map(|c| match &c.default {
                    Some(DefaultValue::Value(v)) => v.clone(),
                    _ => Value::Null,
                })
                .collect(),
        }
    }

    /// Decodes a stored row into one value per column: rows written before
    /// ALTER TABLE ADD COLUMN get the new columns' defaults, and a row with
    /// too many values is an error here, not a panic where columns are read.
    fn row(&self, bytes: &[u8]) -> Result<Row> {
        self.row_reading(bytes, None)
    }

    /// [`RowShape::row`] decoding only the columns marked in `read`.
    fn row_reading(&self, bytes: &[u8], read: Option<&[bool]>) -> Result<Row> {
        let mut row = Vec::new();
        self.row_into(bytes, read, &mut row)?;
        Ok(row)
    }

    /// [`RowShape::row_reading`] into a row that the caller reuses.
    fn row_into(&self, bytes: &[u8], read: Option<&[bool]>, row: &mut Row) -> Result<()> {
        decode_row_into(bytes, read, row)?;
        if row.len() > self.fill.len() {
            return Err(StorageError::Corrupt {
                space: self.space.clone(),
                detail: format!("row has {} values, table has {} columns", row.len(), self.fill.len()),
            });
        }
        row.extend_from_slice(&self.fill[row.len()..]);
        Ok(())
    }
}

/// The values a stored row of `table` that is shorter than the table (it
/// was written before ALTER TABLE ADD COLUMN) reads for the missing columns.
pub fn column_fill(table: &Table) -> Vec<Value> {
    RowShape::of(table).fill
}

impl Transaction {
    pub fn scan_rows(&self, table: &Table, range: KeyRange) -> Result<RowIter> {
        self.scan_rows_reading(table, range, None)
    }

    /// Rows in a key range, with only the columns marked in `read` decoded
    /// (the rest are NULL); None decodes every column.
    pub fn scan_rows_reading(&self, table: &Table, range: KeyRange, read: Option<Arc<[bool]>>) -> Result<RowIter> {
        let iter = self.scan(&table.space(), range)?;
        let shape = RowShape::of(table);
        Ok(Box::new(iter.map(move |item| {
            let (k, v) = item?;
            Ok((k, shape.row_reading(&v, read.as_deref())?))
        })))
    }

    /// Calls `f` with each row in a key range, in key order, decoded (only
    /// the columns marked in `read`) into one buffer that every call reuses;
    /// `f` returns false to stop. No allocation per row: for scans that
    /// fold rows into a few values, such as aggregates.
    pub fn visit_rows(
        &self,
        table: &Table,
        range: KeyRange,
        read: Option<&[bool]>,
        f: &mut dyn FnMut(&Row) -> Result<bool>,
    ) -> Result<()> {
        let shape = RowShape::of(table);
        let mut row = Vec::with_capacity(shape.fill.len());
        self.scan_each(&table.space(), range, &mut |_, value| {
            shape.row_into(value, read, &mut row)?;
            f(&row)
        })
    }

    pub fn get_row(&self, table: &Table, key: &[u8]) -> Result<Option<Row>> {
        match self.get(&table.space(), key)? {
            Some(v) => {
                let (row, _) = decode_row(&v)?;
                match row.len() == table.columns.len() {
                    true => Ok(Some(row)),
                    false => Ok(Some(RowShape::of(table).row(&v)?)),
                }
            }
            None => Ok(None),
        }
    }

    /// Rows whose index entries fall in `range` (a range over encoded index
    /// values), in index order.
    pub fn scan_index(&self, table: &Table, index: &Index, range: KeyRange) -> Result<RowIter> {
        let entries = self.scan(&index.space(), range)?;
        let width = index.columns.len();
        let mut keys = Vec::new();
        for entry in entries {
            let (k, _) = entry?;
            let at = keycode::prefix_len(&k, width)?;
            keys.push(k[at..].to_vec());
        }
        let rows = keys
            .into_iter()
            .filter_map(|key| match self.get_row(table, &key) {
                Ok(Some(row)) => Some(Ok((Bytes::from(key), row))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Vec<_>>();
        Ok(Box::new(rows.into_iter()))
    }

    /// True when some row other than `except` has these values in a unique
    /// index.
    pub fn index_contains(&self, index: &Index, values: &[Value], except: Option<&[u8]>) -> Result<bool> {
        Ok(self.index_holder(index, values, except)?.is_some())
    }

    /// The key of a row other than `except` that has these values in a
    /// unique index.
    pub fn index_holder(&self, index: &Index, values: &[Value], except: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        let prefix = keycode::encode_values(values);
        let end = keycode::prefix_end(&prefix);
        let range = (
            std::ops::Bound::Included(prefix.clone()),
            end.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
        );
        for entry in self.scan(&index.space(), range)? {
            let (k, _) = entry?;
            let key = &k[prefix.len()..];
            if except != Some(key) {
                return Ok(Some(key.to_vec()));
            }
        }
        Ok(None)
    }

    /// Stores a row written by this transaction (with its version).
    pub fn insert_row(&mut self, table: &Table, key: Vec<u8>, row: &[Value]) -> Result<()> {
        self.insert_row_as(table, key, row, self.version(), Origin::Local)
    }

    /// Stores a row with a given version: a local write, or a row merged
    /// from another site. A synced table records the change in its feed and
    /// forgets an earlier delete of the key.
    pub(super) fn insert_row_as(
        &mut self,
        table: &Table,
        key: Vec<u8>,
        row: &[Value],
        version: RowVersion,
        origin: Origin,
    ) -> Result<()> {
        if table.keeps_tombstones() {
            self.forget_tombstone(table, &key)?;
        }
        self.store_row(table, key, row, version, origin);
        Ok(())
    }

    /// Writes a row and its index entries (and its feed entry in a synced
    /// table), when the caller knows no tombstone holds the key.
    pub(super) fn store_row(
        &mut self,
        table: &Table,
        key: Vec<u8>,
        row: &[Value],
        version: RowVersion,
        origin: Origin,
    ) {
        for index in &table.indexes {
            self.set(&index.space(), index_key(index, row, &key), Vec::new());
        }
        if table.synced {
            self.record_change(table, &key, origin);
        }
        let bytes = encode_row(row, version, self.change());
        self.set(&table.space(), key, bytes);
    }

    /// Deletes a row. In a synced table the delete leaves a tombstone, so
    /// it reaches other sites and outranks older copies of the row there.
    pub fn delete_row(&mut self, table: &Table, key: &[u8], row: &[Value]) -> Result<()> {
        self.delete_row_as(table, key, row, self.version(), Origin::Local)
    }

    pub(super) fn delete_row_as(
        &mut self,
        table: &Table,
        key: &[u8],
        row: &[Value],
        version: RowVersion,
        origin: Origin,
    ) -> Result<()> {
        for index in &table.indexes {
            self.delete(&index.space(), index_key(index, row, key));
        }
        if table.synced {
            self.forget_change_of_row(table, key)?;
        }
        if table.keeps_tombstones() {
            self.set_tombstone(table, key, version, origin);
        }
        self.delete(&table.space(), key.to_vec());
        Ok(())
    }

    /// Adds the entries of one (new) index for every existing row. For a
    /// UNIQUE index, returns the first values found twice (NULLs never
    /// collide) and adds nothing more.
    pub fn build_index(&mut self, table: &Table, index: &Index) -> Result<Option<Vec<Value>>> {
        let rows: Vec<_> = self
            .scan_rows(table, (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded))?
            .collect::<Result<_>>()?;
        let mut seen = std::collections::BTreeSet::new();
        for (key, row) in rows {
            if index.unique {
                let values: Vec<Value> = index.columns.iter().map(|&i| row[i].clone()).collect();
                if !values.iter().any(Value::is_null) && !seen.insert(keycode::encode_values(&values)) {
                    return Ok(Some(values));
                }
            }
            self.set(&index.space(), index_key(index, &row, &key), Vec::new());
        }
        Ok(None)
    }

    /// Removes a row's index entries (before it is replaced by a merged
    /// version).
    pub(super) fn remove_index_entries(&mut self, table: &Table, key: &[u8], row: &[Value]) {
        for index in &table.indexes {
            self.delete(&index.space(), index_key(index, row, key));
        }
    }
}
