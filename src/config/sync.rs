//! The `[sync]` section: a site and its upstream (src/sync reads it).

use super::{ConfigError, valid_name};
use serde::{Deserialize, Serialize};

/// Which way a table's changes flow between a site and its upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Site to upstream only.
    Push,
    /// Upstream to site only.
    Pull,
    Both,
}

impl Direction {
    pub fn pushes(self) -> bool {
        matches!(self, Direction::Push | Direction::Both)
    }

    pub fn pulls(self) -> bool {
        matches!(self, Direction::Pull | Direction::Both)
    }
}

/// The `[sync]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// This cluster's site name: the `site` of the row versions it writes.
    pub site_id: Option<String>,
    /// host:port of the upstream cluster (any member); makes this a site.
    pub upstream: Option<String>,
    /// The tables to sync with the upstream and the direction of each.
    pub tables: std::collections::BTreeMap<String, Direction>,
    /// Changes per batch.
    pub batch_size: usize,
    /// Pause between sync rounds when there is nothing left to send.
    pub interval_ms: u64,
    /// Tombstones of deletes are dropped after this long. A site offline
    /// for longer may bring back a row deleted meanwhile.
    pub tombstone_retention_hours: u64,
    /// On an upstream: the sites allowed to sync with this cluster.
    pub sites: Vec<String>,
}

impl Default for SyncConfig {
    fn default() -> SyncConfig {
        SyncConfig {
            site_id: None,
            upstream: None,
            tables: Default::default(),
            batch_size: 5_000,
            interval_ms: 1_000,
            tombstone_retention_hours: 168,
            sites: Vec::new(),
        }
    }
}

impl SyncConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if let Some(site) = &self.site_id
            && !valid_name(site)
        {
            return bad(format!(
                "key 'sync.site_id': '{site}' must be 1-64 letters, digits, '-' or '_'"
            ));
        }
        for site in &self.sites {
            if !valid_name(site) {
                return bad(format!("key 'sync.sites': '{site}' is not a valid site id"));
            }
        }
        if (self.upstream.is_some() || !self.sites.is_empty()) && self.site_id.is_none() {
            return bad("key 'sync.site_id': required when sync.upstream or sync.sites is set".into());
        }
        if let Some(upstream) = &self.upstream {
            if !upstream.contains(':') {
                return bad(format!("key 'sync.upstream': '{upstream}' is not a host:port address"));
            }
            if self.tables.is_empty() {
                return bad("key 'sync.tables': name the tables to sync, e.g. tables = { readings = \"push\" }".into());
            }
        }
        if !(1..=100_000).contains(&self.batch_size) {
            return bad(format!(
                "key 'sync.batch_size': {} must be between 1 and 100000",
                self.batch_size
            ));
        }
        if !(10..=3_600_000).contains(&self.interval_ms) {
            return bad(format!(
                "key 'sync.interval_ms': {} must be between 10 and 3600000",
                self.interval_ms
            ));
        }
        if self.tombstone_retention_hours == 0 {
            return bad("key 'sync.tombstone_retention_hours': must be at least 1".into());
        }
        Ok(())
    }
}
