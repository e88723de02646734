//! The HTTP listener (`http_address`): Prometheus `/metrics`, `/healthz`,
//! `/readyz`, and a JSON API for devices that cannot speak gRPC:
//! `POST /v1/execute` and `POST /v1/query` with `{"sql": "...",
//! "params": [...] | {...}, "consistency": "strong" | "local"}`, and
//! `{"batch": [{"sql": "...", "params": [...]}, ...]}` for statements that
//! commit together; `GET /v1/changes` streams the change feed as NDJSON.
//! With TLS on it serves HTTPS (same certificate as the gRPC port); with
//! users configured, the API asks for `Authorization: Basic` (metrics and
//! health stay open, as for a load balancer or Prometheus).

use super::http_json::{
    body, error, execute_answer, execute_request, from_status, params_from_json, rows_json, sql_error,
};
use super::limits::Limits;
use super::metrics::{Kind, Metrics};
use super::service::execute;
use crate::changes;
use crate::changes::service::{Cursor, FeedError, next_events};
use crate::queue::WriteQueue;
use crate::raft::RaftNode;
use crate::security::{Caller, Gate, Need, Role};
use crate::sql::SqlError;
use crate::sql::parser::ast::Statement;
use crate::sql::parser::parse_one_with;
use crate::sql::types::EvalContext;
use crate::sync::service::SyncService;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Clone)]
struct Http {
    node: Arc<RaftNode>,
    queue: Arc<WriteQueue>,
    metrics: Arc<Metrics>,
    sync: Option<SyncService>,
    /// Turns true when the node stops: change feed streams end.
    stopping: watch::Receiver<bool>,
    limits: Limits,
    gate: Arc<Gate>,
}

/// The certificate an HTTPS client presented (leaf, DER), if any.
#[derive(Clone, Default)]
struct PeerCert(Option<Vec<u8>>);

/// What identifies an HTTP caller: its headers and, over HTTPS, its
/// certificate.
struct Credentials<'a> {
    headers: &'a HeaderMap,
    cert: Option<Extension<PeerCert>>,
}

impl Http {
    /// Who is calling, from the client certificate or the `Authorization`
    /// header; an error answer when the login fails.
    async fn caller(&self, who: Credentials<'_>) -> Result<Caller, Box<Response>> {
        let authorization = who.headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        let cert = who.cert.as_ref().and_then(|Extension(PeerCert(c))| c.as_deref());
        self.gate
            .caller(authorization, cert, None)
            .await
            .map_err(|s| Box::new(from_status(&s)))
    }

    async fn admit(&self, who: Credentials<'_>, need: Need, what: &str) -> Result<Caller, Box<Response>> {
        let caller = self.caller(who).await?;
        caller.may(need, what).map_err(|s| Box::new(from_status(&s)))?;
        Ok(caller)
    }
}

/// The HTTP listener's shared parts.
pub struct HttpParts {
    pub node: Arc<RaftNode>,
    pub queue: Arc<WriteQueue>,
    pub metrics: Arc<Metrics>,
    pub sync: Option<SyncService>,
    pub stopping: watch::Receiver<bool>,
    pub max_request_bytes: usize,
    pub limits: Limits,
    pub gate: Arc<Gate>,
    /// HTTPS when set.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

pub async fn serve(
    listener: TcpListener,
    parts: HttpParts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let HttpParts {
        node,
        queue,
        metrics,
        sync,
        stopping,
        max_request_bytes,
        limits,
        gate,
        tls,
    } = parts;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/execute", post(execute_json))
        .route("/v1/query", post(query_json))
        .route("/v1/changes", get(changes_ndjson))
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .with_state(Http {
            node,
            queue,
            metrics,
            sync,
            stopping,
            limits,
            gate,
        });
    match tls {
        Some(config) => serve_tls(listener, app, config, shutdown).await,
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
    }
}

/// HTTPS: each accepted connection does its handshake and is then served
/// by the same router, on its own task. Stops accepting on `shutdown`.
async fn serve_tls(
    listener: TcpListener,
    app: Router,
    config: Arc<tokio_rustls::rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(crate::security::tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "HTTPS handshake timed out"),
            };
            // The client's certificate (verified against the CA in the
            // handshake) names its user.
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec());
            let app = app.layer(Extension(PeerCert(cert)));
            let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended");
            }
        });
    }
}

async fn execute_json(
    State(http): State<Http>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    cert: Option<Extension<PeerCert>>,
    parsed: Bytes,
) -> Response {
    let began = Instant::now();
    let caller = match http
        .caller(Credentials {
            headers: &headers,
            cert,
        })
        .await
    {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let (body, _) = match body(parsed) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let mut request = match execute_request(body) {
        Ok(r) => r,
        Err(message) => return error(StatusCode::BAD_REQUEST, "invalid_parameter", message),
    };
    // `POST /v1/execute?queue` is the same as `"queued": true`.
    request.queued |= query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "queue" || p == "queue=true"));
    let result = execute(&http.node, &http.queue, &http.limits, &caller, request).await;
    let ok = matches!(&result, Ok(r) if r.error.is_none());
    http.metrics.record(Kind::Execute, ok, began.elapsed());
    match result {
        Ok(response) => execute_answer(response),
        Err(s) => from_status(&s),
    }
}

