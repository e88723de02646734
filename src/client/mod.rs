//! The client: a small library over the gRPC API, result formatting, and
//! the interactive REPL behind `chronos client`.

pub mod bench;
pub mod connection;
pub mod format;
pub mod repl;
pub mod session;

pub use connection::{Client, ClientError, Consistency};
pub use format::{Format, cluster_status as format_cluster_status};
pub use session::Session;
