//! The `[limits]` section: what one client may ask of a node. The servers
//! turn it into their `Limits` (src/server/limits.rs).

use super::ConfigError;
use serde::{Deserialize, Serialize};

/// The `[limits]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest SQL text accepted, in bytes.
    pub max_statement_bytes: usize,
    /// Most rows in one INSERT.
    pub max_insert_rows: usize,
    /// Most rows in one HTTP query answer (gRPC queries stream any size).
    pub max_http_rows: usize,
    /// A query running longer fails; 0: no limit.
    pub query_timeout_ms: u64,
    /// Connections one client address may hold open; 0: no limit.
    pub max_connections_per_client: usize,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            max_statement_bytes: 1 << 20,
            max_insert_rows: 100_000,
            max_http_rows: 100_000,
            query_timeout_ms: 30_000,
            max_connections_per_client: 1_024,
        }
    }
}

impl LimitsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.max_statement_bytes == 0 || self.max_insert_rows == 0 || self.max_http_rows == 0 {
            return bad(
                "keys 'limits.max_statement_bytes', 'max_insert_rows' and 'max_http_rows' must be at least 1".into(),
            );
        }
        Ok(())
    }
}
