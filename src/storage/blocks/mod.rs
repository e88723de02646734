//! Blocks: the rows of a table, its index entries, tombstones and change
//! feed stored many to a sled entry, in key order.
//!
//! sled's cost is per entry (measured in the storage v2 issue: 80-113k rows/s
//! ingested at one row per entry, 0.9-1.2M at 256), so data keyspaces keep
//! consecutive rows together in blocks of up to [`MAX_BLOCK_BYTES`],
//! prefix-encoded and lz4-compressed (format.rs), with decoded blocks kept in
//! a cache bounded in bytes (cache.rs). The engine above still reads and
//! writes single rows: this module turns those into block reads and
//! rewrites (store.rs), and converts a data directory written one row per
//! entry when it opens (upgrade.rs).
//!
//! It must not commit on its own or hold a lock across calls: the engine
//! applies block writes atomically with the rest of its batch, under its
//! write lock.

mod cache;
mod format;
mod ids;
mod store;
mod upgrade;

pub use cache::{BlockCache, CacheStats};
pub use format::header_counts;
pub use ids::{Ids, META_TREE};
pub use store::BlockStore;
pub use upgrade::convert_row_trees;

/// Bytes of entries (before compression) per block: from the storage
/// issue's measurements of sled alone (64 to 256 rows of 100 bytes per
/// entry gave most of the gain), not yet re-measured on this format.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024;

/// The sled tree that holds keyspace `space` as blocks.
pub fn tree_name(space: &str) -> String {
    format!("{PREFIX}{space}")
}

/// The keyspace a block tree holds, for a sled tree name.
pub fn space_of(tree: &str) -> Option<&str> {
    tree.strip_prefix(PREFIX)
}

const PREFIX: &str = "b/";

#[cfg(test)]
mod tests;
