//! The Raft log and vote on sled: two trees in the node's sled database.
//! Entries are JSON (lz4-compressed when large, see [`super::log_codec`])
//! under their big-endian index, so the tree's order is the log's order. Every change is flushed before openraft is told it is
//! persisted: a vote or an acknowledged entry survives a crash.

use super::log_codec;
use super::{Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::storage::io_stats::IoStats;
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader, StorageIOError, Vote};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

const LOG_TREE: &str = "raft.log";
const META_TREE: &str = "raft.meta";
const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"last_purged";
const NAME: &[u8] = b"name";
const CLUSTER: &[u8] = b"cluster";
const CLOCK_MARK: &[u8] = b"hlc_high_water";

#[derive(Clone)]
pub struct LogStore {
    db: crate::storage::SyncedDb,
    log: sled::Tree,
    meta: sled::Tree,
    /// Flush latencies and bytes logged, for /metrics.
    stats: Arc<IoStats>,
}

fn io_err(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}

fn read_logs_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Read, e)
}

fn write_logs_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Write, e)
}

impl LogStore {
    pub fn stats(&self) -> &Arc<IoStats> {
        &self.stats
    }

    pub fn open(db: &crate::storage::SyncedDb) -> Result<LogStore, sled::Error> {
        Ok(LogStore {
            stats: Arc::new(IoStats::default()),
            db: db.clone(),
            log: db.open_tree(LOG_TREE)?,
            meta: db.open_tree(META_TREE)?,
        })
    }

    /// True when this node has never voted nor held a log entry: a fresh
    /// node that may take part in initialising a cluster.
    pub fn is_pristine(&self) -> Result<bool, sled::Error> {
        Ok(self.log.is_empty() && self.meta.get(VOTE)?.is_none() && self.meta.get(PURGED)?.is_none())
    }

    /// Records which member this data belongs to, or refuses data that
    /// belongs to another member (a copied or mixed-up data directory).
    pub fn claim_identity(&self, name: &str) -> Result<(), String> {
        let io = |e: sled::Error| format!("cannot read the raft metadata: {e}");
        match self.meta.get(NAME).map_err(io)? {
            Some(stored) if stored.as_ref() != name.as_bytes() => Err(format!(
                "this data directory belongs to node '{}', not '{name}'; start it with --id {} or use another directory",
                String::from_utf8_lossy(&stored),
                String::from_utf8_lossy(&stored)
            )),
            Some(_) => Ok(()),
            None => {
                self.meta.insert(NAME, name.as_bytes()).map_err(io)?;
                self.db.flush().map_err(io)?;
                Ok(())
            }
        }
    }

    /// The highest log index this node knows to be committed (as openraft
    /// last reported it); 0 before any.
    pub fn committed_index(&self) -> u64 {
        self.read_meta::<Option<LogId>>(COMMITTED)
            .ok()
            .flatten()
            .flatten()
            .map_or(0, |l| l.index)
    }

    /// The clock's persisted high-water mark (ms), 0 before the first.
    pub fn clock_mark(&self) -> i64 {
        match self.meta.get(CLOCK_MARK) {
            Ok(Some(v)) => <[u8; 8]>::try_from(v.as_ref()).map_or(0, i64::from_be_bytes),
            _ => 0,
        }
    }

    /// Where the clock persists its high-water mark.
    pub fn clock_high_water(&self) -> ClockMark {
        ClockMark {
            db: self.db.clone(),
            meta: self.meta.clone(),
        }
    }

    /// The id of the cluster this node belongs to, once it knows.
    pub fn cluster_id(&self) -> Option<String> {
        match self.meta.get(CLUSTER) {
            Ok(Some(v)) => Some(String::from_utf8_lossy(&v).into_owned()),
            _ => None,
        }
    }

    /// Records the cluster this node belongs to (durably).
    pub fn set_cluster_id(&self, id: &str) -> Result<(), sled::Error> {
        self.meta.insert(CLUSTER, id.as_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let subject = ErrorSubject::Store;
        match self
            .meta
            .get(key)
            .map_err(|e| io_err(subject.clone(), ErrorVerb::Read, e))?
        {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io_err(subject, ErrorVerb::Read, e)),
        }
    }

    async fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError> {
        let subject = ErrorSubject::Store;
        let bytes = serde_json::to_vec(value).map_err(|e| io_err(subject.clone(), ErrorVerb::Write, e))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| io_err(subject.clone(), ErrorVerb::Write, e))?;
        self.db
            .flush_async()
            .await
            .map_err(|e| io_err(subject, ErrorVerb::Write, e))?;
        Ok(())
    }

    fn last_entry(&self) -> Result<Option<Entry>, StorageError> {
        match self.log.last().map_err(read_logs_err)? {
            None => Ok(None),
            Some((_, v)) => log_codec::decode(&v).map(Some).map_err(read_logs_err),
        }
    }
}

