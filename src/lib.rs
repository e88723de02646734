//! ChronosDB: a small distributed SQL database for edge gateways and IoT.
//!
//! One folder a concern, listed from the top layer down; each imports only
//! the ones below it (docs/architecture.md is the map):
//!
//! - `daemon`: the node process (supervisor, signals, systemd, logging,
//!   allocator, recover and restore) and the node-side commands.
//! - `client`: the client library, offline queue, REPL, bench and the
//!   client-side commands.
//! - `server`: the gRPC and HTTP APIs, limits, metrics.
//! - `sync`, `changes`, `queue`: what rides on the Raft log: site sync,
//!   the change feed and webhook, queued writes.
//! - `raft`: replication on openraft: commands stamped by the hybrid
//!   logical clock, log store, state machine, snapshots, peers,
//!   membership, and the interface the features above apply through.
//! - `security`: TLS, certificates, users and roles.
//! - `sql`: parser, planner, executor and the `Database` over storage.
//! - `storage`: sled, transactions, catalog, key and row codecs.
//! - `types`: values, rows and data types shared by `sql` and `storage`.
//! - `config`: what the configuration file may hold; imports no other folder.
//! - `proto`: the generated protobuf code.

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
