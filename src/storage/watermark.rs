//! The durable watermark: a small file beside the sled database recording
//! the highest applied Raft index known to be on disk (read before a sled
//! flush, written after it). sled's recovery stops at the first damaged
//! record and serves what came before as if it were everything, so a
//! truncated or corrupted data file would silently lose acknowledged
//! writes. At start the node compares what sled recovered with this
//! record and refuses to serve when data that was on disk is missing.
//!
//! Format: one line, `chronos-durable 1 <index> <crc32 of "1 <index>">`,
//! replaced atomically (temporary file, fsync, rename, fsync of the
//! directory).

use std::io::Write;
use std::path::{Path, PathBuf};

pub const FILE: &str = "durable";

fn body(index: u64) -> String {
    format!("1 {index}")
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The recorded index; None when there is no file yet (a new node) or it
/// cannot be trusted, which the caller logs.
pub fn read(dir: &Path) -> Result<Option<u64>, String> {
    let text = match std::fs::read_to_string(path(dir)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path(dir).display())),
    };
    let parts: Vec<&str> = text.split_whitespace().collect();
    let parsed = match parts.as_slice() {
        ["chronos-durable", "1", index, crc] => index.parse::<u64>().ok().zip(crc.parse::<u32>().ok()),
        _ => None,
    };
    match parsed {
        Some((index, crc)) if crc32fast::hash(body(index).as_bytes()) == crc => Ok(Some(index)),
        _ => Err(format!("{} is damaged", path(dir).display())),
    }
}

/// Records `index` as durable.
pub fn write(dir: &Path, index: u64) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    let body = body(index);
    writeln!(file, "chronos-durable {body} {}", crc32fast::hash(body.as_bytes()))?;
    file.sync_all()?;
    std::fs::rename(&tmp, path(dir))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Ok when what sled recovered (`recovered`: the applied index, or the
/// last log index if higher) reaches the recorded watermark.
pub fn check(dir: &Path, recovered: u64) -> Result<(), String> {
    match read(dir) {
        Ok(Some(durable)) if recovered < durable => Err(format!(
            "{} is damaged or truncated: it holds writes up to Raft index {recovered}, but index {durable} was on disk before (recorded in {}). \
             The node will not serve incomplete data; start it with --rebuild-from-peers to set the files aside and rebuild from the other members (docs/security.md#damaged-data-files)",
            dir.join("db").display(),
            path(dir).display()
        )),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "durable watermark unreadable; the start-up check is skipped");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recovery_short_of_the_watermark_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), Ok(None));
        assert!(check(dir.path(), 0).is_ok(), "a new node");
        write(dir.path(), 42).unwrap();
        assert_eq!(read(dir.path()), Ok(Some(42)));
        assert!(check(dir.path(), 42).is_ok());
        assert!(check(dir.path(), 50).is_ok());
        let e = check(dir.path(), 41).unwrap_err();
        assert!(
            e.contains("db is damaged or truncated") && e.contains("index 42"),
            "{e}"
        );
        std::fs::write(path(dir.path()), "chronos-durable 1 43 123\n").unwrap();
        assert!(read(dir.path()).unwrap_err().contains("damaged"));
        assert!(check(dir.path(), 0).is_ok(), "an untrusted record only warns");
    }
}
