//! The `[cluster]` (automatic clustering) and `[queue]` (queued writes)
//! sections.

use super::{ConfigError, list_or_commas};
use serde::{Deserialize, Serialize};

/// The `[cluster]` section: automatic clustering.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Form a new cluster once this many nodes found each other through
    /// `join`; 0: never form one (only join one that is found).
    pub bootstrap_expect: usize,
    /// Where to find the other nodes: host:port entries, or DNS names
    /// (with a port) whose A/AAAA records list them.
    #[serde(deserialize_with = "list_or_commas")]
    pub join: Vec<String>,
    /// On the leader: remove members unreachable for this many seconds;
    /// 0: never.
    pub reap_after_s: u64,
}

impl ClusterConfig {
    pub(super) fn validate(&self, peers: &[String], join: Option<&String>) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.bootstrap_expect > 0 && self.join.is_empty() {
            return bad("key 'cluster.bootstrap_expect': needs cluster.join, where to find the other nodes".into());
        }
        if !self.join.is_empty() && (!peers.is_empty() || join.is_some()) {
            return bad(
                "key 'cluster.join': use either automatic clustering (cluster.join) or peers/join, not both".into(),
            );
        }
        if self.bootstrap_expect > 9 {
            return bad(format!(
                "key 'cluster.bootstrap_expect': {} members is more than 9",
                self.bootstrap_expect
            ));
        }
        for entry in &self.join {
            if !entry.contains(':') {
                return bad(format!("key 'cluster.join': '{entry}' needs a port (host:port)"));
            }
        }
        if self.reap_after_s > 0 && self.reap_after_s < 10 {
            return bad(format!(
                "key 'cluster.reap_after_s': {} s would remove members on a short hiccup; use at least 10",
                self.reap_after_s
            ));
        }
        Ok(())
    }
}

/// The `[queue]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Writes the queue holds at most; more are refused.
    pub max_entries: u64,
    /// Queued writes committed per Raft entry at most.
    pub batch: usize,
    /// After a write arrives in an empty queue, wait this long for more.
    pub window_ms: u64,
    /// Outcomes of committed writes kept for `wait_for`.
    pub keep_outcomes: u64,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            max_entries: 100_000,
            batch: 1_000,
            window_ms: 5,
            keep_outcomes: 100_000,
        }
    }
}

impl QueueConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.max_entries == 0 {
            return bad("key 'queue.max_entries': must be at least 1".into());
        }
        if !(1..=100_000).contains(&self.batch) {
            return bad(format!(
                "key 'queue.batch': {} must be between 1 and 100000",
                self.batch
            ));
        }
        if self.window_ms > 10_000 {
            return bad(format!(
                "key 'queue.window_ms': {} must be at most 10000",
                self.window_ms
            ));
        }
        Ok(())
    }
}
