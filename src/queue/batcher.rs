//! The batcher: commits the head of the queue through Raft, many writes
//! per entry, and records their outcomes.

use super::store::WriteQueue;
use crate::proto::execute_answer;
use crate::proto::v1::ExecuteResponse;
use crate::raft::{ClientWrite, IdempotencyKey, RaftNode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct Batcher {
    pub node: Arc<RaftNode>,
    pub queue: Arc<WriteQueue>,
    /// After the first write arrives in an empty queue, wait this long for
    /// more to share its entry.
    pub window: Duration,
    pub stopping: watch::Receiver<bool>,
}

impl Batcher {
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(50);
        while !*self.stopping.borrow() {
            let queue = self.queue.clone();
            let limit = queue.settings().batch;
            let head = match tokio::task::spawn_blocking(move || queue.head(limit)).await {
                Ok(Ok(head)) => head,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the write queue");
                    self.pause(&mut backoff).await;
                    continue;
                }
                Err(_) => return,
            };
            if head.is_empty() {
                tokio::select! {
                    _ = self.queue.pushed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = self.stopping.wait_for(|s| *s) => return,
                }
                tokio::time::sleep(self.window).await;
                continue;
            }
            let last = head.last().map_or(0, |w| w.sequence);
            let write = ClientWrite {
                queued: head.clone(),
                key: Some(IdempotencyKey {
                    client_id: self.queue.client_id().to_string(),
                    sequence: last,
                }),
                ..ClientWrite::default()
            };
            let response = match self.node.write(write, false).await.map(|a| execute_answer(&a)) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, waiting = self.queue.len(), "queued writes not committed yet; retrying");
                    self.pause(&mut backoff).await;
                    continue;
                }
            };
            let outcomes = match outcomes_of(response, head.len()) {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!(error = %e, "queued writes refused as a whole; retrying");
                    self.pause(&mut backoff).await;
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            let queue = self.queue.clone();
            let completed = tokio::task::spawn_blocking(move || queue.complete(&head, outcomes)).await;
            if let Ok(Err(e)) | Err(e) = completed.map_err(|e| super::QueueError::Storage(e.to_string())) {
                // The writes are committed; on restart they are resent and
                // skipped as applied.
                tracing::error!(error = %e, "cannot record committed queued writes");
                self.pause(&mut backoff).await;
            }
        }
    }

    async fn pause(&mut self, backoff: &mut Duration) {
        tokio::select! {
            _ = tokio::time::sleep(*backoff) => {}
            _ = self.stopping.wait_for(|s| *s) => {}
        }
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
    }
}

/// Each write's outcome from the entry's answer; None where the write was
/// applied by an earlier entry (its outcome is not known). An answer that
/// is not about these writes is an error: they are sent again.
fn outcomes_of(response: ExecuteResponse, writes: usize) -> Result<Vec<Option<ExecuteResponse>>, String> {
    let applied_before = |r: &ExecuteResponse| r.error.as_ref().is_some_and(|e| e.code == "already_applied");
    if response.queued_outcomes.len() == writes {
        let each = |r: ExecuteResponse| (!applied_before(&r)).then_some(r);
        return Ok(response.queued_outcomes.into_iter().map(each).collect());
    }
    // The whole entry repeated writes applied before.
    if applied_before(&response) && response.queued_outcomes.is_empty() {
        return Ok(vec![None; writes]);
    }
    Err(match response.error {
        Some(e) => format!("{} ({})", e.message, e.code),
        None => format!("{} outcomes for {writes} writes", response.queued_outcomes.len()),
    })
}
