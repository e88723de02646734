//! Layering the sources (defaults < file < environment < flags) and
//! checking the result, with errors that name the key.

use super::{Config, ConfigError, Overrides, valid_name};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;
use std::path::Path;

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

pub(super) fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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

impl Config {
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

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
        if let Err(e) = super::logging::parse_filter(&self.log_level) {
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
