//! The JSON of the HTTP API: request bodies, parameters and values in,
//! answers and errors out. No routing or I/O here (http.rs).

use crate::proto::v1::{ExecuteRequest, ExecuteResponse, Statement as ProtoStatement, StatementResult};
use crate::proto::{params_to_proto, row_from_proto};
use crate::sql::SqlError;
use crate::sql::parser::params::Params;
use crate::sql::types::Value;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value as Json, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SqlBody {
    #[serde(default)]
    pub(super) sql: String,
    #[serde(default)]
    pub(super) consistency: Option<String>,
    /// `[1, "a"]` for `?` placeholders, or `{"name": 1}` for `:name`.
    #[serde(default)]
    pub(super) params: Option<Json>,
    /// Statements that commit together (execute only), instead of `sql`.
    #[serde(default)]
    pub(super) batch: Vec<BatchItem>,
    /// Acknowledge once queued on this node (execute only).
    #[serde(default)]
    pub(super) queued: bool,
    /// Wait for this node's queued write with this sequence.
    #[serde(default)]
    pub(super) wait_for: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchItem {
    pub(super) sql: String,
    #[serde(default)]
    pub(super) params: Option<Json>,
}

/// A JSON parameter as an SQL value: numbers, strings, booleans and null.
pub(super) fn value_from_json(json: Json, name: &str) -> Result<Value, String> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(b),
        Json::String(s) => Value::Text(s),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(f)) => Value::Float(f),
            _ => return Err(format!("parameter {name}: {n} is out of range")),
        },
        Json::Array(_) | Json::Object(_) => {
            return Err(format!(
                "parameter {name}: arrays and objects are not SQL values (use a number, string, boolean or null)"
            ));
        }
    })
}

/// `params` as the engine takes them: an array for `?`, an object for `:name`.
pub(super) fn params_from_json(json: Option<Json>) -> Result<Params, String> {
    let mut params = Params::default();
    match json {
        None | Some(Json::Null) => {}
        Some(Json::Array(values)) => {
            for (i, v) in values.into_iter().enumerate() {
                params.positional.push(value_from_json(v, &format!("?{}", i + 1))?);
            }
        }
        Some(Json::Object(values)) => {
            let mut named = Vec::new();
            for (k, v) in values {
                let value = value_from_json(v, &format!(":{}", k.trim_start_matches(':')))?;
                named.push((k, value));
            }
            params.named = Params::named(named);
        }
        Some(_) => {
            return Err("params must be an array (for ? placeholders) or an object (for :name placeholders)".into());
        }
    }
    Ok(params)
}

pub(super) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "code": code, "message": message.into() } });
    (status, axum::Json(body)).into_response()
}

pub(super) fn from_status(s: &tonic::Status) -> Response {
    let (status, code) = match s.code() {
        tonic::Code::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_argument"),
        tonic::Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        tonic::Code::FailedPrecondition => (StatusCode::CONFLICT, "failed_precondition"),
        tonic::Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted"),
        tonic::Code::DeadlineExceeded => (StatusCode::ACCEPTED, "still_queued"),
        tonic::Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        tonic::Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        tonic::Code::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    // SQL errors carry their own code in the metadata, as over gRPC.
    let code = s
        .metadata()
        .get(super::errors::ERROR_CODE_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(code)
        .to_string();
    error(status, &code, s.message())
}

pub(super) fn sql_error(e: &SqlError) -> Response {
    let status = match e {
        SqlError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, e.code(), e.to_string())
}

/// Reads the body, or answers why it is not a `{"sql": ...}` document.
/// Any content type is accepted (curl's `-d` sends a form type): the body
/// must simply be the JSON document.
pub(super) fn body(bytes: Bytes) -> Result<(SqlBody, bool), Box<Response>> {
    let body: SqlBody = serde_json::from_slice(&bytes).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body is not a valid request document: {e}"),
        ))
    })?;
    let strong = match body.consistency.as_deref() {
        None | Some("strong") => true,
        Some("local") => false,
        Some(other) => {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("consistency must be \"strong\" or \"local\", not \"{other}\""),
            )));
        }
    };
    Ok((body, strong))
}

pub(super) fn rows_json(rows: impl IntoIterator<Item = Vec<Value>>) -> Json {
    Json::Array(
        rows.into_iter()
            .map(|r| Json::Array(r.iter().map(Value::to_json).collect()))
            .collect(),
    )
}

pub(super) fn statement_json(r: StatementResult) -> Json {
    if r.columns.is_empty() && r.rows.is_empty() {
        return json!({ "rows_affected": r.rows_affected });
    }
    let columns: Vec<String> = r.columns.iter().map(|c| c.name.clone()).collect();
    json!({ "columns": columns, "rows": rows_json(r.rows.into_iter().map(row_from_proto)) })
}

pub(super) fn execute_answer(response: ExecuteResponse) -> Response {
    let mut results: Vec<Json> = response.results.into_iter().map(statement_json).collect();
    if let Some(e) = response.error {
        let status = match e.code.as_str() {
            "storage_error" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = json!({
            "error": { "code": e.code, "message": e.message, "statement_index": e.statement_index },
            "results": results,
        });
        return (status, axum::Json(body)).into_response();
    }
    if response.queued_sequence > 0 && results.is_empty() {
        let body = json!({ "queued_sequence": response.queued_sequence });
        return (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    }
    let mut body = match results.len() {
        1 => results.remove(0),
        _ => json!({ "results": results }),
    };
    if response.queued_sequence > 0 {
        body["queued_sequence"] = response.queued_sequence.into();
    }
    axum::Json(body).into_response()
}

pub(super) fn execute_request(body: SqlBody) -> Result<ExecuteRequest, String> {
    let (params, named_params) = params_to_proto(&params_from_json(body.params)?);
    let mut batch = Vec::with_capacity(body.batch.len());
    for item in body.batch {
        let (params, named_params) = params_to_proto(&params_from_json(item.params)?);
        batch.push(ProtoStatement {
            sql: item.sql,
            params,
            named_params,
        });
    }
    Ok(ExecuteRequest {
        sql: body.sql,
        params,
        named_params,
        batch,
        queued: body.queued,
        wait_for: body.wait_for,
        ..ExecuteRequest::default()
    })
}
