//! A marker for an unclean stop: `<dir>/running` exists while the node runs
//! and is removed after the last flush of a clean stop. Found at start, it
//! means the last run ended by a power cut, a kill or a crash: sled then
//! dropped what was written after its last flush (every record carries a
//! CRC, and recovery stops at the first that fails), and the node says so
//! in its log.

use std::path::Path;

pub const FILE: &str = "running";

/// Marks the node as running; true when the last run did not stop cleanly.
pub fn mark(dir: &Path) -> std::io::Result<bool> {
    let path = dir.join(FILE);
    let unclean = path.exists();
    std::fs::File::create(&path)?.sync_all()?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(unclean)
}

/// Records a clean stop (after the last flush).
pub fn clear(dir: &Path) -> std::io::Result<()> {
    std::fs::remove_file(dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_run_that_was_not_cleared_counts_as_unclean() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!mark(dir.path()).unwrap(), "a new node");
        clear(dir.path()).unwrap();
        assert!(!mark(dir.path()).unwrap(), "after a clean stop");
        assert!(mark(dir.path()).unwrap(), "after a kill");
    }
}
