//! The SQL engine: parser (pest), planner, executor and the [`Database`]
//! that runs scripts over storage. It knows nothing of Raft or the network.

pub mod answer;
pub mod database;
pub mod error;
pub mod executor;
pub mod parser;
pub mod planner;
pub mod script;
pub mod stats;
mod subquery;
pub mod types;

pub use answer::Answer;
pub use database::{ApplyContext, Database, ScriptOutcome, StatementOutput};
pub use error::SqlError;
