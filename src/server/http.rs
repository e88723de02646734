//! The HTTP listener (`http_address`): Prometheus `/metrics`, `/healthz`,
//! `/readyz`, and a JSON API for devices that cannot speak gRPC:
//! `POST /v1/execute` and `POST /v1/query` with `{"sql": "...",
//! "consistency": "strong" | "local"}`.

use super::metrics::{Kind, Metrics};
use super::service::execute;
use crate::proto::row_from_proto;
use crate::proto::v1::{ExecuteRequest, ExecuteResponse, StatementResult};
use crate::raft::RaftNode;
use crate::sql::SqlError;
use crate::sql::parser::ast::Statement;
use crate::sql::parser::parse_one;
use crate::sql::types::Value;
use crate::sync::service::SyncService;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;

/// An HTTP query answers with all its rows in one document; beyond this
/// many it is refused (use LIMIT, or the gRPC API, which streams).
const MAX_HTTP_ROWS: usize = 100_000;

#[derive(Clone)]
struct Http {
    node: Arc<RaftNode>,
    metrics: Arc<Metrics>,
    sync: Option<SyncService>,
}

pub async fn serve(
    listener: TcpListener,
    node: Arc<RaftNode>,
    metrics: Arc<Metrics>,
    sync: Option<SyncService>,
    max_request_bytes: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/execute", post(execute_json))
        .route("/v1/query", post(query_json))
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .with_state(Http { node, metrics, sync });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlBody {
    sql: String,
    #[serde(default)]
    consistency: Option<String>,
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "code": code, "message": message.into() } });
    (status, axum::Json(body)).into_response()
}

fn from_status(s: &tonic::Status) -> Response {
    let (status, code) = match s.code() {
        tonic::Code::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_argument"),
        tonic::Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        tonic::Code::FailedPrecondition => (StatusCode::CONFLICT, "failed_precondition"),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
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

fn sql_error(e: &SqlError) -> Response {
    let status = match e {
        SqlError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, e.code(), e.to_string())
}

/// Reads the body, or answers why it is not a `{"sql": ...}` document.
fn body(parsed: Result<axum::Json<SqlBody>, JsonRejection>) -> Result<(SqlBody, bool), Box<Response>> {
    let axum::Json(body) =
        parsed.map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, "bad_request", e.body_text())))?;
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

fn rows_json(rows: impl IntoIterator<Item = Vec<Value>>) -> Json {
    Json::Array(
        rows.into_iter()
            .map(|r| Json::Array(r.iter().map(Value::to_json).collect()))
            .collect(),
    )
}

fn statement_json(r: StatementResult) -> Json {
    if r.columns.is_empty() && r.rows.is_empty() {
        return json!({ "rows_affected": r.rows_affected });
    }
    let columns: Vec<String> = r.columns.iter().map(|c| c.name.clone()).collect();
    json!({ "columns": columns, "rows": rows_json(r.rows.into_iter().map(row_from_proto)) })
}

fn execute_answer(response: ExecuteResponse) -> Response {
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
    let body = match results.len() {
        1 => results.remove(0),
        _ => json!({ "results": results }),
    };
    axum::Json(body).into_response()
}

async fn execute_json(State(http): State<Http>, parsed: Result<axum::Json<SqlBody>, JsonRejection>) -> Response {
    let began = Instant::now();
    let (body, _) = match body(parsed) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let request = ExecuteRequest {
        sql: body.sql,
        ..ExecuteRequest::default()
    };
    let result = execute(&http.node, request).await;
    let ok = matches!(&result, Ok(r) if r.error.is_none());
    http.metrics.record(Kind::Execute, ok, began.elapsed());
    match result {
        Ok(response) => execute_answer(response),
        Err(s) => from_status(&s),
    }
}

async fn query_json(State(http): State<Http>, parsed: Result<axum::Json<SqlBody>, JsonRejection>) -> Response {
    let began = Instant::now();
    let response = run_query(&http, parsed).await;
    http.metrics
        .record(Kind::Query, response.status().is_success(), began.elapsed());
    response
}

async fn run_query(http: &Http, parsed: Result<axum::Json<SqlBody>, JsonRejection>) -> Response {
    let (body, strong) = match body(parsed) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let statement = match parse_one(&body.sql) {
        Ok(s) => s,
        Err(e) => return sql_error(&e),
    };
    if matches!(statement, Statement::ShowSyncStatus) {
        let (names, rows) = crate::sync::service::status_table(http.sync.as_ref().map(SyncService::report));
        let columns: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
        let types: Vec<&str> = names.iter().map(|(_, t)| *t).collect();
        return axum::Json(json!({ "columns": columns, "types": types, "rows": rows_json(rows) })).into_response();
    }
    if !statement.is_query() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_statement",
            format!(
                "/v1/query runs SELECT or EXPLAIN; send {} to /v1/execute",
                statement.kind()
            ),
        );
    }
    if strong && let Err(s) = http.node.strong_read_barrier().await {
        return from_status(&s);
    }
    let db = http.node.database().clone();
    let now_ms = http.node.now_ms();
    let ran = tokio::task::spawn_blocking(move || {
        db.query(&statement, now_ms, |result| {
            let columns: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
            let types: Vec<String> = result
                .columns
                .iter()
                .map(|c| c.data_type.map_or_else(|| "NULL".to_string(), |t| t.to_string()))
                .collect();
            let mut rows = Vec::new();
            for row in result.rows {
                if rows.len() == MAX_HTTP_ROWS {
                    return Err(SqlError::Invalid(format!(
                        "the result has more than {MAX_HTTP_ROWS} rows; add LIMIT or use the gRPC API, which streams"
                    )));
                }
                rows.push(row?);
            }
            Ok((columns, types, rows))
        })
        .and_then(|r| r)
    })
    .await;
    match ran {
        Ok(Ok((columns, types, rows))) => {
            axum::Json(json!({ "columns": columns, "types": types, "rows": rows_json(rows) })).into_response()
        }
        Ok(Err(e)) => sql_error(&e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("query failed: {e}"),
        ),
    }
}

async fn metrics_text(State(http): State<Http>) -> Response {
    let text = http.metrics.render(&http.node);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Alive: the process answers and its storage can be read.
async fn healthz(State(http): State<Http>) -> Response {
    let db = http.node.database().clone();
    match tokio::task::spawn_blocking(move || db.table_names()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("storage: {e}\n")).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

/// Ready: a member of a cluster that has a leader, so requests can succeed.
async fn readyz(State(http): State<Http>) -> Response {
    match http.node.is_ready() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response(),
    }
}
