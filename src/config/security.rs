//! The `[tls]` section and the `[[users]]` entries. Reading the PEM files
//! and checking callers is security's work (src/security); this only says
//! what the file may contain.

use super::{ConfigError, valid_name};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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

    pub(super) fn validate(&self, users: &[User]) -> Result<(), ConfigError> {
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
                && let Err(e) = check_hash(hash)
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

/// What a user may do; each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries, status, the change feed.
    Read,
    /// Also INSERT, UPDATE, DELETE.
    Write,
    /// Also schema changes, membership, backups and sync.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// A configured user (`[[users]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// An argon2 PHC string (`chronos hash-password` makes one); a user
    /// without one can log in only with a client certificate.
    #[serde(default)]
    pub password_hash: Option<String>,
}

/// Ok when `hash` is an argon2 PHC string (it is not verified here).
pub fn check_hash(hash: &str) -> Result<(), String> {
    argon2::PasswordHash::new(hash).map(|_| ()).map_err(|e| e.to_string())
}
