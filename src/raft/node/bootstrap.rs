//! Forming or joining the cluster at start, and keeping this node in the
//! cluster it belongs to (stored membership, cluster identity).

use super::{RaftNode, peer_status};
use crate::proto::v1::chronos_client::ChronosClient;
use crate::proto::v1::{AddMemberRequest, ClusterStatusRequest};
use crate::raft::network;
use crate::raft::{Member, NodeId, node_id};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tonic::Status;

impl RaftNode {
    pub(super) fn member_name(&self, id: NodeId) -> String {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map_or_else(|| id.to_string(), |m| m.name.clone())
    }

    pub(super) fn configured_names(&self) -> Vec<String> {
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
    pub(in crate::raft) async fn join(&self, via: &str, me: Member) {
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
}
