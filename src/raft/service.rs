//! The server side of peer RPC: decodes openraft's messages and hands them
//! to the local Raft node.

use super::node::RaftNode;
use super::{ClientWrite, NodeError, NodeId, TypeConfig};
use crate::proto::raft::raft_server::Raft as RaftRpc;
use crate::proto::raft::{
    ForwardRequest, ForwardResponse, NodeStatusRequest, NodeStatusResponse, RaftMessage, ReadIndexRequest,
    ReadIndexResponse, SnapshotChunk,
};
use crate::security::{Gate, Need, Role};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct RaftService {
    node: Arc<RaftNode>,
    gate: Arc<Gate>,
}

impl RaftService {
    pub fn new(node: Arc<RaftNode>, gate: Arc<Gate>) -> RaftService {
        RaftService { node, gate }
    }
}

/// Why a node did not do what it was asked, as a gRPC status: on this
/// service and on the client's (server/), the one place it is converted.
impl From<NodeError> for Status {
    fn from(e: NodeError) -> Status {
        match e {
            NodeError::Unavailable(m) => Status::unavailable(m),
            NodeError::NoSpace(m) => Status::resource_exhausted(m),
            NodeError::Internal(m) => Status::internal(m),
            NodeError::Refused(m) => Status::failed_precondition(m),
        }
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(bytes).map_err(|e| Status::invalid_argument(format!("malformed peer message: {e}")))
}

fn reply<T: Serialize>(result: &T) -> Result<Response<RaftMessage>, Status> {
    let payload = serde_json::to_vec(result).map_err(|e| Status::internal(format!("cannot encode reply: {e}")))?;
    Ok(Response::new(RaftMessage {
        payload,
        cluster: String::new(),
    }))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.gate.admit(&request, Need::Member, "AppendEntries").await?;
        let message = request.into_inner();
        self.node.check_cluster(&message.cluster)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&message.payload)?;
        reply(&self.node.raft().append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.gate.admit(&request, Need::Member, "Vote").await?;
        let message = request.into_inner();
        self.node.check_cluster(&message.cluster)?;
        let rpc: VoteRequest<NodeId> = decode(&message.payload)?;
        reply(&self.node.raft().vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<SnapshotChunk>) -> Result<Response<RaftMessage>, Status> {
        self.gate.admit(&request, Need::Member, "InstallSnapshot").await?;
        let chunk = request.into_inner();
        self.node.check_cluster(&chunk.cluster)?;
        let mut rpc: InstallSnapshotRequest<TypeConfig> = decode(&chunk.header)?;
        rpc.data = chunk.data;
        reply(&self.node.raft().install_snapshot(rpc).await)
    }

    async fn read_index(&self, request: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        self.gate.admit(&request, Need::Member, "ReadIndex").await?;
        let index = self.node.leader_read_index().await?;
        Ok(Response::new(ReadIndexResponse { index }))
    }

    async fn node_status(&self, request: Request<NodeStatusRequest>) -> Result<Response<NodeStatusResponse>, Status> {
        self.gate.admit(&request, Need::Role(Role::Read), "NodeStatus").await?;
        Ok(Response::new(self.node.local_status()))
    }

    async fn forward(&self, request: Request<ForwardRequest>) -> Result<Response<ForwardResponse>, Status> {
        self.gate.admit(&request, Need::Member, "Forward").await?;
        let message = request.into_inner();
        self.node.check_cluster(&message.cluster)?;
        let write: ClientWrite = decode(&message.write)?;
        // The member that sent it checked its own disk; this one applies too.
        self.node.space().check_write().map_err(Status::resource_exhausted)?;
        match self.node.write(write, true).await {
            Ok(answer) => {
                let reply = serde_json::to_vec(&answer)
                    .map_err(|e| Status::internal(format!("cannot encode the answer: {e}")))?;
                Ok(Response::new(ForwardResponse { reply }))
            }
            Err(e) => Err(e.into()),
        }
    }
}
