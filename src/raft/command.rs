//! What a Raft log entry carries, and what applying it returns.

use serde::{Deserialize, Serialize};

/// A write, as replicated: the SQL text plus everything apply needs to be
/// deterministic. The leader fills in the stamp when it appends the entry,
/// so every member evaluates `now()` and versions rows identically.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub sql: String,
    /// The entry's HLC stamp (packed [`crate::sync::Timestamp`]).
    pub hlc: u64,
    /// The member that stamped it (the row versions' `site`).
    pub site: u64,
    pub key: Option<IdempotencyKey>,
    /// A sync operation to apply instead of `sql` (which is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<crate::sync::Op>,
}

/// Names a client's write so a retry is recognised: the state machine
/// answers a repeated key from its session table instead of applying the
/// write again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyKey {
    pub client_id: String,
    pub sequence: u64,
}

/// The outcome of applying an entry: a prost-encoded
/// [`crate::proto::v1::ExecuteResponse`], ready to send to the client
/// (and stored as such in the session table).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub response: Vec<u8>,
}
