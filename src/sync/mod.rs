//! Offline-first: the hybrid logical clock that stamps every write, and
//! site-to-upstream sync (change feeds, checked batches, last-writer-wins
//! merges through each side's own Raft, and the site's sync agent).

pub mod agent;
pub mod batch;
mod error;
pub mod feed;
pub mod ops;
pub mod service;
mod settings;
pub mod status;

/// The hybrid logical clock lives with Raft, which stamps every entry.
pub use crate::raft::hlc::{Clock, ClockError, HighWater, Timestamp};
pub use error::SyncError;
pub use ops::{MergeOp, MergeReport, Op};
pub use settings::SyncSettings;
