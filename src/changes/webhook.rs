//! The webhook sink: posts the change feed, in batches, to an http:// URL
//! as NDJSON (one change per line, as `GET /v1/changes` prints them).
//!
//! Delivery is at least once. The position after the last batch the
//! receiver acknowledged (any 2xx answer) is kept in a cursor file in the
//! node's directory (written atomically), so a restart resumes there; a
//! failed POST is retried with backoff until it succeeds. Each member with
//! a webhook configured posts the whole feed: configure it on one member,
//! or have the receiver drop repeats by (index, seq).

use super::service::{Cursor, FeedError, next_events, wait_for_index};
use super::store::ChangeEvent;
use crate::raft::RaftNode;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const POST_TIMEOUT: Duration = Duration::from_secs(30);
const CURSOR_FILE: &str = "webhook.cursor";

/// Where the webhook posts (`changes.webhook_url`, parsed by config).
pub use crate::config::WebhookTarget as Target;

/// The next change to deliver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Position {
    index: u64,
    seq: u32,
}

pub struct Webhook {
    pub node: Arc<RaftNode>,
    pub target: Target,
    pub batch: usize,
    pub tables: Vec<String>,
    pub stopping: watch::Receiver<bool>,
}

impl Webhook {
    /// Posts the feed until the node stops.
    pub async fn run(mut self) {
        let cursor_path = self.node.dir().join(CURSOR_FILE);
        let mut position = match read_position(&cursor_path) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(file = %cursor_path.display(), error = %e, "webhook cursor unreadable; the webhook is off");
                return;
            }
        };
        tracing::info!(url = %format!("http://{}{}", self.target.authority, self.target.path), from = position.index, "webhook started");
        let mut cursor = Cursor {
            index: position.index,
            seq: position.seq,
            tables: self.tables.iter().cloned().collect(),
        };
        let mut pending: VecDeque<ChangeEvent> = VecDeque::new();
        let mut backoff = FIRST_BACKOFF;
        while !*self.stopping.borrow() {
            if pending.is_empty() {
                match next_events(&self.node, &mut cursor).await {
                    Ok(events) if events.is_empty() => {
                        tokio::select! {
                            _ = wait_for_index(&self.node, cursor.index.max(1)) => {}
                            _ = self.stopping.wait_for(|s| *s) => return,
                        }
                        continue;
                    }
                    Ok(events) => pending.extend(events),
                    Err(FeedError::TooOld(e)) => {
                        tracing::error!(error = %e, "the webhook fell behind the feed's retention: changes were skipped");
                        cursor.index = e.oldest;
                        cursor.seq = 0;
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "webhook cannot read the change feed");
                        self.pause(&mut backoff).await;
                        continue;
                    }
                }
            }
            let count = pending.len().min(self.batch);
            let mut body = String::new();
            for e in pending.iter().take(count) {
                body.push_str(&e.to_json().to_string());
                body.push('\n');
            }
            match post(&self.target, body).await {
                Ok(()) => {
                    let last = pending.drain(..count).next_back();
                    if let Some(last) = last {
                        position = Position {
                            index: last.index,
                            seq: last.seq + 1,
                        };
                        if let Err(e) = write_position(&cursor_path, position) {
                            tracing::error!(file = %cursor_path.display(), error = %e, "cannot save the webhook cursor");
                        }
                    }
                    backoff = FIRST_BACKOFF;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "webhook POST failed");
                    self.pause(&mut backoff).await;
                }
            }
        }
    }

    async fn pause(&mut self, backoff: &mut Duration) {
        tokio::select! {
            _ = tokio::time::sleep(*backoff) => {}
            _ = self.stopping.wait_for(|s| *s) => {}
        }
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
    }
}

/// One POST; Ok on a 2xx answer.
async fn post(target: &Target, body: String) -> Result<(), String> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&target.authority)
            .await
            .map_err(|e| format!("connect to {}: {e}", target.authority))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = hyper::Request::post(target.path.as_str())
            .header(hyper::header::HOST, target.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/x-ndjson")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        // Read the answer through, so the receiver sees a clean close.
        let _ = response.into_body().collect().await;
        match status.is_success() {
            true => Ok(()),
            false => Err(format!("the receiver answered {status}")),
        }
    };
    tokio::time::timeout(POST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {POST_TIMEOUT:?}")))
}

fn read_position(path: &Path) -> Result<Position, String> {
    match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Position::default()),
        Err(e) => Err(e.to_string()),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{e} (delete the file to start from the oldest change kept)")),
    }
}

/// Write, fsync, rename: a crash leaves the old cursor or the new one.
fn write_position(path: &Path, position: Position) -> std::io::Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    let bytes = serde_json::to_vec(&position).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::create(&tmp)?;
    std::io::Write::write_all(&mut f, &bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls_only() {
        assert_eq!(
            Target::parse("http://collector:9000/in?x=1"),
            Ok(Target {
                authority: "collector:9000".into(),
                path: "/in?x=1".into()
            })
        );
        assert_eq!(Target::parse("http://127.0.0.1:80").map(|t| t.path), Ok("/".into()));
        for bad in [
            "https://a:1/",
            "http://nohost/",
            "http://:9/",
            "collector:9000",
            "http://a:port/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursor_survives_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CURSOR_FILE);
        assert_eq!(read_position(&path), Ok(Position::default()));
        write_position(&path, Position { index: 7, seq: 3 }).unwrap();
        write_position(&path, Position { index: 9, seq: 0 }).unwrap();
        assert_eq!(read_position(&path), Ok(Position { index: 9, seq: 0 }));
        std::fs::write(&path, b"garbage").unwrap();
        assert!(read_position(&path).unwrap_err().contains("delete the file"));
    }
}
