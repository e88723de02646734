//! Node configuration: built-in defaults < TOML file < `CHRONOS_*`
//! environment < command-line flags (figment). Every key is documented in
//! config/chronos.toml.
//!
//! This module says what the file may contain, its defaults, and which
//! values are refused (by key name). It imports no other folder of the
//! crate: each layer turns its own section into its settings (for example
//! `server::Limits` from `LimitsConfig`), so config never builds them.

mod changes;
mod cluster;
mod limits;
mod load;
pub mod logging;
mod security;
mod storage;
mod sync;
#[cfg(test)]
mod tests;

pub use changes::{ChangesConfig, WebhookTarget};
pub use cluster::{ClusterConfig, QueueConfig};
pub use limits::LimitsConfig;
pub use security::{Role, TlsConfig, User};
pub use storage::{DEFAULT_CACHE_BYTES, StorageConfig};
pub use sync::{Direction, SyncConfig};

use load::list_or_commas;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The whole configuration of a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's name; its files live in `<data_dir>/<id>/`.
    pub id: String,
    /// The directory holding node directories.
    pub data_dir: PathBuf,
    /// host:port the client API listens on.
    pub address: String,
    /// The other members of the cluster: "id=host:port" entries, as a list
    /// or one comma-separated string (handy in the environment).
    #[serde(deserialize_with = "list_or_commas")]
    pub peers: Vec<String>,
    /// host:port of a member of a running cluster: on first start, this
    /// node asks it to be added (learner first, voter once caught up).
    pub join: Option<String>,
    /// host:port of the HTTP listener (/metrics, /healthz, /readyz and the
    /// JSON API); none when unset.
    pub http_address: Option<String>,
    /// The address other members reach this node at; `address` when unset.
    pub advertise_address: Option<String>,
    /// Build a snapshot and compact the Raft log after this many entries.
    pub snapshot_every: u64,
    /// Followers call an election after this many milliseconds without
    /// hearing from a leader (randomized up to twice this).
    pub election_timeout_ms: u64,
    /// Largest accepted request, in bytes.
    pub max_request_bytes: usize,
    /// Log level or filter (tracing syntax); RUST_LOG overrides it.
    pub log_level: String,
    /// "auto" (journald under systemd, else stderr), "journald" or "stderr".
    pub log_target: String,
    /// A remote stamp (a sync batch's) further ahead of this node's clock
    /// than this is refused.
    pub max_clock_offset_ms: u64,
    /// How long the answer to a client's keyed write is kept, so a retry
    /// or a replay from an offline queue within this time applies once.
    pub idempotency_retention_hours: u64,
    /// Site-to-upstream sync; off unless `upstream` or `sites` is set.
    pub sync: SyncConfig,
    /// The change feed and its optional webhook.
    pub changes: ChangesConfig,
    /// Queued writes (acknowledged before they commit).
    pub queue: QueueConfig,
    /// Automatic clustering.
    pub cluster: ClusterConfig,
    /// Limits on what one client may ask of the node.
    pub limits: LimitsConfig,
    /// TLS for every listener and peer connection; off unless set.
    pub tls: TlsConfig,
    /// Who may call this node (`[[users]]`); none: no login is asked for.
    pub users: Vec<User>,
    /// Disk space: the reserve file and the low-space mark.
    pub storage: StorageConfig,
    /// "voter" (the default); "learner": a read replica that joins
    /// through `join`, follows the log, serves reads and forwards writes,
    /// but never votes; or "witness": a voter that keeps the Raft log but
    /// no data, so two data nodes and a witness survive the loss of any
    /// one of them.
    pub role: String,
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Default for Config {
    fn default() -> Config {
        Config {
            id: "node1".into(),
            data_dir: "./data".into(),
            address: "127.0.0.1:8000".into(),
            peers: Vec::new(),
            join: None,
            advertise_address: None,
            http_address: None,
            snapshot_every: 10_000,
            election_timeout_ms: 1_000,
            max_request_bytes: 16 * 1024 * 1024,
            log_level: "info".into(),
            log_target: "auto".into(),
            max_clock_offset_ms: 10_000,
            idempotency_retention_hours: 168,
            sync: SyncConfig::default(),
            changes: ChangesConfig::default(),
            queue: QueueConfig::default(),
            cluster: ClusterConfig::default(),
            limits: LimitsConfig::default(),
            tls: TlsConfig::default(),
            users: Vec::new(),
            storage: StorageConfig::default(),
            role: "voter".into(),
        }
    }
}

/// Values from flags; only those given override the lower layers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

/// A peer from the `peers` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub id: String,
    pub address: String,
}

impl Config {
    /// True for `role = "witness"`: a voter that keeps no data.
    pub fn is_witness(&self) -> bool {
        self.role == "witness"
    }

    /// The address stored in the membership for this node: the
    /// advertised one, else `address`, where a wildcard host (0.0.0.0, as
    /// in a container) becomes this machine's host name.
    pub fn advertised(&self) -> String {
        if let Some(a) = &self.advertise_address {
            return a.clone();
        }
        match self.address.rsplit_once(':') {
            Some(("0.0.0.0" | "[::]", port)) => match std::fs::read_to_string("/etc/hostname") {
                Ok(host) if !host.trim().is_empty() => format!("{}:{port}", host.trim()),
                _ => self.address.clone(),
            },
            _ => self.address.clone(),
        }
    }

    /// Where this node keeps its files.
    pub fn node_dir(&self) -> PathBuf {
        self.data_dir.join(&self.id)
    }

    pub fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        use std::net::ToSocketAddrs;
        self.address
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                ConfigError::Invalid(format!("key 'address': '{}' is not a host:port address", self.address))
            })
    }

    pub fn peers(&self) -> Result<Vec<Peer>, ConfigError> {
        self.peers
            .iter()
            .map(|p| {
                let (id, address) = p.split_once('=').ok_or_else(|| {
                    ConfigError::Invalid(format!("key 'peers': '{p}' is not of the form id=host:port"))
                })?;
                if id.is_empty() || !address.contains(':') {
                    return Err(ConfigError::Invalid(format!(
                        "key 'peers': '{p}' is not of the form id=host:port"
                    )));
                }
                Ok(Peer {
                    id: id.to_string(),
                    address: address.to_string(),
                })
            })
            .collect()
    }
}
