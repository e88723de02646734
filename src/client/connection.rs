//! A connection to a node and the two calls of the API.

use super::access::{Access, Credentials};
use crate::proto::row_from_proto;
use crate::proto::v1::chronos_client::ChronosClient;
use crate::proto::v1::{
    AddMemberRequest, BackupRequest, ClusterStatusRequest, ClusterStatusResponse, ExecuteRequest, ExecuteResponse,
    QueryRequest, RemoveMemberRequest, Statement, Value as ProtoValue,
};
use crate::sql::types::Value;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// A connection to one node, with the client's credentials on each call.
pub type Conn = ChronosClient<InterceptedService<Channel, Credentials>>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(20);
/// A node answers a write within its own 10 s commit timeout (20 s when it
/// forwards); past this the call is given up as lost and retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Membership changes wait for a new member to catch up.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(300);
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Replies may carry large inline results.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("'{0}' is not a valid node address (expected HOST:PORT)")]
    Address(String),
    #[error("cannot connect to {address}: {message}")]
    Connect { address: String, message: String },
    /// The node refused or failed the call; the message says why.
    #[error("{0}")]
    Status(String),
    /// The TLS or login settings cannot be used.
    #[error("{0}")]
    Access(String),
    /// No node answered (or none could commit): the call may be retried.
    #[error("node unavailable: {0}")]
    Unavailable(String),
}

impl ClientError {
    /// True when no node could take the call: the cases an offline queue
    /// keeps a write for.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ClientError::Connect { .. } | ClientError::Unavailable(_))
    }
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> ClientError {
        let message = match s.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                return ClientError::Unavailable(s.message().to_string());
            }
            tonic::Code::Unknown if is_transport_failure(&s) => {
                return ClientError::Unavailable(s.message().to_string());
            }
            tonic::Code::Internal | tonic::Code::Unknown => format!("server error: {}", s.message()),
            _ => s.message().to_string(),
        };
        ClientError::Status(message)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Consistency {
    #[default]
    Strong,
    Local,
}

/// A query's result as it arrives.
pub struct QueryStream {
    pub columns: Vec<String>,
    first_rows: Vec<Vec<Value>>,
    stream: tonic::Streaming<crate::proto::v1::QueryResponse>,
}

impl QueryStream {
    /// The next batch of rows; an empty batch means the end.
    pub async fn next_batch(&mut self) -> Result<Vec<Vec<Value>>, ClientError> {
        if !self.first_rows.is_empty() {
            return Ok(std::mem::take(&mut self.first_rows));
        }
        loop {
            match self.stream.message().await? {
                None => return Ok(Vec::new()),
                Some(m) if m.rows.is_empty() => continue,
                Some(m) => return Ok(m.rows.into_iter().map(row_from_proto).collect()),
            }
        }
    }
}

/// A connection to a cluster through one node (any node: writes are
/// forwarded to the leader). Each write carries an idempotency key (this
/// client's id and a sequence number), so when a node or the leader fails
/// the client retries the same write, on another member if need be, and
/// it takes effect once.
#[derive(Clone)]
pub struct Client {
    inner: Conn,
    pub consistency: Consistency,
    /// The address in use, and the other members learned from the cluster.
    address: String,
    members: Vec<String>,
    /// A direct connection to the leader, when it is another node: writes
    /// go there and skip the forwarding hop.
    leader: Option<(String, Conn)>,
    access: Access,
    client_id: String,
    sequence: u64,
    /// How long a write keeps being retried while the cluster has no
    /// leader or the node is unreachable.
    pub retry_for: Duration,
}

pub(crate) fn endpoint(address: &str, access: &Access) -> Result<Endpoint, ClientError> {
    access.endpoint(address)
}

async fn open(address: &str, access: &Access) -> Result<Conn, ClientError> {
    let channel = endpoint(address, access)?
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .map_err(|e| ClientError::Connect {
            address: address.to_string(),
            message: source_chain(&e),
        })?;
    Ok(ChronosClient::with_interceptor(channel, access.credentials()).max_decoding_message_size(MAX_RESPONSE_BYTES))
}

/// A client id unique enough for idempotency keys: host, process, time.
pub(crate) fn new_client_id() -> String {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    client_id(nanos, made)
}

