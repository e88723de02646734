//! The `[changes]` section: the change feed and its webhook.

use super::ConfigError;
use serde::{Deserialize, Serialize};

/// The `[changes]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChangesConfig {
    /// Record every committed row change (Changes/Subscribe, /v1/changes).
    pub enabled: bool,
    /// Raft indexes of history kept for subscribers that resume.
    pub retain_entries: u64,
    /// http://host:port/path to POST batches of changes to; none when unset.
    pub webhook_url: Option<String>,
    /// Changes per webhook POST.
    pub webhook_batch: usize,
    /// Only these tables' changes go to the webhook; all when empty.
    pub webhook_tables: Vec<String>,
}

impl Default for ChangesConfig {
    fn default() -> ChangesConfig {
        ChangesConfig {
            enabled: true,
            retain_entries: 100_000,
            webhook_url: None,
            webhook_batch: 500,
            webhook_tables: Vec::new(),
        }
    }
}

impl ChangesConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.retain_entries == 0 {
            return bad("key 'changes.retain_entries': must be at least 1".into());
        }
        if !(1..=100_000).contains(&self.webhook_batch) {
            return bad(format!(
                "key 'changes.webhook_batch': {} must be between 1 and 100000",
                self.webhook_batch
            ));
        }
        if let Some(url) = &self.webhook_url {
            if !self.enabled {
                return bad("key 'changes.webhook_url': needs changes.enabled = true".into());
            }
            if let Err(e) = WebhookTarget::parse(url) {
                return bad(format!("key 'changes.webhook_url': {e}"));
            }
        }
        Ok(())
    }
}

/// Where the webhook posts: the `http://host:port/path` of
/// `changes.webhook_url`, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookTarget {
    /// host:port to connect to.
    pub authority: String,
    /// The request path and query, at least "/".
    pub path: String,
}

impl WebhookTarget {
    pub fn parse(url: &str) -> Result<WebhookTarget, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("'{url}' must start with http:// (https is not supported; put a TLS proxy in front)")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| format!("'{url}' needs a port, e.g. http://collector:9000/changes"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("'{url}' is not http://host:port/path"));
        }
        Ok(WebhookTarget {
            authority: authority.to_string(),
            path: path.to_string(),
        })
    }
}
