//! The client's offline queue: writes kept in a local sled database while
//! no node answers, replayed in order when one does.
//!
//! Every write goes into the queue (flushed) before it is sent and leaves it
//! once a node has answered, so a write is never lost by a client crash or
//! a dead link. Each entry keeps the idempotency key it was given when
//! queued (the queue's own client id, and a sequence number), and the
//! cluster remembers the last key of each client: a replay of a write whose
//! answer was lost is answered from that record, not applied again.

use super::connection::ClientError;
use std::path::{Path, PathBuf};

const ENTRIES: &str = "entries";
const META: &str = "meta";
const CLIENT_ID: &[u8] = b"client_id";
const SEQUENCE: &[u8] = b"sequence";

pub struct OfflineQueue {
    db: crate::storage::SyncedDb,
    entries: sled::Tree,
    meta: sled::Tree,
    path: PathBuf,
    client_id: String,
}

fn error(path: &Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::Status(format!("offline queue {}: {e}", path.display()))
}

impl OfflineQueue {
    /// Opens (or creates) the queue in directory `path`. Only one client may
    /// use a queue at a time.
    pub fn open(path: &Path) -> Result<OfflineQueue, ClientError> {
        std::fs::create_dir_all(path).map_err(|e| error(path, e))?;
        // sled releases its lock from a background thread after the last
        // handle drops, so a client that restarts at once may briefly find
        // it still held.
        let mut attempts = 0;
        let db = loop {
            match crate::storage::SyncedDb::open(path) {
                Ok(db) => break db,
                Err(e) if e.to_string().contains("could not acquire lock") => {
                    attempts += 1;
                    if attempts == 10 {
                        return Err(error(path, "in use by another chronos client"));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(error(path, e)),
            }
        };
        let entries = db.open_tree(ENTRIES).map_err(|e| error(path, e))?;
        let meta = db.open_tree(META).map_err(|e| error(path, e))?;
        let client_id = match meta.get(CLIENT_ID).map_err(|e| error(path, e))? {
            Some(id) => String::from_utf8_lossy(&id).to_string(),
            None => {
                let id = format!("queue-{}", super::connection::new_client_id());
                meta.insert(CLIENT_ID, id.as_bytes()).map_err(|e| error(path, e))?;
                db.flush().map_err(|e| error(path, e))?;
                id
            }
        };
        Ok(OfflineQueue {
            db,
            entries,
            meta,
            path: path.to_path_buf(),
            client_id,
        })
    }

    /// The client id of every write of this queue.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a write at the end, durably. Returns its sequence number.
    pub fn push(&self, sql: &str) -> Result<u64, ClientError> {
        let last = self
            .meta
            .get(SEQUENCE)
            .map_err(|e| error(&self.path, e))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        let sequence = last + 1;
        let mut batch_meta = sled::Batch::default();
        batch_meta.insert(SEQUENCE, &sequence.to_be_bytes());
        self.meta.apply_batch(batch_meta).map_err(|e| error(&self.path, e))?;
        self.entries
            .insert(sequence.to_be_bytes(), sql.as_bytes())
            .map_err(|e| error(&self.path, e))?;
        self.db.flush().map_err(|e| error(&self.path, e))?;
        Ok(sequence)
    }

    /// The writes waiting, oldest first: (sequence, SQL).
    pub fn pending(&self) -> Result<Vec<(u64, String)>, ClientError> {
        let mut out = Vec::new();
        for item in self.entries.iter() {
            let (k, v) = item.map_err(|e| error(&self.path, e))?;
            let sequence = <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| error(&self.path, "damaged entry key"))?;
            out.push((sequence, String::from_utf8_lossy(&v).to_string()));
        }
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops a write once a node answered it, durably.
    pub fn remove(&self, sequence: u64) -> Result<(), ClientError> {
        self.entries
            .remove(sequence.to_be_bytes())
            .map_err(|e| error(&self.path, e))?;
        self.db.flush().map_err(|e| error(&self.path, e))?;
        Ok(())
    }

    /// Drops every waiting write. Returns how many there were.
    pub fn clear(&self) -> Result<usize, ClientError> {
        let n = self.entries.len();
        self.entries.clear().map_err(|e| error(&self.path, e))?;
        self.db.flush().map_err(|e| error(&self.path, e))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening_in_order_with_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (id, first) = {
            let q = OfflineQueue::open(dir.path()).unwrap();
            let a = q.push("INSERT INTO t VALUES (1)").unwrap();
            let b = q.push("INSERT INTO t VALUES (2)").unwrap();
            assert!(b > a);
            q.remove(a).unwrap();
            (q.client_id().to_string(), b)
        };
        let q = OfflineQueue::open(dir.path()).unwrap();
        assert_eq!(q.client_id(), id);
        assert_eq!(
            q.pending().unwrap(),
            vec![(first, "INSERT INTO t VALUES (2)".to_string())]
        );
        // Sequences keep increasing after a restart, even past removed ones.
        assert!(q.push("x").unwrap() > first);
        assert_eq!(q.clear().unwrap(), 2);
        assert!(q.is_empty());
    }

    #[test]
    fn a_second_client_on_the_same_queue_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _q = OfflineQueue::open(dir.path()).unwrap();
        let err = OfflineQueue::open(dir.path()).err().expect("second open refused");
        assert!(err.to_string().contains("in use by another chronos client"), "{err}");
    }
}
