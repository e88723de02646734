//! Snapshot files: a full copy of the state machine's keyspaces (catalog,
//! tables, indexes, sessions, applied position), written and read as a
//! stream of records so a snapshot is never held whole in memory.
//!
//! Format: the magic line, then records `space_len u32, space, key_len u32,
//! key, value_len u32, value` (big-endian lengths), then a trailer record
//! with an empty space name whose key holds the record count and a CRC-32
//! of every record before it. A truncated or damaged file is refused before
//! anything is replaced. Version 1 files (no CRC) are still read.

use crate::storage::{Engine, StorageError, WriteBatch, is_data_space};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::ops::Bound;
use std::path::Path;

const MAGIC: &[u8] = b"CHRONOS-SNAPSHOT-2\n";
const MAGIC_V1: &[u8] = b"CHRONOS-SNAPSHOT-1\n";
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

fn damaged(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snapshot is damaged: {what}"))
}

fn write_chunk(out: &mut impl Write, crc: Option<&mut crc32fast::Hasher>, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("value larger than 4 GiB"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)?;
    if let Some(crc) = crc {
        crc.update(&len.to_be_bytes());
        crc.update(bytes);
    }
    Ok(())
}

/// Writes every state keyspace of `engine` to `path`, fsynced. The caller
/// keeps writers out meanwhile so the copy is consistent.
pub fn write(engine: &dyn Engine, path: &Path) -> io::Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(MAGIC)?;
    let mut count: u64 = 0;
    let mut crc = crc32fast::Hasher::new();
    for space in engine.spaces().map_err(storage_io)? {
        if !is_state_space(&space) {
            continue;
        }
        for item in engine
            .scan(&space, (Bound::Unbounded, Bound::Unbounded))
            .map_err(storage_io)?
        {
            let (k, v) = item.map_err(storage_io)?;
            write_chunk(&mut out, Some(&mut crc), space.as_bytes())?;
            write_chunk(&mut out, Some(&mut crc), &k)?;
            write_chunk(&mut out, Some(&mut crc), &v)?;
            count += 1;
        }
    }
    let mut trailer = count.to_be_bytes().to_vec();
    trailer.extend_from_slice(&crc.finalize().to_be_bytes());
    write_chunk(&mut out, None, b"")?;
    write_chunk(&mut out, None, &trailer)?;
    write_chunk(&mut out, None, b"")?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(count)
}

fn read_chunk(input: &mut impl Read, crc: &mut crc32fast::Hasher) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input
        .read_exact(&mut len)
        .map_err(|_| damaged("the file is truncated"))?;
    let n = u32::from_be_bytes(len) as usize;
    let mut buf = Vec::new();
    input.take(n as u64).read_to_end(&mut buf)?;
    if buf.len() != n {
        return Err(damaged("the file is truncated"));
    }
    crc.update(&len);
    crc.update(&buf);
    Ok(buf)
}

/// One record: keyspace, key, value.
type Record = (String, Vec<u8>, Vec<u8>);

/// A snapshot's records, in order, each checked for a known keyspace; the
/// trailer's count and CRC are checked when it is reached.
struct Records<R> {
    input: R,
    crc: crc32fast::Hasher,
    count: u64,
    has_crc: bool,
}

impl<R: Read> Records<R> {
    fn open(mut input: R) -> io::Result<Records<R>> {
        let mut magic = vec![0u8; MAGIC.len()];
        input
            .read_exact(&mut magic)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not a ChronosDB snapshot"))?;
        let has_crc = match magic.as_slice() {
            m if m == MAGIC => true,
            m if m == MAGIC_V1 => false,
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "not a ChronosDB snapshot")),
        };
        Ok(Records {
            input,
            crc: crc32fast::Hasher::new(),
            count: 0,
            has_crc,
        })
    }

    /// The next (space, key, value), or None after a valid trailer.
    fn next(&mut self) -> io::Result<Option<Record>> {
        let before = self.crc.clone();
        let space = read_chunk(&mut self.input, &mut self.crc)?;
        let key = read_chunk(&mut self.input, &mut self.crc)?;
        let value = read_chunk(&mut self.input, &mut self.crc)?;
        if space.is_empty() {
            let expected_len = if self.has_crc { 12 } else { 8 };
            if key.len() != expected_len {
                return Err(damaged("bad trailer"));
            }
            let count = u64::from_be_bytes(key[..8].try_into().map_err(|_| damaged("bad trailer"))?);
            if count != self.count {
                return Err(damaged(&format!("{} records, the trailer says {count}", self.count)));
            }
            if self.has_crc {
                let stored = u32::from_be_bytes(key[8..12].try_into().map_err(|_| damaged("bad trailer"))?);
                if stored != before.finalize() {
                    return Err(damaged("checksum mismatch"));
                }
            }
            return Ok(None);
        }
        let space = String::from_utf8(space)
            .ok()
            .filter(|s| is_state_space(s))
            .ok_or_else(|| damaged("a record names an unknown keyspace"))?;
        self.count += 1;
        Ok(Some((space, key, value)))
    }
}

