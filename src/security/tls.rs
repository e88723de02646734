//! TLS settings: the node's certificate and key and the cluster CA, read
//! from PEM files, turned into tonic's server and client settings and a
//! rustls server for the HTTP listener.
//!
//! One port serves clients and peers, so a client certificate is optional
//! at the handshake; calls that only members may make (Raft, forwarded
//! queues, sync) check for a node certificate (`auth::Gate`).

use super::certs::{CertKind, identity_of};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// A handshake that takes longer is dropped, so a silent client cannot
/// hold an accept slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} '{path}': {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} '{path}' holds no PEM {expected}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("TLS settings refused: {0}")]
    Rustls(String),
}

/// The PEM files of one side of a connection.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain (leaf first).
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    /// The cluster CA (or a bundle) that peers' certificates must chain to.
    pub ca: Vec<u8>,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses a file that holds no PEM block of the kind expected (a key
/// file given as the certificate, say), before the handshake settings
/// give a vaguer error.
fn check_pem(what: &'static str, path: &Path, bytes: &[u8], expected: &'static str) -> Result<(), TlsError> {
    let text = String::from_utf8_lossy(bytes);
    let found = match expected {
        "PRIVATE KEY" => text.contains(" PRIVATE KEY-----"),
        _ => text.contains(&format!("-----BEGIN {expected}-----")),
    };
    match found {
        true => Ok(()),
        false => Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
            expected,
        }),
    }
}

impl TlsFiles {
    /// The files of `[tls]`, read and checked; None when TLS is off.
    pub fn from_config(tls: &crate::config::TlsConfig) -> Result<Option<TlsFiles>, TlsError> {
        match (&tls.cert, &tls.key, &tls.ca) {
            (Some(cert), Some(key), Some(ca)) => TlsFiles::load(cert, key, ca).map(Some),
            _ => Ok(None),
        }
    }

    /// Reads and sanity-checks the three files; the handshake settings
    /// check the rest (that the key matches, that the CA parses).
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<TlsFiles, TlsError> {
        let files = TlsFiles {
            cert: read("certificate", cert)?,
            key: read("key", key)?,
            ca: read("CA certificate", ca)?,
        };
        check_pem("certificate", cert, &files.cert, "CERTIFICATE")?;
        check_pem("key", key, &files.key, "PRIVATE KEY")?;
        check_pem("CA certificate", ca, &files.ca, "CERTIFICATE")?;
        files.server_config()?;
        Ok(files)
    }

    /// Reads only a CA, for a client that proves nothing with a
    /// certificate of its own.
    pub fn load_ca(ca: &Path) -> Result<Vec<u8>, TlsError> {
        let bytes = read("CA certificate", ca)?;
        check_pem("CA certificate", ca, &bytes, "CERTIFICATE")?;
        Ok(bytes)
    }

    /// The gRPC server side: present our certificate; ask for, but do not
    /// require, one signed by the CA.
    pub fn server_tls(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert, &self.key))
            .client_ca_root(Certificate::from_pem(&self.ca))
            .client_auth_optional(true)
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// The client side toward another member: trust only the CA, and prove
    /// ourselves with our certificate.
    pub fn client_tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .identity(Identity::from_pem(&self.cert, &self.key))
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// The name in our own certificate and whether it is a node's.
    pub fn own_identity(&self) -> Option<(CertKind, String)> {
        let der = certificates(&self.cert).ok()?.into_iter().next()?;
        identity_of(&der)
    }

    /// The HTTP listener's rustls settings (same certificate, client
    /// certificates optional).
    pub fn server_config(&self) -> Result<Arc<tokio_rustls::rustls::ServerConfig>, TlsError> {
        use tokio_rustls::rustls;
        let bad = |e: String| TlsError::Rustls(e);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in certificates(&self.ca)? {
            roots.add(ca).map_err(|e| bad(format!("CA certificate: {e}")))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| bad(format!("CA certificate: {e}")))?;
        let key = private_key(&self.key)?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certificates(&self.cert)?, key)
            .map_err(|e| {
                bad(format!(
                    "the key does not match the certificate, or cannot be used ({e})"
                ))
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn certificates(pem: &[u8]) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Rustls(format!("certificate PEM: {e}")))
}

fn private_key(pem: &[u8]) -> Result<rustls_pki_types::PrivateKeyDer<'static>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Rustls(format!("key PEM: {e}")))
}

/// The settings this process uses toward other members, set once at start
/// when TLS is on. Every peer channel (Raft, forwarding, joining, sync)
/// is made through `raft::network::channel`, which reads it.
static PEER_TLS: OnceLock<ClientTlsConfig> = OnceLock::new();

pub fn use_for_peers(files: &TlsFiles) {
    let _ = PEER_TLS.set(files.client_tls());
}

pub fn peer_tls() -> Option<&'static ClientTlsConfig> {
    PEER_TLS.get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::certs::{self, CertKind};

    #[test]
    fn the_tls_section_is_read_only_when_complete() {
        let mut tls = crate::config::TlsConfig::default();
        assert!(TlsFiles::from_config(&tls).expect("off").is_none());
        tls.cert = Some("n.pem".into());
        tls.key = Some("n.key".into());
        tls.ca = Some("ca.pem".into());
        let e = TlsFiles::from_config(&tls).unwrap_err();
        assert!(e.to_string().contains("cannot read certificate 'n.pem'"), "{e}");
    }

    #[test]
    fn unusable_files_are_refused_with_their_names() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        certs::init(d).expect("ca");
        certs::issue(d, CertKind::Node, "n1", &[]).expect("n1");
        certs::issue(d, CertKind::Node, "n2", &[]).expect("n2");
        let files = TlsFiles::load(&d.join("n1.pem"), &d.join("n1.key"), &d.join("ca.pem")).expect("valid");
        assert_eq!(files.own_identity(), Some((CertKind::Node, "n1".into())));
        let e = TlsFiles::load(&d.join("n1.key"), &d.join("n1.key"), &d.join("ca.pem")).unwrap_err();
        assert!(e.to_string().contains("n1.key' holds no PEM CERTIFICATE"), "{e}");
        let e = TlsFiles::load(&d.join("n1.pem"), &d.join("n2.key"), &d.join("ca.pem")).unwrap_err();
        assert!(e.to_string().contains("the key does not match the certificate"), "{e}");
        let e = TlsFiles::load(&d.join("n1.pem"), &d.join("n1.key"), &d.join("nope.pem")).unwrap_err();
        assert!(e.to_string().contains("cannot read CA certificate"), "{e}");
    }
}
