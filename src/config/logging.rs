//! The syntax of `log_level`. The daemon's logging (src/daemon/logging.rs)
//! installs the filter; this only reads it, so a bad level is refused when
//! the configuration is loaded.

use tracing_subscriber::filter::{LevelFilter, Targets};

/// Reads a log filter: `level` and `target=level` entries separated by
/// commas (`info,chronos::raft=debug`). tracing-subscriber's `Targets`
/// does the rest, without the regex engine that span and field filters
/// would need; it would also take a bare word as a target, so a misspelt
/// level is caught here.
pub fn parse_filter(text: &str) -> Result<Targets, String> {
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let level = entry.rsplit_once('=').map_or(entry, |(_, level)| level);
        if level.parse::<LevelFilter>().is_err() {
            return Err(format!(
                "'{entry}' names no level (off, error, warn, info, debug, trace)"
            ));
        }
    }
    text.parse::<Targets>().map_err(|e| e.to_string())
}
