//! The supervisor: owns the node's storage and server task, restarts the
//! server with backoff if it fails, and runs the graceful stop.

use super::readiness;
use super::signals::{self, Request};
use crate::changes::service::ChangesService;
use crate::changes::webhook::{Target, Webhook};
use crate::changes::{ChangeLog, NoChangeLog};
use crate::config::{Config, ConfigError};
use crate::queue::{Batcher, QueueSettings, WriteQueue};
use crate::raft::discovery::AutoCluster;
use crate::raft::service::RaftService;
use crate::raft::{ClusterError, LogFeatures, LogStore, RaftNode, RaftSettings, role_name};
use crate::security::certs::CertKind;
use crate::security::{Gate, TlsFiles};
use crate::server::{self, ChronosService, Limits, Metrics};
use crate::sql::{Database, SqlError};
use crate::storage::space::SpaceSettings;
use crate::storage::{Engine, SledEngine, StorageError, running};
use crate::sync::agent::Agent;
use crate::sync::ops::SyncOps;
use crate::sync::service::SyncService;
use crate::sync::status::StatusBoard;
use crate::sync::{Clock, SyncSettings};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long in-flight requests may take to finish after a stop request.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("cannot open storage in {path}: {source}")]
    Storage { path: String, source: StorageError },
    #[error("cannot open the database: {0}")]
    Database(#[from] SqlError),
    #[error("cannot listen on {address}: {source}")]
    Listen { address: String, source: std::io::Error },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

/// One-off choices for this start, given as flags (not configuration).
#[derive(Clone, Copy, Debug, Default)]
pub struct StartOptions {
    /// When the data files are damaged, set them aside and rebuild from
    /// the other members instead of refusing to start.
    pub rebuild_from_peers: bool,
}

impl DaemonError {
    /// True when the node's own data files are damaged (not a lock, a
    /// permission or a configuration problem).
    pub fn is_damage(&self) -> bool {
        match self {
            DaemonError::Storage { source, .. } => matches!(source, StorageError::Damaged(_)),
            DaemonError::Cluster(ClusterError::Damaged(_)) => true,
            _ => false,
        }
    }
}

/// Runs a node until it is told to stop. Returns once storage is flushed.
pub fn run(config: Config, options: StartOptions) -> Result<(), DaemonError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("chronos")
        // Parsing and planning recurse over the statement; 8 MiB (as for a
        // main thread) leaves a wide margin over the parser's depth limits.
        .thread_stack_size(8 * 1024 * 1024)
        .build()
        .map_err(DaemonError::Runtime)?;
    runtime.block_on(run_node(config, options))
}

