//! Cluster status and membership changes for the client API: raft's
//! typed views and refusals as protobuf and gRPC status, and a change asked
//! of a member that does not lead sent on to the leader.

use crate::proto::v1::chronos_client::ChronosClient;
use crate::proto::v1::{AddMemberRequest, ClusterStatusResponse, Member, RemoveMemberRequest};
use crate::raft::{ClusterView, MembershipError, RaftNode};
use tonic::Status;

pub fn status_response(view: ClusterView) -> ClusterStatusResponse {
    ClusterStatusResponse {
        members: view
            .members
            .into_iter()
            .map(|m| Member {
                id: m.id,
                address: m.address,
                role: m.role,
                voter: m.voter,
                term: m.term,
                last_log_index: m.last_log_index,
                applied_index: m.applied_index,
            })
            .collect(),
        leader: view.leader,
        term: view.term,
    }
}

fn status_of(e: &MembershipError) -> Status {
    let message = e.to_string();
    match e {
        MembershipError::NotLeader { .. } | MembershipError::Refused(_) => Status::failed_precondition(message),
        MembershipError::Invalid(_) => Status::invalid_argument(message),
        MembershipError::AlreadyExists(_) => Status::already_exists(message),
        MembershipError::NotFound(_) => Status::not_found(message),
        MembershipError::Unavailable(_) => Status::unavailable(message),
    }
}

/// The leader's client API, for a change this node cannot make.
fn leader(node: &RaftNode, address: &str) -> Result<ChronosClient<tonic::transport::Channel>, Status> {
    Ok(ChronosClient::new(node.channel_to(address)?))
}

pub async fn add_member(node: &RaftNode, request: AddMemberRequest) -> Result<ClusterStatusResponse, Status> {
    match node.add_member(&request.id, &request.address, request.learner).await {
        Ok(view) => Ok(status_response(view)),
        Err(MembershipError::NotLeader { address, .. }) => {
            Ok(leader(node, &address)?.add_member(request).await?.into_inner())
        }
        Err(e) => Err(status_of(&e)),
    }
}

pub async fn remove_member(node: &RaftNode, request: RemoveMemberRequest) -> Result<ClusterStatusResponse, Status> {
    match node.remove_member(&request.id).await {
        Ok(view) => Ok(status_response(view)),
        Err(MembershipError::NotLeader { address, .. }) => {
            Ok(leader(node, &address)?.remove_member(request).await?.into_inner())
        }
        Err(e) => Err(status_of(&e)),
    }
}
