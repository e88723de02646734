//! Node configuration: built-in defaults < TOML file < `CHRONOS_*`
//! environment < command-line flags (figment). Every key is documented in
//! config/chronos.toml.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    pub users: Vec<crate::security::auth::User>,
    /// Disk space: the reserve file and the low-space mark.
    pub storage: StorageConfig,
    /// "voter" (the default); "learner": a read replica that joins
    /// through `join`, follows the log, serves reads and forwards writes,
    /// but never votes; or "witness": a voter that keeps the Raft log but
    /// no data, so two data nodes and a witness survive the loss of any
    /// one of them.
    pub role: String,
}

/// The `[storage]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// A preallocated file of this size, released when the disk is nearly
    /// full so the node can finish what is under way; 0: none.
    pub reserved_bytes: u64,
    /// Below this much free space the node refuses writes (and serves
    /// reads); 0: never.
    pub low_space_bytes: u64,
    /// Most memory sled's page cache may use.
    pub cache_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            reserved_bytes: 64 << 20,
            low_space_bytes: 128 << 20,
            cache_bytes: crate::storage::DEFAULT_CACHE_BYTES,
        }
    }
}

impl StorageConfig {
    pub fn space(&self) -> crate::storage::space::SpaceSettings {
        crate::storage::space::SpaceSettings {
            reserved_bytes: self.reserved_bytes,
            low_space_bytes: self.low_space_bytes,
        }
    }
}

