//! `chronos restore`: fills an empty node directory from a backup.

use crate::raft::snapshot;
use crate::storage::SledEngine;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{path} is not empty; restore only fills an empty data directory")]
    NotEmpty { path: String },
    #[error("cannot restore into {path}: {message}")]
    Failed { path: String, message: String },
}

/// Restores `backup` into `<data_dir>/<id>`, which must not exist or be
/// empty. On failure nothing is left behind. Returns the records restored.
pub fn restore(backup: &Path, data_dir: &Path, id: &str) -> Result<u64, RestoreError> {
    let dir = data_dir.join(id);
    let shown = dir.display().to_string();
    if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(RestoreError::NotEmpty { path: shown });
    }
    let failed = |message: String| RestoreError::Failed {
        path: shown.clone(),
        message,
    };
    if !backup.is_file() {
        return Err(failed(format!("no backup file {}", backup.display())));
    }
    std::fs::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
    let restored = SledEngine::open(&dir)
        .map_err(|e| failed(e.to_string()))
        .and_then(|engine| snapshot::restore(&engine, backup).map_err(|e| failed(e.to_string())));
    if restored.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    restored
}