/// A client id from the time and the number of clients this process made
/// before. Clients made in the same nanosecond (tasks on two threads do
/// that) would otherwise share host, pid and time, and sharing an id, one
/// client's write would be answered with the other's stored answer and
/// never applied (tests/power_loss.rs caught it).
fn client_id(nanos: u128, made: u64) -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{}-{}-{nanos:x}-{made}", host.trim(), std::process::id())
}

impl Client {
    pub async fn connect(address: &str) -> Result<Client, ClientError> {
        Client::connect_with(address, &Access::none()).await
    }

    /// Connects with TLS and login settings.
    pub async fn connect_with(address: &str, access: &Access) -> Result<Client, ClientError> {
        let inner = open(address, access).await?;
        let mut client = Client::over(inner, address, access);
        if let Err(status) = client.learn_members().await
            && !access.is_tls()
            && is_transport_failure(&status)
        {
            return Err(ClientError::Connect {
                address: address.to_string(),
                message: format!(
                    "{} (the node closed the connection: if it uses TLS, give the cluster CA with --ca or CHRONOS_TLS_CA)",
                    status.message()
                ),
            });
        }
        Ok(client)
    }

    /// A client that connects on first use, so it can be made while no
    /// node answers (for an offline queue).
    pub async fn connect_lazy(address: &str, access: &Access) -> Result<Client, ClientError> {
        let channel = endpoint(address, access)?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_lazy();
        let inner = ChronosClient::with_interceptor(channel, access.credentials())
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let mut client = Client::over(inner, address, access);
        // Lazy: no node need answer yet.
        let _ = client.learn_members().await;
        Ok(client)
    }

    fn over(inner: Conn, address: &str, access: &Access) -> Client {
        Client {
            inner,
            consistency: Consistency::default(),
            address: address.to_string(),
            members: Vec::new(),
            leader: None,
            access: access.clone(),
            client_id: new_client_id(),
            sequence: 0,
            retry_for: DEFAULT_RETRY_FOR,
        }
    }

    /// Remembers the cluster's member addresses, for failing over, and
    /// connects to the leader when it is another node. Answers the status
    /// call's error, if it failed (a client works without the member list).
    async fn learn_members(&mut self) -> Result<(), tonic::Status> {
        let call = self.inner.cluster_status(ClusterStatusRequest {});
        let status = match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        let status = status.into_inner();
        let leader = status
            .members
            .iter()
            .find(|m| m.id == status.leader)
            .map(|m| m.address.clone());
        self.members = status.members.into_iter().map(|m| m.address).collect();
        self.leader = None;
        if let Some(address) = leader.filter(|a| *a != self.address)
            && let Ok(conn) = open(&address, &self.access).await
        {
            self.leader = Some((address, conn));
        }
        Ok(())
    }

    /// The leader's address, when the client talks to it directly.
    pub fn leader_address(&self) -> Option<&str> {
        self.leader.as_ref().map(|(a, _)| a.as_str())
    }

    /// Moves to the next known member after the current one failed.
    async fn fail_over(&mut self) {
        let Some(pos) = self.members.iter().position(|a| *a == self.address) else {
            return;
        };
        for step in 1..=self.members.len() {
            let next = self.members[(pos + step) % self.members.len()].clone();
            if let Ok(inner) = open(&next, &self.access).await {
                self.inner = inner;
                self.address = next;
                return;
            }
        }
    }

    /// The address of the node in use.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs a script. SQL errors come back inside the response, not as Err.
    /// While the cluster has no leader or the node is unreachable, the same
    /// request (same idempotency key) is retried for `retry_for`.
    pub async fn execute(&mut self, sql: &str) -> Result<ExecuteResponse, ClientError> {
        self.execute_with(sql, &[]).await
    }

    /// Runs a script with values for its `?` placeholders, in order. The
    /// values travel apart from the SQL text and are never read as SQL.
    pub async fn execute_with(&mut self, sql: &str, params: &[Value]) -> Result<ExecuteResponse, ClientError> {
        self.execute_request(ExecuteRequest {
            sql: sql.to_string(),
            params: params.iter().map(ProtoValue::from).collect(),
            ..ExecuteRequest::default()
        })
        .await
    }

