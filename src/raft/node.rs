//! A cluster member: starts openraft over the node's sled database, forms
//! or joins the cluster, and offers the server what it needs: replicated
//! writes (forwarded to the leader when needed), read barriers for the
//! chosen consistency, membership changes and status.

use super::discovery::AutoCluster;
use super::group_commit::{GroupCommit, WriteError};
use super::hlc::Clock;
use super::network::{self, Network};
use super::{Command, IdempotencyKey, LogStore, Member, NodeId, Raft, StateMachine, node_id};
use crate::proto::raft::{NodeStatusRequest, NodeStatusResponse, ReadIndexRequest};
use crate::proto::v1::chronos_client::ChronosClient;
use crate::proto::v1::{
    AddMemberRequest, ClusterStatusRequest, ClusterStatusResponse, ExecuteRequest, ExecuteResponse,
    Member as MemberStatusProto,
};
use crate::sql::Database;
use crate::storage::space::{DiskSpace, SpaceSettings};
use crate::storage::watermark;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState, SnapshotPolicy};
use prost::Message as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::Status;

/// How long a write or a strong read waits for a leader or a majority
/// before the client gets an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const PEER_STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a new member may take to receive the data before it votes.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(240);

pub type MemberStatus = MemberStatusProto;

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

    fn member_name(&self, id: NodeId) -> String {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map_or_else(|| id.to_string(), |m| m.name.clone())
    }

    fn configured_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.settings.peers.iter().map(|(n, _)| n.clone()).collect();
        names.push(self.settings.name.clone());
        names.sort();
        names
    }

    /// Forms the cluster on first start, or joins one. Runs once the
    /// servers listen (peers must be able to reach this node).
    pub async fn bootstrap(self: Arc<Self>) {
        match self.log.is_pristine() {
            Ok(false) => return self.check_stored_membership(),
            Ok(true) => {}
            Err(e) => return tracing::error!(error = %e, "cannot read the raft log"),
        }
        let me = Member {
            name: self.settings.name.clone(),
            address: self.settings.address.clone(),
        };
        if let Some(via) = self.settings.join.clone() {
            return self.join(&via, me).await;
        }
        if !self.settings.auto.join.is_empty() {
            let auto = self.settings.auto.clone();
            return self.discover_and_form(&auto, me).await;
        }
        let mut members = BTreeMap::from([(self.id, me)]);
        for (name, address) in &self.settings.peers {
            members.insert(
                node_id(name),
                Member {
                    name: name.clone(),
                    address: address.clone(),
                },
            );
        }
        let initializer = self.configured_names().into_iter().next().unwrap_or_default();
        if initializer != self.settings.name {
            tracing::info!(%initializer, "new node: waiting for the cluster to be formed by its initializer");
            return;
        }
        if !self.settings.peers.is_empty() && !self.wait_for_pristine_majority().await {
            return;
        }
        let cluster = format!(
            "{:016x}",
            self.id
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
        );
        if let Err(e) = self.log.set_cluster_id(&cluster) {
            return tracing::error!(error = %e, "cannot record the cluster id");
        }
        match self.raft.initialize(members).await {
            Ok(()) => tracing::info!(members = ?self.configured_names(), %cluster, "initialized the cluster"),
            Err(e) => tracing::warn!(error = %e, "cluster initialization refused"),
        }
    }

    /// Waits until a majority of the configured members (this one included)
    /// is reachable, uninitialized and configured alike. False when some
    /// peer already belongs to a cluster: then this node must not form a
    /// new one, it will be contacted by the existing leader instead.
    async fn wait_for_pristine_majority(&self) -> bool {
        let mine = self.configured_names();
        let majority = mine.len() / 2 + 1;
        let mut last_report = Instant::now() - Duration::from_secs(60);
        loop {
            let mut ready = 1;
            let mut problems = Vec::new();
            for (name, address) in &self.settings.peers {
                match peer_status(address).await {
                    Err(e) => problems.push(format!("{name} at {address} unreachable ({e})")),
                    Ok(status) if status.name != *name => problems.push(format!(
                        "{address} answers as '{}', not '{name}': check --peers",
                        status.name
                    )),
                    Ok(status) if status.initialized => {
                        tracing::info!(peer = %name, "a peer already belongs to a cluster: not initializing");
                        return false;
                    }
                    Ok(status) if status.configured != mine => problems.push(format!(
                        "{name} is configured with members {:?}, this node with {:?}: fix --peers",
                        status.configured, mine
                    )),
                    Ok(_) => ready += 1,
                }
            }
            if ready >= majority && problems.iter().all(|p| p.contains("unreachable")) {
                return true;
            }
            if last_report.elapsed() > Duration::from_secs(5) {
                let level_error = problems.iter().any(|p| !p.contains("unreachable"));
                if level_error {
                    tracing::error!(?problems, "cannot form the cluster");
                } else {
                    tracing::info!(
                        ?problems,
                        "waiting for a majority of the members before forming the cluster"
                    );
                }
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Asks a running cluster to add this node, until it does. This node
    /// is pristine: if the cluster still lists a member of its name, that
    /// was this node before its data was lost (re-imaged), and the old
    /// entry is removed first, so a vote it can no longer honour is not
    /// counted.
    pub(super) async fn join(&self, via: &str, me: Member) {
        loop {
            match self.remove_stale_self(via, &me.name).await {
                Ok(()) => break,
                Err(s) => tracing::warn!(%via, error = %s.message(), "joining the cluster; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.adopt_cluster();
        loop {
            let request = AddMemberRequest {
                id: me.name.clone(),
                address: me.address.clone(),
                learner: self.settings.learner,
            };
            let result = match network::channel(via) {
                Ok(channel) => ChronosClient::new(channel).add_member(request).await,
                Err(e) => Err(Status::invalid_argument(format!("bad --join address '{via}': {e}"))),
            };
            match result {
                Ok(_) => return tracing::info!(%via, "joined the cluster"),
                Err(s) if s.code() == tonic::Code::InvalidArgument => {
                    return tracing::error!(%via, error = %s.message(), "cannot join the cluster");
                }
                Err(s) => tracing::warn!(%via, error = %s.message(), "joining the cluster; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn remove_stale_self(&self, via: &str, name: &str) -> Result<(), Status> {
        let channel = network::channel(via).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut client = ChronosClient::new(channel);
        let status = client.cluster_status(ClusterStatusRequest {}).await?.into_inner();
        if !status.members.iter().any(|m| m.id == name) {
            return Ok(());
        }
        tracing::warn!(%name, "the cluster lists a member of this name with data this node no longer has: removing it before joining again");
        let request = crate::proto::v1::RemoveMemberRequest { id: name.to_string() };
        client.remove_member(request).await.map(drop)
    }

    /// A restarted node keeps the membership it stored; say so when
    /// `--peers` tells another story.
    fn check_stored_membership(&self) {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let mut stored: Vec<String> = membership.nodes().map(|(_, m)| m.name.clone()).collect();
        stored.sort();
        if stored.is_empty() {
            return;
        }
        if !stored.contains(&self.settings.name) {
            tracing::warn!(
                ?stored,
                "this node is not a member of its stored cluster (it was removed)"
            );
        } else if self.settings.join.is_none() && !self.settings.peers.is_empty() && stored != self.configured_names() {
            tracing::warn!(
                ?stored,
                configured = ?self.configured_names(),
                "--peers differs from the stored membership; the stored membership is used (change it with `chronos cluster add/remove`)"
            );
        }
    }

    /// Refuses peer messages from another cluster; a node that has none yet
    /// (new, or wiped) joins the sender's.
    pub fn check_cluster(&self, theirs: &str) -> Result<(), Status> {
        if theirs.is_empty() {
            return Ok(());
        }
        match self.log.cluster_id() {
            Some(mine) if mine == theirs => Ok(()),
            Some(mine) => {
                tracing::error!(
                    %mine,
                    %theirs,
                    "refusing a message from another cluster: this data directory belongs to cluster {mine}"
                );
                Err(Status::failed_precondition(format!(
                    "node '{}' belongs to cluster {mine}, not {theirs}",
                    self.settings.name
                )))
            }
            None if !self.may_adopt_cluster.load(Ordering::SeqCst) => Err(Status::failed_precondition(format!(
                "node '{}' has not joined a cluster yet (it is finding one through cluster.join)",
                self.settings.name
            ))),
            None => {
                tracing::info!(cluster = %theirs, "joined cluster");
                self.log
                    .set_cluster_id(theirs)
                    .map_err(|e| Status::internal(format!("cannot record the cluster id: {e}")))
            }
        }
    }

    /// Replicates a write and returns the answer of applying it, forwarding
    /// to the leader when this node is not it.
    pub async fn write(&self, request: ExecuteRequest) -> Result<ExecuteResponse, Status> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let key = (!request.client_id.is_empty()).then(|| IdempotencyKey {
            client_id: request.client_id.clone(),
            sequence: request.sequence,
        });
        let (params, batch) = crate::proto::request_script(&request);
        let queued = super::wire::queued_from_proto(&request.queued_batch);
        loop {
            if self.is_witness() {
                // Its state machine answers nothing: pass the write on.
                match self.leader_node() {
                    Some((leader, node)) if leader != self.id => {
                        let remaining = deadline.saturating_duration_since(Instant::now());
                        return self.forward_write(&request, leader, &node, remaining).await;
                    }
                    Some(_) => return Err(unavailable(super::witness::LEADS_BRIEFLY)),
                    None if Instant::now() >= deadline => return Err(unavailable(NO_LEADER)),
                    None => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
            let command = Command {
                sql: request.sql.clone(),
                params: params.clone(),
                batch: batch.clone(),
                queued: queued.clone(),
                group: Vec::new(),
                hlc: self.clock.now().to_u64(),
                site: self.site(),
                key: key.clone(),
                op: None,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            // Plain writes go through group commit; queued batches, which
            // are already one entry per queue, go alone.
            let write = async {
                match command.queued.is_empty() {
                    true => self.commits.write(command).await,
                    false => self
                        .raft
                        .client_write(command)
                        .await
                        .map(|r| r.data.response)
                        .map_err(WriteError::Raft),
                }
            };
            let written = tokio::time::timeout(remaining, write)
                .await
                .map_err(|_| {
                    unavailable(format!(
                        "the write was not committed within {}s: no majority of the cluster answers. It may still take effect; retry with the same idempotency key",
                        REQUEST_TIMEOUT.as_secs()
                    ))
                })?;
            let forward = match written {
                Ok(response) => {
                    return ExecuteResponse::decode(response.as_slice())
                        .map_err(|e| Status::internal(format!("bad apply result: {e}")));
                }
                Err(WriteError::Raft(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => f,
                Err(WriteError::Raft(e)) => return Err(unavailable(format!("cannot replicate the write: {e}"))),
                Err(WriteError::BrokenReply(m)) => return Err(Status::internal(m)),
            };
            match (forward.leader_id, forward.leader_node) {
                (Some(leader), Some(node)) if leader != self.id => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    return self.forward_write(&request, leader, &node, remaining).await;
                }
                _ if Instant::now() >= deadline => return Err(unavailable(NO_LEADER)),
                // No leader known yet (an election is under way).
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The leader and its membership entry, when one is known.
    fn leader_node(&self) -> Option<(NodeId, Member)> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        let node = m.membership_config.membership().get_node(&leader)?.clone();
        Some((leader, node))
    }

    /// Sends a client's write on to the leader and returns its answer.
    async fn forward_write(
        &self,
        request: &ExecuteRequest,
        leader: NodeId,
        node: &Member,
        remaining: Duration,
    ) -> Result<ExecuteResponse, Status> {
        if request.forwarded {
            return Err(unavailable("this node is no longer the leader; retry"));
        }
        let address = self.network.address_of(leader, node);
        let mut forwarded = request.clone();
        forwarded.forwarded = true;
        let channel = self.channel_to(&address)?;
        let mut client = ChronosClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        match tokio::time::timeout(remaining, client.execute(forwarded)).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(s)) => {
                // A leader that died mid-call: the client may retry (with
                // its key, the write applies once).
                let code = match s.code() {
                    tonic::Code::Cancelled | tonic::Code::Unknown | tonic::Code::Unavailable => {
                        tonic::Code::Unavailable
                    }
                    code => code,
                };
                Err(Status::new(code, format!("leader {}: {}", node.name, s.message())))
            }
            Err(_) => Err(unavailable(format!("leader {} at {address} did not answer", node.name))),
        }
    }

    /// The `site` of the versions this cluster writes: the sync site id
    /// when one is configured, else this member's id.
    fn site(&self) -> u64 {
        self.settings.site.unwrap_or(self.id)
    }

    /// True when this node records the change feed.
    pub fn keeps_changes(&self) -> bool {
        self.settings.features.recorder.keeps()
    }

    /// True while this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.id)
    }

    /// The leader's client address, when another node leads.
    pub fn leader_address(&self) -> Option<String> {
        let (leader, node) = self.leader_node().filter(|(l, _)| *l != self.id)?;
        Some(self.network.address_of(leader, &node))
    }

    /// Replicates a feature's operation through this node, which must be
    /// the leader, and returns its reply once applied here.
    pub async fn propose(&self, op: super::FeatureOp) -> Result<Vec<u8>, Status> {
        if self.is_witness() {
            return Err(Status::failed_precondition(super::witness::HOLDS_NO_DATA));
        }
        let command = Command {
            sql: String::new(),
            params: Default::default(),
            batch: Vec::new(),
            queued: Vec::new(),
            group: Vec::new(),
            hlc: self.clock.now().to_u64(),
            site: self.site(),
            key: None,
            op: Some(op),
        };
        let written = tokio::time::timeout(REQUEST_TIMEOUT, self.raft.client_write(command))
            .await
            .map_err(|_| unavailable("the operation was not committed in time: no majority answers"))?;
        match written {
            Ok(response) => Ok(response.data.response),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(Status::failed_precondition("this node is not the leader"))
            }
            Err(e) => Err(unavailable(format!("cannot replicate the operation: {e}"))),
        }
    }

    /// This node's clock (sync checks remote stamps against it).
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// The read index on the leader: the log position a linearizable read
    /// must see, once leadership is confirmed by a majority.
    pub async fn leader_read_index(&self) -> Result<u64, Status> {
        let ticket = self.reads.arrived.fetch_add(1, Ordering::SeqCst) + 1;
        let mut last = self.reads.last.lock().await;
        // A confirmation that began after this read arrived serves it too.
        if let Some((began, index)) = *last
            && began >= ticket
        {
            return Ok(index);
        }
        let began = self.reads.arrived.load(Ordering::SeqCst);
        let index = self.confirm_read_index().await?;
        *last = Some((began, index));
        Ok(index)
    }

    async fn confirm_read_index(&self) -> Result<u64, Status> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.raft.ensure_linearizable())
            .await
            .map_err(|_| unavailable("the leader could not confirm its leadership with a majority in time"))?;
        match result {
            Ok(log_id) => Ok(log_id.map_or(0, |l| l.index)),
            Err(RaftError::APIError(e)) => Err(Status::failed_precondition(format!("not the leader: {e}"))),
            Err(e) => Err(unavailable(e.to_string())),
        }
    }

    /// Waits until this node may answer a strong (linearizable) read: it has
    /// applied everything the leader had committed when the read began.
    pub async fn strong_read_barrier(&self) -> Result<(), Status> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            match leader {
                Some(leader) if leader == self.id => {
                    return self.leader_read_index().await.map(|_| ());
                }
                Some(leader) => {
                    let node = self
                        .raft
                        .metrics()
                        .borrow()
                        .membership_config
                        .membership()
                        .get_node(&leader)
                        .cloned();
                    let Some(node) = node else {
                        return Err(unavailable("the leader is not in this node's membership yet; retry"));
                    };
                    let address = self.network.address_of(leader, &node);
                    let index = read_index(self.channel_to(&address)?).await.map_err(|s| {
                        unavailable(format!(
                            "cannot reach leader {} for a strong read: {}",
                            node.name,
                            s.message()
                        ))
                    })?;
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    return self
                        .raft
                        .wait(Some(remaining))
                        .applied_index_at_least(Some(index), "strong read")
                        .await
                        .map(|_| ())
                        .map_err(|e| unavailable(format!("this node did not catch up with the leader: {e}")));
                }
                None if Instant::now() >= deadline => {
                    return Err(unavailable(
                        "no leader for a strong read; a local read (--consistency local) may answer",
                    ));
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// This node's own view of itself.
    pub fn local_status(&self) -> NodeStatusResponse {
        let m = self.raft.metrics().borrow().clone();
        let initialized = !matches!(self.log.is_pristine(), Ok(true));
        let role = match self.is_witness() {
            true => format!("witness {}", role_name(m.state)),
            false => role_name(m.state).to_string(),
        };
        NodeStatusResponse {
            name: self.settings.name.clone(),
            role,
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            leader: m.current_leader.map(|l| self.member_name(l)).unwrap_or_default(),
            cluster: self.log.cluster_id().unwrap_or_default(),
            initialized,
            configured: self.configured_names(),
            address: self.settings.address.clone(),
            bootstrap_expect: self.settings.auto.bootstrap_expect as u32,
            candidates: self.candidates.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// Every member with its role and log positions, asking each for its
    /// own view (a member that does not answer is shown as unreachable).
    pub async fn cluster_status(&self) -> ClusterStatusResponse {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut tasks = tokio::task::JoinSet::new();
        for (id, member) in membership.nodes() {
            let (id, member) = (*id, member.clone());
            let address = self.network.address_of(id, &member);
            let voter = voters.contains(&id);
            if id == self.id {
                let s = self.local_status();
                tasks.spawn(async move { (member, address, voter, Ok(s)) });
            } else {
                tasks.spawn(async move {
                    let s = peer_status(&address).await;
                    (member, address, voter, s)
                });
            }
        }
        let mut members = Vec::new();
        while let Some(Ok((member, _, voter, status))) = tasks.join_next().await {
            members.push(match status {
                Ok(s) => MemberStatus {
                    id: member.name,
                    address: member.address,
                    role: s.role,
                    voter,
                    term: s.term,
                    last_log_index: s.last_log_index,
                    applied_index: s.applied_index,
                },
                Err(_) => MemberStatus {
                    id: member.name,
                    address: member.address,
                    role: "unreachable".into(),
                    voter,
                    ..MemberStatus::default()
                },
            });
        }
        members.sort_by(|a, b| a.id.cmp(&b.id));
        ClusterStatusResponse {
            members,
            leader: m.current_leader.map(|l| self.member_name(l)).unwrap_or_default(),
            term: m.current_term,
        }
    }

    /// The leader's client, when this node is not the leader.
    fn leader_client(&self) -> Result<Option<ChronosClient<tonic::transport::Channel>>, Status> {
        let m = self.raft.metrics().borrow().clone();
        match m.current_leader {
            Some(l) if l == self.id => Ok(None),
            Some(l) => {
                let node = m
                    .membership_config
                    .membership()
                    .get_node(&l)
                    .cloned()
                    .ok_or_else(|| unavailable("the leader is unknown here; retry"))?;
                let address = self.network.address_of(l, &node);
                Ok(Some(ChronosClient::new(self.channel_to(&address)?)))
            }
            None => Err(unavailable("no leader: the cluster has not elected one; retry")),
        }
    }

    /// Adds a member: as a learner until it has caught up, then as a voter
    /// unless `learner` (a read replica that never votes).
    pub async fn add_member(&self, name: &str, address: &str, learner: bool) -> Result<ClusterStatusResponse, Status> {
        check_member(name, address)?;
        if let Some(mut leader) = self.leader_client()? {
            let request = AddMemberRequest {
                id: name.into(),
                address: address.into(),
                learner,
            };
            return leader.add_member(request).await.map(|r| r.into_inner());
        }
        let id = node_id(name);
        let member = Member {
            name: name.into(),
            address: address.into(),
        };
        let m = self.raft.metrics().borrow().clone();
        if let Some(existing) = m.membership_config.membership().get_node(&id)
            && existing.address != address
        {
            return Err(Status::already_exists(format!(
                "member '{name}' already exists at {}; remove it first",
                existing.address
            )));
        }
        tracing::info!(%name, %address, "adding member (learner until caught up)");
        tokio::time::timeout(CATCH_UP_TIMEOUT, self.raft.add_learner(id, member, true))
            .await
            .map_err(|_| {
                unavailable(format!(
                    "'{name}' did not catch up within {CATCH_UP_TIMEOUT:?}; it stays a learner"
                ))
            })?
            .map_err(|e| unavailable(format!("cannot add learner '{name}': {e}")))?;
        if learner {
            tracing::info!(%name, "member added as a learner (read replica)");
            return Ok(self.cluster_status().await);
        }
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        tokio::time::timeout(REQUEST_TIMEOUT, self.raft.change_membership(change, false))
            .await
            .map_err(|_| unavailable(format!("making '{name}' a voter did not commit in time")))?
            .map_err(|e| unavailable(format!("cannot make '{name}' a voter: {e}")))?;
        tracing::info!(%name, "member is now a voter");
        Ok(self.cluster_status().await)
    }

    /// Removes a member from the cluster.
    pub async fn remove_member(&self, name: &str) -> Result<ClusterStatusResponse, Status> {
        if let Some(mut leader) = self.leader_client()? {
            let request = crate::proto::v1::RemoveMemberRequest { id: name.into() };
            return leader.remove_member(request).await.map(|r| r.into_inner());
        }
        let id = node_id(name);
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        if membership.get_node(&id).is_none() {
            return Err(Status::not_found(format!("'{name}' is not a member")));
        }
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let change = match voters.contains(&id) {
            true if voters.len() == 1 => {
                return Err(Status::failed_precondition(
                    "cannot remove the last voter of the cluster",
                ));
            }
            true => ChangeMembers::RemoveVoters(BTreeSet::from([id])),
            false => ChangeMembers::RemoveNodes(BTreeSet::from([id])),
        };
        tracing::info!(%name, "removing member");
        tokio::time::timeout(REQUEST_TIMEOUT, self.raft.change_membership(change, false))
            .await
            .map_err(|_| unavailable(format!("removing '{name}' did not commit in time")))?
            .map_err(|e| unavailable(format!("cannot remove '{name}': {e}")))?;
        Ok(self.cluster_status().await)
    }
}

/// Lets concurrent strong reads on the leader share one confirmation of
/// leadership (a heartbeat round to a majority) instead of one each.
#[derive(Default)]
struct ReadBatcher {
    /// Tickets handed to arriving reads.
    arrived: AtomicU64,
    /// The last confirmation: the ticket count when it began, and its read
    /// index. Held while a confirmation runs, so reads queue behind it.
    last: tokio::sync::Mutex<Option<(u64, u64)>>,
}

fn check_member(name: &str, address: &str) -> Result<(), Status> {
    let valid =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(Status::invalid_argument(format!(
            "member id '{name}' must be 1-64 letters, digits, '-' or '_'"
        )));
    }
    if !address.contains(':') || network::channel(address).is_err() {
        return Err(Status::invalid_argument(format!(
            "'{address}' is not a host:port address"
        )));
    }
    Ok(())
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

async fn read_index(channel: tonic::transport::Channel) -> Result<u64, Status> {
    let mut client = network::raft_client(channel);
    match tokio::time::timeout(REQUEST_TIMEOUT, client.read_index(ReadIndexRequest {})).await {
        Ok(r) => r.map(|r| r.into_inner().index),
        Err(_) => Err(unavailable("timed out")),
    }
}