/// Replaces every state keyspace of `engine` with the snapshot at `path`.
/// Not atomic on its own: the caller records that an install is under way
/// and redoes it after a crash. Errors name the file.
pub fn load(engine: &dyn Engine, path: &Path) -> io::Result<u64> {
    let open = || Ok(BufReader::with_capacity(1 << 20, std::fs::File::open(path)?));
    load_from(engine, open).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Like `load`, from a stream `open` gives (twice: the whole snapshot is
/// checked before the first keyspace is dropped).
pub fn load_from<R: Read>(engine: &dyn Engine, open: impl Fn() -> io::Result<R>) -> io::Result<u64> {
    let mut check = Records::open(open()?)?;
    while check.next()?.is_some() {}
    let mut records = Records::open(open()?)?;
    for space in engine.spaces().map_err(storage_io)? {
        if is_state_space(&space) {
            engine.drop_space(&space).map_err(storage_io)?;
        }
    }
    let mut batch = WriteBatch::default();
    let mut pending = 0;
    while let Some((space, key, value)) = records.next()? {
        pending += key.len() + value.len();
        batch.writes.entry(space).or_default().insert(key, Some(value));
        if pending >= LOAD_BATCH_BYTES {
            engine.apply(std::mem::take(&mut batch)).map_err(storage_io)?;
            pending = 0;
        }
    }
    engine.commit(batch).map_err(storage_io)?;
    Ok(records.count)
}

/// Turns a snapshot file (a backup) into the data of a new node: the tables,
/// indexes and catalog, without the applied position, membership and
/// sessions of the cluster it came from, so the node forms a cluster of its
/// own around the data.
pub fn restore(engine: &dyn Engine, path: &Path) -> io::Result<u64> {
    let count = load(engine, path)?;
    let mut last_change = crate::storage::positions::feed_base(engine).map_err(storage_io)?;
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
                last_change = last_change.max(crate::storage::positions::cursor_position(&key));
            }
        }
    }
    // The new cluster's log starts again at 1: its change positions start
    // after every position in the restored feeds, so cursors stay valid.
    crate::storage::positions::set_feed_base(engine, last_change).map_err(storage_io)?;
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
    fn a_damaged_snapshot_is_refused_before_anything_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let a = MemoryEngine::default();
        put(&a, "t.1", b"k1", b"row-one");
        put(&a, "t.1", b"k2", b"row-two");
        write(&a, &path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let at = good.windows(7).position(|w| w == b"row-two").unwrap();
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        std::fs::write(&path, &bad).unwrap();
        let b = MemoryEngine::default();
        put(&b, "t.9", b"mine", b"kept");
        let err = load(&b, &path).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(err.to_string().contains("s.snap"), "names the file: {err}");
        assert_eq!(b.get("t.9", b"mine").unwrap(), Some(b"kept".to_vec()));
        // Any single flipped byte is caught, or the file is refused.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(
                load_from(&MemoryEngine::default(), || Ok(bad.as_slice())).is_err(),
                "byte {i}"
            );
        }
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
        assert_eq!(crate::storage::positions::feed_base(&b).unwrap(), 258);
        assert_eq!(b.get("sync.cursors", b"pull/t").unwrap(), Some(b"cursor".to_vec()));
        assert_eq!(b.get("sm.sessions", b"client").unwrap(), None);
    }
}
