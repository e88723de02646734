//! Any text: the parser answers with statements or an error, never a
//! panic; a script that parses is grouped into transactions the same way
//! the node does before anything enters the log.
#![no_main]

#[path = "../checks/sql_parser.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
