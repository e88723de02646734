//! Any text: the parser answers with statements or an error, never a
//! panic; a script that parses is grouped into transactions the same way
//! the node does before anything enters the log.
//!
//! Shared by the cargo-fuzz target of the same name and by
//! tests/it/fuzz_replay.rs, which `cargo test` runs.

use chronos::sql::parser::params::Params;

pub fn check(data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let _ = chronos::sql::parser::parse(sql);
    let _ = chronos::sql::script::prepare(sql, &Params::default());
}
