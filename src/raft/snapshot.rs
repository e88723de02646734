//! Snapshot files: a full copy of the state machine's keyspaces (catalog,
//! tables, indexes, sessions, applied position), written and read as a
//! stream of records so a snapshot is never held whole in memory.
//!
//! Format: the magic line, then records `space_len u32, space, key_len u32,
//! key, value_len u32, value` (big-endian lengths), then a record with an
//! empty space name carrying the record count as its key, so a truncated
//! file is detected.

use crate::storage::{Engine, StorageError, WriteBatch, is_data_space};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::ops::Bound;
use std::path::Path;

const MAGIC: &[u8] = b"CHRONOS-SNAPSHOT-1\n";
/// Bytes of records loaded per commit while installing.
const LOAD_BATCH_BYTES: usize = 4 << 20;

/// True for the keyspaces that make up the replicated state (and so go into
/// a snapshot); the Raft log and vote are the node's own.
pub fn is_state_space(space: &str) -> bool {
    space == "catalog"
        || space == "meta"
        || is_data_space(space)
        || space.starts_with("sm.")
        || space.starts_with("sync.")
        || space.starts_with("changes.")
}

fn storage_io(e: StorageError) -> io::Error {
    io::Error::other(e.to_string())
}

fn write_chunk(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("value larger than 4 GiB"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)
}

/// Writes every state keyspace of `engine` to `path`, fsynced. The caller
/// keeps writers out meanwhile so the copy is consistent.
pub fn write(engine: &dyn Engine, path: &Path) -> io::Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(MAGIC)?;
    let mut count: u64 = 0;
    for space in engine.spaces().map_err(storage_io)? {
        if !is_state_space(&space) {
            continue;
        }
        for item in engine
            .scan(&space, (Bound::Unbounded, Bound::Unbounded))
            .map_err(storage_io)?
        {
            let (k, v) = item.map_err(storage_io)?;
            write_chunk(&mut out, space.as_bytes())?;
            write_chunk(&mut out, &k)?;
            write_chunk(&mut out, &v)?;
            count += 1;
        }
    }
    write_chunk(&mut out, b"")?;
    write_chunk(&mut out, &count.to_be_bytes())?;
    write_chunk(&mut out, b"")?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(count)
}

fn read_chunk(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    let mut buf = Vec::new();
    input.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "snapshot file is truncated",
        ));
    }
    Ok(buf)
}

/// Replaces every state keyspace of `engine` with the snapshot at `path`.
/// Not atomic on its own: the caller records that an install is under way
/// and redoes it after a crash.
pub fn load(engine: &dyn Engine, path: &Path) -> io::Result<u64> {
    let mut input = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut magic = vec![0u8; MAGIC.len()];
    input.read_exact(&mut magic)?;
    if magic != MAGIC {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a ChronosDB snapshot"));
    }
    for space in engine.spaces().map_err(storage_io)? {
        if is_state_space(&space) {
            engine.drop_space(&space).map_err(storage_io)?;
        }
    }
    let mut batch = WriteBatch::default();
    let mut pending = 0;
    let mut count: u64 = 0;
    loop {
        let space = read_chunk(&mut input)?;
        let key = read_chunk(&mut input)?;
        let value = read_chunk(&mut input)?;
        if space.is_empty() {
            let expected = <[u8; 8]>::try_from(key.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad snapshot trailer"))?;
            if expected != count {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "snapshot record count mismatch",
                ));
            }
            break;
        }
        let space = String::from_utf8(space)
            .ok()
            .filter(|s| is_state_space(s))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "snapshot names an unknown keyspace"))?;
        pending += key.len() + value.len();
        batch.writes.entry(space).or_default().insert(key, Some(value));
        count += 1;
        if pending >= LOAD_BATCH_BYTES {
            engine.apply(std::mem::take(&mut batch)).map_err(storage_io)?;
            pending = 0;
        }
    }
    engine.commit(batch).map_err(storage_io)?;
    Ok(count)
}

/// Turns a snapshot file (a backup) into the data of a new node: the tables,
/// indexes and catalog, without the applied position, membership and
/// sessions of the cluster it came from, so the node forms a cluster of its
/// own around the data.
pub fn restore(engine: &dyn Engine, path: &Path) -> io::Result<u64> {
    let count = load(engine, path)?;
    let mut last_change = crate::sync::ops::feed_base(engine).map_err(storage_io)?;
    for space in engine.spaces().map_err(storage_io)? {
        if space.starts_with("sm.") {
            engine.drop_space(&space).map_err(storage_io)?;
        }
        if space.starts_with("f.") {
            let newest = engine
                .scan(&space, (Bound::Unbounded, Bound::Unbounded))
                .map_err(storage_io)?
                .last()
                .transpose()
                .map_err(storage_io)?;
            if let Some((key, _)) = newest {
                last_change = last_change.max(crate::sync::status::cursor_position(&key));
            }
        }
    }
    // The new cluster's log starts again at 1: its change positions start
    // after every position in the restored feeds, so cursors stay valid.
    crate::sync::ops::set_feed_base(engine, last_change).map_err(storage_io)?;
    engine.flush().map_err(storage_io)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryEngine;

    fn put(engine: &dyn Engine, space: &str, k: &[u8], v: &[u8]) {
        let mut b = WriteBatch::default();
        b.writes
            .entry(space.into())
            .or_default()
            .insert(k.to_vec(), Some(v.to_vec()));
        engine.commit(b).unwrap();
    }

    #[test]
    fn round_trip_replaces_state_and_keeps_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let a = MemoryEngine::default();
        put(&a, "catalog", b"t/x", b"schema");
        put(&a, "t.1", b"k1", b"row1");
        put(&a, "raft.log", b"1", b"entry");
        assert_eq!(write(&a, &path).unwrap(), 2);

        let b = MemoryEngine::default();
        put(&b, "t.9", b"old", b"gone");
        put(&b, "raft.log", b"7", b"mine");
        assert_eq!(load(&b, &path).unwrap(), 2);
        assert_eq!(b.get("t.1", b"k1").unwrap(), Some(b"row1".to_vec()));
        assert_eq!(b.get("t.9", b"old").unwrap(), None);
        assert_eq!(b.get("raft.log", b"7").unwrap(), Some(b"mine".to_vec()));
    }

    #[test]
    fn truncated_snapshot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let a = MemoryEngine::default();
        put(&a, "t.1", b"k1", b"row1");
        write(&a, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = load(&MemoryEngine::default(), &path).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn a_restored_cluster_continues_change_positions_past_its_feeds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let a = MemoryEngine::default();
        put(&a, "f.3", &[0, 0, 0, 0, 0, 0, 0, 9, 1], b"\0");
        put(&a, "f.3", &[0, 0, 0, 0, 0, 0, 1, 2, 1], b"\0");
        put(&a, "sync.cursors", b"pull/t", b"cursor");
        put(&a, "sm.sessions", b"client", b"answer");
        write(&a, &path).unwrap();
        let b = MemoryEngine::default();
        restore(&b, &path).unwrap();
        assert_eq!(crate::sync::ops::feed_base(&b).unwrap(), 258);
        assert_eq!(b.get("sync.cursors", b"pull/t").unwrap(), Some(b"cursor".to_vec()));
        assert_eq!(b.get("sm.sessions", b"client").unwrap(), None);
    }
}