/// What `force_single_member` did.
#[derive(Debug)]
pub struct Recovered {
    /// The last log index before the new configuration.
    pub last_index: u64,
    /// The term the new configuration was written in.
    pub term: u64,
}

impl LogStore {
    /// Offline, on a stopped node that lost its quorum: appends a
    /// configuration with this node (`id`, `member`) as the only voter,
    /// in a term past every term seen, and votes for itself in it. Raft
    /// uses the newest configuration in the log at once, so on its next
    /// start the node elects itself and commits everything in its log
    /// (etcd's --force-new-cluster). Entries that only the lost members
    /// had are gone; that is the price of recovering without them.
    pub fn force_single_member(&self, id: NodeId, member: super::Member) -> Result<Recovered, String> {
        let fail = |e: &dyn std::fmt::Display| format!("raft log: {e}");
        let vote: Option<Vote<NodeId>> = self.read_meta(VOTE).map_err(|e| fail(&e))?;
        let purged: Option<LogId> = self.read_meta(PURGED).map_err(|e| fail(&e))?;
        let last = match self.last_entry().map_err(|e| fail(&e))? {
            Some(e) => Some(e.log_id),
            None => purged,
        };
        let term = vote
            .map_or(0, |v| v.leader_id().term)
            .max(last.map_or(0, |l| l.leader_id.term))
            + 1;
        let last_index = last.map_or(0, |l| l.index);
        let membership = openraft::Membership::new(
            vec![std::collections::BTreeSet::from([id])],
            std::collections::BTreeMap::from([(id, member)]),
        );
        let entry = Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(term, id), last_index + 1),
            payload: openraft::EntryPayload::Membership(membership),
        };
        let bytes = log_codec::encode(&entry).map_err(|e| fail(&e))?;
        self.log
            .insert(index_key(last_index + 1), bytes)
            .map_err(|e| fail(&e))?;
        let vote = serde_json::to_vec(&Vote::new(term, id)).map_err(|e| fail(&e))?;
        self.meta.insert(VOTE, vote).map_err(|e| fail(&e))?;
        self.db.flush().map_err(|e| fail(&e))?;
        Ok(Recovered { last_index, term })
    }
}

/// The clock's high-water mark, in the Raft metadata tree (flushed).
pub struct ClockMark {
    db: crate::storage::SyncedDb,
    meta: sled::Tree,
}

impl super::hlc::HighWater for ClockMark {
    fn persist(&self, mark_ms: i64) -> std::io::Result<()> {
        self.meta
            .insert(CLOCK_MARK, &mark_ms.to_be_bytes())
            .map_err(std::io::Error::other)?;
        self.db.flush().map_err(std::io::Error::other)?;
        Ok(())
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included(index_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(index_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut entries = Vec::new();
        for item in self.log.range::<[u8; 8], _>((start, end)) {
            let (_, v) = item.map_err(read_logs_err)?;
            entries.push(log_codec::decode(&v).map_err(read_logs_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(PURGED)?;
        let last_log_id = match self.last_entry()? {
            Some(e) => Some(e.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.write_meta(VOTE, vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.read_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed: it is a hint that lets a restarted node re-apply
        // sooner; losing it only means waiting for the leader to tell us.
        let bytes = serde_json::to_vec(&committed).map_err(write_logs_err)?;
        self.meta.insert(COMMITTED, bytes).map_err(write_logs_err)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        let mut logged = 0;
        for entry in entries {
            let bytes = log_codec::encode(&entry).map_err(write_logs_err)?;
            logged += bytes.len();
            batch.insert(&index_key(entry.log_id.index), bytes);
        }
        self.log.apply_batch(batch).map_err(write_logs_err)?;
        self.stats.record_logged(logged);
        if let Some(stall) = self.stats.injected_stall() {
            tokio::time::sleep(stall).await;
        }
        // Durable before openraft counts the entries as persisted.
        let began = std::time::Instant::now();
        let flushed = self.db.flush_async().await.map(|_| ()).map_err(std::io::Error::other);
        self.stats.record_fsync(began.elapsed());
        callback.log_io_completed(flushed);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Remove log_id.index and everything after it: they conflict with
        // the leader's log.
        let mut batch = sled::Batch::default();
        for item in self.log.range(index_key(log_id.index)..) {
            let (k, _) = item.map_err(write_logs_err)?;
            batch.remove(k);
        }
        self.log.apply_batch(batch).map_err(write_logs_err)?;
        self.db.flush_async().await.map_err(write_logs_err)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash halfway leaves entries that
        // are already covered by it, never a gap.
        self.write_meta(PURGED, &log_id).await?;
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=index_key(log_id.index)) {
            let (k, _) = item.map_err(write_logs_err)?;
            batch.remove(k);
        }
        self.log.apply_batch(batch).map_err(write_logs_err)?;
        Ok(())
    }
}
