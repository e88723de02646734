//! A cluster member: starts openraft over the node's sled database, forms
//! or joins the cluster, and offers the server what it needs: replicated
//! writes (forwarded to the leader when needed), read barriers for the
//! chosen consistency, membership changes and status. One file a concern
//! (docs/architecture.md, "Inside raft/"); it must not apply entries (the
//! state machine does) nor know the features that ride on the log.

mod bootstrap;
mod membership;

pub use membership::{ClusterView, MemberView, MembershipError};
mod read;
mod write;

use read::ReadBatcher;

use super::discovery::AutoCluster;
use super::group_commit::GroupCommit;
use super::hlc::Clock;
use super::network::{self, Network};
use super::{LogStore, NodeId, Raft, StateMachine, node_id};
use crate::proto::raft::{NodeStatusRequest, NodeStatusResponse};
use crate::sql::Database;
use crate::storage::space::{DiskSpace, SpaceSettings};
use crate::storage::watermark;
use openraft::{ServerState, SnapshotPolicy};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tonic::Status;

/// How long a write or a strong read waits for a leader or a majority
/// before the client gets an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const PEER_STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a new member may take to receive the data before it votes.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(240);

/// What a node needs to know to take part in a cluster.
#[derive(Clone, Debug)]
pub struct RaftSettings {
    pub name: String,
    /// Where the other members reach this node.
    pub address: String,
    /// The other members, (name, address), from `--peers`.
    pub peers: Vec<(String, String)>,
    /// Join a running cluster through this node instead of forming one.
    pub join: Option<String>,
    /// Build a snapshot and compact the log after this many entries.
    pub snapshot_every: u64,
    /// Followers start an election after this long without a leader (the
    /// actual timeout is random between it and twice it).
    pub election_timeout_ms: u64,
    /// The node's directory (snapshots go in `snapshots/` under it).
    pub dir: PathBuf,
    /// The `site` of row versions written here (the hashed sync site id);
    /// None: this member's id.
    pub site: Option<u64>,
    /// The features that ride on the log: the change feed (or its absence,
    /// which removes a feed left from before) and sync's operations.
    pub features: super::LogFeatures,
    /// Automatic clustering.
    pub auto: AutoCluster,
    /// The disk reserve and the low-space mark.
    pub space: SpaceSettings,
    /// Join as a non-voting learner (a read replica) and stay one.
    pub learner: bool,
    /// A witness: votes and keeps the log, applies no data (witness.rs).
    pub witness: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("raft storage: {0}")]
    Storage(String),
    #[error("raft configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Refused(String),
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// The data files lost writes that were on disk.
    #[error("{0}")]
    Damaged(String),
}

pub struct RaftNode {
    raft: Raft,
    /// Open channels to other members, by address (forwarded writes, read
    /// indexes, status): one connection each, reused.
    channels: std::sync::Mutex<BTreeMap<String, tonic::transport::Channel>>,
    /// Strong reads on the leader share leadership confirmations.
    reads: ReadBatcher,
    /// Concurrent client writes share log entries.
    commits: GroupCommit,
    id: NodeId,
    settings: RaftSettings,
    clock: Arc<Clock>,
    network: Network,
    log: LogStore,
    db: Arc<Database>,
    sled: crate::storage::SyncedDb,
    space: Arc<DiskSpace>,
    /// What this node proposes to form the cluster with (automatic
    /// clustering), published in its status.
    candidates: std::sync::Mutex<Vec<String>>,
    /// Whether a node with no cluster yet may take the one a peer message
    /// comes from. With automatic clustering, only once it has agreed to
    /// form that cluster or has asked to join it: a re-imaged node must
    /// not be taken back under its old entry before that is removed.
    may_adopt_cluster: AtomicBool,
}

/// What a write is told when no leader is elected in time.
const NO_LEADER: &str = "no leader: the cluster has not elected one (is a majority of its members up?)";

/// How often the durable watermark is brought up to date.
const WATERMARK_EVERY: Duration = Duration::from_secs(2);

fn unavailable(message: impl Into<String>) -> Status {
    Status::unavailable(message.into())
}

