//! Limits that keep one client from taking a node down: statement length,
//! rows per INSERT, rows of an HTTP query answer, query time, and open
//! connections per client address. Each is set in `[limits]`; hitting one
//! is an error that names the setting.

use crate::sql::parser::ast::Statement;
use crate::sql::script::Unit;
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::Status;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_statement_bytes: usize,
    pub max_insert_rows: usize,
    pub max_http_rows: usize,
    /// None: queries may run as long as they take.
    pub query_timeout: Option<Duration>,
    /// 0: no limit.
    pub max_connections_per_client: usize,
}

impl From<&crate::config::LimitsConfig> for Limits {
    fn from(c: &crate::config::LimitsConfig) -> Limits {
        Limits {
            max_statement_bytes: c.max_statement_bytes,
            max_insert_rows: c.max_insert_rows,
            max_http_rows: c.max_http_rows,
            query_timeout: (c.query_timeout_ms > 0).then(|| Duration::from_millis(c.query_timeout_ms)),
            max_connections_per_client: c.max_connections_per_client,
        }
    }
}

impl Limits {
    /// Refuses SQL text longer than `max_statement_bytes`.
    pub fn check_text(&self, sql: &str) -> Result<(), Status> {
        match sql.len() > self.max_statement_bytes {
            true => Err(Status::invalid_argument(format!(
                "the SQL text is {} bytes, more than limits.max_statement_bytes ({})",
                sql.len(),
                self.max_statement_bytes
            ))),
            false => Ok(()),
        }
    }

    /// Refuses an INSERT of more than `max_insert_rows` rows.
    pub fn check_units(&self, units: &[Unit]) -> Result<(), Status> {
        for s in units.iter().flat_map(|u| &u.statements) {
            if let Statement::Insert { rows, .. } = &s.statement
                && rows.len() > self.max_insert_rows
            {
                return Err(Status::invalid_argument(format!(
                    "an INSERT of {} rows is more than limits.max_insert_rows ({}): split it",
                    rows.len(),
                    self.max_insert_rows
                )));
            }
        }
        Ok(())
    }

    /// When a query starting now must have finished.
    pub fn deadline(&self) -> Option<Instant> {
        self.query_timeout.map(|t| Instant::now() + t)
    }
}

/// Open connections by client address.
#[derive(Clone, Default)]
pub struct ConnectionCounts {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionCounts {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection, or refuses it (None) when its address has
    /// `limit` open already (0: no limit).
    pub fn admit(&self, stream: TcpStream, limit: usize) -> Option<Counted> {
        let ip = stream.peer_addr().ok()?.ip();
        let mut counts = self.counts();
        let n = counts.entry(ip).or_insert(0);
        if limit > 0 && *n >= limit {
            tracing::warn!(client = %ip, open = *n, "refusing a connection: limits.max_connections_per_client reached");
            return None;
        }
        *n += 1;
        drop(counts);
        Some(Counted {
            stream,
            ip,
            counts: self.clone(),
        })
    }
}

/// A connection that leaves the count when it closes.
pub struct Counted {
    stream: TcpStream,
    ip: IpAddr,
    counts: ConnectionCounts,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut counts = self.counts.counts();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Counted {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}
