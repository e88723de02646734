//! Signals, through signal-hook on a plain thread: the first SIGTERM or
//! SIGINT asks for a graceful stop, a second one forces it.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio::sync::watch;

/// What the daemon has been asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Run,
    Stop,
    /// Stop now: a second signal while draining.
    StopNow,
}

/// Starts listening; the receiver sees each new request.
pub fn listen() -> std::io::Result<watch::Receiver<Request>> {
    let (tx, rx) = watch::channel(Request::Run);
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            match signal {
                SIGHUP => tracing::info!("SIGHUP: nothing to reload yet; restart the node to apply config changes"),
                _ => {
                    let next = match *tx.borrow() {
                        Request::Run => Request::Stop,
                        _ => Request::StopNow,
                    };
                    tracing::info!(signal, ?next, "signal received");
                    if tx.send(next).is_err() {
                        return;
                    }
                }
            }
        }
    })?;
    Ok(rx)
}
