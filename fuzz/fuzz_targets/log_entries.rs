//! Raft messages and stored log entries as they arrive from a peer or the
//! disk: decoding never panics, and a decoded write command is prepared
//! the way the state machine prepares it.
#![no_main]

#[path = "../checks/log_entries.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
