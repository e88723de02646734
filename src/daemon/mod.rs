//! The node daemon: opens storage, runs the servers under a supervisor, and
//! stops cleanly on SIGTERM/SIGINT, telling systemd what it is doing.

mod allocator;
pub mod commands;
pub mod logging;
mod readiness;
mod recover;
mod restore;
mod signals;
mod supervisor;

pub use allocator::commit_memory_lazily;
pub use logging::init_logging;
pub use recover::{RecoverError, Recovery, recover};
pub use restore::{RestoreError, restore};
pub use supervisor::{DaemonError, StartOptions, run};