async fn query_json(
    State(http): State<Http>,
    headers: HeaderMap,
    cert: Option<Extension<PeerCert>>,
    parsed: Bytes,
) -> Response {
    let began = Instant::now();
    let who = Credentials {
        headers: &headers,
        cert,
    };
    if let Err(r) = http.admit(who, Need::Role(Role::Read), "a query").await {
        return *r;
    }
    let response = run_query(&http, parsed).await;
    http.metrics
        .record(Kind::Query, response.status().is_success(), began.elapsed());
    response
}

async fn run_query(http: &Http, parsed: Bytes) -> Response {
    let (body, strong) = match body(parsed) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if !body.batch.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "batch is for /v1/execute; /v1/query runs one SELECT",
        );
    }
    let params = match params_from_json(body.params) {
        Ok(p) => p,
        Err(message) => return error(StatusCode::BAD_REQUEST, "invalid_parameter", message),
    };
    if let Err(s) = http.limits.check_text(&body.sql) {
        return from_status(&s);
    }
    let statement = match parse_one_with(&body.sql, &params) {
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
    if let Err(e) = http.node.holds_data() {
        return from_status(&e.into());
    }
    if strong && let Err(e) = http.node.strong_read_barrier().await {
        return from_status(&e.into());
    }
    let db = http.node.database().clone();
    let eval = EvalContext {
        now_ms: http.node.now_ms(),
        deadline: http.limits.deadline(),
    };
    let max_rows = http.limits.max_http_rows;
    let ran = tokio::task::spawn_blocking(move || {
        db.query_until(&statement, eval, |result| {
            let columns: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
            let types: Vec<String> = result
                .columns
                .iter()
                .map(|c| c.data_type.map_or_else(|| "NULL".to_string(), |t| t.to_string()))
                .collect();
            let mut rows = Vec::new();
            for row in result.rows {
                if rows.len() == max_rows {
                    return Err(SqlError::Invalid(format!(
                        "the result has more than {max_rows} rows (limits.max_http_rows); add LIMIT or use the gRPC API, which streams"
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

/// `GET /v1/changes?from=N&table=a&table=b&follow=false`: the change feed
/// as NDJSON, one change per line, streamed (chunked) as changes commit.
async fn changes_ndjson(
    State(http): State<Http>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    cert: Option<Extension<PeerCert>>,
) -> Response {
    let who = Credentials {
        headers: &headers,
        cert,
    };
    if let Err(r) = http.admit(who, Need::Role(Role::Read), "the change feed").await {
        return *r;
    }
    let mut cursor = Cursor {
        index: 0,
        seq: 0,
        tables: Default::default(),
    };
    let mut follow = true;
    for pair in query.as_deref().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "from" => match value.parse() {
                Ok(n) => cursor.index = n,
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("from={value} is not an index"),
                    );
                }
            },
            "table" => cursor
                .tables
                .extend(value.split(',').filter(|t| !t.is_empty()).map(str::to_string)),
            "follow" => match value {
                "true" | "1" => follow = true,
                "false" | "0" => follow = false,
                _ => return error(StatusCode::BAD_REQUEST, "bad_request", "follow must be true or false"),
            },
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("unknown parameter '{key}' (expected from, table, follow)"),
                );
            }
        }
    }
    // A position that is too old is an error status, not a broken stream.
    let mut probe = cursor.clone();
    if let Err(e) = next_events(&http.node, &mut probe).await {
        let (status, code) = match e {
            FeedError::TooOld(_) => (StatusCode::GONE, "too_old"),
            FeedError::Disabled => (StatusCode::CONFLICT, "failed_precondition"),
            FeedError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        return error(status, code, e.to_string());
    }
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(changes::service::follow(
        http.node.clone(),
        cursor,
        follow,
        http.stopping.clone(),
        tx,
    ));
    let lines = ReceiverStream::new(rx).map(|event| {
        let json = match event {
            Ok(e) => e.to_json(),
            Err(e) => json!({ "error": { "message": e.to_string() } }),
        };
        let mut line = json.to_string();
        line.push('\n');
        Ok::<_, std::convert::Infallible>(line)
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

async fn metrics_text(State(http): State<Http>) -> Response {
    // Table sizes walk block headers: not on an async thread.
    let queued = http.queue.len();
    let rendered = tokio::task::spawn_blocking(move || http.metrics.render(&http.node, queued)).await;
    match rendered {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
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
