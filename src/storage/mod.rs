//! Storage: ChronosDB's data on sled.
//!
//! An [`Engine`] is a set of named, ordered keyspaces (sled trees) with one
//! atomic, durable commit operation. A [`Transaction`] buffers the writes of a
//! statement or a BEGIN..COMMIT batch over an engine, reads its own writes,
//! and commits them all at once or not at all. On top sit the catalog (table
//! schemas), the order-preserving key codec, the row codec, and table and
//! index maintenance.
//!
//! Storage knows nothing of SQL syntax or Raft; it never reads the clock.

mod blocks;
mod catalog;
mod engine;
mod error;
pub mod io_stats;
pub mod keycode;
mod memory;
pub mod positions;
pub mod rowcodec;
pub mod running;
mod sled_engine;
pub mod space;
pub mod sync;
mod synced_db;
mod tables;
mod txn;
pub mod watermark;

pub use blocks::CacheStats;
pub use catalog::{CHANGE_LOG_SPACE, Column, DefaultValue, Index, Table, View, is_data_space};
pub use engine::{Bytes, Engine, KeyRange, ScanIter, SpaceStats, WriteBatch};
pub use error::StorageError;
pub use memory::MemoryEngine;
pub use rowcodec::RowVersion;
pub use sled_engine::{DEFAULT_CACHE_BYTES, SledEngine};
pub use synced_db::SyncedDb;
pub use tables::{RowIter, column_fill};
pub use txn::{Savepoint, Transaction};
