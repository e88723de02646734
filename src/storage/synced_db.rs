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

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    /// Blob files already fsynced, with their length then (sled names
    /// them by log sequence number).
    synced_blobs: Mutex<HashMap<OsString, u64>>,
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
            synced_blobs: Mutex::new(HashMap::new()),
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
    /// The length matters: sled may still be writing a blob when a flush
    /// for other data lists it, and the flush that covers the blob's
    /// record comes after its last write.
    fn sync_blobs(&self) -> io::Result<()> {
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
        let mut synced = self.synced_blobs.lock().unwrap_or_else(|p| p.into_inner());
        synced.retain(|name, _| listed.contains_key(name));
        let changed: Vec<(OsString, u64)> = listed
            .into_iter()
            .filter(|(name, len)| synced.get(name) != Some(len))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        for (name, _) in &changed {
            match File::open(self.blobs.join(name)) {
                Ok(f) => f.sync_all()?,
                // Removed by sled's collector meanwhile: nothing to keep.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        File::open(&self.blobs)?.sync_all()?;
        synced.extend(changed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_fsyncs_new_blob_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = SyncedDb::open(dir.path()).unwrap();
        db.insert(b"small", b"v".to_vec()).unwrap();
        db.flush().unwrap();
        assert!(db.files.synced_blobs.lock().unwrap().is_empty());
        // Far over the blob threshold (a quarter of a 512 KiB segment).
        db.insert(b"large", vec![7u8; 1 << 20]).unwrap();
        db.flush().unwrap();
        let synced = db.files.synced_blobs.lock().unwrap().len();
        assert!(synced >= 1, "the large value's blob file was synced");
        drop(db);
        let db = SyncedDb::open(dir.path()).unwrap();
        assert_eq!(db.get(b"large").unwrap().map(|v| v.len()), Some(1 << 20));
    }
}
