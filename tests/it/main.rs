//! End-to-end tests of what a user does: single nodes and clusters of real
//! `chronos node` processes on 127.0.0.1 (free ports, temporary
//! directories), the SQL logic tests, the client, HTTP, security and sync.
//! One binary, one module per area: each test file used to be its own
//! binary linking the whole crate. Fault tests are in tests/faults.

#[path = "../common/mod.rs"]
mod common;

mod auto_cluster;
mod backup;
mod changes;
mod cluster;
mod daemon;
mod differential;
mod fuzz_replay;
mod http;
mod layers;
mod learner;
mod limits;
mod offline_queue;
mod params;
mod queued;
mod security;
mod single_node;
mod sqllogic;
mod sqllogic_grpc;
mod sync;
mod sync_cluster;
mod sync_convergence;
mod upgrade;
