//! Queued writes: acknowledged once they are durable in this node's queue,
//! committed through Raft later, many per entry, by a background batcher.
//!
//! What a queued write is promised: it survives a crash or restart of this
//! node (it was fsynced before the acknowledgement) and is applied exactly
//! once, in queue order, as if sent alone, once a majority of the cluster
//! answers. What it is not: replicated at acknowledgement (it is lost if
//! this node's disk is lost before the batcher commits it), checked against
//! the data at acknowledgement (only its syntax and parameters are), or
//! visible to reads before it is committed. `wait_for` gives its outcome.

mod batcher;
mod store;

pub use batcher::Batcher;
pub use store::{QueueError, QueueSettings, WriteQueue, WriteState};
