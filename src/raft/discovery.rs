//! Automatic clustering: nodes that know only where to look for each other
//! (`cluster.join`: host:port entries or DNS names whose A/AAAA records
//! list the peers) form one cluster once `cluster.bootstrap_expect` of them
//! have found each other, or join the cluster they find; and a leader can
//! remove members dead for longer than `cluster.reap_after_s`.
//!
//! Forming happens exactly once: each node proposes the `bootstrap_expect`
//! lowest-named pristine nodes it sees, and initializes only when every
//! node of that set proposes the same set. They all then initialize with
//! the same membership and the same cluster id, which Raft allows; a node
//! that finds a member of a cluster instead joins it.

use super::node::{RaftNode, peer_status};
use super::{Member, NodeId, node_id};
use crate::proto::raft::NodeStatusResponse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUND: Duration = Duration::from_millis(500);
const REPORT_EVERY: Duration = Duration::from_secs(5);
const REAP_CHECK: Duration = Duration::from_secs(2);
/// How long a formed cluster may take to elect its first leader.
const FORMING: Duration = Duration::from_secs(60);
/// How long after that the proposal stays published.
const FORMING_GRACE: Duration = Duration::from_secs(5);

/// The `[cluster]` settings a node runs with.
#[derive(Clone, Debug, Default)]
pub struct AutoCluster {
    /// Form a new cluster once this many pristine nodes found each other
    /// (0: never form one; only join).
    pub bootstrap_expect: usize,
    /// Where to look for the others.
    pub join: Vec<String>,
}

impl From<&crate::config::ClusterConfig> for AutoCluster {
    fn from(c: &crate::config::ClusterConfig) -> AutoCluster {
        AutoCluster {
            bootstrap_expect: c.bootstrap_expect,
            join: c.join.clone(),
        }
    }
}

/// The addresses the `join` entries stand for now (DNS is asked each
/// time, so records added later are seen).
pub async fn resolve(entries: &[String]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for entry in entries {
        if entry.parse::<std::net::SocketAddr>().is_ok() {
            out.insert(entry.clone());
            continue;
        }
        match tokio::net::lookup_host(entry.as_str()).await {
            Ok(addresses) => out.extend(addresses.map(|a| a.to_string())),
            Err(e) => tracing::debug!(%entry, error = %e, "cannot resolve a cluster.join entry"),
        }
    }
    out.into_iter().collect()
}

/// `name=address` for the candidate list.
fn candidate(name: &str, address: &str) -> String {
    format!("{name}={address}")
}

impl RaftNode {
    /// Finds the other nodes and forms the cluster with them, or joins the
    /// one they belong to. Runs on a pristine node until one happens.
    pub(super) async fn discover_and_form(self: &Arc<Self>, auto: &AutoCluster, me: Member) {
        let mut last_report = Instant::now() - REPORT_EVERY;
        loop {
            // Reached by the leader of a cluster formed with this node.
            if !matches!(self.log().is_pristine(), Ok(true)) {
                // Those who formed it keep publishing the proposal a while
                // for other late starters; this node need not.
                self.set_candidates(Vec::new());
                return tracing::info!("joined the cluster formed with this node");
            }
            let mut forming = false;
            let mut pristine = BTreeMap::from([(me.name.clone(), me.address.clone())]);
            let mut statuses: BTreeMap<String, NodeStatusResponse> = BTreeMap::new();
            let mut problems = Vec::new();
            for address in resolve(&auto.join).await {
                let Ok(status) = peer_status(&address).await else {
                    continue;
                };
                if status.name == me.name {
                    continue;
                }
                let reach = if status.address.is_empty() {
                    address.clone()
                } else {
                    status.address.clone()
                };
                if status.initialized {
                    // Just formed with this node in it (the peer saw the
                    // agreement first): its leader will reach this node.
                    if status.candidates.contains(&candidate(&me.name, &me.address)) {
                        self.adopt_cluster();
                        forming = true;
                        continue;
                    }
                    tracing::info!(via = %reach, member = %status.name, "found a member of a cluster: joining it");
                    return self.join(&reach, me).await;
                }
                if status.bootstrap_expect as usize != auto.bootstrap_expect {
                    problems.push(format!(
                        "{} at {reach} expects {} members, this node {}",
                        status.name, status.bootstrap_expect, auto.bootstrap_expect
                    ));
                    continue;
                }
                pristine.insert(status.name.clone(), reach);
                statuses.insert(status.name.clone(), status);
            }
            let proposal: Vec<String> = match auto.bootstrap_expect {
                0 => Vec::new(),
                n if pristine.len() >= n => pristine.iter().take(n).map(|(k, v)| candidate(k, v)).collect(),
                _ => Vec::new(),
            };
            if forming {
                tokio::time::sleep(ROUND).await;
                continue;
            }
            self.set_candidates(proposal.clone());
            let agreed = !proposal.is_empty()
                && proposal.iter().all(|c| {
                    let name = c.split('=').next().unwrap_or_default();
                    name == me.name || statuses.get(name).is_some_and(|s| s.candidates == proposal)
                });
            if agreed {
                return self.form(&proposal).await;
            }
            if last_report.elapsed() >= REPORT_EVERY {
                let found: Vec<&String> = pristine.keys().collect();
                match auto.bootstrap_expect {
                    0 => tracing::info!(?found, "looking for a cluster to join"),
                    n => tracing::info!(
                        ?found,
                        expect = n,
                        ?problems,
                        "waiting for the other members before forming the cluster"
                    ),
                }
                last_report = Instant::now();
            }
            tokio::time::sleep(ROUND).await;
        }
    }

