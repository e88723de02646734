//! Users and roles. Every call names the least role it needs; the gate
//! works out who is calling (a node certificate, a client certificate
//! mapped to a user, or a user name and password) and refuses what the
//! caller's role does not cover.
//!
//! Passwords are kept only as argon2 hashes. Checking one costs tens of
//! milliseconds by design, so a verified password is remembered (by a
//! SHA-256 of name, password and stored hash) and later calls skip it.
//! A failed login is logged and answered only after a pause.

use super::certs::{CertKind, identity_of};
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Semaphore;
use tonic::{Request, Status};

/// How long a failed login waits before its answer.
const FAILED_LOGIN_PAUSE: Duration = Duration::from_secs(1);
/// Verified credentials remembered at most (the map is cleared when full).
const REMEMBERED: usize = 4096;

pub use crate::config::{Role, User};

/// The role a SQL statement needs.
pub fn role_for(statement: &crate::sql::parser::ast::Statement) -> Role {
    use crate::sql::parser::ast::Statement as S;
    match statement {
        S::Select(_) | S::Explain(_) | S::ShowSyncStatus | S::ShowTableStats | S::Begin | S::Commit | S::Rollback => {
            Role::Read
        }
        S::Insert { .. } | S::Update { .. } | S::Delete { .. } => Role::Write,
        S::CreateTable(_)
        | S::DropTable { .. }
        | S::CreateIndex { .. }
        | S::DropIndex { .. }
        | S::AddColumn { .. }
        | S::CreateView { .. }
        | S::DropView { .. } => Role::Admin,
    }
}

/// What a call needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// At least this role (members pass every role check).
    Role(Role),
    /// A member of the cluster: Raft messages, forwarded queues.
    Member,
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// Proved to be a member (node certificate), or TLS is off so members
    /// cannot be told apart.
    pub member: bool,
}

impl Caller {
    /// Ok when the caller may do what `need` asks; `what` names the action
    /// in the refusal.
    pub fn may(&self, need: Need, what: &str) -> Result<(), Status> {
        match need {
            _ if self.member => Ok(()),
            Need::Member => Err(Status::permission_denied(format!(
                "{what} is for cluster members only: it needs a node certificate signed by the cluster CA"
            ))),
            Need::Role(role) if self.role >= role => Ok(()),
            Need::Role(role) => Err(Status::permission_denied(format!(
                "user '{}' has role {}; {what} needs role {}",
                self.name,
                self.role.name(),
                role.name()
            ))),
        }
    }
}

/// Decides who a caller is, for every listener of one node.
pub struct Gate {
    tls: bool,
    users: BTreeMap<String, User>,
    remembered: Mutex<HashMap<[u8; 32], Role>>,
    /// Password checks at once: each takes ~20 MiB and a core.
    checking: Semaphore,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate::new(false, Vec::new())
    }
}

impl Gate {
    /// With no users, every caller is an administrator (the single-node
    /// default); with TLS on, member calls still need a node certificate.
    pub fn new(tls: bool, users: Vec<User>) -> Gate {
        Gate {
            tls,
            users: users.into_iter().map(|u| (u.name.clone(), u)).collect(),
            remembered: Mutex::new(HashMap::new()),
            checking: Semaphore::new(2),
        }
    }

    pub fn requires_login(&self) -> bool {
        !self.users.is_empty()
    }

    /// Identifies a gRPC caller and checks `need`.
    pub async fn admit<T>(&self, request: &Request<T>, need: Need, what: &str) -> Result<Caller, Status> {
        let caller = self.identify(request).await?;
        caller.may(need, what)?;
        Ok(caller)
    }