impl RaftNode {
    /// Opens the Raft state in the node's sled database and starts Raft.
    pub async fn start(
        settings: RaftSettings,
        db: Arc<Database>,
        sled: crate::storage::SyncedDb,
        clock: Arc<Clock>,
    ) -> Result<Arc<RaftNode>, ClusterError> {
        let id = node_id(&settings.name);
        let mut seen = BTreeSet::from([settings.name.clone()]);
        for (peer, _) in &settings.peers {
            if !seen.insert(peer.clone()) {
                return Err(ClusterError::Config(format!(
                    "member '{peer}' appears twice (this node is '{}'); every member needs its own id",
                    settings.name
                )));
            }
        }
        let log = LogStore::open(&sled).map_err(|e| ClusterError::Storage(e.to_string()))?;
        log.claim_identity(&settings.name).map_err(ClusterError::Refused)?;
        let auto_off = settings.auto.join.is_empty();
        let sm = StateMachine::open(
            db.clone(),
            sled.clone(),
            clock.clone(),
            &settings.dir.join("snapshots"),
            settings.features.clone(),
            settings.witness,
        )
        .map_err(|e| ClusterError::Storage(e.to_string()))?;
        let applied = sm
            .applied()
            .map_err(|e| ClusterError::Storage(e.to_string()))?
            .map_or(0, |l| l.index);
        watermark::check(&settings.dir, applied).map_err(ClusterError::Damaged)?;
        let config = openraft::Config {
            cluster_name: "chronos".into(),
            heartbeat_interval: (settings.election_timeout_ms / 4).max(20),
            election_timeout_min: settings.election_timeout_ms,
            election_timeout_max: settings.election_timeout_ms * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_every),
            max_in_snapshot_log_to_keep: settings.snapshot_every / 10,
            max_payload_entries: 64,
            install_snapshot_timeout: 2_000,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|e| ClusterError::Config(e.to_string()))?;
        let overrides = settings.peers.iter().map(|(n, a)| (node_id(n), a.clone())).collect();
        let network = Network::new(overrides, log.clone(), settings.witness);
        let raft = Raft::new(id, Arc::new(config), network.clone(), log.clone(), sm)
            .await
            .map_err(|e| ClusterError::Fatal(e.to_string()))?;
        let space = DiskSpace::open(&settings.dir, settings.space);
        Ok(Arc::new(RaftNode {
            commits: GroupCommit::start(raft.clone()),
            raft,
            channels: Default::default(),
            reads: ReadBatcher::default(),
            id,
            settings,
            clock,
            network,
            log,
            db,
            sled,
            space,
            candidates: Default::default(),
            may_adopt_cluster: AtomicBool::new(auto_off),
        }))
    }

    /// Lets this node take the cluster of the next peer message.
    pub(super) fn adopt_cluster(&self) {
        self.may_adopt_cluster.store(true, Ordering::SeqCst);
    }

    pub(super) fn set_candidates(&self, candidates: Vec<String>) {
        *self.candidates.lock().unwrap_or_else(|p| p.into_inner()) = candidates;
    }

    pub fn log(&self) -> &LogStore {
        &self.log
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// True on a witness (witness.rs): no data, no queries.
    pub fn is_witness(&self) -> bool {
        self.settings.witness
    }

    pub(super) fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.election_timeout_ms)
    }

    /// Free disk space, and whether writes are refused for lack of it.
    pub fn space(&self) -> &Arc<DiskSpace> {
        &self.space
    }

    /// A (shared, lazily connecting) channel to another member.
    pub fn channel_to(&self, address: &str) -> Result<tonic::transport::Channel, Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(address) {
            return Ok(c.clone());
        }
        let channel = network::channel(address)
            .map_err(|e| Status::invalid_argument(format!("bad member address '{address}': {e}")))?;
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// The node's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.settings.dir
    }

    /// Writes a consistent copy of the data to `path` (a snapshot file),
    /// pausing writes meanwhile. Returns the number of records.
    pub fn backup_to(&self, path: &std::path::Path) -> std::io::Result<u64> {
        let engine = self.db.engine().clone();
        self.db
            .while_writes_paused(|| super::snapshot::write(engine.as_ref(), path))
    }

    /// The highest log index this node knows to be committed.
    pub fn committed_index(&self) -> u64 {
        self.log.committed_index()
    }

    /// The size of the node's sled database on disk, in bytes.
    pub fn storage_bytes(&self) -> u64 {
        self.sled.size_on_disk().unwrap_or(0)
    }

    /// True when this node is a member of a cluster with a known leader:
    /// it can take writes (forwarding them) and strong reads.
    pub fn is_ready(&self) -> Result<(), String> {
        let m = self.raft.metrics().borrow().clone();
        if m.membership_config.membership().get_node(&self.id).is_none() {
            return Err("not a member of a cluster yet".into());
        }
        match m.current_leader {
            Some(_) => Ok(()),
            None => Err("no leader known".into()),
        }
    }

    /// The value of `now()` for a read on this node.
    pub fn now_ms(&self) -> i64 {
        self.clock.now().physical_ms
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
        self.record_durable().await;
    }

    /// Flushes sled and records the applied index it now holds as durable
    /// (storage::watermark), when it moved since `last`; answers the index.
    async fn record_durable_since(&self, last: u64) -> u64 {
        let applied = self.raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
        if applied <= last {
            return last;
        }
        let (sled, dir) = (self.sled.clone(), self.settings.dir.clone());
        let written = tokio::task::spawn_blocking(move || {
            sled.flush().map_err(std::io::Error::other)?;
            watermark::write(&dir, applied)
        })
        .await;
        match written {
            Ok(Ok(())) => applied,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot record the durable watermark");
                last
            }
            Err(_) => last,
        }
    }

    async fn record_durable(&self) {
        self.record_durable_since(0).await;
    }

    /// Keeps the durable watermark a few seconds behind the applied index,
    /// so a damaged data file is noticed at the next start.
    pub async fn keep_durable_watermark(self: Arc<Self>) {
        let mut last = 0;
        loop {
            tokio::time::sleep(WATERMARK_EVERY).await;
            last = self.record_durable_since(last).await;
        }
    }
}

pub fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "stopped",
    }
}

pub(super) async fn peer_status(address: &str) -> Result<NodeStatusResponse, Status> {
    let channel = network::channel(address).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let mut client = network::raft_client(channel);
    match tokio::time::timeout(PEER_STATUS_TIMEOUT, client.node_status(NodeStatusRequest {})).await {
        Ok(r) => r.map(|r| r.into_inner()),
        Err(_) => Err(unavailable("timed out")),
    }
}
