use crate::config::{Config, Direction};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What sync needs from the configuration.
#[derive(Clone, Debug, Default)]
pub struct SyncSettings {
    pub site_id: Option<String>,
    pub upstream: Option<String>,
    pub tables: BTreeMap<String, Direction>,
    pub batch_size: usize,
    pub interval: Duration,
    /// Sites allowed to sync with this cluster (as its upstream).
    pub sites: BTreeSet<String>,
    pub max_clock_offset_ms: i64,
    pub tombstone_retention: Duration,
    pub idempotency_retention: Duration,
}

impl SyncSettings {
    pub fn from_config(config: &Config) -> SyncSettings {
        let s = &config.sync;
        SyncSettings {
            site_id: s.site_id.clone(),
            upstream: s.upstream.clone(),
            tables: s.tables.clone(),
            batch_size: s.batch_size,
            interval: Duration::from_millis(s.interval_ms),
            sites: s.sites.iter().cloned().collect(),
            max_clock_offset_ms: config.max_clock_offset_ms.min(i64::MAX as u64) as i64,
            tombstone_retention: Duration::from_secs(s.tombstone_retention_hours.saturating_mul(3600)),
            idempotency_retention: Duration::from_secs(config.idempotency_retention_hours.saturating_mul(3600)),
        }
    }

    /// The `site` in row versions for a site name.
    pub fn site_hash(name: &str) -> u64 {
        crate::raft::node_id(name)
    }

    pub fn role(&self) -> &'static str {
        match (self.upstream.is_some(), !self.sites.is_empty()) {
            (true, true) => "site+upstream",
            (true, false) => "site",
            (false, true) => "upstream",
            (false, false) => "off",
        }
    }
}
