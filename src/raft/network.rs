//! The client side of peer RPC: openraft's messages to other members, over
//! tonic, JSON-encoded (proto/raft.proto). A member is reached at the
//! address this node was given for it in `--peers` if any (a proxy, a NAT
//! address), else at the address stored in the membership.

use super::{LogStore, Member, NodeId, TypeConfig};
use crate::proto::raft::raft_client::RaftClient;
use crate::proto::raft::{RaftMessage, SnapshotChunk};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Largest peer message accepted (a batch of log entries, a snapshot chunk).
pub const MAX_PEER_MESSAGE: usize = 256 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A lazily connecting channel to `address`: over TLS, with this node's
/// certificate, when TLS is on (`security::tls::use_for_peers`).
pub fn channel(address: &str) -> Result<Channel, tonic::transport::Error> {
    let endpoint = match crate::security::tls::peer_tls() {
        Some(tls) => Endpoint::from_shared(format!("https://{address}"))?.tls_config(tls.clone())?,
        None => Endpoint::from_shared(format!("http://{address}"))?,
    };
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect_lazy())
}

pub fn raft_client(channel: Channel) -> RaftClient<Channel> {
    RaftClient::new(channel)
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE)
}

#[derive(Clone)]
pub struct Network {
    /// Addresses given locally for members, by id; they win over the
    /// membership's.
    overrides: Arc<BTreeMap<NodeId, String>>,
    /// Where this node's cluster id is kept; every message carries it.
    log: LogStore,
    /// A witness never sends snapshots: it has no data (witness.rs).
    witness: bool,
}

impl Network {
    pub fn new(overrides: BTreeMap<NodeId, String>, log: LogStore, witness: bool) -> Network {
        Network {
            overrides: Arc::new(overrides),
            log,
            witness,
        }
    }

    pub fn address_of(&self, id: NodeId, member: &Member) -> String {
        self.overrides
            .get(&id)
            .cloned()
            .unwrap_or_else(|| member.address.clone())
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Peer {
        let address = self.address_of(target, node);
        Peer {
            target,
            client: channel(&address).ok().map(raft_client),
            address,
            log: self.log.clone(),
            witness: self.witness,
        }
    }
}

pub struct Peer {
    target: NodeId,
    address: String,
    client: Option<RaftClient<Channel>>,
    log: LogStore,
    witness: bool,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, Member, RaftError<NodeId, E>>;

impl Peer {
    fn client(&self) -> Result<RaftClient<Channel>, Unreachable> {
        self.client
            .clone()
            .ok_or_else(|| Unreachable::new(&std::io::Error::other(format!("bad peer address '{}'", self.address))))
    }

    /// Sends one JSON-encoded request and decodes the peer's
    /// `Result<response, RaftError>`.
    async fn call<Req, Resp, E, F, Fut>(&self, request: &Req, option: &RPCOption, send: F) -> Result<Resp, RpcErr<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        F: FnOnce(RaftClient<Channel>, RaftMessage) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftMessage>, tonic::Status>>,
    {
        let payload = serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let client = self.client().map_err(RPCError::Unreachable)?;
        let message = RaftMessage {
            payload,
            cluster: self.log.cluster_id().unwrap_or_default(),
        };
        let reply = tokio::time::timeout(option.hard_ttl(), send(client, message))
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?
            .map_err(|status| status_error(&status))?;
        decode(self.target, &reply.into_inner().payload)
    }
}

/// A peer's refusal as openraft sees it. Unreachable makes openraft wait
/// (500 ms) before it tries that peer again; a NetworkError it retries at
/// once. A peer that refuses this cluster's messages (not joined yet, of
/// another cluster, not a member, an older version) refuses the next one
/// too: retried at once, that was thousands of log lines a second.
fn status_error<E: std::error::Error>(status: &tonic::Status) -> RpcErr<E> {
    let e = std::io::Error::other(format!("{}: {}", status.code(), status.message()));
    match status.code() {
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Cancelled
        | tonic::Code::FailedPrecondition
        | tonic::Code::PermissionDenied
        | tonic::Code::Unauthenticated
        | tonic::Code::Unimplemented => RPCError::Unreachable(Unreachable::new(&e)),
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

fn decode<Resp: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
    target: NodeId,
    payload: &[u8],
) -> Result<Resp, RpcErr<E>> {
    let result: Result<Resp, RaftError<NodeId, E>> =
        serde_json::from_slice(payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
    result.map_err(|e| RPCError::RemoteError(RemoteError::new(target, e)))
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        self.call(&rpc, &option, |mut c, m| async move { c.append_entries(m).await })
            .await
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> Result<VoteResponse<NodeId>, RpcErr> {
        self.call(&rpc, &option, |mut c, m| async move { c.vote(m).await })
            .await
    }

    async fn install_snapshot(
        &mut self,
        mut rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        if self.witness {
            // Its snapshot holds positions, no rows: installed on a data
            // member it would wipe that member's data. The member waits
            // for a data node to lead instead.
            let refused = std::io::Error::other("a witness has no data to send as a snapshot");
            return Err(RPCError::Unreachable(Unreachable::new(&refused)));
        }
        // The chunk's bytes travel raw beside the JSON header.
        let data = std::mem::take(&mut rpc.data);
        let header = serde_json::to_vec(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client = self.client().map_err(RPCError::Unreachable)?;
        let chunk = SnapshotChunk {
            header,
            data,
            cluster: self.log.cluster_id().unwrap_or_default(),
        };
        let reply = tokio::time::timeout(option.hard_ttl(), client.install_snapshot(chunk))
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?
            .map_err(|status| status_error(&status))?;
        decode(self.target, &reply.into_inner().payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_that_refuses_this_cluster_is_retried_after_a_pause() {
        let refused = tonic::Status::failed_precondition("node 'node3' has not joined a cluster yet");
        assert!(matches!(
            status_error::<openraft::error::Infallible>(&refused),
            RPCError::Unreachable(_)
        ));
        let denied = tonic::Status::permission_denied("for cluster members only");
        assert!(matches!(
            status_error::<openraft::error::Infallible>(&denied),
            RPCError::Unreachable(_)
        ));
        let garbled = tonic::Status::invalid_argument("malformed peer message");
        assert!(matches!(
            status_error::<openraft::error::Infallible>(&garbled),
            RPCError::Network(_)
        ));
    }
}
