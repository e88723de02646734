//! How a client reaches a secured node: TLS (the cluster CA, and a client
//! certificate if it logs in with one) and a user name and password, sent
//! as `authorization: Basic ...` on every call.

use super::connection::ClientError;
use crate::security::auth::basic_header;
use std::path::{Path, PathBuf};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Connection settings shared by every connection a client opens.
#[derive(Clone, Debug, Default)]
pub struct Access {
    tls: Option<ClientTlsConfig>,
    credentials: Credentials,
}

/// Adds the credentials to each call.
#[derive(Clone, Debug, Default)]
pub struct Credentials(Option<MetadataValue<Ascii>>);

impl Interceptor for Credentials {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Where the CLI's access settings come from (flags or environment).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct AccessArgs {
    /// The cluster CA (PEM): connect over TLS and trust only it.
    #[arg(long, env = "CHRONOS_TLS_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// A client certificate (PEM) to log in with, from `chronos certs issue client`.
    #[arg(long, env = "CHRONOS_TLS_CERT", value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, env = "CHRONOS_TLS_KEY", value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Log in as this user; the password comes from CHRONOS_PASSWORD or
    /// --password-file.
    #[arg(long, env = "CHRONOS_USER")]
    pub user: Option<String>,
    /// A file holding the password (first line); it must not be readable
    /// by group or others.
    #[arg(long, env = "CHRONOS_PASSWORD_FILE", value_name = "FILE", requires = "user")]
    pub password_file: Option<PathBuf>,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::Access(format!("cannot read {what} {}: {e}", path.display())))
}

/// The password in `path`, refused when others may read the file.
fn password_from_file(path: &Path) -> Result<String, ClientError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| ClientError::Access(format!("cannot read password file {}: {e}", path.display())))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(ClientError::Access(format!(
            "password file {} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        )));
    }
    let text = String::from_utf8(read(path, "password file")?)
        .map_err(|_| ClientError::Access(format!("password file {} is not UTF-8", path.display())))?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

impl Access {
    /// Plain connections, no login (a node without `[tls]` and users).
    pub fn none() -> Access {
        Access::default()
    }

    /// TLS trusting `ca`, with a client certificate when given.
    pub fn tls(ca: &[u8], identity: Option<(&[u8], &[u8])>) -> Access {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Access {
            tls: Some(tls),
            ..Access::default()
        }
    }

    /// Adds a user name and password.
    pub fn with_login(mut self, user: &str, password: &str) -> Result<Access, ClientError> {
        let value = basic_header(user, password)
            .parse()
            .map_err(|_| ClientError::Access("the user name or password holds characters a header cannot".into()))?;
        self.credentials = Credentials(Some(value));
        Ok(self)
    }

    /// The settings the CLI flags and environment give.
    pub fn from_args(args: &AccessArgs) -> Result<Access, ClientError> {
        let mut access = match &args.ca {
            Some(ca) => {
                let ca = read(ca, "CA certificate")?;
                match (&args.cert, &args.key) {
                    (Some(cert), Some(key)) => {
                        let (cert, key) = (read(cert, "certificate")?, read(key, "key")?);
                        Access::tls(&ca, Some((&cert, &key)))
                    }
                    _ => Access::tls(&ca, None),
                }
            }
            None if args.cert.is_some() => {
                return Err(ClientError::Access("--cert needs --ca (the cluster CA) too".into()));
            }
            None => Access::none(),
        };
        if let Some(user) = &args.user {
            let password = match &args.password_file {
                Some(path) => password_from_file(path)?,
                None => std::env::var("CHRONOS_PASSWORD").map_err(|_| {
                    ClientError::Access(format!(
                        "--user {user} needs a password: set CHRONOS_PASSWORD or give --password-file"
                    ))
                })?,
            };
            access = access.with_login(user, &password)?;
        }
        Ok(access)
    }

    /// The endpoint for `address` (host:port, or a URL).
    pub fn endpoint(&self, address: &str) -> Result<Endpoint, ClientError> {
        let bad = || ClientError::Address(address.to_string());
        let uri = match (address.contains("://"), &self.tls) {
            (true, _) => address.to_string(),
            (false, Some(_)) => format!("https://{address}"),
            (false, None) => format!("http://{address}"),
        };
        let endpoint = Endpoint::from_shared(uri).map_err(|_| bad())?;
        match &self.tls {
            Some(tls) => endpoint
                .tls_config(tls.clone())
                .map_err(|e| ClientError::Access(format!("TLS settings: {e}"))),
            None => Ok(endpoint),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn credentials(&self) -> Credentials {
        self.credentials.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = password_from_file(&path).expect_err("readable by others");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(password_from_file(&path).expect("private"), "s3cret");
    }
}
