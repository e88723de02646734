//! A snapshot (or backup) file of any content: loading it either installs
//! exactly what a valid file holds or fails with an error, never a panic;
//! a damaged valid file is refused.
#![no_main]

#[path = "../checks/snapshot.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
