//! Raft messages and stored log entries as they arrive from a peer or the
//! disk: decoding never panics, and a decoded write command is prepared
//! the way the state machine prepares it.
//!
//! Shared by the cargo-fuzz target of the same name and by
//! tests/it/fuzz_replay.rs, which `cargo test` runs.

use chronos::raft::{Command, Entry, NodeId, TypeConfig};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};

pub fn check(data: &[u8]) {
    if let Ok(entry) = serde_json::from_slice::<Entry>(data)
        && let openraft::EntryPayload::Normal(command) = entry.payload
    {
        let _ = command.units();
    }
    if let Ok(command) = serde_json::from_slice::<Command>(data) {
        let _ = command.units();
    }
    let _ = serde_json::from_slice::<AppendEntriesRequest<TypeConfig>>(data);
    let _ = serde_json::from_slice::<VoteRequest<NodeId>>(data);
    let _ = serde_json::from_slice::<InstallSnapshotRequest<TypeConfig>>(data);
}