    /// Initializes the cluster with the agreed members. Every one of them
    /// does so, with the same membership and cluster id.
    async fn form(&self, agreed: &[String]) {
        let mut members = BTreeMap::new();
        for c in agreed {
            let (name, address) = c.split_once('=').unwrap_or((c, ""));
            members.insert(
                node_id(name),
                Member {
                    name: name.to_string(),
                    address: address.to_string(),
                },
            );
        }
        self.adopt_cluster();
        // The same on every member: the agreed set names the cluster.
        let cluster = format!("{:016x}", node_id(&agreed.join(",")));
        if let Err(e) = self.log().set_cluster_id(&cluster) {
            return tracing::error!(error = %e, "cannot record the cluster id");
        }
        match self.raft().initialize(members).await {
            Ok(()) => tracing::info!(members = ?agreed, %cluster, "formed the cluster"),
            Err(e) => tracing::info!(error = %e, "cluster already formed"),
        }
        // The proposal stays published while the others may still be
        // pristine and about to be reached by the leader; after that, a
        // pristine node of the same name is one that lost its data, and
        // must join as a new member.
        let mut metrics = self.raft().metrics();
        let _ = tokio::time::timeout(FORMING, metrics.wait_for(|m| m.current_leader.is_some())).await;
        tokio::time::sleep(FORMING_GRACE).await;
        self.set_candidates(Vec::new());
    }

    /// On the leader: removes members that no one could reach for
    /// `reap_after`. Runs for the node's life.
    pub async fn reap_dead_members(self: Arc<Self>, reap_after: Duration) {
        let mut last_seen: BTreeMap<NodeId, Instant> = BTreeMap::new();
        loop {
            tokio::time::sleep(REAP_CHECK).await;
            if !self.is_leader() {
                last_seen.clear();
                continue;
            }
            let members: Vec<(NodeId, Member)> = {
                let m = self.raft().metrics().borrow().clone();
                m.membership_config
                    .membership()
                    .nodes()
                    .map(|(id, member)| (*id, member.clone()))
                    .collect()
            };
            for (id, member) in members {
                if id == self.id() {
                    continue;
                }
                let seen = last_seen.entry(id).or_insert_with(Instant::now);
                if peer_status(&member.address).await.is_ok() {
                    *seen = Instant::now();
                } else if seen.elapsed() >= reap_after {
                    tracing::warn!(member = %member.name, after = ?reap_after, "removing a member unreachable for too long");
                    match self.remove_member(&member.name).await {
                        Ok(_) => {
                            last_seen.remove(&id);
                        }
                        Err(e) => {
                            tracing::warn!(member = %member.name, error = %e, "cannot remove the member")
                        }
                    }
                }
            }
        }
    }
}
