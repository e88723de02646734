//! The bodies of `chronos certs` and `chronos hash-password`. Each returns
//! the process's exit status after printing what went wrong.

use super::certs::{self, CertKind};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `chronos certs init`: the cluster's CA in `dir`.
pub fn certs_init(dir: &Path) -> ExitCode {
    wrote(certs::init(dir))
}

/// `chronos certs issue`: a node's or a user's certificate signed by the CA.
pub fn certs_issue(dir: &Path, kind: CertKind, name: &str, hosts: &[String]) -> ExitCode {
    wrote(certs::issue(dir, kind, name, hosts))
}

fn wrote(made: Result<Vec<PathBuf>, certs::CertError>) -> ExitCode {
    match made {
        Ok(paths) => {
            for path in paths {
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `chronos hash-password`: reads a password on standard input and prints
/// its argon2 hash.
pub fn hash_password() -> ExitCode {
    if std::io::stdin().is_terminal() {
        eprintln!("password (shown as typed; or pipe it in):");
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("ERROR: cannot read the password: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("ERROR: the password is empty");
        return ExitCode::from(2);
    }
    match super::auth::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}
