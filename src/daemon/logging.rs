//! Logs through tracing: to journald under systemd (structured fields
//! survive), to stderr otherwise. RUST_LOG, when set, wins over the config.

use crate::config::Config;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init_logging(config: &Config) {
    let mut filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // openraft narrates every election and membership step at INFO (and an
    // unreachable peer at WARN, on every retry); our own
    // log lines say what matters. A filter naming openraft still wins.
    let named = std::env::var("RUST_LOG").unwrap_or_else(|_| config.log_level.clone());
    if !named.contains("openraft")
        && let Ok(directive) = "openraft=error".parse()
    {
        filter = filter.add_directive(directive);
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
