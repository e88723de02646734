//! The catalog: table and index schemas, kept in the `catalog` keyspace so
//! that schema changes commit atomically with data changes.
//!
//! Keys: `t/<table>` -> the table schema (JSON); `i/<index>` -> the name of
//! the table that owns the index. The `meta` keyspace holds the id counter
//! and each table's hidden row-id counter.

use super::engine::Result;
use super::error::StorageError;
use super::txn::Transaction;
use crate::types::{DataType, Value};
use serde::{Deserialize, Serialize};
use std::ops::Bound;

const CATALOG: &str = "catalog";
const META: &str = "meta";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Table {
    /// Unique for the life of the database; names the table's keyspace, so a
    /// table dropped and created again never sees old rows.
    pub id: u64,
    pub name: String,
    pub columns: Vec<Column>,
    /// Positions of the primary-key columns; empty when the table has none and
    /// rows are keyed by a hidden row id.
    pub primary_key: Vec<usize>,
    pub indexes: Vec<Index>,
    /// Synced with other sites: every change is kept in the table's change
    /// feed and deletes leave tombstones (see `storage::sync`).
    #[serde(default)]
    pub synced: bool,
    /// Receives merges from other sites without being read by any: deletes
    /// leave tombstones, but no feed is kept (implied by `synced`).
    #[serde(default)]
    pub merges: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    pub default: Option<DefaultValue>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DefaultValue {
    Value(Value),
    /// The statement's timestamp (`DEFAULT now()`).
    Now,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Index {
    pub id: u64,
    pub name: String,
    pub columns: Vec<usize>,
    pub unique: bool,
}

/// A view: a named SELECT, planned afresh wherever it is used.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct View {
    pub name: String,
    pub sql: String,
}

impl Table {
    /// The keyspace holding the table's rows.
    pub fn space(&self) -> String {
        format!("t.{}", self.id)
    }

    /// Deletes leave tombstones (the table takes part in merges).
    pub fn keeps_tombstones(&self) -> bool {
        self.synced || self.merges
    }

    /// The keyspace of the table's change feed: change position and row
    /// key -> origin (only for synced tables).
    pub fn feed_space(&self) -> String {
        format!("f.{}", self.id)
    }

    /// The keyspace of the table's tombstones: row key -> version of the
    /// delete (only for synced tables).
    pub fn tomb_space(&self) -> String {
        format!("x.{}", self.id)
    }

    /// The shape rows must have to be merged into this table: column names
    /// and types, in order.
    pub fn signature(&self) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.data_type))
            .collect();
        let key = match self.primary_key.is_empty() {
            true => "rowid".to_string(),
            false => {
                let names: Vec<&str> = self
                    .primary_key
                    .iter()
                    .map(|&i| self.columns[i].name.as_str())
                    .collect();
                format!("PRIMARY KEY ({})", names.join(", "))
            }
        };
        format!("({}; {key})", columns.join(", "))
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn has_rowid(&self) -> bool {
        self.primary_key.is_empty()
    }
}

impl Index {
    /// The keyspace holding the index's entries.
    pub fn space(&self) -> String {
        format!("i.{}", self.id)
    }
}

/// True for keyspaces that belong to tables or indexes, so that leftovers of
/// a crash between commit and drop can be found.
/// The change feed's log (changes::store): storage keeps it as blocks too.
pub const CHANGE_LOG_SPACE: &str = "changes.log";

pub fn is_data_space(space: &str) -> bool {
    ["t.", "i.", "f.", "x."].iter().any(|p| space.starts_with(p))
}

fn corrupt(detail: String) -> StorageError {
    StorageError::Corrupt {
        space: CATALOG.into(),
        detail,
    }
}

impl Transaction {
    pub fn table(&self, name: &str) -> Result<Option<Table>> {
        match self.get(CATALOG, format!("t/{name}").as_bytes())? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| corrupt(format!("table {name}: {e}"))),
            None => Ok(None),
        }
    }

    /// All tables, in name order.
    pub fn tables(&self) -> Result<Vec<Table>> {
        let range = (Bound::Included(b"t/".to_vec()), Bound::Excluded(b"t0".to_vec()));
        self.scan(CATALOG, range)?
            .map(|item| {
                let (k, v) = item?;
                serde_json::from_slice(&v).map_err(|e| corrupt(format!("{}: {e}", String::from_utf8_lossy(&k))))
            })
            .collect()
    }

    pub fn save_table(&mut self, table: &Table) -> Result<()> {
        let bytes = serde_json::to_vec(table).map_err(|e| corrupt(e.to_string()))?;
        self.set(CATALOG, format!("t/{}", table.name).into_bytes(), bytes);
        Ok(())
    }

    pub fn view(&self, name: &str) -> Result<Option<View>> {
        match self.get(CATALOG, format!("v/{name}").as_bytes())? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| corrupt(format!("view {name}: {e}"))),
            None => Ok(None),
        }
    }

    pub fn save_view(&mut self, view: &View) -> Result<()> {
        let bytes = serde_json::to_vec(view).map_err(|e| corrupt(e.to_string()))?;
        self.set(CATALOG, format!("v/{}", view.name).into_bytes(), bytes);
        Ok(())
    }

    pub fn remove_view(&mut self, name: &str) {
        self.delete(CATALOG, format!("v/{name}").into_bytes());
    }

    pub fn remove_table(&mut self, name: &str) {
        self.delete(CATALOG, format!("t/{name}").into_bytes());
    }

    /// The table that owns an index, if the index exists.
    pub fn index_owner(&self, index: &str) -> Result<Option<String>> {
        match self.get(CATALOG, format!("i/{index}").as_bytes())? {
            Some(v) => String::from_utf8(v)
                .map(Some)
                .map_err(|_| corrupt(format!("index {index}: owner is not UTF-8"))),
            None => Ok(None),
        }
    }

    pub fn set_index_owner(&mut self, index: &str, table: Option<&str>) {
        let key = format!("i/{index}").into_bytes();
        match table {
            Some(t) => self.set(CATALOG, key, t.as_bytes().to_vec()),
            None => self.delete(CATALOG, key),
        }
    }

    fn counter(&mut self, key: &str) -> Result<u64> {
        self.counter_by(key, 1)
    }

    /// Takes `n` consecutive values of a counter; returns the first.
    fn counter_by(&mut self, key: &str, n: u64) -> Result<u64> {
        let next = match self.get(META, key.as_bytes())? {
            Some(b) => u64::from_be_bytes(
                b.as_slice()
                    .try_into()
                    .map_err(|_| corrupt(format!("counter {key} is not 8 bytes")))?,
            ),
            None => 1,
        };
        let after = next
            .checked_add(n)
            .ok_or_else(|| corrupt(format!("counter {key} overflowed")))?;
        self.set(META, key.as_bytes().to_vec(), after.to_be_bytes().to_vec());
        Ok(next)
    }

    /// A new table or index id.
    pub fn next_id(&mut self) -> Result<u64> {
        self.counter("next_id")
    }

    /// `n` consecutive hidden row ids for a table without a primary key;
    /// returns the first. Deterministic: the counter is part of the data and
    /// moves in the same commit.
    pub fn next_rowids(&mut self, table: &Table, n: u64) -> Result<i64> {
        let first = self.counter_by(&format!("rowid/{}", table.id), n)?;
        i64::try_from(first).map_err(|_| corrupt(format!("row ids of table {} ran out", table.name)))
    }

    /// Forgets a dropped table's row-id counter.
    pub fn remove_rowid_counter(&mut self, table: &Table) {
        self.delete(META, format!("rowid/{}", table.id).into_bytes());
    }
}
