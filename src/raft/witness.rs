//! The witness (`role = "witness"`): a voting member that keeps the Raft
//! log but applies no data, so a site of two data nodes and a witness stays
//! writable when any one of the three is lost.
//!
//! It stores and acknowledges log entries like any voter, so an entry is
//! committed on a data node plus either the other data node or the
//! witness. Its state machine records only the applied position and the
//! membership; a snapshot installed on it is reduced to that. It never
//! sends a snapshot (it has no data to send), answers no SQL, and forwards
//! writes to the leader.
//!
//! When a data node is lost, the other may lack entries that were
//! committed with the witness's vote; the witness then refuses to elect it,
//! because its own log is longer. So the witness may campaign and lead, but
//! only to bring a data node up to date: while it leads it refuses writes,
//! and as soon as a data voter holds its whole log it stops sending
//! heartbeats and campaigning, its lease runs out, and that voter is
//! elected. Then it takes part as before.

use super::NodeError;
use super::node::RaftNode;
use openraft::ServerState;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a client is told when it writes or reads through a witness.
pub const HOLDS_NO_DATA: &str =
    "this member is a witness: it holds no data and answers no queries; connect to a data member";
/// What a write is told while the witness leads (briefly).
pub const LEADS_BRIEFLY: &str = "the witness leads while a data member catches up; retry shortly";

impl RaftNode {
    /// Refuses a query, a backup or a queued write on a witness: it holds
    /// no rows, and its apply answers nothing.
    pub fn holds_data(&self) -> Result<(), NodeError> {
        match self.is_witness() {
            true => Err(NodeError::Refused(HOLDS_NO_DATA.into())),
            false => Ok(()),
        }
    }

    /// Hands leadership back to a data voter each time this witness is
    /// elected, once one holds the whole log. Runs until Raft stops.
    pub async fn hand_over_leadership(self: Arc<Self>) {
        if !self.is_witness() {
            return;
        }
        let mut metrics = self.raft().metrics();
        while metrics.changed().await.is_ok() {
            let m = metrics.borrow().clone();
            if m.state != ServerState::Leader {
                continue;
            }
            let Some(last) = m.last_log_index else { continue };
            let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
            let caught_up = m.replication.as_ref().and_then(|progress| {
                progress
                    .iter()
                    .find(|(id, matched)| {
                        **id != self.id() && voters.contains(id) && matched.is_some_and(|l| l.index >= last)
                    })
                    .map(|(id, _)| *id)
            });
            let Some(successor) = caught_up else { continue };
            tracing::info!(
                successor,
                last_log_index = last,
                "witness leads and a data member holds its log: stepping back"
            );
            self.step_back().await;
        }
    }

    /// Stops heartbeats and campaigns until another member leads (or a
    /// while has passed: then it tries again on the next change).
    async fn step_back(&self) {
        let runtime = self.raft().runtime_config();
        runtime.heartbeat(false);
        runtime.elect(false);
        let deadline = Instant::now() + self.election_timeout() * 10;
        while Instant::now() < deadline && self.raft().metrics().borrow().state == ServerState::Leader {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        runtime.heartbeat(true);
        runtime.elect(true);
    }
}
