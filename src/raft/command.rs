//! What a Raft log entry carries, and what applying it returns.

use crate::sql::parser::params::Params;
use crate::sql::script::{Parameterized, Unit, prepare, prepare_batch};
use crate::sql::{Answer, SqlError};
use serde::{Deserialize, Serialize};

/// A write, as replicated: the SQL text plus everything apply needs to be
/// deterministic. The leader fills in the stamp when it appends the entry,
/// so every member evaluates `now()` and versions rows identically.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Command {
    pub sql: String,
    /// The values of `sql`'s parameters.
    #[serde(default, skip_serializing_if = "Params::is_empty")]
    pub params: Params,
    /// Statements that commit together, each with its parameters (then
    /// `sql` is empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<Parameterized>,
    /// Queued writes of one member, each applied as if sent alone; `key`
    /// names their member's queue and the greatest sequence among them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queued: Vec<QueuedWrite>,
    /// Writes of several clients committed as one entry (group commit),
    /// each applied as if sent alone and answered on its own (then `sql`
    /// is empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<GroupedWrite>,
    /// The entry's HLC stamp (packed [`super::hlc::Timestamp`]).
    pub hlc: u64,
    /// The member that stamped it (the row versions' `site`).
    pub site: u64,
    pub key: Option<IdempotencyKey>,
    /// A feature's operation (sync's) to apply instead of `sql` (which is
    /// then empty); see operation.rs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<super::FeatureOp>,
}

/// A client's write as raft takes it (`RaftNode::write`): the server
/// converts the client's request into this, and a member that does not
/// lead sends it on to the leader in this form (`raft::service` Forward).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClientWrite {
    pub sql: String,
    #[serde(default, skip_serializing_if = "Params::is_empty")]
    pub params: Params,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<Parameterized>,
    /// A member's queued writes, committed as one entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queued: Vec<QueuedWrite>,
    pub key: Option<IdempotencyKey>,
}

/// Why this node did not do what it was asked (a write, an operation, a
/// strong read). Each says what to do about it; the server and the peer
/// service turn it into a gRPC status (`From<NodeError> for Status`, in
/// raft/service.rs).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// No leader or majority answered in time, or the leader went away:
    /// the write may still take effect; retry with the same key.
    #[error("{0}")]
    Unavailable(String),
    /// The leader's disk is nearly full.
    #[error("{0}")]
    NoSpace(String),
    /// This node cannot take it (a witness holds no data; an operation or
    /// a read index must be asked of the leader).
    #[error("{0}")]
    Refused(String),
    /// A reply or peer message that could not be read (a bug).
    #[error("{0}")]
    Internal(String),
}

/// A write taken into a member's queue, with its sequence there.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QueuedWrite {
    pub sequence: u64,
    pub sql: String,
    #[serde(default, skip_serializing_if = "Params::is_empty")]
    pub params: Params,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<Parameterized>,
}

/// One client's write inside a group-commit entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupedWrite {
    pub key: Option<IdempotencyKey>,
    pub sql: String,
    #[serde(default, skip_serializing_if = "Params::is_empty")]
    pub params: Params,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<Parameterized>,
}

impl GroupedWrite {
    pub fn units(&self) -> Result<Vec<Unit>, (usize, SqlError)> {
        units_of(&self.sql, &self.params, &self.batch)
    }
}

impl QueuedWrite {
    pub fn units(&self) -> Result<Vec<Unit>, (usize, SqlError)> {
        units_of(&self.sql, &self.params, &self.batch)
    }
}

impl Command {
    /// The command's SQL, parsed, bound to its parameters and grouped into
    /// the units that commit together.
    pub fn units(&self) -> Result<Vec<Unit>, (usize, SqlError)> {
        units_of(&self.sql, &self.params, &self.batch)
    }
}

/// A script, or a batch when there is one.
pub fn units_of(sql: &str, params: &Params, batch: &[Parameterized]) -> Result<Vec<Unit>, (usize, SqlError)> {
    match batch.is_empty() {
        true => prepare(sql, params),
        false => prepare_batch(batch),
    }
}

/// Names a client's write so a retry is recognised: the state machine
/// answers a repeated key from its session table instead of applying the
/// write again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyKey {
    pub client_id: String,
    pub sequence: u64,
}

/// What applying an entry answers: a client write's answer (kept in the
/// session table for its key), a feature operation's reply in the
/// feature's encoding, or nothing (blank and membership entries, and every
/// entry on a witness).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    #[default]
    Nothing,
    Write(Answer),
    Op(Vec<u8>),
}
