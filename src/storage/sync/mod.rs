//! What site-to-upstream sync needs from storage: a change feed per synced
//! table, tombstones for deletes, and a last-writer-wins merge.
//!
//! Feed: key = change position (8 bytes, big-endian) ++ row key, value =
//! the [`Origin`] byte. A row's feed entry moves to the newest position each
//! time it changes (its old entry is removed), so the feed holds one entry
//! per live row or tombstone, and reading it from a cursor yields every row
//! changed after that cursor. Positions are Raft log indexes, identical on
//! every replica, so a cursor is valid on any member.
//!
//! Merge: a change carries the version `(hlc, site)` of the write that made
//! it. It replaces the local row or tombstone only when its version is
//! greater, so merging is commutative and idempotent and replicas that saw
//! the same changes in any order hold the same rows.

use super::catalog::Table;
use super::engine::{KeyRange, Result};
use super::error::StorageError;
use super::keycode;
use super::rowcodec::{RowVersion, decode_meta, decode_row, put_varint};
use super::txn::Transaction;
use crate::types::{Row, Value};
use std::ops::Bound;

/// Where a change came from, kept in its feed entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Written here, or pushed here by a site: it flows on upstream.
    Local = 0,
    /// Pulled from this site's upstream: never pushed back there.
    Pulled = 1,
}

/// One row's state as sent between sites: its key, the version of the
/// write, and its values (None for a delete).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub key: Vec<u8>,
    pub version: RowVersion,
    pub row: Option<Row>,
}

/// What merging one change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merged {
    /// The change was newer and is now the row's state.
    Applied { conflict: bool },
    /// The local state is as new or newer; nothing changed.
    Kept { conflict: bool },
}

/// A page of the feed.
pub struct FeedPage {
    pub changes: Vec<Change>,
    /// The feed key of the last entry read (the cursor to resume after),
    /// or None when nothing was read.
    pub cursor: Option<Vec<u8>>,
    /// False when the page stopped at a limit and more entries follow.
    pub complete: bool,
}

/// Which feed entries to leave out of a page.
#[derive(Clone, Copy, Debug, Default)]
pub struct FeedFilter {
    /// Leave out what was pulled from upstream (when pushing to it).
    pub skip_pulled: bool,
    /// Leave out versions written by this site (when it pulls: it has them).
    pub skip_site: Option<u64>,
}

fn feed_key(change: u64, row_key: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + row_key.len());
    key.extend_from_slice(&change.to_be_bytes());
    key.extend_from_slice(row_key);
    key
}

fn corrupt(space: String, detail: &str) -> StorageError {
    StorageError::Corrupt {
        space,
        detail: detail.to_string(),
    }
}

/// Tombstone value: version (hlc, site) and change position, as varints.
fn encode_tombstone(version: RowVersion, change: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    put_varint(&mut out, version.hlc);
    put_varint(&mut out, version.site);
    put_varint(&mut out, change);
    out
}

