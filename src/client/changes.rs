//! Following a node's change feed (`chronos changes`, and applications
//! through the library).

use super::access::Access;
use super::connection::{ClientError, endpoint};
use crate::changes::{ChangeEvent, ChangeOp};
use crate::proto::row_from_proto;
use crate::proto::v1::changes_client::ChangesClient;
use crate::proto::v1::{ChangeEvent as ProtoEvent, SubscribeRequest};

/// A subscription's events as they arrive.
pub struct Subscription {
    stream: tonic::Streaming<ProtoEvent>,
}

impl Subscription {
    /// Subscribes to the feed of the node at `address` from Raft index
    /// `from` (0: the oldest kept), for `tables` (all when empty). Without
    /// `follow`, the stream ends once caught up.
    pub async fn open(
        address: &str,
        access: &Access,
        from: u64,
        tables: &[String],
        follow: bool,
    ) -> Result<Subscription, ClientError> {
        let channel = endpoint(address, access)?
            .connect()
            .await
            .map_err(|e| ClientError::Connect {
                address: address.to_string(),
                message: e.to_string(),
            })?;
        let request = SubscribeRequest {
            from_index: from,
            tables: tables.to_vec(),
            no_follow: !follow,
        };
        let stream = ChangesClient::with_interceptor(channel, access.credentials())
            .max_decoding_message_size(usize::MAX)
            .subscribe(request)
            .await?
            .into_inner();
        Ok(Subscription { stream })
    }

    /// The next change; None when the stream ended.
    pub async fn next(&mut self) -> Result<Option<ChangeEvent>, ClientError> {
        let Some(e) = self.stream.message().await? else {
            return Ok(None);
        };
        let op =
            ChangeOp::parse(&e.op).ok_or_else(|| ClientError::Status(format!("unknown change kind '{}'", e.op)))?;
        Ok(Some(ChangeEvent {
            index: e.index,
            seq: e.seq,
            hlc: e.hlc,
            table: e.table,
            op,
            columns: e.columns,
            before: e.before.map(row_from_proto),
            after: e.after.map(row_from_proto),
        }))
    }
}
