//! The generated gRPC types (proto/chronos.proto, raft.proto, sync.proto) and conversions between
//! them and SQL values, shared by the server and the client.

#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("chronos.v1");
}

/// Peer RPC between cluster members (proto/raft.proto).
#[allow(clippy::all, clippy::pedantic)]
pub mod raft {
    tonic::include_proto!("chronos.raft.v1");
}

/// Site-to-upstream sync (proto/sync.proto).
#[allow(clippy::all, clippy::pedantic)]
pub mod sync {
    tonic::include_proto!("chronos.sync.v1");
}

use crate::sql::ScriptOutcome;
use crate::sql::answer::{Answer, Output};
use crate::sql::parser::params::Params;
use crate::sql::script::Parameterized;
use crate::sql::types::Value;
use v1::value::Kind;

impl From<&Value> for v1::Value {
    fn from(v: &Value) -> v1::Value {
        let kind = match v {
            Value::Null => Kind::Null(true),
            Value::Int(i) => Kind::Int(*i),
            Value::Float(f) => Kind::Float(*f),
            Value::Text(s) => Kind::Text(s.clone()),
            Value::Bool(b) => Kind::Boolean(*b),
            Value::Timestamp(ms) => Kind::TimestampMs(*ms),
        };
        v1::Value { kind: Some(kind) }
    }
}

impl From<v1::Value> for Value {
    /// A value with no kind set (an older or foreign sender) reads as NULL.
    fn from(v: v1::Value) -> Value {
        match v.kind {
            None | Some(Kind::Null(_)) => Value::Null,
            Some(Kind::Int(i)) => Value::Int(i),
            Some(Kind::Float(f)) => Value::Float(f),
            Some(Kind::Text(s)) => Value::Text(s),
            Some(Kind::Boolean(b)) => Value::Bool(b),
            Some(Kind::TimestampMs(ms)) => Value::Timestamp(ms),
        }
    }
}

pub fn row_to_proto(row: &[Value]) -> v1::Row {
    v1::Row {
        values: row.iter().map(v1::Value::from).collect(),
    }
}

pub fn row_from_proto(row: v1::Row) -> Vec<Value> {
    row.values.into_iter().map(Value::from).collect()
}

/// Parameter values as the SQL engine takes them.
pub fn params_from_proto(positional: Vec<v1::Value>, named: std::collections::HashMap<String, v1::Value>) -> Params {
    Params {
        positional: positional.into_iter().map(Value::from).collect(),
        named: Params::named(named.into_iter().map(|(k, v)| (k, Value::from(v)))),
    }
}

/// A write request's SQL and parameters, as the engine runs them.
pub fn request_script(request: &v1::ExecuteRequest) -> (Params, Vec<Parameterized>) {
    let params = params_from_proto(request.params.clone(), request.named_params.clone());
    (params, batch_from_proto(&request.batch))
}

/// Parameter values as protobuf values (positional, named).
pub fn params_to_proto(params: &Params) -> (Vec<v1::Value>, std::collections::HashMap<String, v1::Value>) {
    let positional = params.positional.iter().map(v1::Value::from).collect();
    let named = params
        .named
        .iter()
        .map(|(k, v)| (k.clone(), v1::Value::from(v)))
        .collect();
    (positional, named)
}

pub fn batch_from_proto(batch: &[v1::Statement]) -> Vec<Parameterized> {
    batch
        .iter()
        .map(|s| Parameterized {
            sql: s.sql.clone(),
            params: params_from_proto(s.params.clone(), s.named_params.clone()),
        })
        .collect()
}

/// The answer to Execute for a write's answer (sql::Answer).
pub fn execute_answer(answer: &Answer) -> v1::ExecuteResponse {
    v1::ExecuteResponse {
        results: answer.outputs.iter().map(statement_result).collect(),
        error: answer.error.as_ref().map(|e| v1::StatementError {
            statement_index: e.statement_index,
            code: e.code.clone(),
            message: e.message.clone(),
        }),
        queued_outcomes: answer.each.iter().map(execute_answer).collect(),
        ..v1::ExecuteResponse::default()
    }
}

/// The answer to Execute for a script's outcome.
pub fn execute_response(outcome: &ScriptOutcome) -> v1::ExecuteResponse {
    execute_answer(&Answer::of(outcome))
}

fn statement_result(output: &Output) -> v1::StatementResult {
    match output {
        Output::Affected { kind, count } => v1::StatementResult {
            kind: kind.clone(),
            rows_affected: *count,
            columns: Vec::new(),
            rows: Vec::new(),
        },
        Output::Rows { kind, columns, rows } => v1::StatementResult {
            kind: kind.clone(),
            rows_affected: 0,
            columns: columns
                .iter()
                .map(|name| v1::Column {
                    name: name.clone(),
                    r#type: String::new(),
                })
                .collect(),
            rows: rows.iter().map(|r| row_to_proto(r)).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let row = vec![
            Value::Null,
            Value::Int(-3),
            Value::Float(2.5),
            Value::Text("hé".into()),
            Value::Bool(true),
            Value::Timestamp(1_700_000_000_000),
        ];
        assert_eq!(row_from_proto(row_to_proto(&row)), row);
    }
}
