//! The allocator's settings for a long-running node.
//!
//! mimalloc commits its arenas eagerly and asks for transparent huge pages
//! on them, so an idle node was 57 MiB resident, 42 MiB of it huge pages
//! that were barely touched. With `MIMALLOC_ARENA_EAGER_COMMIT=0` memory is
//! committed as it is used: an idle node is 16 MiB, and after 5 s of
//! single-row writes from 16 clients it peaked at 67 MiB instead of 190,
//! for about 6% fewer writes per second (docs/performance.md). mimalloc
//! reads its options before `main` runs, so
//! a node started without the setting executes itself again, once, with it
//! added: same process id, same arguments, same open files.

use std::ffi::OsString;

const OPTION: &str = "MIMALLOC_ARENA_EAGER_COMMIT";

/// Re-executes this program with lazy arena commits, unless the setting is
/// present already (then, or if the exec fails, it returns and the node
/// starts as it is).
pub fn commit_memory_lazily() {
    if std::env::var_os(OPTION).is_some() {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let mut args = std::env::args_os();
        let program: OsString = args.next().unwrap_or_default();
        let error = std::process::Command::new("/proc/self/exe")
            .arg0(&program)
            .args(args)
            .env(OPTION, "0")
            .exec();
        tracing::debug!(%error, "cannot re-execute with {OPTION}=0; starting with eager commits");
    }
}
