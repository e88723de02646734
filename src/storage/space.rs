//! Disk space. A full disk must not hang or crash the node, or lose an
//! acknowledged write. Two defences:
//!
//! - below a low-space mark the node refuses new writes with a clear
//!   error, and keeps serving reads and Raft traffic; it takes writes again
//!   by itself once space returns;
//! - a reserve file (preallocated, so the blocks are really taken) is
//!   released when the disk gets close to full, so Raft and sled can still
//!   finish what is under way; it is taken again when there is room.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub const RESERVE_FILE: &str = "reserve";
const CHECK_EVERY: Duration = Duration::from_secs(1);
const MIB: u64 = 1 << 20;

/// `[storage]` settings.
#[derive(Clone, Copy, Debug)]
pub struct SpaceSettings {
    /// Size of the reserve file; 0: none.
    pub reserved_bytes: u64,
    /// Below this much free space, writes are refused; 0: never.
    pub low_space_bytes: u64,
}

impl From<&crate::config::StorageConfig> for SpaceSettings {
    fn from(c: &crate::config::StorageConfig) -> SpaceSettings {
        SpaceSettings {
            reserved_bytes: c.reserved_bytes,
            low_space_bytes: c.low_space_bytes,
        }
    }
}

/// Free space and the node's state, shared by the API (which refuses
/// writes) and /metrics.
pub struct DiskSpace {
    dir: PathBuf,
    settings: SpaceSettings,
    free: AtomicU64,
    low: AtomicBool,
    reserve_held: AtomicBool,
}

/// Bytes available to this (unprivileged) process on the file system of
/// `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a writable statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Takes `len` bytes of real blocks for `path` (not a sparse file).
fn preallocate(path: &Path, len: u64) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    let len = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: a valid open file descriptor.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if rc != 0 {
        let _ = std::fs::remove_file(path);
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    file.sync_all()
}

impl DiskSpace {
    /// Measures the disk of `dir` and takes the reserve if there is room.
    pub fn open(dir: &Path, settings: SpaceSettings) -> Arc<DiskSpace> {
        let space = Arc::new(DiskSpace {
            dir: dir.to_path_buf(),
            settings,
            free: AtomicU64::new(u64::MAX),
            low: AtomicBool::new(false),
            reserve_held: AtomicBool::new(dir.join(RESERVE_FILE).exists()),
        });
        space.refresh();
        space
    }

    /// Ok, or why a write is refused now.
    pub fn check_write(&self) -> Result<(), String> {
        match self.low.load(Ordering::Relaxed) {
            false => Ok(()),
            true => Err(format!(
                "disk almost full ({} MiB free, below storage.low_space_bytes {} MiB); writes resume when space is freed",
                self.free.load(Ordering::Relaxed) / MIB,
                self.settings.low_space_bytes / MIB
            )),
        }
    }

    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    pub fn reserve_held(&self) -> bool {
        self.reserve_held.load(Ordering::Relaxed)
    }

    /// Measures again and moves between states; releases or retakes the
    /// reserve.
    pub fn refresh(&self) {
        let Ok(mut free) = free_bytes(&self.dir) else {
            return;
        };
        let SpaceSettings {
            reserved_bytes,
            low_space_bytes,
        } = self.settings;
        let reserve = self.dir.join(RESERVE_FILE);
        // Leave the low state only with some margin, so a disk on the
        // edge does not flip back and forth.
        let margin = (low_space_bytes / 4).max(MIB);
        let recovered_at = low_space_bytes.saturating_add(margin);
        let was_low = self.low.load(Ordering::Relaxed);
        let low = match was_low {
            true => free < recovered_at,
            false => free < low_space_bytes,
        };
        if low && free < low_space_bytes / 2 && self.reserve_held() {
            match std::fs::remove_file(&reserve) {
                Ok(()) => {
                    self.reserve_held.store(false, Ordering::Relaxed);
                    tracing::warn!(
                        free_mib = free / MIB,
                        reserve_mib = reserved_bytes / MIB,
                        "disk almost full: released the reserve"
                    );
                    free = free_bytes(&self.dir).unwrap_or(free);
                }
                Err(e) => tracing::warn!(error = %e, "cannot release the disk reserve"),
            }
        }
        if !low && reserved_bytes > 0 && !self.reserve_held() && free >= recovered_at.saturating_add(reserved_bytes) {
            match preallocate(&reserve, reserved_bytes) {
                Ok(()) => {
                    self.reserve_held.store(true, Ordering::Relaxed);
                    free = free_bytes(&self.dir).unwrap_or(free);
                }
                Err(e) => tracing::warn!(error = %e, "cannot take the disk reserve"),
            }
        }
        self.free.store(free, Ordering::Relaxed);
        self.low.store(low, Ordering::Relaxed);
        if low != was_low {
            match low {
                true => tracing::error!(
                    free_mib = free / MIB,
                    "disk almost full: refusing writes until space is freed"
                ),
                false => tracing::info!(free_mib = free / MIB, "disk space recovered: taking writes again"),
            }
        }
    }

    /// Measures every second, for the life of the node.
    pub async fn watch(self: Arc<Self>) {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let space = self.clone();
            let _ = tokio::task::spawn_blocking(move || space.refresh()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_real_blocks_and_the_state_follows_the_settings() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        let space = DiskSpace::open(
            dir.path(),
            SpaceSettings {
                reserved_bytes: 4 * MIB,
                low_space_bytes: MIB,
            },
        );
        assert!(space.reserve_held());
        let meta = std::fs::metadata(dir.path().join(RESERVE_FILE)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 >= 4 * MIB, "preallocated, not sparse");
        assert!(space.check_write().is_ok());
        // A mark above what is free puts the node in the low state.
        let full = DiskSpace::open(
            dir.path(),
            SpaceSettings {
                reserved_bytes: 0,
                low_space_bytes: u64::MAX / 4,
            },
        );
        let e = full.check_write().unwrap_err();
        assert!(e.starts_with("disk almost full ("), "{e}");
        assert!(!full.reserve_held(), "the reserve is released when the disk is low");
    }
}
