//! A connection to a node and the two calls of the API.

use crate::proto::row_from_proto;
use crate::proto::v1::chronos_client::ChronosClient;
use crate::proto::v1::{ExecuteRequest, ExecuteResponse, QueryRequest};
use crate::sql::types::Value;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
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
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> ClientError {
        let message = match s.code() {
            tonic::Code::Unavailable => format!("node unavailable: {}", s.message()),
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

#[derive(Clone)]
pub struct Client {
    inner: ChronosClient<Channel>,
    pub consistency: Consistency,
}

impl Client {
    pub async fn connect(address: &str) -> Result<Client, ClientError> {
        let uri = match address.contains("://") {
            true => address.to_string(),
            false => format!("http://{address}"),
        };
        let endpoint = Endpoint::from_shared(uri).map_err(|_| ClientError::Address(address.to_string()))?;
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .map_err(|e| ClientError::Connect {
                address: address.to_string(),
                message: source_chain(&e),
            })?;
        Ok(Client {
            inner: ChronosClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES),
            consistency: Consistency::default(),
        })
    }

    /// Runs a script. SQL errors come back inside the response, not as Err.
    pub async fn execute(&mut self, sql: &str) -> Result<ExecuteResponse, ClientError> {
        let request = ExecuteRequest { sql: sql.to_string() };
        Ok(self.inner.execute(request).await?.into_inner())
    }

    /// Starts a query; its columns are known once this returns.
    pub async fn query(&mut self, sql: &str) -> Result<QueryStream, ClientError> {
        let consistency = match self.consistency {
            Consistency::Strong => crate::proto::v1::Consistency::Strong,
            Consistency::Local => crate::proto::v1::Consistency::Local,
        };
        let request = QueryRequest {
            sql: sql.to_string(),
            consistency: consistency as i32,
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
