//! A sled database whose flush survives a power cut.
//!
//! On Linux sled 0.34 makes its log "durable" with sync_file_range(2). That
//! writes the pages out but neither the file's metadata (its new size, when
//! the log grew into a new segment) nor the disk's write cache, so a power
//! cut can lose what sled called flushed; the man page says as much. sled
//! also never fsyncs the files in `blobs/` (values larger than a quarter of
//! a segment, 128 KiB) or that directory. `SyncedDb` is a `sled::Db` whose
//! `flush` and `flush_async` end with an fdatasync of the data file and an
//! fsync of every blob file not synced at its present length and of the
//! blob directory.
//! Everything else is sled's own (through `Deref`).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A directory listing is trusted to have seen every file only when the
/// directory last changed this long before it: longer than the coarsest
/// file timestamps (FAT's 2 s), so a file created after the listing gives
/// the directory a modification time different from the one recorded.
const SETTLED_AFTER: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct SyncedDb {
    db: sled::Db,
    files: Arc<DataFiles>,
}

/// The files behind one sled database, for fsync.
struct DataFiles {
    /// sled's single data file (`<dir>/db`); fsync works on any descriptor.
    data: File,
    blobs: PathBuf,
    seen: Mutex<BlobsSeen>,
}

/// What the last flushes learnt of the blob directory, so that a flush
/// lists it only when something may be left to sync: listing and stat-ing
/// a hundred blob files cost a node with many of them 15% of its CPU under
/// single-row writes.
#[derive(Default)]
struct BlobsSeen {
    /// Blob files fsynced, with the length read just before (sled names
    /// them by log sequence number).
    synced: HashMap<OsString, u64>,
    /// Synced files whose checksum did not match: sled is still writing
    /// them (it writes a blob once, from start to end, and never again).
    unfinished: HashSet<OsString>,
    /// The directory's modification time at the last listing, when that
    /// listing saw every file (see `SETTLED_AFTER`).
    listed: Option<SystemTime>,
}

impl SyncedDb {
    /// Opens (or creates) the database in directory `dir` with sled's
    /// default settings.
    pub fn open(dir: &Path) -> sled::Result<SyncedDb> {
        SyncedDb::open_with(dir, sled::Config::new())
    }

    /// Like `open`, with sled settings from `config` (its path is `dir`).
    pub fn open_with(dir: &Path, config: sled::Config) -> sled::Result<SyncedDb> {
        let db = config.path(dir).open()?;
        let files = DataFiles {
            data: File::open(dir.join("db"))?,
            blobs: dir.join("blobs"),
            seen: Mutex::default(),
        };
        // sled writes `conf` once, when it creates the database, without an
        // fsync; a fresh node cut off just after would not open again.
        File::open(dir.join("conf"))?.sync_all()?;
        File::open(dir)?.sync_all()?;
        let synced = SyncedDb {
            db,
            files: Arc::new(files),
        };
        synced.files.sync_blobs()?;
        Ok(synced)
    }

    /// sled's flush, then fsync of what it left unsynced; the bytes sled
    /// flushed.
    pub fn flush(&self) -> sled::Result<usize> {
        let flushed = self.db.flush()?;
        self.files.sync()?;
        Ok(flushed)
    }

    /// `flush` on a blocking thread.
    pub async fn flush_async(&self) -> sled::Result<usize> {
        let this = self.clone();
        match tokio::task::spawn_blocking(move || this.flush()).await {
            Ok(flushed) => flushed,
            Err(e) => Err(sled::Error::Io(io::Error::other(format!("flush task failed: {e}")))),
        }
    }
}

impl std::ops::Deref for SyncedDb {
    type Target = sled::Db;

    fn deref(&self) -> &sled::Db {
        &self.db
    }
}

impl DataFiles {
    fn sync(&self) -> io::Result<()> {
        self.data.sync_data()?;
        self.sync_blobs()
    }

