use thiserror::Error;

/// Errors from the storage layer. `Io` is a local disk problem (retry or stop
/// the node); `Corrupt` means bytes on disk did not decode.
#[derive(Clone, Debug, Error)]
pub enum StorageError {
    #[error("storage I/O error: {0}")]
    Io(String),
    #[error("corrupt data in {space}: {detail}")]
    Corrupt { space: String, detail: String },
    /// A data file that cannot be opened as it is: the node must not
    /// serve from it (the message names the file and what to do).
    #[error("{0}")]
    Damaged(String),
}

impl From<sled::Error> for StorageError {
    fn from(e: sled::Error) -> Self {
        StorageError::Io(e.to_string())
    }
}

impl<E: std::fmt::Debug> From<sled::transaction::TransactionError<E>> for StorageError {
    fn from(e: sled::transaction::TransactionError<E>) -> Self {
        match e {
            sled::transaction::TransactionError::Storage(e) => StorageError::Io(e.to_string()),
            sled::transaction::TransactionError::Abort(e) => StorageError::Io(format!("transaction aborted: {e:?}")),
        }
    }
}