    /// Runs statements, each with its `?` values, as one transaction: all
    /// of them take effect or none does.
    pub async fn execute_batch(&mut self, statements: &[(&str, &[Value])]) -> Result<ExecuteResponse, ClientError> {
        let batch = statements
            .iter()
            .map(|(sql, params)| Statement {
                sql: sql.to_string(),
                params: params.iter().map(ProtoValue::from).collect(),
                ..Statement::default()
            })
            .collect();
        self.execute_request(ExecuteRequest {
            batch,
            ..ExecuteRequest::default()
        })
        .await
    }

    /// Queues a write on the node in use: acknowledged once it is durable
    /// in that node's queue, committed later. Returns its sequence there,
    /// for [`Client::wait_for`] on the same node. The write carries this
    /// client's idempotency key and is retried on that node while it does
    /// not answer (for `retry_for`); the node queues it once.
    pub async fn execute_queued(&mut self, sql: &str, params: &[Value]) -> Result<u64, ClientError> {
        self.sequence += 1;
        let request = ExecuteRequest {
            sql: sql.to_string(),
            params: params.iter().map(ProtoValue::from).collect(),
            queued: true,
            client_id: self.client_id.clone(),
            sequence: self.sequence,
            ..ExecuteRequest::default()
        };
        let deadline = std::time::Instant::now() + self.retry_for;
        loop {
            match within(CALL_TIMEOUT, self.inner.execute(request.clone())).await {
                Ok(r) => {
                    let response = r.into_inner();
                    return match response.error {
                        Some(e) => Err(ClientError::Status(format!("{} ({})", e.message, e.code))),
                        None => Ok(response.queued_sequence),
                    };
                }
                Err(s)
                    if (matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Cancelled)
                        || is_transport_failure(&s))
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(s) => return Err(s.into()),
            }
        }
    }

    /// Waits until the queued write `sequence` (queued through the node in
    /// use) is committed, and returns its outcome.
    pub async fn wait_for(&mut self, sequence: u64) -> Result<ExecuteResponse, ClientError> {
        loop {
            let request = ExecuteRequest {
                wait_for: sequence,
                ..ExecuteRequest::default()
            };
            match within(CALL_TIMEOUT, self.inner.execute(request)).await {
                Ok(r) => return Ok(r.into_inner()),
                // Still queued after the node's wait: ask again.
                Err(s) if s.code() == tonic::Code::DeadlineExceeded && s.message().contains("not committed yet") => {}
                Err(s) => return Err(s.into()),
            }
        }
    }

    /// Sends a request under this client's next idempotency key.
    pub async fn execute_request(&mut self, mut request: ExecuteRequest) -> Result<ExecuteResponse, ClientError> {
        self.sequence += 1;
        request.client_id = self.client_id.clone();
        request.sequence = self.sequence;
        self.send(request).await
    }

    /// Runs a script under a given idempotency key (an offline queue's
    /// entry keeps its key across client restarts, so replaying it after a
    /// lost answer applies it once).
    pub async fn execute_keyed(
        &mut self,
        sql: &str,
        client_id: &str,
        sequence: u64,
    ) -> Result<ExecuteResponse, ClientError> {
        self.send(ExecuteRequest {
            sql: sql.to_string(),
            client_id: client_id.to_string(),
            sequence,
            ..ExecuteRequest::default()
        })
        .await
    }

    async fn send(&mut self, request: ExecuteRequest) -> Result<ExecuteResponse, ClientError> {
        let deadline = std::time::Instant::now() + self.retry_for;
        loop {
            let direct = self.leader.as_ref().map(|(_, c)| c.clone());
            let mut conn = direct.clone().unwrap_or_else(|| self.inner.clone());
            let answer = tokio::time::timeout(CALL_TIMEOUT, conn.execute(request.clone()))
                .await
                .unwrap_or_else(|_| Err(tonic::Status::unavailable("no answer within 30 s")));
            match answer {
                Ok(reply) => return Ok(reply.into_inner()),
                // A dropped connection (the node died mid-call) is retried too:
                // the same key makes the retry apply at most once.
                Err(s)
                    if (matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Cancelled)
                        || is_transport_failure(&s))
                        && std::time::Instant::now() < deadline =>
                {
                    if direct.is_some() {
                        // The leader moved or is gone: go through the node
                        // in use (it forwards) until the leader is known again.
                        self.leader = None;
                    } else if is_transport_failure(&s) {
                        self.fail_over().await;
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                    if direct.is_none() {
                        let _ = self.learn_members().await;
                    }
                }
                Err(s) => return Err(s.into()),
            }
        }
    }

    /// Streams a consistent backup of the node's data into `out`, calling
    /// `progress(received, total)` after each chunk. Returns the bytes
    /// received.
    pub async fn backup(
        &mut self,
        out: &mut impl std::io::Write,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64, ClientError> {
        let mut stream = self.inner.backup(BackupRequest {}).await?.into_inner();
        let (mut received, mut total) = (0u64, 0u64);
        while let Some(chunk) = stream.message().await? {
            if chunk.total_bytes > 0 {
                total = chunk.total_bytes;
            }
            out.write_all(&chunk.data)
                .map_err(|e| ClientError::Status(format!("cannot write the backup: {e}")))?;
            received += chunk.data.len() as u64;
            progress(received, total);
        }
        if total > 0 && received != total {
            return Err(ClientError::Status(format!(
                "the backup stream ended early ({received} of {total} bytes)"
            )));
        }
        Ok(received)
    }

    /// The cluster's members and roles.
    pub async fn cluster_status(&mut self) -> Result<ClusterStatusResponse, ClientError> {
        let call = self.inner.cluster_status(ClusterStatusRequest {});
        Ok(within(CALL_TIMEOUT, call).await?.into_inner())
    }

    /// Adds a member (a voter once caught up; a read replica with `learner`).
    pub async fn add_member(
        &mut self,
        id: &str,
        address: &str,
        learner: bool,
    ) -> Result<ClusterStatusResponse, ClientError> {
        let request = AddMemberRequest {
            id: id.to_string(),
            address: address.to_string(),
            learner,
        };
        Ok(within(ADMIN_TIMEOUT, self.inner.add_member(request))
            .await?
            .into_inner())
    }

    pub async fn remove_member(&mut self, id: &str) -> Result<ClusterStatusResponse, ClientError> {
        let request = RemoveMemberRequest { id: id.to_string() };
        Ok(within(ADMIN_TIMEOUT, self.inner.remove_member(request))
            .await?
            .into_inner())
    }

    /// Starts a query; its columns are known once this returns.
    pub async fn query(&mut self, sql: &str) -> Result<QueryStream, ClientError> {
        self.query_with(sql, &[]).await
    }

    /// Starts a query with values for its `?` placeholders, in order.
    pub async fn query_with(&mut self, sql: &str, params: &[Value]) -> Result<QueryStream, ClientError> {
        let consistency = match self.consistency {
            Consistency::Strong => crate::proto::v1::Consistency::Strong,
            Consistency::Local => crate::proto::v1::Consistency::Local,
        };
        let request = QueryRequest {
            sql: sql.to_string(),
            consistency: consistency as i32,
            params: params.iter().map(ProtoValue::from).collect(),
            ..QueryRequest::default()
        };
        let mut stream = self.inner.query(request).await?.into_inner();
        let first = stream.message().await?.unwrap_or_default();
        Ok(QueryStream {
            columns: first.columns.into_iter().map(|c| c.name).collect(),
            first_rows: first.rows.into_iter().map(row_from_proto).collect(),
            stream,
        })
    }
}

/// A call that gives up after `limit`.
async fn within<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded(format!("no answer within {limit:?}"))))
}

/// True when the call never reached a working node (as opposed to a node
/// answering that it cannot serve the request right now).
fn is_transport_failure(s: &tonic::Status) -> bool {
    use std::error::Error as _;
    s.source().is_some() || s.message().contains("transport") || s.message().contains("connect")
}

/// "transport error: connection refused" rather than just "transport error".
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_made_in_the_same_nanosecond_get_distinct_ids() {
        assert_ne!(client_id(1_000, 0), client_id(1_000, 1));
        let made: std::collections::BTreeSet<String> = (0..1000).map(|_| new_client_id()).collect();
        assert_eq!(made.len(), 1000);
    }
}
