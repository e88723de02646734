use super::ClockError;
use crate::storage::StorageError;

/// Why a sync exchange failed. Each names what was wrong and where; the
/// receiving side logs it and changes nothing, so both sides stay
/// consistent and the sender can retry or be fixed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("site '{0}' is not allowed to sync here (add it to [sync] sites on the upstream)")]
    UnknownSite(String),
    #[error("table {0} does not exist here")]
    UnknownTable(String),
    #[error("schema mismatch for table {table}: the sender has {theirs}, this side has {ours}")]
    SchemaMismatch {
        table: String,
        ours: String,
        theirs: String,
    },
    #[error("corrupt sync batch for table {table}: {detail}")]
    Corrupt { table: String, detail: String },
    #[error("batch for table {table}: {source}")]
    Clock {
        table: String,
        #[source]
        source: ClockError,
    },
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Unavailable(String),
}

impl SyncError {
    /// A stable code for the error, sent to the peer and counted in status.
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::UnknownSite(_) => "unknown_site",
            SyncError::UnknownTable(_) => "unknown_table",
            SyncError::SchemaMismatch { .. } => "schema_mismatch",
            SyncError::Corrupt { .. } => "corrupt_batch",
            SyncError::Clock { .. } => "clock_offset",
            SyncError::Storage(_) => "storage",
            SyncError::Unavailable(_) => "unavailable",
        }
    }
}
