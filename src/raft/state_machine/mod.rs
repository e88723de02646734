//! The replicated state machine: applies committed log entries, in order,
//! through the SQL engine. Each entry's effects, its log position, the
//! membership and the idempotency record commit in one atomic batch, so a
//! crash never applies an entry twice or loses one.
//!
//! Apply is deterministic: the entry's HLC stamp (set by the leader, raised
//! if need be so stamps increase in log order and stay above every merged
//! version) is the value of `now()` and the version of every row it
//! writes; the entry's log index is the change position of those rows.
//! It must read no wall clock, randomness or hash-map order while
//! applying, and knows the features that ride on the log only through
//! [`crate::raft::LogFeatures`].

mod apply;
mod sessions;

use crate::raft::LogFeatures;
use crate::raft::hlc::Clock;
use crate::raft::snapshot;
use crate::raft::{Entry, LogId, Member, NodeId, Reply, StorageError, TypeConfig};
use crate::sql::Database;
use crate::storage::{Engine, WriteBatch};
use openraft::storage::RaftStateMachine;
use openraft::{
    ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
pub use sessions::purge_sessions;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The state machine's own keyspaces (part of every snapshot).
const STATE: &str = "sm.state";
const SESSIONS: &str = "sm.sessions";
const APPLIED: &[u8] = b"applied";
const MEMBERSHIP: &[u8] = b"membership";
/// The effective stamp of the last applied command.
const LAST_HLC: &[u8] = b"last_hlc";
/// A tree outside the state: set while a snapshot is being installed.
const INSTALL_TREE: &str = "raft.install";
const INSTALLING: &[u8] = b"installing";

type Membership = StoredMembership<NodeId, Member>;
type Meta = SnapshotMeta<NodeId, Member>;

/// The snapshot a node holds: its data file and what it covers.
#[derive(Clone, Serialize, Deserialize)]
struct SnapshotRecord {
    meta: Meta,
    file: String,
}

#[derive(Clone)]
pub struct StateMachine {
    db: Arc<Database>,
    sled: crate::storage::SyncedDb,
    clock: Arc<Clock>,
    dir: PathBuf,
    /// See [`crate::storage::positions::feed_base`]; part of the state, read when it may change.
    feed_base: Arc<std::sync::atomic::AtomicU64>,
    /// The change feed (when this node keeps one) and sync's operations.
    features: LogFeatures,
    /// A witness (witness.rs) records positions and membership, no data.
    witness: bool,
}

fn sm_err(verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(
        ErrorSubject::StateMachine,
        verb,
        openraft::AnyError::error(e.to_string()),
    )
    .into()
}

fn snap_err(verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(
        ErrorSubject::Snapshot(None),
        verb,
        openraft::AnyError::error(e.to_string()),
    )
    .into()
}

impl StateMachine {
    /// Opens the state machine over the node's database; snapshots live in
    /// `dir`. Finishes a snapshot install that a crash interrupted.
    pub fn open(
        db: Arc<Database>,
        sled: crate::storage::SyncedDb,
        clock: Arc<Clock>,
        dir: &Path,
        features: LogFeatures,
        witness: bool,
    ) -> std::io::Result<StateMachine> {
        std::fs::create_dir_all(dir)?;
        let base = crate::storage::positions::feed_base(db.engine().as_ref()).map_err(std::io::Error::other)?;
        let sm = StateMachine {
            db,
            sled,
            clock,
            dir: dir.to_path_buf(),
            feed_base: Arc::new(std::sync::atomic::AtomicU64::new(base)),
            features,
            witness,
        };
        let installing = sm.install_tree().map_err(std::io::Error::other)?.get(INSTALLING);
        if installing.map_err(std::io::Error::other)?.is_some() {
            let record = sm
                .current_record()
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .ok_or_else(|| std::io::Error::other("an interrupted snapshot install has no snapshot file"))?;
            tracing::warn!(snapshot = %record.file, "finishing an interrupted snapshot install");
            sm.load_snapshot(&record)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        sm.open_changes().map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(sm)
    }

    /// Readies the change feed for the applied state, or removes a feed
    /// this node no longer keeps.
    fn open_changes(&self) -> Result<(), StorageError> {
        let applied = self
            .read_state::<Option<LogId>>(APPLIED)?
            .flatten()
            .map_or(0, |l| l.index);
        self.features
            .recorder
            .prepare(self.engine().as_ref(), applied)
            .map_err(|e| sm_err(ErrorVerb::Write, e))
    }

    fn engine(&self) -> &Arc<dyn Engine> {
        self.db.engine()
    }

    fn install_tree(&self) -> Result<sled::Tree, sled::Error> {
        self.sled.open_tree(INSTALL_TREE)
    }

    fn read_state<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        match self.engine().get(STATE, key).map_err(|e| sm_err(ErrorVerb::Read, e))? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| sm_err(ErrorVerb::Read, e)),
        }
    }

    /// The last applied log position, as stored.
    pub fn applied(&self) -> Result<Option<LogId>, StorageError> {
        self.read_state(APPLIED)
    }

    fn current_record(&self) -> Result<Option<SnapshotRecord>, StorageError> {
        let path = self.dir.join("current.json");
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(snap_err(ErrorVerb::Read, e)),
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| snap_err(ErrorVerb::Read, e)),
        }
    }

    /// Makes `record` the current snapshot (atomically: write, fsync, rename)
    /// and removes older snapshot files.
    fn set_current_record(&self, record: &SnapshotRecord) -> Result<(), StorageError> {
        let tmp = self.dir.join("current.json.tmp");
        let bytes = serde_json::to_vec(record).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.dir.join("current.json"))?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| snap_err(ErrorVerb::Write, e))?;
        // Older files may still be streaming to a follower; an open file
        // survives its unlinking, so removing them is safe.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.ends_with(".snap") && name != record.file {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    /// Replaces the whole state with a snapshot, then records the applied
    /// position and membership it covers.
    fn mark_installing(&self) -> Result<(), StorageError> {
        let tree = self.install_tree().map_err(|e| snap_err(ErrorVerb::Write, e))?;
        tree.insert(INSTALLING, b"1".as_slice())
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.sled.flush().map_err(|e| snap_err(ErrorVerb::Write, e))?;
        Ok(())
    }

    fn load_snapshot(&self, record: &SnapshotRecord) -> Result<(), StorageError> {
        let path = self.dir.join(&record.file);
        self.mark_installing()?;
        let tree = self.install_tree().map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.db.exclusively(|| -> Result<(), StorageError> {
            if !self.witness {
                snapshot::load(self.engine().as_ref(), &path).map_err(|e| snap_err(ErrorVerb::Read, e))?;
            }
            let mut batch = WriteBatch::default();
            let state = batch.writes.entry(STATE.to_string()).or_default();
            let applied = serde_json::to_vec(&record.meta.last_log_id).map_err(|e| sm_err(ErrorVerb::Write, e))?;
            let membership =
                serde_json::to_vec(&record.meta.last_membership).map_err(|e| sm_err(ErrorVerb::Write, e))?;
            state.insert(APPLIED.to_vec(), Some(applied));
            state.insert(MEMBERSHIP.to_vec(), Some(membership));
            self.engine().commit(batch).map_err(|e| sm_err(ErrorVerb::Write, e))
        })?;
        let base =
            crate::storage::positions::feed_base(self.engine().as_ref()).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        self.feed_base.store(base, std::sync::atomic::Ordering::Relaxed);
        self.open_changes()?;
        tree.remove(INSTALLING).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.sled.flush().map_err(|e| snap_err(ErrorVerb::Write, e))?;
        Ok(())
    }

    fn build(&self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let id = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let file = format!("snapshot-{id}.snap");
        let path = self.dir.join(&file);
        // Writers wait while the copy is made, so it matches the applied
        // position read together with it.
        let began = std::time::Instant::now();
        let mut records = 0;
        let meta = self.db.while_writes_paused(|| -> Result<Meta, StorageError> {
            // Applies are not flushed one by one; the state a snapshot
            // covers must be on disk before Raft purges the log behind it.
            self.engine().flush().map_err(|e| sm_err(ErrorVerb::Write, e))?;
            let last_log_id: Option<LogId> = self.read_state(APPLIED)?.flatten();
            let last_membership: Membership = self.read_state(MEMBERSHIP)?.unwrap_or_default();
            records = snapshot::write(self.engine().as_ref(), &path).map_err(|e| snap_err(ErrorVerb::Write, e))?;
            Ok(Meta {
                last_log_id,
                last_membership,
                snapshot_id: id,
            })
        })?;
        // Opened before it becomes current: from then on a newer snapshot
        // may remove the file, and an open file survives that.
        let opened = std::fs::File::open(&path).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let record = SnapshotRecord { meta, file };
        self.set_current_record(&record)?;
        tracing::info!(
            snapshot = %record.file,
            last_log_id = ?record.meta.last_log_id,
            records,
            writes_paused_ms = began.elapsed().as_millis() as u64,
            "built snapshot"
        );
        Ok(Snapshot {
            meta: record.meta,
            snapshot: Box::new(tokio::fs::File::from_std(opened)),
        })
    }
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, StorageError> + Send + 'static,
) -> Result<R, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| sm_err(ErrorVerb::Write, e))?
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let sm = self.clone();
        blocking(move || sm.build()).await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        let applied = self.read_state::<Option<LogId>>(APPLIED)?.flatten();
        let membership = self.read_state(MEMBERSHIP)?.unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let sm = self.clone();
        blocking(move || entries.into_iter().map(|e| sm.apply_entry(e)).collect()).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let file = tokio::fs::File::create(self.dir.join("incoming.part"))
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Box<tokio::fs::File>) -> Result<(), StorageError> {
        snapshot.sync_all().await.map_err(|e| snap_err(ErrorVerb::Write, e))?;
        drop(snapshot);
        // The id comes from the leader: keep it to safe file-name characters.
        let id: String = meta
            .snapshot_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
            .take(100)
            .collect();
        let file = format!("snapshot-{id}.snap");
        let incoming = self.dir.join("incoming.part");
        std::fs::rename(&incoming, self.dir.join(&file)).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let record = SnapshotRecord {
            meta: meta.clone(),
            file,
        };
        // Marked before the snapshot becomes current: after a crash from
        // here on, opening the state machine finishes the install.
        self.mark_installing()?;
        self.set_current_record(&record)?;
        let sm = self.clone();
        blocking(move || sm.load_snapshot(&record)).await?;
        if self.witness {
            // Keep the position, not the data: a snapshot of this (empty)
            // state replaces the file received.
            let sm = self.clone();
            blocking(move || sm.build().map(|_| ())).await?;
        }
        // Logged once the install is complete (on a witness, once the file
        // received is gone): tests/faults/witness.rs waits for this line.
        tracing::info!(last_log_id = ?meta.last_log_id, "installed snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        // A snapshot built meanwhile (in openraft's builder task) replaces
        // the current record and then removes the older file, possibly
        // between reading the record and opening its file: read the record
        // again. Found by the fault harness (tests/chaos.rs).
        let mut attempts = 0;
        loop {
            let Some(record) = self.current_record()? else {
                return Ok(None);
            };
            match std::fs::File::open(self.dir.join(&record.file)) {
                Ok(file) => {
                    return Ok(Some(Snapshot {
                        meta: record.meta,
                        snapshot: Box::new(tokio::fs::File::from_std(file)),
                    }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 10 => attempts += 1,
                Err(e) => return Err(snap_err(ErrorVerb::Read, e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state machine on sled files in `dir`.
    pub(super) fn open_in(dir: &Path) -> StateMachine {
        let engine = crate::storage::SledEngine::open(dir).unwrap();
        let sled = engine.db().clone();
        let db = Arc::new(Database::open(Arc::new(engine)).unwrap());
        StateMachine::open(
            db,
            sled,
            Arc::new(Clock::default()),
            &dir.join("snapshots"),
            LogFeatures {
                recorder: Arc::new(crate::changes::NoChangeLog),
                ops: Arc::new(super::super::NoOps),
            },
            false,
        )
        .unwrap()
    }

    /// Regression (found by tests/chaos.rs): a snapshot built while the
    /// current one was being opened removed its file in between, and the
    /// NotFound stopped Raft on that node for good.
    #[test]
    fn the_current_snapshot_opens_while_new_ones_are_built() {
        let dir = tempfile::tempdir().unwrap();
        let sm = open_in(dir.path());
        sm.build().unwrap();
        let builder = {
            let sm = sm.clone();
            std::thread::spawn(move || {
                for _ in 0..300 {
                    sm.build().unwrap();
                }
            })
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut reader = sm.clone();
        while !builder.is_finished() {
            let current = runtime.block_on(reader.get_current_snapshot());
            assert!(matches!(current, Ok(Some(_))), "{:?}", current.err());
        }
        builder.join().unwrap();
    }
}
