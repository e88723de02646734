//! The client: a small library over the gRPC API, result formatting, and
//! the interactive REPL behind `chronos client`, and the offline queue
//! that keeps writes while no node answers.

pub mod access;
pub mod bench;
pub mod changes;
pub mod commands;
pub mod connection;
pub mod format;
pub mod queue;
pub mod repl;
pub mod session;

pub use access::{Access, AccessArgs};
pub use connection::{Client, ClientError, Consistency};
pub use format::{Format, cluster_status as format_cluster_status, sync_status as format_sync_status};
pub use queue::OfflineQueue;
pub use session::{Replay, Session};

/// Asks a node for its sync status.
pub async fn sync_status(
    address: &str,
    access: &Access,
) -> Result<crate::proto::sync::SyncStatusResponse, ClientError> {
    let channel = access.endpoint(address)?.connect_lazy();
    let mut client = crate::proto::sync::sync_client::SyncClient::with_interceptor(channel, access.credentials());
    let call = client.status(crate::proto::sync::SyncStatusRequest {});
    match tokio::time::timeout(std::time::Duration::from_secs(10), call).await {
        Ok(reply) => Ok(reply?.into_inner()),
        Err(_) => Err(ClientError::Unavailable(format!(
            "{address} did not answer within 10 s"
        ))),
    }
}