async fn run_node(config: Config, options: StartOptions) -> Result<(), DaemonError> {
    let addr = config.socket_addr()?;
    let tls = tls_files(&config)?;
    let gate = Arc::new(Gate::new(tls.is_some(), config.users.clone()));
    let reap_after = (config.cluster.reap_after_s > 0).then(|| Duration::from_secs(config.cluster.reap_after_s));
    let dir = config.node_dir();
    let (engine, db, node, queue) = match open_node(&config, &dir).await {
        Err(e) if options.rebuild_from_peers && e.is_damage() => {
            let aside = set_aside(&config, &dir, &e)?;
            tracing::warn!(damaged = %aside.display(), "starting empty: the leader will send this node a snapshot");
            open_node(&config, &dir).await?
        }
        opened => opened?,
    };
    let metrics = Arc::new(Metrics::default());
    let raft_service = RaftService::new(node.clone(), gate.clone());
    let sync_settings = Arc::new(SyncSettings::from_config(&config));
    let sync_status = Arc::new(StatusBoard::default());
    let sync_service = SyncService::new(node.clone(), sync_settings.clone(), sync_status.clone(), gate.clone());
    let limits = Limits::from(&config.limits);
    let service = ChronosService::new(node.clone(), queue.clone(), metrics.clone(), limits, gate.clone())
        .with_sync(sync_service.clone());
    tokio::spawn(Agent::new(node.clone(), sync_settings, sync_status).run());
    let mut requests = signals::listen().map_err(DaemonError::Runtime)?;
    // Long-lived streams (change feed subscribers) end when a stop begins.
    let (stopping_tx, stopping) = watch::channel(false);
    let stop_requested = wait_for(requests.clone(), Request::Stop);
    tokio::spawn(async move {
        stop_requested.await;
        let _ = stopping_tx.send(true);
    });
    let changes = ChangesService::new(node.clone(), stopping.clone(), gate.clone());
    let batcher = Batcher {
        node: node.clone(),
        queue: queue.clone(),
        window: Duration::from_millis(config.queue.window_ms),
        stopping: stopping.clone(),
    };
    tokio::spawn(batcher.run());
    if let Some(url) = &config.changes.webhook_url {
        let target = Target::parse(url).map_err(|e| ConfigError::Invalid(format!("key 'changes.webhook_url': {e}")))?;
        let webhook = Webhook {
            node: node.clone(),
            target,
            batch: config.changes.webhook_batch,
            tables: config.changes.webhook_tables.clone(),
            stopping: stopping.clone(),
        };
        tokio::spawn(webhook.run());
    }

    let mut listener = TcpListener::bind(addr).await.map_err(|source| DaemonError::Listen {
        address: config.address.clone(),
        source,
    })?;
    let address = listener.local_addr().map_or(config.address.clone(), |a| a.to_string());
    tracing::info!(id = %config.id, %address, data = %dir.display(), "node serving");
    if let Some(http_address) = &config.http_address {
        let http = TcpListener::bind(http_address)
            .await
            .map_err(|source| DaemonError::Listen {
                address: http_address.clone(),
                source,
            })?;
        tracing::info!(address = %http_address, "HTTP API, metrics and health serving");
        let stop = wait_for(requests.clone(), Request::Stop);
        let parts = server::http::HttpParts {
            node: node.clone(),
            queue: queue.clone(),
            metrics,
            sync: Some(sync_service.clone()),
            stopping: stopping.clone(),
            max_request_bytes: config.max_request_bytes,
            limits,
            gate: gate.clone(),
            tls: match &tls {
                Some(files) => Some(files.server_config().map_err(|e| ConfigError::Invalid(e.to_string()))?),
                None => None,
            },
        };
        let serving = server::http::serve(http, parts, stop);
        tokio::spawn(async move {
            if let Err(e) = serving.await {
                tracing::error!(error = %e, "HTTP listener failed");
            }
        });
    }
    tokio::spawn(node.clone().bootstrap());
    tokio::spawn(node.clone().keep_durable_watermark());
    tokio::spawn(node.clone().hand_over_leadership());
    tokio::spawn(node.space().clone().watch());
    if let Some(after) = reap_after {
        tokio::spawn(node.clone().reap_dead_members(after));
    }
    readiness::ready(&format!("serving on {address}"));
    tokio::spawn(report_role(node.clone(), address.clone()));
    if let Some(every) = readiness::watchdog_interval() {
        tokio::spawn(async move {
            loop {
                readiness::watchdog();
                tokio::time::sleep(every).await;
            }
        });
    }

    let mut backoff = Duration::from_millis(100);
    loop {
        let stop = wait_for(requests.clone(), Request::Stop);
        let services = server::Services {
            chronos: service.clone(),
            raft: raft_service.clone(),
            sync: sync_service.clone(),
            changes: changes.clone(),
        };
        let server_tls = tls.as_ref().map(TlsFiles::server_tls);
        let serving = server::serve(listener, services, config.max_request_bytes, limits, server_tls, stop);
        tokio::pin!(serving);
        // Biased: the stop request is seen first, even when the server
        // (which watches the same request) finishes in the same poll.
        let outcome = tokio::select! {
            biased;
            _ = wait_for(requests.clone(), Request::Stop) => None,
            outcome = &mut serving => Some(outcome),
        };
        let outcome = match outcome {
            Some(o) => o,
            None => {
                // Stop requested: let in-flight calls finish, unless a second
                // signal or the drain timeout says otherwise.
                readiness::stopping();
                tracing::info!("stopping: finishing in-flight requests");
                tokio::select! {
                    _ = &mut serving => {}
                    _ = wait_for(requests.clone(), Request::StopNow) => tracing::warn!("second signal: stopping now"),
                    _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("drain timed out"),
                }
                break;
            }
        };
        if *requests.borrow_and_update() != Request::Run {
            readiness::stopping();
            break;
        }
        // The server failed on its own: restart it with backoff.
        if let Err(e) = outcome {
            tracing::error!(error = %e, ?backoff, "server failed; restarting");
        }
        readiness::status("server restarting");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        listener = TcpListener::bind(addr).await.map_err(|source| DaemonError::Listen {
            address: config.address.clone(),
            source,
        })?;
        readiness::status(&format!("serving on {address}"));
    }
    node.shutdown().await;
    // Every acknowledged write is already durable; this flush covers
    // anything sled still buffers (e.g. orphan cleanup).
    match engine.flush() {
        Ok(()) => {
            if let Err(e) = running::clear(&dir) {
                tracing::warn!(error = %e, "cannot record the clean stop");
            }
        }
        Err(e) => tracing::error!(error = %e, "flush on stop failed"),
    }
    drop(node);
    drop(db);
    tracing::info!("stopped");
    Ok(())
}

