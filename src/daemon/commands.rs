//! The bodies of the node-side commands of the `chronos` binary: run a
//! node, recover a cluster that lost its majority, restore a backup. Each
//! returns the process's exit status after printing what went wrong.

use crate::config::Config;
use std::path::Path;
use std::process::ExitCode;

/// `chronos node`: logs as configured and runs until stopped.
pub fn node(config: Config, options: super::StartOptions) -> ExitCode {
    super::init_logging(&config);
    match super::run(config, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("chronos: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `chronos recover`, on a stopped survivor.
pub fn recover(config: &Config) -> ExitCode {
    match super::recover(config) {
        Ok(done) => {
            println!(
                "{} is now the only voter of its cluster (term {}, log kept up to index {}).\n\
                 Start it (its stored membership is used; peers in its config are ignored),\n\
                 then add members with an empty data directory and `chronos node --join {}`.",
                config.id,
                done.term,
                done.last_index,
                config.advertised()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `chronos restore FILE`: fills an empty node directory from a backup.
pub fn restore(file: &Path, data_dir: &Path, id: &str) -> ExitCode {
    match super::restore(file, data_dir, id) {
        Ok(records) => {
            println!(
                "restored {records} records into {}; start it with: chronos node --id {id} --data-dir {}",
                data_dir.join(id).display(),
                data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}