/// The `[tls]` section: PEM files made by `chronos certs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// This node's certificate (signed by the CA, OU chronos-node).
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
    /// The cluster CA: peers and client certificates must chain to it.
    pub ca: Option<PathBuf>,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        self.cert.is_some() || self.key.is_some() || self.ca.is_some()
    }

    /// The files, read and checked; None when TLS is off.
    pub fn files(&self) -> Result<Option<crate::security::TlsFiles>, ConfigError> {
        let (Some(cert), Some(key), Some(ca)) = (&self.cert, &self.key, &self.ca) else {
            return Ok(None);
        };
        crate::security::TlsFiles::load(cert, key, ca)
            .map(Some)
            .map_err(|e| ConfigError::Invalid(format!("section 'tls': {e}")))
    }

    fn validate(&self, users: &[crate::security::auth::User]) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.enabled() && !(self.cert.is_some() && self.key.is_some() && self.ca.is_some()) {
            return bad("section 'tls': set all of cert, key and ca (chronos certs init and issue make them)");
        }
        if !users.is_empty() && !self.enabled() {
            return bad(
                "section 'users' needs [tls]: without it passwords cross the network in clear text and peers cannot prove who they are",
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for user in users {
            if !valid_name(&user.name) {
                return Err(ConfigError::Invalid(format!(
                    "users: '{}' must be 1-64 letters, digits, '-' or '_'",
                    user.name
                )));
            }
            if !names.insert(user.name.as_str()) {
                return Err(ConfigError::Invalid(format!("users: '{}' appears twice", user.name)));
            }
            if let Some(hash) = &user.password_hash
                && let Err(e) = crate::security::auth::check_hash(hash)
            {
                return Err(ConfigError::Invalid(format!(
                    "users: password_hash of '{}' is not an argon2 hash ({e}); make one with `chronos hash-password`",
                    user.name
                )));
            }
        }
        Ok(())
    }
}

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
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.max_statement_bytes == 0 || self.max_insert_rows == 0 || self.max_http_rows == 0 {
            return bad(
                "keys 'limits.max_statement_bytes', 'max_insert_rows' and 'max_http_rows' must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// The limits as the servers apply them.
    pub fn limits(&self) -> crate::server::Limits {
        crate::server::Limits {
            max_statement_bytes: self.max_statement_bytes,
            max_insert_rows: self.max_insert_rows,
            max_http_rows: self.max_http_rows,
            query_timeout: (self.query_timeout_ms > 0).then(|| std::time::Duration::from_millis(self.query_timeout_ms)),
            max_connections_per_client: self.max_connections_per_client,
        }
    }
}

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
    fn validate(&self, peers: &[String], join: Option<&String>) -> Result<(), ConfigError> {
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
    fn validate(&self) -> Result<(), ConfigError> {
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
    fn validate(&self) -> Result<(), ConfigError> {
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
            if let Err(e) = crate::changes::webhook::Target::parse(url) {
                return bad(format!("key 'changes.webhook_url': {e}"));
            }
        }
        Ok(())
    }
}

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
    fn validate(&self) -> Result<(), ConfigError> {
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

fn valid_name(name: &str) -> bool {
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

/// The keys the environment may set (CHRONOS_ID, CHRONOS_DATA_DIR, ...);
/// other CHRONOS_* variables belong to the client and are not config.
const KEYS: &[&str] = &[
    "id",
    "data_dir",
    "address",
    "peers",
    "join",
    "advertise_address",
    "http_address",
    "snapshot_every",
    "election_timeout_ms",
    "max_request_bytes",
    "log_level",
    "log_target",
    "max_clock_offset_ms",
    "idempotency_retention_hours",
    "role",
];

fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Peers {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match Peers::deserialize(d)? {
        Peers::List(l) => l,
        Peers::Commas(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect(),
    })
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

    /// Layers the sources and checks the result. A named config file must
    /// exist; without one, only defaults, environment and flags count.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::File {
                    path: path.to_path_buf(),
                    message: "no such file".into(),
                });
            }
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            figment = figment.merge(Toml::string(&text));
        }
        figment = figment
            .merge(Env::prefixed("CHRONOS_").only(KEYS))
            // CHRONOS_CLUSTER_JOIN and friends: the [cluster] keys, so a
            // container needs no file.
            .merge(
                Env::prefixed("CHRONOS_CLUSTER_")
                    .only(&["bootstrap_expect", "join", "reap_after_s"])
                    .map(|k| format!("cluster.{k}").into()),
            )
            .merge(
                Env::prefixed("CHRONOS_LIMITS_")
                    .only(&[
                        "max_statement_bytes",
                        "max_insert_rows",
                        "max_http_rows",
                        "query_timeout_ms",
                        "max_connections_per_client",
                    ])
                    .map(|k| format!("limits.{k}").into()),
            )
            .merge(
                Env::prefixed("CHRONOS_STORAGE_")
                    .only(&["reserved_bytes", "low_space_bytes", "cache_bytes"])
                    .map(|k| format!("storage.{k}").into()),
            )
            .merge(
                Env::prefixed("CHRONOS_TLS_")
                    .only(&["cert", "key", "ca"])
                    .map(|k| format!("tls.{k}").into()),
            )
            .merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(|e| describe(e, file))?;
        config.validate()?;
        Ok(config)
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

    fn validate(&self) -> Result<(), ConfigError> {
        if !valid_name(&self.id) {
            return Err(ConfigError::Invalid(format!(
                "key 'id': '{}' must be 1-64 letters, digits, '-' or '_'",
                self.id
            )));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid("key 'data_dir': must not be empty".into()));
        }
        self.socket_addr()?;
        let peers = self.peers()?;
        let mut names = std::collections::BTreeSet::from([self.id.as_str()]);
        for peer in &peers {
            if !names.insert(peer.id.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "key 'peers': id '{}' appears twice (or is this node's own id); each member needs a distinct id",
                    peer.id
                )));
            }
        }
        if let Some(join) = &self.join {
            if !join.contains(':') {
                return Err(ConfigError::Invalid(format!(
                    "key 'join': '{join}' is not a host:port address"
                )));
            }
            if !peers.is_empty() {
                return Err(ConfigError::Invalid(
                    "keys 'join' and 'peers' exclude each other: --join adds this node to a running cluster, --peers forms a new one".into(),
                ));
            }
        }
        if let Some(http) = &self.http_address {
            use std::net::ToSocketAddrs;
            if http.to_socket_addrs().map_or(true, |mut a| a.next().is_none()) {
                return Err(ConfigError::Invalid(format!(
                    "key 'http_address': '{http}' is not a host:port address"
                )));
            }
        }
        if self.snapshot_every < 10 {
            return Err(ConfigError::Invalid(format!(
                "key 'snapshot_every': {} is too small (at least 10)",
                self.snapshot_every
            )));
        }
        if !(50..=60_000).contains(&self.election_timeout_ms) {
            return Err(ConfigError::Invalid(format!(
                "key 'election_timeout_ms': {} must be between 50 and 60000",
                self.election_timeout_ms
            )));
        }
        if self.max_request_bytes < 1024 {
            return Err(ConfigError::Invalid(format!(
                "key 'max_request_bytes': {} is too small (at least 1024)",
                self.max_request_bytes
            )));
        }
        if let Err(e) = crate::daemon::logging::parse_filter(&self.log_level) {
            return Err(ConfigError::Invalid(format!(
                "key 'log_level': '{}' is not a level or a list of level and target=level: {e}",
                self.log_level
            )));
        }
        if !matches!(self.log_target.as_str(), "auto" | "journald" | "stderr") {
            return Err(ConfigError::Invalid(format!(
                "key 'log_target': '{}' must be auto, journald or stderr",
                self.log_target
            )));
        }
        if self.idempotency_retention_hours == 0 {
            return Err(ConfigError::Invalid(
                "key 'idempotency_retention_hours': must be at least 1".into(),
            ));
        }
        self.sync.validate()?;
        self.changes.validate()?;
        self.queue.validate()?;
        self.cluster.validate(&self.peers, self.join.as_ref())?;
        self.limits.validate()?;
        match self.role.as_str() {
            "voter" => {}
            // Its change feed stays empty (it is not kept on a witness).
            "witness"
                if self.sync.upstream.is_some()
                    || !self.sync.sites.is_empty()
                    || self.changes.webhook_url.is_some() =>
            {
                return Err(ConfigError::Invalid(
                    "key 'role': a witness holds no data, so it cannot sync ([sync] upstream, sites) or post changes ([changes] webhook_url); leave those to the data nodes".into(),
                ));
            }
            "witness" => {}
            "learner" if self.join.is_some() => {}
            "learner" => {
                return Err(ConfigError::Invalid(
                    "key 'role': a learner joins a running cluster; set join = \"host:port\" of a member".into(),
                ));
            }
            other => {
                return Err(ConfigError::Invalid(format!(
                    "key 'role': '{other}' must be voter, learner or witness"
                )));
            }
        }
        self.tls.validate(&self.users)
    }
}

