//! The node's gRPC server, one port for everything: the Chronos client
//! service (Execute, Query, cluster administration), the change feed, the Raft peer service,
//! the sync service, and the standard gRPC health service. `http` is the optional HTTP
//! listener (metrics, health, JSON API).

mod errors;
pub mod http;
mod http_json;
pub mod limits;
mod membership;
mod metrics;
mod service;
mod write;

pub use errors::status_of;
pub use limits::Limits;
pub use metrics::Metrics;
pub use service::ChronosService;

use crate::changes::service::ChangesService;
use crate::proto::raft::raft_server::RaftServer;
use crate::proto::sync::sync_server::SyncServer;
use crate::proto::v1::changes_server::ChangesServer;
use crate::proto::v1::chronos_server::ChronosServer;
use crate::raft::network::MAX_PEER_MESSAGE;
use crate::raft::service::RaftService;
use crate::sync::service::{MAX_SYNC_MESSAGE, SyncService};
use limits::ConnectionCounts;
use std::future::Future;
use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::ServerTlsConfig;

/// The services the gRPC port serves.
#[derive(Clone)]
pub struct Services {
    pub chronos: ChronosService,
    pub raft: RaftService,
    pub sync: SyncService,
    pub changes: ChangesService,
}

/// Serves until `shutdown` completes, then lets in-flight calls finish.
/// With `tls`, every connection is TLS (plain-text clients fail the
/// handshake).
pub async fn serve(
    listener: TcpListener,
    services: Services,
    max_request_bytes: usize,
    limits: Limits,
    tls: Option<ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let Services {
        chronos: service,
        raft,
        sync,
        changes,
    } = services;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<ChronosServer<ChronosService>>().await;
    // Small replies must not wait for Nagle's algorithm (a 40 ms stall
    // against the client's delayed ACKs).
    let counts = ConnectionCounts::default();
    let incoming = TcpListenerStream::new(listener).filter_map(move |conn| match conn {
        Ok(stream) => {
            let _ = stream.set_nodelay(true);
            counts.admit(stream, limits.max_connections_per_client).map(Ok)
        }
        Err(e) => Some(Err(e)),
    });
    let chronos = ChronosServer::new(service)
        .max_decoding_message_size(max_request_bytes)
        .max_encoding_message_size(usize::MAX);
    let sync = SyncServer::new(sync)
        .max_decoding_message_size(MAX_SYNC_MESSAGE)
        .max_encoding_message_size(MAX_SYNC_MESSAGE);
    let raft = RaftServer::new(raft)
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    builder
        .add_service(health_service)
        .add_service(chronos)
        .add_service(ChangesServer::new(changes).max_encoding_message_size(usize::MAX))
        .add_service(raft)
        .add_service(sync)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