    /// Fsyncs blob files not synced at their present length, then the
    /// directory that names them; forgets files sled has since removed.
    ///
    /// The length matters: sled may still be writing a blob when a flush
    /// for other data lists it, and the flush that covers the blob's
    /// record comes after its last write. The listing is skipped when the
    /// directory has not changed since a listing that found every blob
    /// whole and synced: sled writes a blob before the record that points
    /// to it, and creating it changes the directory.
    fn sync_blobs(&self) -> io::Result<()> {
        let modified = match std::fs::metadata(&self.blobs) {
            Ok(m) => m.modified()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.listed == Some(modified) && seen.unfinished.is_empty() {
            return Ok(());
        }
        let mut listed = HashMap::new();
        match std::fs::read_dir(&self.blobs) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    match entry.metadata() {
                        Ok(m) => listed.insert(entry.file_name(), m.len()),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        seen.synced.retain(|name, _| listed.contains_key(name));
        seen.unfinished.retain(|name| listed.contains_key(name));
        let changed: Vec<OsString> = listed
            .into_iter()
            .filter(|(name, len)| seen.synced.get(name) != Some(len))
            .map(|(name, _)| name)
            .collect();
        for name in &changed {
            // Read (and checked) before the fsync, so a blob found whole is
            // synced whole.
            let (len, whole) = match File::open(self.blobs.join(name)) {
                Ok(mut f) => {
                    let read = read_blob(&mut f)?;
                    f.sync_all()?;
                    read
                }
                // Removed by sled's collector meanwhile: nothing to keep.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            seen.synced.insert(name.clone(), len);
            match whole {
                true => seen.unfinished.remove(name),
                false => seen.unfinished.insert(name.clone()),
            };
        }
        if !changed.is_empty() {
            File::open(&self.blobs)?.sync_all()?;
        }
        let settled = SystemTime::now()
            .duration_since(modified)
            .is_ok_and(|age| age >= SETTLED_AFTER);
        seen.listed = settled.then_some(modified);
        Ok(())
    }
}

/// The length of a blob file and whether it is whole: sled writes a
/// CRC-32 (little-endian) of the rest of the file, then a kind byte and
/// the value.
fn read_blob(file: &mut File) -> io::Result<(u64, bool)> {
    let mut head = [0u8; 4];
    let mut len = 0u64;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        while len < 4 && !chunk.is_empty() {
            head[len as usize] = chunk[0];
            chunk = &chunk[1..];
            len += 1;
        }
        hasher.update(chunk);
        len += chunk.len() as u64;
    }
    let whole = len > 4 && u32::from_le_bytes(head) == hasher.finalize();
    Ok((len, whole))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_flush_fsyncs_new_blob_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = SyncedDb::open(dir.path()).unwrap();
        db.insert(b"small", b"v".to_vec()).unwrap();
        db.flush().unwrap();
        assert!(db.files.seen.lock().unwrap().synced.is_empty());
        // Far over the blob threshold (a quarter of a 512 KiB segment).
        db.insert(b"large", vec![7u8; 1 << 20]).unwrap();
        db.flush().unwrap();
        let seen = db.files.seen.lock().unwrap();
        assert!(!seen.synced.is_empty(), "the large value's blob file was synced");
        assert!(
            seen.unfinished.is_empty(),
            "sled's blob checks out: {:?}",
            seen.unfinished
        );
        drop(seen);
        drop(db);
        let db = SyncedDb::open(dir.path()).unwrap();
        assert_eq!(db.get(b"large").unwrap().map(|v| v.len()), Some(1 << 20));
    }

    /// A blob file as sled writes it: CRC-32 of the rest, kind byte, value.
    fn blob_bytes(value: &[u8]) -> Vec<u8> {
        let mut rest = vec![1u8];
        rest.extend_from_slice(value);
        let mut bytes = crc32fast::hash(&rest).to_le_bytes().to_vec();
        bytes.extend(rest);
        bytes
    }

    fn blob_dir_of(db: &SyncedDb) -> PathBuf {
        std::fs::create_dir_all(&db.files.blobs).unwrap();
        db.files.blobs.clone()
    }

    #[test]
    fn a_blob_still_being_written_is_synced_again_once_whole() {
        let dir = tempfile::tempdir().unwrap();
        let db = SyncedDb::open(dir.path()).unwrap();
        let bytes = blob_bytes(&[9u8; 5000]);
        let path = blob_dir_of(&db).join("900000000");
        let mut file = File::create(&path).unwrap();
        file.write_all(&bytes[..3000]).unwrap();
        db.flush().unwrap();
        {
            let seen = db.files.seen.lock().unwrap();
            assert_eq!(seen.synced.get(path.file_name().unwrap()), Some(&3000));
            assert!(seen.unfinished.contains(path.file_name().unwrap()));
        }
        file.write_all(&bytes[3000..]).unwrap();
        db.flush().unwrap();
        let seen = db.files.seen.lock().unwrap();
        assert_eq!(seen.synced.get(path.file_name().unwrap()), Some(&(bytes.len() as u64)));
        assert!(seen.unfinished.is_empty());
    }

    #[test]
    fn the_blob_directory_is_listed_again_only_when_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let db = SyncedDb::open(dir.path()).unwrap();
        let blobs = blob_dir_of(&db);
        let set_dir_time = |t: SystemTime| File::open(&blobs).unwrap().set_modified(t).unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::write(blobs.join("900000001"), blob_bytes(b"first")).unwrap();
        set_dir_time(old);
        db.flush().unwrap();
        assert_eq!(db.files.seen.lock().unwrap().listed, Some(old));
        // A file that appears without changing the directory's time is not
        // looked for: this is the listing skipped.
        std::fs::write(blobs.join("900000002"), blob_bytes(b"second")).unwrap();
        set_dir_time(old);
        db.flush().unwrap();
        assert_eq!(db.files.seen.lock().unwrap().synced.len(), 1);
        // Any real creation changes the directory's time: both are found.
        // Just changed, the directory is listed again at the next flush.
        std::fs::write(blobs.join("900000003"), blob_bytes(b"third")).unwrap();
        db.flush().unwrap();
        let seen = db.files.seen.lock().unwrap();
        assert_eq!(seen.synced.len(), 3);
        assert_eq!(seen.listed, None);
    }
}