/// Turns figment's error into one line naming the key, the problem and the
/// source it came from.
fn describe(e: figment::Error, file: Option<&Path>) -> ConfigError {
    let mut out = Vec::new();
    for err in e {
        let key = match err.path.is_empty() {
            true => String::new(),
            false => format!("key '{}': ", err.path.join(".")),
        };
        let kind = match &err.kind {
            figment::error::Kind::UnknownField(f, _) => format!("unknown key '{f}'"),
            other => other.to_string(),
        };
        let source = match (&err.metadata, file) {
            (Some(m), _) => format!(" (from {})", m.name),
            (None, Some(f)) => format!(" (in {})", f.display()),
            (None, None) => String::new(),
        };
        out.push(format!("{key}{kind}{source}"));
    }
    ConfigError::Invalid(out.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_give_a_single_node() {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.node_dir(), PathBuf::from("./data/node1"));
        assert_eq!(c.address, "127.0.0.1:8000");
    }

    #[test]
    fn log_levels_are_levels_or_target_lists() {
        let load = |level: &str| {
            Config::load(
                Some(file(&format!("log_level = \"{level}\"\n")).path()),
                &Overrides::default(),
            )
        };
        assert!(load("warn").is_ok());
        assert!(load("info,chronos::raft=debug,openraft=error").is_ok());
        let e = load("loud").unwrap_err().to_string();
        assert!(e.contains("key 'log_level': 'loud'"), "{e}");
    }

    #[test]
    fn a_witness_posts_no_changes_and_does_not_sync() {
        let load = |text: &str| Config::load(Some(file(text).path()), &Overrides::default());
        let peers = "peers = [\"a=127.0.0.1:9001\", \"b=127.0.0.1:9002\"]\n";
        let plain = load(&format!("role = \"witness\"\n{peers}"));
        assert!(plain.is_ok(), "{plain:?}");
        for extra in [
            "[changes]\nwebhook_url = \"http://10.0.0.1:9000/x\"\n",
            "[sync]\nsite_id = \"s1\"\nupstream = \"10.0.0.1:8000\"\ntables = { readings = \"push\" }\n",
        ] {
            let e = load(&format!("role = \"witness\"\n{peers}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("a witness holds no data"), "{extra}: {e}");
        }
    }

    #[test]
    fn flags_beat_the_file() {
        let f = file("id = \"gw7\"\naddress = \"127.0.0.1:9000\"\n");
        let flags = Overrides {
            address: Some("127.0.0.1:9100".into()),
            ..Overrides::default()
        };
        let c = Config::load(Some(f.path()), &flags).unwrap();
        assert_eq!((c.id.as_str(), c.address.as_str()), ("gw7", "127.0.0.1:9100"));
    }

    #[test]
    fn errors_name_the_key() {
        let f = file("max_request_bytes = \"lots\"\n");
        let e = Config::load(Some(f.path()), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_request_bytes"), "{e}");
        let f = file("adress = \"x\"\n");
        let e = Config::load(Some(f.path()), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("adress"), "{e}");
        let flags = Overrides {
            peers: Some(vec!["node2".into()]),
            ..Overrides::default()
        };
        let e = Config::load(None, &flags).unwrap_err().to_string();
        assert!(e.contains("peers"), "{e}");
        let e = Config::load(Some(Path::new("/nonexistent/chronos.toml")), &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("no such file"));
    }

    #[test]
    fn tls_and_users_are_checked() {
        let e = Config::load(Some(file("[tls]\ncert = \"n.pem\"\n").path()), &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("set all of cert, key and ca"), "{e}");
        let user = "[[users]]\nname = \"app\"\nrole = \"write\"\npassword_hash = \"x\"\n";
        let e = Config::load(Some(file(user).path()), &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("needs [tls]"), "{e}");
        let tls = "[tls]\ncert = \"n.pem\"\nkey = \"n.key\"\nca = \"ca.pem\"\n";
        let e = Config::load(Some(file(&format!("{tls}{user}")).path()), &Overrides::default()).unwrap_err();
        assert!(
            e.to_string().contains("password_hash of 'app' is not an argon2 hash"),
            "{e}"
        );
        let e = Config::load(
            Some(file(&format!("{tls}[[users]]\nname = \"a\"\nrole = \"boss\"\n")).path()),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("boss"), "{e}");
        let config = Config::load(
            Some(file(&format!("{tls}[[users]]\nname = \"a\"\nrole = \"read\"\n")).path()),
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!(config.users[0].role, crate::security::Role::Read);
        let e = config.tls.files().unwrap_err();
        assert!(e.to_string().contains("cannot read certificate 'n.pem'"), "{e}");
    }

    #[test]
    fn the_sync_section_is_read_and_checked() {
        let f = file(
            "[sync]\nsite_id = \"plant-7\"\nupstream = \"hq:8000\"\ntables = { readings = \"push\", assets = \"both\" }\n",
        );
        let c = Config::load(Some(f.path()), &Overrides::default()).unwrap();
        assert_eq!(c.sync.tables.get("readings"), Some(&Direction::Push));
        assert!(c.sync.tables["assets"].pulls() && c.sync.tables["assets"].pushes());
        let refused = |text: &str| {
            Config::load(Some(file(text).path()), &Overrides::default())
                .unwrap_err()
                .to_string()
        };
        let e = refused("[sync]\nupstream = \"hq:8000\"\ntables = { t = \"push\" }\n");
        assert!(e.contains("sync.site_id"), "{e}");
        let e = refused("[sync]\nsite_id = \"a\"\nupstream = \"hq:8000\"\n");
        assert!(e.contains("sync.tables"), "{e}");
        let e = refused("[sync]\nsite_id = \"a\"\nupstream = \"hq:8000\"\ntables = { t = \"sideways\" }\n");
        assert!(e.contains("sideways"), "{e}");
        let e = refused("[sync]\nsite_id = \"a b\"\n");
        assert!(e.contains("sync.site_id"), "{e}");
        let e = refused("[sync]\nbatch_size = 0\n");
        assert!(e.contains("sync.batch_size"), "{e}");
        let e = refused("[sync]\nupstrem = \"x:1\"\n");
        assert!(e.contains("upstrem"), "{e}");
    }
}
