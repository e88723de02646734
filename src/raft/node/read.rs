//! Read barriers for the chosen consistency: the leader's read index,
//! shared by concurrent strong reads, and a follower's wait for it.

use super::{REQUEST_TIMEOUT, RaftNode};
use crate::proto::raft::ReadIndexRequest;
use crate::raft::{NodeError, network};
use openraft::error::RaftError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::Status;

fn unavailable(message: impl Into<String>) -> NodeError {
    NodeError::Unavailable(message.into())
}

impl RaftNode {
    /// The read index on the leader: the log position a linearizable read
    /// must see, once leadership is confirmed by a majority.
    pub async fn leader_read_index(&self) -> Result<u64, NodeError> {
        let ticket = self.reads.arrived.fetch_add(1, Ordering::SeqCst) + 1;
        let mut last = self.reads.last.lock().await;
        // A confirmation that began after this read arrived serves it too.
        if let Some((began, index)) = *last
            && began >= ticket
        {
            return Ok(index);
        }
        let began = self.reads.arrived.load(Ordering::SeqCst);
        let index = self.confirm_read_index().await?;
        *last = Some((began, index));
        Ok(index)
    }

    async fn confirm_read_index(&self) -> Result<u64, NodeError> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.raft.ensure_linearizable())
            .await
            .map_err(|_| unavailable("the leader could not confirm its leadership with a majority in time"))?;
        match result {
            Ok(log_id) => Ok(log_id.map_or(0, |l| l.index)),
            Err(RaftError::APIError(e)) => Err(NodeError::Refused(format!("not the leader: {e}"))),
            Err(e) => Err(unavailable(e.to_string())),
        }
    }

    /// Waits until this node may answer a strong (linearizable) read: it has
    /// applied everything the leader had committed when the read began.
    pub async fn strong_read_barrier(&self) -> Result<(), NodeError> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            match leader {
                Some(leader) if leader == self.id => {
                    return self.leader_read_index().await.map(|_| ());
                }
                Some(leader) => {
                    let node = self
                        .raft
                        .metrics()
                        .borrow()
                        .membership_config
                        .membership()
                        .get_node(&leader)
                        .cloned();
                    let Some(node) = node else {
                        return Err(unavailable("the leader is not in this node's membership yet; retry"));
                    };
                    let address = self.network.address_of(leader, &node);
                    let channel = self.channel_to(&address).map_err(|s| unavailable(s.message()))?;
                    let index = read_index(channel).await.map_err(|s| {
                        unavailable(format!(
                            "cannot reach leader {} for a strong read: {}",
                            node.name,
                            s.message()
                        ))
                    })?;
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    return self
                        .raft
                        .wait(Some(remaining))
                        .applied_index_at_least(Some(index), "strong read")
                        .await
                        .map(|_| ())
                        .map_err(|e| unavailable(format!("this node did not catch up with the leader: {e}")));
                }
                None if Instant::now() >= deadline => {
                    return Err(unavailable(
                        "no leader for a strong read; a local read (--consistency local) may answer",
                    ));
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// Lets concurrent strong reads on the leader share one confirmation of
/// leadership (a heartbeat round to a majority) instead of one each.
#[derive(Default)]
pub(super) struct ReadBatcher {
    /// Tickets handed to arriving reads.
    arrived: AtomicU64,
    /// The last confirmation: the ticket count when it began, and its read
    /// index. Held while a confirmation runs, so reads queue behind it.
    last: tokio::sync::Mutex<Option<(u64, u64)>>,
}

async fn read_index(channel: tonic::transport::Channel) -> Result<u64, Status> {
    let mut client = network::raft_client(channel);
    match tokio::time::timeout(REQUEST_TIMEOUT, client.read_index(ReadIndexRequest {})).await {
        Ok(r) => r.map(|r| r.into_inner().index),
        Err(_) => Err(Status::unavailable("timed out")),
    }
}
