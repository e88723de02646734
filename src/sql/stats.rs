//! `SHOW TABLE STATS`: per table, its rows and what they take on disk, with
//! the node's block cache counters; the same figures feed /metrics.

use crate::sql::error::Result;
use crate::storage::{SpaceStats, Transaction};

/// One table's keyspaces (rows, indexes, change feed, tombstones) as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableStats {
    pub table: String,
    pub rows: u64,
    /// Of all its keyspaces together.
    pub stored: SpaceStats,
}

impl TableStats {
    /// Bytes before compression per byte stored; 1.0 for an empty table.
    pub fn compression(&self) -> f64 {
        match self.stored.stored_bytes {
            0 => 1.0,
            n => self.stored.raw_bytes as f64 / n as f64,
        }
    }
}

/// Every table's statistics, in name order; empty when the engine keeps none.
pub fn table_stats(txn: &Transaction) -> Result<Vec<TableStats>> {
    let engine = txn.engine();
    let mut out = Vec::new();
    for table in txn.tables()? {
        let mut spaces = vec![table.space(), table.feed_space(), table.tomb_space()];
        spaces.extend(table.indexes.iter().map(|i| i.space()));
        let mut total = SpaceStats::default();
        let mut rows = 0;
        for (i, space) in spaces.iter().enumerate() {
            let Some(s) = engine.space_stats(space)? else {
                return Ok(Vec::new());
            };
            if i == 0 {
                rows = s.rows;
            }
            total.rows += s.rows;
            total.entries += s.entries;
            total.raw_bytes += s.raw_bytes;
            total.stored_bytes += s.stored_bytes;
        }
        out.push(TableStats {
            table: table.name.clone(),
            rows,
            stored: total,
        });
    }
    out.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(out)
}
