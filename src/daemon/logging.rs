//! Logs through tracing: to journald under systemd (structured fields
//! survive), to stderr otherwise. RUST_LOG, when set, wins over the config.

use crate::config::Config;
use crate::config::logging::parse_filter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The log filter: RUST_LOG when set and valid, else the configured level.
fn filter(config: &Config) -> (Targets, String) {
    let from_env = std::env::var("RUST_LOG").ok();
    for text in from_env.iter().chain([&config.log_level]) {
        match parse_filter(text) {
            Ok(targets) => return (targets, text.clone()),
            Err(e) => eprintln!("log filter '{text}' is not valid: {e}; ignoring it"),
        }
    }
    (Targets::new().with_default(LevelFilter::INFO), "info".into())
}

pub fn init_logging(config: &Config) {
    let (mut filter, named) = filter(config);
    // openraft narrates every election and membership step at INFO (and an
    // unreachable peer at WARN, on every retry); our own
    // log lines say what matters. A filter naming openraft still wins.
    if !named.contains("openraft") {
        filter = filter.with_target("openraft", LevelFilter::ERROR);
    }
    // systemd sets JOURNAL_STREAM when stderr goes to the journal.
    let journald = match config.log_target.as_str() {
        "journald" => true,
        "auto" => std::env::var_os("JOURNAL_STREAM").is_some(),
        _ => false,
    };
    let registry = tracing_subscriber::registry().with(filter);
    if journald {
        match tracing_journald::layer() {
            Ok(layer) => {
                let _ = registry.with(layer.with_syslog_identifier("chronos".into())).try_init();
                return;
            }
            Err(e) => eprintln!("journald is not reachable ({e}); logging to stderr"),
        }
    }
    let _ = registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .try_init();
}
