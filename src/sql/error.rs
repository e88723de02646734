//! The SQL layer's error type. Every variant names the problem for the user;
//! `code()` gives a stable identifier for APIs.

use crate::storage::StorageError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SqlError {
    #[error("syntax error at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("table '{0}' does not exist")]
    UnknownTable(String),
    #[error("table '{0}' already exists")]
    TableExists(String),
    #[error("{0}")]
    UnknownColumn(String),
    #[error("column reference '{0}' is ambiguous: qualify it with a table name")]
    AmbiguousColumn(String),
    #[error("index '{0}' does not exist")]
    UnknownIndex(String),
    #[error("index '{0}' already exists")]
    IndexExists(String),
    #[error("duplicate key {key} in {target}")]
    DuplicateKey { target: String, key: String },
    #[error("NULL value in column '{column}' of table '{table}' violates NOT NULL")]
    NotNull { table: String, column: String },
    #[error("type mismatch: {0}")]
    TypeMismatch(String),
    #[error("division by zero")]
    DivisionByZero,
    #[error("value out of range: {0}")]
    Overflow(String),
    #[error("value too long for column '{column}' VARCHAR({max}): {length} characters")]
    ValueTooLong { column: String, max: u32, length: usize },
    #[error("invalid value: {0}")]
    InvalidValue(String),
    #[error("unknown function '{0}'")]
    UnknownFunction(String),
    #[error("{0}")]
    Invalid(String),
    #[error("transaction error: {0}")]
    Transaction(String),
    #[error("{0}")]
    Parameter(String),
    #[error("the query ran longer than its time limit (limits.query_timeout_ms)")]
    QueryTimeout,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<crate::types::TypeError> for SqlError {
    fn from(e: crate::types::TypeError) -> SqlError {
        match e {
            crate::types::TypeError::Mismatch(m) => SqlError::TypeMismatch(m),
            crate::types::TypeError::Invalid(m) => SqlError::InvalidValue(m),
        }
    }
}

impl SqlError {
    /// A stable, machine-readable name for the error, used by the APIs.
    pub fn code(&self) -> &'static str {
        match self {
            SqlError::Syntax { .. } => "syntax_error",
            SqlError::UnknownTable(_) => "unknown_table",
            SqlError::TableExists(_) => "table_exists",
            SqlError::UnknownColumn(_) => "unknown_column",
            SqlError::AmbiguousColumn(_) => "ambiguous_column",
            SqlError::UnknownIndex(_) => "unknown_index",
            SqlError::IndexExists(_) => "index_exists",
            SqlError::DuplicateKey { .. } => "duplicate_key",
            SqlError::NotNull { .. } => "not_null_violation",
            SqlError::TypeMismatch(_) => "type_mismatch",
            SqlError::DivisionByZero => "division_by_zero",
            SqlError::Overflow(_) => "numeric_overflow",
            SqlError::ValueTooLong { .. } => "value_too_long",
            SqlError::InvalidValue(_) => "invalid_value",
            SqlError::UnknownFunction(_) => "unknown_function",
            SqlError::Invalid(_) => "invalid_statement",
            SqlError::Transaction(_) => "transaction_error",
            SqlError::Parameter(_) => "invalid_parameter",
            SqlError::QueryTimeout => "query_timeout",
            SqlError::Storage(_) => "storage_error",
        }
    }

    /// True when the error comes from the statement itself, so every node
    /// applying it fails the same way (as opposed to a local disk problem).
    pub fn is_deterministic(&self) -> bool {
        !matches!(self, SqlError::Storage(StorageError::Io(_) | StorageError::Damaged(_)))
    }
}

pub type Result<T, E = SqlError> = std::result::Result<T, E>;
