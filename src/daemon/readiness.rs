//! systemd notifications (sd-notify). Outside systemd NOTIFY_SOCKET is unset
//! and every call is a no-op.

use sd_notify::NotifyState;
use std::time::Duration;

pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}

/// How often to ping the watchdog (half its timeout), if systemd wants it.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}
