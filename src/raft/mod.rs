//! Replication: ChronosDB's use of openraft.
//!
//! The Raft log carries SQL scripts stamped by the leader ([`Command`],
//! with the hybrid logical clock of [`hlc`]); every
//! member applies them in log order through the SQL engine
//! ([`StateMachine`]). The log and vote live in sled next to the data
//! ([`LogStore`]); peers talk over tonic ([`network`], [`service`]).
//! [`RaftNode`] ties it together for the server: writes, reads at a chosen
//! consistency, membership and status.
//!
//! Must not import the features that ride on the log (sync, changes,
//! queue): they reach the state machine through [`LogFeatures`].

// openraft's storage and RPC error types are large by design; they are
// what its traits return, so boxing them here would buy nothing.
#![allow(clippy::result_large_err)]

mod command;
pub mod discovery;
mod group_commit;
pub mod hlc;
mod log_codec;
mod log_store;
pub mod network;
mod node;
mod operation;
mod recorder;
pub mod service;
pub mod snapshot;
mod state_machine;
mod witness;

pub use command::{ClientWrite, Command, IdempotencyKey, NodeError, QueuedWrite, Reply, units_of};
pub use hlc::{Clock, ClockError, HighWater, Timestamp};
pub use log_store::{LogStore, Recovered};
pub use node::{ClusterError, ClusterView, MemberView, MembershipError, RaftNode, RaftSettings, role_name};
pub use operation::{FeatureOp, NoOps, OpError, OpHandler};
pub use recorder::EntryRecorder;
pub use state_machine::{StateMachine, purge_sessions};

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The features that ride on the log, as raft sees them (the daemon picks
/// them): what an applied entry records besides its effects, and who
/// applies the operations entries carry. Raft imports none of them.
#[derive(Clone, Debug)]
pub struct LogFeatures {
    pub recorder: Arc<dyn EntryRecorder>,
    pub ops: Arc<dyn OpHandler>,
}

/// The numeric Raft id of a member: a stable hash of its name.
pub type NodeId = u64;

/// What the cluster knows of a member: its name and where to reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub address: String,
}

openraft::declare_raft_types!(
    /// ChronosDB's Raft types.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = NodeId,
        Node = Member,
        SnapshotData = tokio::fs::File,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;

/// The Raft id for a member name, also the `site` in the versions of the
/// rows it writes: a stable hash (FNV-1a) of the name.
pub fn node_id(name: &str) -> NodeId {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
