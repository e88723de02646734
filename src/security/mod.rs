//! Who may talk to a node, and over what: TLS for every listener and
//! outgoing peer connection (`tls`), the cluster's certificate authority
//! and the certificates it issues (`certs`), and users with roles checked
//! on every call (`auth`). docs/security.md describes the threat model.

pub mod auth;
pub mod certs;
pub mod commands;
pub mod tls;

pub use auth::{Caller, Gate, Need, Role};
pub use tls::TlsFiles;
