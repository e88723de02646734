//! `chronos recover`: brings back a cluster that lost its quorum, from its
//! most up-to-date survivor. Run on the stopped survivor; it becomes the
//! only voter (keeping everything in its log), and the other members are
//! added again with --join once it runs.

use crate::config::Config;
use crate::raft::{LogStore, Member, node_id};
use crate::storage::SledEngine;

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("{0} holds no node (check --data-dir and --id)")]
    NoNode(String),
    #[error("{0} has never been part of a cluster: nothing to recover")]
    Pristine(String),
    #[error("{0} is a witness's: it holds no data to recover from; run chronos recover on a surviving data node")]
    Witness(String),
    #[error("cannot recover {path}: {message}")]
    Failed { path: String, message: String },
}

/// What was done, for the operator.
#[derive(Debug)]
pub struct Recovery {
    pub last_index: u64,
    pub term: u64,
}

/// Makes the stopped node of `config` the only voter of its cluster.
pub fn recover(config: &Config) -> Result<Recovery, RecoverError> {
    let dir = config.node_dir();
    let shown = dir.display().to_string();
    if config.is_witness() {
        return Err(RecoverError::Witness(shown));
    }
    if !dir.join("db").is_file() {
        return Err(RecoverError::NoNode(shown));
    }
    let failed = |message: String| RecoverError::Failed {
        path: shown.clone(),
        message,
    };
    // The open fails while the node runs (sled holds a lock).
    let engine = SledEngine::open(&dir).map_err(|e| failed(format!("{e} (stop the node first)")))?;
    let log = LogStore::open(engine.db()).map_err(|e| failed(e.to_string()))?;
    if log.is_pristine().map_err(|e| failed(e.to_string()))? {
        return Err(RecoverError::Pristine(shown));
    }
    let me = Member {
        name: config.id.clone(),
        address: config.advertised(),
    };
    let done = log.force_single_member(node_id(&config.id), me).map_err(failed)?;
    tracing::warn!(
        term = done.term,
        last_index = done.last_index,
        "forced a one-member configuration"
    );
    Ok(Recovery {
        last_index: done.last_index,
        term: done.term,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_witness_is_not_recovered_from() {
        let config = Config {
            role: "witness".into(),
            ..Config::default()
        };
        let refused = recover(&config).unwrap_err().to_string();
        assert!(
            refused.contains("witness") && refused.contains("data node"),
            "{refused}"
        );
    }
}
