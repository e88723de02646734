//! A write's answer as the replicated log hands it back and keeps it: what
//! each statement did and, if one failed, where and why (its stable code
//! and message). Plain data with serde, so Raft can carry it and keep it
//! in its session table without knowing protobuf; the server converts it
//! for the client (`proto::execute_answer`).

use super::database::{ScriptOutcome, StatementOutput};
use super::types::Row;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Output>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// An entry of several writes (queued, or grouped by group commit):
    /// each write's answer, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub each: Vec<Answer>,
}

/// What one statement did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Output {
    Affected {
        kind: String,
        count: u64,
    },
    Rows {
        kind: String,
        columns: Vec<String>,
        rows: Vec<Row>,
    },
}

/// The statement that failed (0-based), with the error's stable code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub statement_index: u32,
    pub code: String,
    pub message: String,
}

/// The code of a write that was applied before and whose answer is gone.
pub const ALREADY_APPLIED: &str = "already_applied";

impl Answer {
    pub fn of(outcome: &ScriptOutcome) -> Answer {
        Answer {
            outputs: outcome.outputs.iter().map(Output::of).collect(),
            error: outcome.error.as_ref().map(|(index, e)| Failure {
                statement_index: u32::try_from(*index).unwrap_or(u32::MAX),
                code: e.code().to_string(),
                message: e.to_string(),
            }),
            each: Vec::new(),
        }
    }

    /// The answers of an entry of several writes.
    pub fn list(each: Vec<Answer>) -> Answer {
        Answer {
            each,
            ..Answer::default()
        }
    }

    /// The answer for request `sequence` of `of` (a client, a queue),
    /// applied before, whose own answer is no longer kept.
    pub fn already_applied(sequence: u64, of: &str) -> Answer {
        Answer {
            error: Some(Failure {
                statement_index: 0,
                code: ALREADY_APPLIED.into(),
                message: format!("request {sequence} of {of} was applied before (its answer is no longer kept)"),
            }),
            ..Answer::default()
        }
    }

    pub fn is_already_applied(&self) -> bool {
        self.error.as_ref().is_some_and(|e| e.code == ALREADY_APPLIED)
    }
}

impl Output {
    fn of(output: &StatementOutput) -> Output {
        match output {
            StatementOutput::Affected { kind, count } => Output::Affected {
                kind: kind.to_string(),
                count: *count,
            },
            StatementOutput::Rows { kind, columns, rows } => Output::Rows {
                kind: kind.to_string(),
                columns: columns.clone(),
                rows: rows.clone(),
            },
        }
    }
}
