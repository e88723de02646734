//! The SQL engine: parser, planner, executor and the types they share.
pub mod error;
pub mod parser;
pub mod types;
