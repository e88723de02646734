//! What can go wrong with a value on its own: comparing or reading it as
//! the wrong type, or text that is no timestamp or interval. The SQL
//! engine turns these into its own errors (same message, same code).

/// Result of the value functions.
pub type Result<T> = std::result::Result<T, TypeError>;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TypeError {
    #[error("type mismatch: {0}")]
    Mismatch(String),
    #[error("invalid value: {0}")]
    Invalid(String),
}