    /// Identifies a gRPC caller from its certificate or credentials.
    pub async fn identify<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let certs = request.peer_certs();
        let cert = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
        let authorization = request.metadata().get("authorization").map(|v| v.as_bytes());
        self.caller(authorization, cert, request.remote_addr()).await
    }

    /// Identifies a caller from an `authorization` header value and the
    /// leaf of the certificate chain it presented, if any.
    pub async fn caller(
        &self,
        authorization: Option<&[u8]>,
        cert: Option<&[u8]>,
        peer: Option<SocketAddr>,
    ) -> Result<Caller, Status> {
        if let Some((kind, name)) = cert.and_then(identity_of) {
            match kind {
                CertKind::Node => {
                    return Ok(Caller {
                        name,
                        role: Role::Admin,
                        member: true,
                    });
                }
                CertKind::Client if self.users.is_empty() => {
                    return Ok(Caller {
                        name,
                        role: Role::Admin,
                        member: false,
                    });
                }
                CertKind::Client => match self.users.get(&name) {
                    Some(user) => {
                        return Ok(Caller {
                            name,
                            role: user.role,
                            member: false,
                        });
                    }
                    None => {
                        return Err(self
                            .refuse(
                                &name,
                                peer,
                                format!("certificate for '{name}', who is not a configured user"),
                            )
                            .await);
                    }
                },
            }
        }
        if let Some(value) = authorization {
            let (name, password) = basic_credentials(value).ok_or_else(|| {
                Status::unauthenticated("the authorization header is not 'Basic base64(user:password)'")
            })?;
            return self.login(&name, &password, peer).await;
        }
        match self.users.is_empty() {
            true => Ok(Caller {
                name: "anonymous".into(),
                role: Role::Admin,
                member: !self.tls,
            }),
            false => Err(Status::unauthenticated(
                "this node requires a user: give --user and a password (or a client certificate)",
            )),
        }
    }

    async fn login(&self, name: &str, password: &str, peer: Option<SocketAddr>) -> Result<Caller, Status> {
        let Some(user) = self.users.get(name) else {
            return Err(self.refuse(name, peer, "no such user".into()).await);
        };
        let Some(hash) = &user.password_hash else {
            return Err(self
                .refuse(name, peer, "this user logs in with a client certificate only".into())
                .await);
        };
        let key = remember_key(name, password, hash);
        let known = self.remembered.lock().map(|m| m.contains_key(&key)).unwrap_or(false);
        if !known {
            let _permit = self
                .checking
                .acquire()
                .await
                .map_err(|_| Status::unavailable("node is stopping"))?;
            let (hash, password) = (hash.clone(), password.to_string());
            let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .unwrap_or(false);
            if !ok {
                return Err(self.refuse(name, peer, "wrong password".into()).await);
            }
            if let Ok(mut map) = self.remembered.lock() {
                if map.len() >= REMEMBERED {
                    map.clear();
                }
                map.insert(key, user.role);
            }
        }
        Ok(Caller {
            name: name.to_string(),
            role: user.role,
            member: false,
        })
    }

    /// Logs a failed login and answers it after a pause.
    async fn refuse(&self, name: &str, peer: Option<SocketAddr>, why: String) -> Status {
        let from = peer.map_or("unknown address".to_string(), |a| a.to_string());
        tracing::warn!(user = %name, %from, reason = %why, "login failed");
        tokio::time::sleep(FAILED_LOGIN_PAUSE).await;
        Status::unauthenticated(format!("login failed for user '{name}'"))
    }
}

fn remember_key(name: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [name, password, hash] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// `Basic base64(name:password)` → (name, password).
pub fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    use base64::Engine as _;
    let text = std::str::from_utf8(value).ok()?;
    let encoded = text.strip_prefix("Basic ").or_else(|| text.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some((name.to_string(), password.to_string()))
}

/// The header value a client sends.
pub fn basic_header(name: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"))
    )
}

/// An argon2id hash (PHC string) of `password`, with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        let hash = hash_password("s3cret").expect("hash");
        let users = vec![
            User {
                name: "reader".into(),
                role: Role::Read,
                password_hash: Some(hash.clone()),
            },
            User {
                name: "boss".into(),
                role: Role::Admin,
                password_hash: Some(hash),
            },
        ];
        Gate::new(true, users)
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn passwords_are_checked_and_roles_ordered() {
        let gate = gate();
        let header = basic_header("reader", "s3cret");
        let caller = run(gate.caller(Some(header.as_bytes()), None, None)).expect("login");
        assert_eq!(caller.role, Role::Read);
        assert!(caller.may(Need::Role(Role::Read), "SELECT").is_ok());
        let denied = caller.may(Need::Role(Role::Write), "INSERT").expect_err("read only");
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(
            denied
                .message()
                .contains("user 'reader' has role read; INSERT needs role write")
        );
        assert!(caller.may(Need::Member, "AppendEntries").is_err());
        // Remembered: the second login does not verify again (same answer).
        assert_eq!(
            run(gate.caller(Some(header.as_bytes()), None, None)).expect("again"),
            caller
        );
        let wrong = basic_header("reader", "guess");
        let refused = run(gate.caller(Some(wrong.as_bytes()), None, None)).expect_err("wrong");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(run(gate.caller(None, None, None)).is_err(), "a login is required");
        assert!(run(gate.caller(Some(b"Bearer x"), None, None)).is_err());
    }

    #[test]
    fn without_users_everyone_is_admin_but_only_members_speak_raft_over_tls() {
        let open = Gate::new(false, Vec::new());
        assert!(run(open.caller(None, None, None)).expect("open").member);
        let tls = Gate::new(true, Vec::new());
        let caller = run(tls.caller(None, None, None)).expect("anonymous");
        assert_eq!(caller.role, Role::Admin);
        assert!(caller.may(Need::Member, "Vote").is_err());
    }

    #[test]
    fn statements_need_their_roles() {
        let role = |sql: &str| {
            let parsed = crate::sql::parser::parse(sql).expect("parse");
            role_for(&parsed[0])
        };
        assert_eq!(role("SELECT 1"), Role::Read);
        assert_eq!(role("INSERT INTO t VALUES (1)"), Role::Write);
        assert_eq!(role("DELETE FROM t"), Role::Write);
        assert_eq!(role("CREATE TABLE t (a INT PRIMARY KEY)"), Role::Admin);
        assert_eq!(role("DROP TABLE t"), Role::Admin);
    }
}
