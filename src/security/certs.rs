//! `chronos certs init|issue`: a cluster certificate authority and the
//! node and client certificates it signs (rcgen). The organizational unit
//! tells a node's certificate from a user's: a node may speak Raft, a
//! client certificate only names a user.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

const NODE_UNIT: &str = "chronos-node";
const CLIENT_UNIT: &str = "chronos-client";
pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    Node,
    Client,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0} exists already; remove it first to make a new one (every certificate it signed stops working)")]
    Exists(PathBuf),
    #[error("cannot read {path}: {source} (run `chronos certs init --dir {dir}` first)")]
    NoCa {
        path: PathBuf,
        dir: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("'{0}' is not a usable name: 1-64 letters, digits, '-', '_' or '.'")]
    Name(String),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The year now (UTC), for validity periods: certificates are valid from
/// January 1st of this year, so a gateway whose clock lags a little still
/// accepts them.
fn this_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    1970 + (secs / 31_556_952) as i32
}

fn write_private(path: &Path, text: &str) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    };
    write().map_err(|source| CertError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn write_public(path: &Path, text: &str) -> Result<(), CertError> {
    std::fs::write(path, text).map_err(|source| CertError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes a new CA in `dir`: ca.pem (give it to every node and client) and
/// ca.key (keep it off the gateways if you can). Refuses to replace one.
pub fn init(dir: &Path) -> Result<Vec<PathBuf>, CertError> {
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    for path in [&cert_path, &key_path] {
        if path.exists() {
            return Err(CertError::Exists(path.clone()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "ChronosDB cluster CA");
    name.push(DnType::OrganizationName, "ChronosDB");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(this_year(), 1, 1);
    params.not_after = rcgen::date_time_ymd(this_year() + 20, 1, 1);
    let cert = params.self_signed(&key)?;
    write_private(&key_path, &key.serialize_pem())?;
    write_public(&cert_path, &cert.pem())?;
    Ok(vec![cert_path, key_path])
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Signs a certificate for node or user `name` with the CA in `dir` and
/// writes `<name>.pem` and `<name>.key` there. A node's certificate names
/// `hosts` (the addresses peers and clients dial), and serves both ends
/// of a connection; a client's proves only who it is.
pub fn issue(dir: &Path, kind: CertKind, name: &str, hosts: &[String]) -> Result<Vec<PathBuf>, CertError> {
    if !valid_name(name) {
        return Err(CertError::Name(name.to_string()));
    }
    let read = |file: &str| {
        let path = dir.join(file);
        std::fs::read_to_string(&path).map_err(|source| CertError::NoCa {
            path,
            dir: dir.display().to_string(),
            source,
        })
    };
    let (ca_pem, ca_key) = (read(CA_CERT)?, read(CA_KEY)?);
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key)?)?;
    let mut params = match kind {
        CertKind::Node => {
            let mut names = hosts.to_vec();
            if names.is_empty() {
                names = vec![name.to_string(), "localhost".into(), "127.0.0.1".into()];
            }
            CertificateParams::new(names)?
        }
        CertKind::Client => CertificateParams::default(),
    };
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    subject.push(
        DnType::OrganizationalUnitName,
        match kind {
            CertKind::Node => NODE_UNIT,
            CertKind::Client => CLIENT_UNIT,
        },
    );
    params.distinguished_name = subject;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = match kind {
        CertKind::Node => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        CertKind::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    params.not_before = rcgen::date_time_ymd(this_year(), 1, 1);
    params.not_after = rcgen::date_time_ymd(this_year() + 10, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    write_private(&key_path, &key.serialize_pem())?;
    write_public(&cert_path, &cert.pem())?;
    Ok(vec![cert_path, key_path])
}

/// Who a (CA-verified) certificate speaks for: its kind, from the
/// organizational unit, and its common name. None for a certificate this
/// tool did not make.
pub fn identity_of(der: &[u8]) -> Option<(CertKind, String)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let unit = subject.iter_organizational_unit().next()?.as_str().ok()?;
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    match unit {
        NODE_UNIT => Some((CertKind::Node, name)),
        CLIENT_UNIT => Some((CertKind::Client, name)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_name_their_holder_and_kind() {
        let dir = tempfile::tempdir().expect("temp dir");
        init(dir.path()).expect("init");
        assert!(matches!(init(dir.path()), Err(CertError::Exists(_))));
        issue(dir.path(), CertKind::Node, "node1", &[]).expect("node");
        issue(dir.path(), CertKind::Client, "alice", &[]).expect("client");
        let der = |name: &str| {
            use rustls_pki_types::pem::PemObject;
            let pem = std::fs::read(dir.path().join(format!("{name}.pem"))).expect("pem");
            rustls_pki_types::CertificateDer::from_pem_slice(&pem).expect("der")
        };
        assert_eq!(identity_of(&der("node1")), Some((CertKind::Node, "node1".into())));
        assert_eq!(identity_of(&der("alice")), Some((CertKind::Client, "alice".into())));
        assert_eq!(identity_of(&der("ca")), None);
        assert!(matches!(
            issue(dir.path(), CertKind::Node, "../x", &[]),
            Err(CertError::Name(_))
        ));
        let other = tempfile::tempdir().expect("temp dir");
        let err = issue(other.path(), CertKind::Node, "n", &[]).expect_err("no CA");
        assert!(err.to_string().contains("certs init"), "{err}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("alice.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "keys are private");
    }
}
