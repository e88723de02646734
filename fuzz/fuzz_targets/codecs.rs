//! Bytes read back from disk or a peer: row values, key values, change
//! feed records and sync batches decode or fail cleanly; what decodes
//! encodes back to the same values.
#![no_main]

#[path = "../checks/codecs.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
