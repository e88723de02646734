pub mod error;
pub mod executor;
pub mod parser;
pub mod planner;
pub mod types;
