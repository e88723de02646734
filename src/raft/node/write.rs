//! Replicated writes: client writes (forwarded to the leader when this
//! node is not it) and the features' operations.

use super::{NO_LEADER, REQUEST_TIMEOUT, RaftNode, unavailable};
use crate::proto::v1::chronos_client::ChronosClient;
use crate::proto::v1::{ExecuteRequest, ExecuteResponse};
use crate::raft::group_commit::WriteError;
use crate::raft::hlc::Clock;
use crate::raft::{Command, IdempotencyKey, Member, NodeId};
use openraft::error::{ClientWriteError, RaftError};
use prost::Message as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Status;

impl RaftNode {
    /// Replicates a write and returns the answer of applying it, forwarding
    /// to the leader when this node is not it.
    pub async fn write(&self, request: ExecuteRequest) -> Result<ExecuteResponse, Status> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let key = (!request.client_id.is_empty()).then(|| IdempotencyKey {
            client_id: request.client_id.clone(),
            sequence: request.sequence,
        });
        let (params, batch) = crate::proto::request_script(&request);
        let queued = crate::raft::wire::queued_from_proto(&request.queued_batch);
        loop {
            if self.is_witness() {
                // Its state machine answers nothing: pass the write on.
                match self.leader_node() {
                    Some((leader, node)) if leader != self.id => {
                        let remaining = deadline.saturating_duration_since(Instant::now());
                        return self.forward_write(&request, leader, &node, remaining).await;
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
    pub async fn propose(&self, op: crate::raft::FeatureOp) -> Result<Vec<u8>, Status> {
        if self.is_witness() {
            return Err(Status::failed_precondition(crate::raft::witness::HOLDS_NO_DATA));
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
}