fn decode_tombstone(space: &str, bytes: &[u8]) -> Result<(RowVersion, u64)> {
    let mut values = [0u64; 3];
    let mut pos = 0;
    for v in values.iter_mut() {
        let mut shift = 0;
        loop {
            let b = *bytes
                .get(pos)
                .ok_or_else(|| corrupt(space.to_string(), "truncated tombstone"))?;
            pos += 1;
            if shift > 63 {
                return Err(corrupt(space.to_string(), "tombstone varint too long"));
            }
            *v |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
    }
    let version = RowVersion {
        hlc: values[0],
        site: values[1],
    };
    Ok((version, values[2]))
}

impl Transaction {
    pub(super) fn record_change(&mut self, table: &Table, row_key: &[u8], origin: Origin) {
        let key = feed_key(self.change(), row_key);
        self.set(&table.feed_space(), key, vec![origin as u8]);
    }

    /// Removes the feed entry of the row stored under `key`, if any.
    pub(super) fn forget_change_of_row(&mut self, table: &Table, key: &[u8]) -> Result<()> {
        if let Some(bytes) = self.get(&table.space(), key)? {
            let (_, change) = decode_meta(&bytes)?;
            self.delete(&table.feed_space(), feed_key(change, key));
        }
        Ok(())
    }

    /// Removes the tombstone under `key` and its feed entry, if any.
    pub(super) fn forget_tombstone(&mut self, table: &Table, key: &[u8]) -> Result<()> {
        let space = table.tomb_space();
        if let Some(bytes) = self.get(&space, key)? {
            let (_, change) = decode_tombstone(&space, &bytes)?;
            if table.synced {
                self.delete(&table.feed_space(), feed_key(change, key));
            }
            self.delete(&space, key.to_vec());
        }
        Ok(())
    }

    pub(super) fn set_tombstone(&mut self, table: &Table, key: &[u8], version: RowVersion, origin: Origin) {
        if table.synced {
            self.record_change(table, key, origin);
        }
        let value = encode_tombstone(version, self.change());
        self.set(&table.tomb_space(), key.to_vec(), value);
    }

    fn tombstone(&self, table: &Table, key: &[u8]) -> Result<Option<(RowVersion, u64)>> {
        let space = table.tomb_space();
        match self.get(&space, key)? {
            Some(bytes) => decode_tombstone(&space, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Starts keeping a change feed for a table: every existing row and
    /// tombstone enters the feed at this transaction's change position. The
    /// caller saves the table (with `synced` set) in the catalog.
    pub fn enable_sync(&mut self, table: &mut Table) -> Result<u64> {
        if table.synced {
            return Ok(0);
        }
        table.synced = true;
        let mut rows = Vec::new();
        for item in self.scan(&table.space(), (Bound::Unbounded, Bound::Unbounded))? {
            let (key, bytes) = item?;
            let (row, version) = decode_row(&bytes)?;
            rows.push((key.to_vec(), row, version));
        }
        let space = table.tomb_space();
        let mut tombstones = Vec::new();
        for item in self.scan(&space, (Bound::Unbounded, Bound::Unbounded))? {
            let (key, bytes) = item?;
            tombstones.push((key.to_vec(), decode_tombstone(&space, &bytes)?.0));
        }
        let count = (rows.len() + tombstones.len()) as u64;
        // Rewritten so each records its feed position.
        for (key, row, version) in rows {
            self.store_row(table, key, &row, version, Origin::Local);
        }
        for (key, version) in tombstones {
            self.set_tombstone(table, &key, version, Origin::Local);
        }
        Ok(count)
    }

    /// Merges one change into a synced table: last writer (greatest
    /// version) wins. The caller has checked that the change fits the
    /// table ([`check_change`]).
    pub fn merge_change(&mut self, table: &Table, change: Change, origin: Origin) -> Result<Merged> {
        let live = match self.get(&table.space(), &change.key)? {
            Some(bytes) => Some(decode_row(&bytes)?),
            None => None,
        };
        let tombstone = match &live {
            Some(_) => None,
            None => self.tombstone(table, &change.key)?.map(|(v, _)| v),
        };
        let existing = live.as_ref().map(|(_, v)| *v).or(tombstone);
        let conflict = existing.is_some_and(|v| v.site != change.version.site);
        if existing.is_some_and(|v| v >= change.version) {
            return Ok(Merged::Kept { conflict });
        }
        if tombstone.is_some() {
            self.forget_tombstone(table, &change.key)?;
        }
        match (change.row, live) {
            (Some(row), Some((old, _))) => {
                self.remove_index_entries(table, &change.key, &old);
                self.forget_change_of_row(table, &change.key)?;
                self.store_row(table, change.key, &row, change.version, origin);
            }
            (Some(row), None) => self.store_row(table, change.key, &row, change.version, origin),
            (None, Some((old, _))) => self.delete_row_as(table, &change.key, &old, change.version, origin)?,
            (None, None) => self.set_tombstone(table, &change.key, change.version, origin),
        }
        Ok(Merged::Applied { conflict })
    }

    /// Reads a synced table's feed after `cursor`: at most `max_changes`
    /// changes and about `max_bytes` of row data, skipping what `filter`
    /// leaves out and entries superseded by a later change.
    pub fn changes_since(
        &self,
        table: &Table,
        cursor: &[u8],
        max_changes: usize,
        max_bytes: usize,
        filter: FeedFilter,
    ) -> Result<FeedPage> {
        let start = match cursor.is_empty() {
            true => Bound::Unbounded,
            false => Bound::Excluded(cursor.to_vec()),
        };
        let range: KeyRange = (start, Bound::Unbounded);
        let mut page = FeedPage {
            changes: Vec::new(),
            cursor: None,
            complete: true,
        };
        let mut bytes = 0;
        // Skipped entries count too, so one page never scans without end.
        for (scanned, item) in self.scan(&table.feed_space(), range)?.enumerate() {
            if page.changes.len() >= max_changes || bytes >= max_bytes || scanned >= max_changes * 4 {
                page.complete = false;
                break;
            }
            let (feed_key, origin) = item?;
            page.cursor = Some(feed_key.to_vec());
            if feed_key.len() < 8 {
                return Err(corrupt(table.feed_space(), "feed key shorter than a position"));
            }
            let (position, row_key) = feed_key.split_at(8);
            let position = u64::from_be_bytes(position.try_into().unwrap_or([0; 8]));
            if filter.skip_pulled && origin.first() == Some(&(Origin::Pulled as u8)) {
                continue;
            }
            let change = match self.get(&table.space(), row_key)? {
                Some(stored) => {
                    let (version, at) = decode_meta(&stored)?;
                    if at != position {
                        continue;
                    }
                    bytes += stored.len() + row_key.len();
                    // Read as the table is now (rows older than an ADD
                    // COLUMN get the new column's default).
                    let row = self.get_row(table, row_key)?;
                    Change {
                        key: row_key.to_vec(),
                        version,
                        row,
                    }
                }
                None => match self.tombstone(table, row_key)? {
                    Some((version, at)) if at == position => {
                        bytes += row_key.len() + 16;
                        Change {
                            key: row_key.to_vec(),
                            version,
                            row: None,
                        }
                    }
                    _ => continue,
                },
            };
            if filter.skip_site == Some(change.version.site) {
                continue;
            }
            page.changes.push(change);
        }
        Ok(page)
    }

    /// Removes tombstones (and their feed entries) of deletes stamped
    /// before `before_hlc`. Returns how many were removed.
    pub fn purge_tombstones(&mut self, table: &Table, before_hlc: u64) -> Result<u64> {
        let space = table.tomb_space();
        let mut old = Vec::new();
        for item in self.scan(&space, (Bound::Unbounded, Bound::Unbounded))? {
            let (key, bytes) = item?;
            let (version, change) = decode_tombstone(&space, &bytes)?;
            if version.hlc < before_hlc {
                old.push((key.to_vec(), change));
            }
        }
        for (key, change) in &old {
            if table.synced {
                self.delete(&table.feed_space(), feed_key(*change, key));
            }
            self.delete(&space, key.clone());
        }
        Ok(old.len() as u64)
    }

    /// The number of tombstones a synced table holds.
    pub fn tombstone_count(&self, table: &Table) -> Result<u64> {
        let mut n = 0;
        for item in self.scan(&table.tomb_space(), (Bound::Unbounded, Bound::Unbounded))? {
            item?;
            n += 1;
        }
        Ok(n)
    }
}

/// Checks that a change received from another site fits `table`: its row
/// has one value per column, of the column's type, and its key is the key
/// the table gives that row (for a table without a primary key, a row id
/// of two integers).
pub fn check_change(table: &Table, change: &Change) -> std::result::Result<(), String> {
    let key = keycode::decode_values(&change.key).map_err(|e| format!("bad row key: {e}"))?;
    match table.primary_key.is_empty() {
        true if key.len() != 2 || !key.iter().all(|v| matches!(v, Value::Int(_))) => {
            return Err("a row id must be two integers".into());
        }
        true => {}
        false if key.len() != table.primary_key.len() => {
            return Err(format!(
                "the key has {} values, the primary key {} columns",
                key.len(),
                table.primary_key.len()
            ));
        }
        false => {}
    }
    let Some(row) = &change.row else { return Ok(()) };
    if row.len() != table.columns.len() {
        return Err(format!(
            "the row has {} values, table {} has {} columns",
            row.len(),
            table.name,
            table.columns.len()
        ));
    }
    for (value, column) in row.iter().zip(&table.columns) {
        if value.is_null() {
            if !column.nullable {
                return Err(format!("NULL in NOT NULL column {}", column.name));
            }
            continue;
        }
        if !column.data_type.holds(value) {
            return Err(format!(
                "value {value} does not fit column {} {}",
                column.name, column.data_type
            ));
        }
    }
    if !table.primary_key.is_empty() {
        let expected = keycode::encode_values(table.primary_key.iter().map(|&i| &row[i]));
        if expected != change.key {
            return Err("the key does not match the row's primary key".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
