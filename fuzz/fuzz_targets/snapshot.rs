//! A snapshot (or backup) file of any content: loading it either installs
//! exactly what a valid file holds or fails with an error, never a panic;
//! a damaged valid file is refused.
#![no_main]

use chronos::raft::snapshot;
use chronos::storage::MemoryEngine;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let engine = MemoryEngine::default();
    let _ = snapshot::load_from(&engine, || Ok(data));
});
