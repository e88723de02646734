//! A snapshot (or backup) file of any content: loading it either installs
//! exactly what a valid file holds or fails with an error, never a panic;
//! a damaged valid file is refused.
//!
//! Shared by the cargo-fuzz target of the same name and by
//! tests/it/fuzz_replay.rs, which `cargo test` runs.

use chronos::raft::snapshot;
use chronos::storage::MemoryEngine;

pub fn check(data: &[u8]) {
    let engine = MemoryEngine::default();
    let _ = snapshot::load_from(&engine, || Ok(data));
}
