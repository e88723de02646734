//! The change feed (CDC): every committed row change, recorded while its
//! Raft entry is applied (in the same atomic batch), so each member holds
//! the same feed and a subscriber may follow any of them.
//!
//! A feed entry is keyed by the Raft index of the entry that made the
//! changes; within it, changes come in table then key order, each with its
//! row before and after. The feed keeps the last `retain_entries` indexes;
//! a subscriber asking for older ones is told the oldest index kept, and
//! must read the tables afresh.

mod capture;
pub mod record;
pub mod service;
mod store;
pub mod webhook;

pub use capture::{ChangeOp, RowChange, TableChanges, capture};
pub use store::{ChangeEvent, ChangeLog, NoChangeLog, TooOld};
