//! Status and membership: this node's and the cluster's view, adding
//! and removing members.

use super::{CATCH_UP_TIMEOUT, REQUEST_TIMEOUT, RaftNode, peer_status, role_name};
use crate::proto::raft::NodeStatusResponse;
use crate::raft::network;
use crate::raft::{Member, NodeId, node_id};
use openraft::ChangeMembers;
use std::collections::BTreeSet;

/// The cluster as this node sees it: every member with its role and log
/// positions, the leader and the term.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub members: Vec<MemberView>,
    pub leader: String,
    pub term: u64,
}

/// One member in a [`ClusterView`]; `role` is "unreachable" (positions 0)
/// for a member that did not answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberView {
    pub id: String,
    pub address: String,
    pub role: String,
    pub voter: bool,
    pub term: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
}

/// Why a membership change was not made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// Another member leads: the change must be made there.
    #[error("this node is not the leader; {name} at {address} is")]
    NotLeader { name: String, address: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    NotFound(String),
    /// The change would break the cluster (removing its last voter).
    #[error("{0}")]
    Refused(String),
    /// No leader, or the change did not commit in time.
    #[error("{0}")]
    Unavailable(String),
}

fn unavailable(message: impl Into<String>) -> MembershipError {
    MembershipError::Unavailable(message.into())
}

impl RaftNode {
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
    pub async fn cluster_status(&self) -> ClusterView {
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
                Ok(s) => MemberView {
                    id: member.name,
                    address: member.address,
                    role: s.role,
                    voter,
                    term: s.term,
                    last_log_index: s.last_log_index,
                    applied_index: s.applied_index,
                },
                Err(_) => MemberView {
                    id: member.name,
                    address: member.address,
                    role: "unreachable".into(),
                    voter,
                    ..MemberView::default()
                },
            });
        }
        members.sort_by(|a, b| a.id.cmp(&b.id));
        ClusterView {
            members,
            leader: m.current_leader.map(|l| self.member_name(l)).unwrap_or_default(),
            term: m.current_term,
        }
    }

    /// Refuses a membership change unless this node leads.
    fn check_leads(&self) -> Result<(), MembershipError> {
        let m = self.raft.metrics().borrow().clone();
        match m.current_leader {
            Some(l) if l == self.id => Ok(()),
            Some(l) => {
                let node = m
                    .membership_config
                    .membership()
                    .get_node(&l)
                    .cloned()
                    .ok_or_else(|| unavailable("the leader is unknown here; retry"))?;
                Err(MembershipError::NotLeader {
                    address: self.network.address_of(l, &node),
                    name: node.name,
                })
            }
            None => Err(unavailable("no leader: the cluster has not elected one; retry")),
        }
    }

    /// Adds a member, on the leader: as a learner until it has caught up,
    /// then as a voter unless `learner` (a read replica that never votes).
    pub async fn add_member(&self, name: &str, address: &str, learner: bool) -> Result<ClusterView, MembershipError> {
        check_member(name, address)?;
        self.check_leads()?;
        let id = node_id(name);
        let member = Member {
            name: name.into(),
            address: address.into(),
        };
        let m = self.raft.metrics().borrow().clone();
        if let Some(existing) = m.membership_config.membership().get_node(&id)
            && existing.address != address
        {
            return Err(MembershipError::AlreadyExists(format!(
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

    /// Removes a member from the cluster, on the leader.
    pub async fn remove_member(&self, name: &str) -> Result<ClusterView, MembershipError> {
        self.check_leads()?;
        let id = node_id(name);
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        if membership.get_node(&id).is_none() {
            return Err(MembershipError::NotFound(format!("'{name}' is not a member")));
        }
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let change = match voters.contains(&id) {
            true if voters.len() == 1 => {
                return Err(MembershipError::Refused(
                    "cannot remove the last voter of the cluster".into(),
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

fn check_member(name: &str, address: &str) -> Result<(), MembershipError> {
    let valid =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(MembershipError::Invalid(format!(
            "member id '{name}' must be 1-64 letters, digits, '-' or '_'"
        )));
    }
    if !address.contains(':') || network::channel(address).is_err() {
        return Err(MembershipError::Invalid(format!(
            "'{address}' is not a host:port address"
        )));
    }
    Ok(())
}
