//! Replicated writes: client writes (sent on to the leader over the peer
//! service when this node is not it) and the features' operations.

use super::{NO_LEADER, REQUEST_TIMEOUT, RaftNode};
use crate::proto::raft::ForwardRequest;
use crate::raft::group_commit::{WriteError, written_answer};
use crate::raft::hlc::Clock;
use crate::raft::network;
use crate::raft::{ClientWrite, Command, Member, NodeError, NodeId, Reply};
use crate::sql::Answer;
use openraft::error::{ClientWriteError, RaftError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Status;

fn unavailable(message: impl Into<String>) -> NodeError {
    NodeError::Unavailable(message.into())
}

impl RaftNode {
    /// Replicates a write and returns its answer, sending it on to the
    /// leader when this node is not it. `forwarded`: it came from another
    /// member (no second hop).
    pub async fn write(&self, write: ClientWrite, forwarded: bool) -> Result<Answer, NodeError> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            if self.is_witness() {
                // Its state machine answers nothing: pass the write on.
                match self.leader_node() {
                    Some((leader, _)) if leader != self.id && forwarded => {
                        return Err(unavailable("this node is no longer the leader; retry"));
                    }
                    Some((leader, node)) if leader != self.id => {
                        return self.forward_write(&write, leader, &node, deadline).await;
                    }
                    Some(_) => return Err(unavailable(crate::raft::witness::LEADS_BRIEFLY)),
                    None if Instant::now() >= deadline => return Err(unavailable(NO_LEADER)),
                    None => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
            let command = Command {
                sql: write.sql.clone(),
                params: write.params.clone(),
                batch: write.batch.clone(),
                queued: write.queued.clone(),
                group: Vec::new(),
                hlc: self.clock.now().to_u64(),
                site: self.site(),
                key: write.key.clone(),
                op: None,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            // Plain writes go through group commit; queued batches, which
            // are already one entry per queue, go alone.
            let commit = async {
                match command.queued.is_empty() {
                    true => self.commits.write(command).await,
                    false => self
                        .raft
                        .client_write(command)
                        .await
                        .map_err(WriteError::Raft)
                        .and_then(|r| written_answer(r.data)),
                }
            };
            let written = tokio::time::timeout(remaining, commit).await.map_err(|_| {
                unavailable(format!(
                    "the write was not committed within {}s: no majority of the cluster answers. It may still take effect; retry with the same idempotency key",
                    REQUEST_TIMEOUT.as_secs()
                ))
            })?;
            let forward = match written {
                Ok(reply) => return Ok(reply),
                Err(WriteError::Raft(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => f,
                Err(WriteError::Raft(e)) => return Err(unavailable(format!("cannot replicate the write: {e}"))),
                Err(WriteError::BrokenReply(m)) => return Err(NodeError::Internal(m)),
            };
            match (forward.leader_id, forward.leader_node) {
                (Some(leader), Some(_)) if forwarded && leader != self.id => {
                    return Err(unavailable("this node is no longer the leader; retry"));
                }
                (Some(leader), Some(node)) if leader != self.id => {
                    return self.forward_write(&write, leader, &node, deadline).await;
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

    /// Sends a client's write on to the leader (peer service `Forward`)
    /// and returns its reply.
    async fn forward_write(
        &self,
        write: &ClientWrite,
        leader: NodeId,
        node: &Member,
        deadline: Instant,
    ) -> Result<Answer, NodeError> {
        let address = self.network.address_of(leader, node);
        let request = ForwardRequest {
            write: serde_json::to_vec(write)
                .map_err(|e| NodeError::Internal(format!("cannot encode the write: {e}")))?,
            cluster: self.log.cluster_id().unwrap_or_default(),
        };
        let channel = self.channel_to(&address).map_err(|s| unavailable(s.message()))?;
        let mut client = network::raft_client(channel);
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, client.forward(request)).await {
            Ok(Ok(reply)) => serde_json::from_slice(&reply.into_inner().reply)
                .map_err(|e| NodeError::Internal(format!("leader {}: unreadable answer: {e}", node.name))),
            Ok(Err(s)) => Err(failure_of(&s, &node.name)),
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
    pub async fn propose(&self, op: crate::raft::FeatureOp) -> Result<Vec<u8>, NodeError> {
        if self.is_witness() {
            return Err(NodeError::Refused(crate::raft::witness::HOLDS_NO_DATA.into()));
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
            Ok(response) => match response.data {
                Reply::Op(reply) => Ok(reply),
                other => Err(NodeError::Internal(format!("an operation was answered {other:?}"))),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(NodeError::Refused("this node is not the leader".into()))
            }
            Err(e) => Err(unavailable(format!("cannot replicate the operation: {e}"))),
        }
    }

    /// This node's clock (sync checks remote stamps against it).
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }
}

/// The leader's refusal of a forwarded write, as this member reports it.
fn failure_of(status: &Status, leader: &str) -> NodeError {
    let message = format!("leader {leader}: {}", status.message());
    match status.code() {
        tonic::Code::ResourceExhausted => NodeError::NoSpace(message),
        tonic::Code::FailedPrecondition => NodeError::Refused(message),
        tonic::Code::Internal | tonic::Code::InvalidArgument | tonic::Code::DataLoss => NodeError::Internal(message),
        tonic::Code::Unimplemented => unavailable(format!(
            "leader {leader} does not take forwarded writes (an older version?): send writes to it, or upgrade it"
        )),
        // A leader that went away mid-call, or refused this member: the
        // client may retry (with its key, the write applies once).
        _ => unavailable(message),
    }
}
