//! ChronosDB: a small distributed SQL database for edge gateways and IoT.
//!
//! Folders, one concern each: `sql` (parser, planner, executor), `storage`
//! (sled, catalog, codecs), `server` (gRPC API), `raft` (replication on openraft), `client` (library and
//! REPL), `daemon` (supervisor, signals, systemd), `sync` (clocks).

pub mod changes;
pub mod client;
pub mod config;
pub mod daemon;
pub mod proto;
pub mod queue;
pub mod raft;
pub mod security;
pub mod server;
pub mod sql;
pub mod storage;
pub mod sync;
pub mod types;