/// Completes once the request is `at_least` (Stop, or StopNow).
async fn wait_for(mut requests: watch::Receiver<Request>, at_least: Request) {
    let reached = |r: &Request| match at_least {
        Request::Run => true,
        Request::Stop => *r != Request::Run,
        Request::StopNow => *r == Request::StopNow,
    };
    // An error means the signal thread is gone; never complete then.
    if requests.wait_for(reached).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Keeps systemd's STATUS= line up to date with the role and the leader.
async fn report_role(node: Arc<RaftNode>, address: String) {
    let mut metrics = node.raft().metrics();
    let mut last = String::new();
    loop {
        let line = {
            let m = metrics.borrow_and_update();
            let leader = m
                .current_leader
                .and_then(|l| m.membership_config.membership().get_node(&l).map(|n| n.name.clone()))
                .unwrap_or_else(|| "none".into());
            format!(
                "serving on {address}: {}, leader {leader}, term {}",
                role_name(m.state),
                m.current_term
            )
        };
        if line != last {
            readiness::status(&line);
            tracing::info!("{line}");
            last = line;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// The node's TLS files when `[tls]` is set, checked to hold a node
/// certificate; peer connections use them from here on.
fn tls_files(config: &Config) -> Result<Option<TlsFiles>, DaemonError> {
    let Some(files) =
        TlsFiles::from_config(&config.tls).map_err(|e| ConfigError::Invalid(format!("section 'tls': {e}")))?
    else {
        return Ok(None);
    };
    match files.own_identity() {
        Some((CertKind::Node, name)) => {
            if name != config.id {
                tracing::warn!(certificate = %name, id = %config.id, "the node certificate names another node");
            }
        }
        _ => {
            return Err(ConfigError::Invalid(format!(
                "key 'tls.cert': {} is not a ChronosDB node certificate (make one with `chronos certs issue node {}`)",
                config
                    .tls
                    .cert
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string()),
                config.id
            ))
            .into());
        }
    }
    crate::security::tls::use_for_peers(&files);
    tracing::info!("TLS on: peers need a node certificate signed by the cluster CA");
    Ok(Some(files))
}

/// Opens the node's storage and starts Raft on it.
async fn open_node(
    config: &Config,
    dir: &std::path::Path,
) -> Result<(Arc<dyn Engine>, Arc<Database>, Arc<RaftNode>, Arc<WriteQueue>), DaemonError> {
    std::fs::create_dir_all(dir).map_err(|source| DaemonError::DataDir {
        path: dir.display().to_string(),
        source,
    })?;
    let engine =
        SledEngine::open_with_cache(dir, config.storage.cache_bytes).map_err(|source| DaemonError::Storage {
            path: dir.display().to_string(),
            source,
        })?;
    let sled = engine.db().clone();
    let engine: Arc<dyn Engine> = Arc::new(engine);
    let db = Arc::new(Database::open(engine.clone())?);
    let peers = config.peers()?.into_iter().map(|p| (p.id, p.address)).collect();
    let settings = RaftSettings {
        name: config.id.clone(),
        address: config.advertised().to_string(),
        peers,
        join: config.join.clone(),
        snapshot_every: config.snapshot_every,
        election_timeout_ms: config.election_timeout_ms,
        dir: dir.to_path_buf(),
        site: config.sync.site_id.as_deref().map(SyncSettings::site_hash),
        features: LogFeatures {
            // A witness applies no rows, so it has no changes to record.
            recorder: match config.changes.enabled && !config.is_witness() {
                true => Arc::new(ChangeLog {
                    retain_entries: config.changes.retain_entries,
                }),
                false => Arc::new(NoChangeLog),
            },
            ops: Arc::new(SyncOps),
        },
        auto: AutoCluster::from(&config.cluster),
        space: SpaceSettings::from(&config.storage),
        learner: config.role == "learner",
        witness: config.is_witness(),
    };
    // The clock resumes past every stamp issued before a restart.
    let log = LogStore::open(&sled).map_err(|e| ClusterError::Storage(e.to_string()))?;
    let clock = Clock::persistent(log.clock_mark(), Box::new(log.clock_high_water()));
    // Writes acknowledged before they commit: the server pushes them, the
    // batcher proposes them through Raft, which records their outcomes.
    let queue = WriteQueue::open(&sled, &config.id, QueueSettings::from(&config.queue))
        .map_err(|e| ClusterError::Storage(e.to_string()))?;
    let node = RaftNode::start(settings, db.clone(), sled, Arc::new(clock)).await?;
    let unclean = running::mark(dir).map_err(|source| DaemonError::DataDir {
        path: dir.display().to_string(),
        source,
    })?;
    if unclean {
        tracing::warn!(
            committed_index = node.committed_index(),
            "the last run did not stop cleanly (power cut, kill or crash): a record written after the last flush that did not reach the disk whole was dropped at its checksum; the log holds every entry known committed, up to this index, and Raft applies again what the data lost"
        );
    }
    Ok((engine, db, node, Arc::new(queue)))
}

/// `--rebuild-from-peers` after a damaged start: moves the node's
/// directory aside (kept for inspection), so the node starts empty and the
/// leader sends it a snapshot. A node without peers has nothing to rebuild
/// from.
fn set_aside(config: &Config, dir: &std::path::Path, damage: &DaemonError) -> Result<std::path::PathBuf, DaemonError> {
    if config.peers.is_empty() && config.join.is_none() && config.cluster.join.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "{damage}; --rebuild-from-peers needs peers (peers, join or cluster.join): a single node restores a backup instead"
        ))
        .into());
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = dir.with_file_name(format!("{}.damaged-{stamp}", config.id));
    std::fs::rename(dir, &aside).map_err(|source| DaemonError::DataDir {
        path: aside.display().to_string(),
        source,
    })?;
    tracing::warn!(error = %damage, "damaged data set aside (--rebuild-from-peers)");
    Ok(aside)
}
