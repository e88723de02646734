//! What the sync agent reports: shared between the agent (which updates
//! it), `chronos sync status` and `SHOW SYNC STATUS`.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Clone, Debug, Default)]
pub struct TableStatus {
    pub direction: String,
    /// -1 until first counted.
    pub rows_waiting: i64,
    pub bytes_waiting: i64,
    pub rows_pushed: u64,
    pub rows_pulled: u64,
    pub push_cursor: u64,
    pub pull_cursor: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub active: bool,
    pub upstream_reachable: bool,
    pub last_success_ms: i64,
    pub last_error: String,
    pub tables: BTreeMap<String, TableStatus>,
}

/// The agent's live figures.
#[derive(Default)]
pub struct StatusBoard {
    inner: Mutex<Snapshot>,
}

impl StatusBoard {
    pub fn snapshot(&self) -> Snapshot {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn table(&self, name: &str, f: impl FnOnce(&mut TableStatus)) {
        self.update(|s| f(s.tables.entry(name.to_string()).or_default()));
    }
}

pub use crate::storage::positions::cursor_position;
