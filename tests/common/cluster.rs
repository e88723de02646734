//! A real cluster of `chronos node` processes on 127.0.0.1 for fault tests.
//!
//! Members reach each other only through per-direction TCP proxies owned by
//! the test, so a test can cut any link (a partition) without touching the
//! host's firewall. Clients talk to nodes directly.

#![allow(dead_code)]

use super::{BIN, free_port};
use chronos::client::Client;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Election timeout for test clusters, in milliseconds.
pub const ELECTION_MS: u64 = 400;

/// Live connections through a proxy, each with the flag its pipes set
/// once it has closed.
type Connections = Arc<Mutex<Vec<(Arc<AtomicBool>, TcpStream)>>>;

/// A one-way link from one member to another that can be cut and healed.
pub struct Proxy {
    pub address: String,
    cut: Arc<AtomicBool>,
    /// Milliseconds each chunk of bytes is held before it is passed on.
    delay_ms: Arc<AtomicU64>,
    /// The live connections (and whether each has closed), to cut.
    open: Connections,
}

impl Proxy {
    pub fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let address = listener.local_addr().expect("proxy address").to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let open: Connections = Arc::default();
        let (c, o, d) = (cut.clone(), open.clone(), delay_ms.clone());
        std::thread::spawn(move || {
            for incoming in listener.incoming() {
                let Ok(inbound) = incoming else { continue };
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(&target) else {
                    continue;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let closed = Arc::new(AtomicBool::new(false));
                let mut list = o.lock().unwrap();
                // Forget connections that have closed, so a long run does
                // not run out of file descriptors.
                list.retain(|(done, _)| !done.load(Ordering::SeqCst));
                for s in [&inbound, &outbound] {
                    if let Ok(s) = s.try_clone() {
                        list.push((closed.clone(), s));
                    }
                }
                drop(list);
                let (Ok(i2), Ok(o2)) = (inbound.try_clone(), outbound.try_clone()) else {
                    continue;
                };
                pipe(i2, o2, c.clone(), d.clone(), closed.clone());
                pipe(outbound, inbound, c.clone(), d.clone(), closed);
            }
        });
        Proxy {
            address,
            cut,
            delay_ms,
            open,
        }
    }

    /// Holds every chunk of bytes for this long (0: no delay).
    pub fn delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for (_, s) in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Connections still held open for `cut` (closed ones are forgotten
    /// at the next accept).
    pub fn held(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}

fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    cut: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let delay = delay_ms.load(Ordering::SeqCst);
                    if delay > 0 {
                        std::thread::sleep(Duration::from_millis(delay));
                    }
                    if cut.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
        closed.store(true, Ordering::SeqCst);
    });
}

pub struct Member {
    pub name: String,
    pub address: String,
    pub child: Option<Child>,
    pub log: PathBuf,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<Member>,
    /// links[i][j]: how member i reaches member j.
    pub links: Vec<Vec<Option<Proxy>>>,
    pub snapshot_every: u64,
    /// Extra environment for every member (e.g. CHRONOS_CONFIG).
    pub env: Vec<(String, String)>,
}

impl Cluster {
    /// Starts `n` members, in the order given (indexes), as in the Quick
    /// Start: each with --peers naming the others.
    pub fn start(n: usize, order: &[usize], snapshot_every: u64) -> Cluster {
        Cluster::start_with_env(n, order, snapshot_every, &[])
    }

    /// Like `start`, with extra environment for every member.
    pub fn start_with_env(n: usize, order: &[usize], snapshot_every: u64, env: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("node{}", i + 1),
                address: format!("127.0.0.1:{}", free_port()),
                child: None,
                log: dir.path().join(format!("node{}.log", i + 1)),
            })
            .collect();
        let links = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| (i != j).then(|| Proxy::start(members[j].address.clone())))
                    .collect()
            })
            .collect();
        let mut cluster = Cluster {
            dir,
            members,
            links,
            snapshot_every,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        for &i in order {
            cluster.spawn(i, &[]);
        }
        cluster
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn peers_of(&self, i: usize) -> String {
        (0..self.members.len())
            .filter(|&j| j != i)
            .map(|j| {
                let link = self.links[i][j].as_ref().expect("link");
                format!("{}={}", self.members[j].name, link.address)
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts member i's process (again) with its peers and more flags.
    pub fn spawn_with_peers(&mut self, i: usize, flags: &[&str]) {
        let peers = self.peers_of(i);
        let mut all = vec!["--peers", peers.as_str()];
        all.extend_from_slice(flags);
        self.spawn(i, &all);
    }

    /// Starts member i's process (again), with extra flags.
    pub fn spawn(&mut self, i: usize, extra: &[&str]) {
        self.spawn_with_env(i, extra, &[]);
    }

    /// Like `spawn`, with extra environment for this process only.
    pub fn spawn_with_env(&mut self, i: usize, extra: &[&str], env: &[(&str, &str)]) {
        let m = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("open node log");
        let mut cmd = Command::new(BIN);
        cmd.args(["node", "--id", &m.name, "--address", &m.address])
            .arg("--data-dir")
            .arg(self.data_dir())
            .env("CHRONOS_ELECTION_TIMEOUT_MS", ELECTION_MS.to_string())
            .env("CHRONOS_SNAPSHOT_EVERY", self.snapshot_every.to_string())
            .env("RUST_LOG", "info,openraft=error")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        if extra.is_empty() {
            cmd.args(["--peers", &self.peers_of(i)]);
        } else {
            cmd.args(extra);
        }
        let child = cmd.spawn().expect("spawn chronos node");
        self.members[i].child = Some(child);
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        for &i in a {
            for &j in b {
                self.links[i][j].as_ref().unwrap().cut();
                self.links[j][i].as_ref().unwrap().cut();
            }
        }
    }

    pub fn heal(&self) {
        for row in &self.links {
            for p in row.iter().flatten() {
                p.heal();
            }
        }
    }

    /// Delays every link between members by `ms` per chunk (0 to undo).
    pub fn delay_all(&self, ms: u64) {
        for row in &self.links {
            for p in row.iter().flatten() {
                p.delay(ms);
            }
        }
    }

    pub fn log_of(&self, i: usize) -> String {
        std::fs::read_to_string(&self.members[i].log).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            for i in 0..self.members.len() {
                let log = self.log_of(i);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- {} log (last lines) ----", self.members[i].name);
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Connects a library client, retrying while the node starts.
pub async fn connect(address: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(address).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {address}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The member the members `among` agree leads.
pub async fn leader(cluster: &Cluster, among: &[usize]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for &i in among {
            if let Ok(mut c) = Client::connect(&cluster.members[i].address).await
                && let Ok(s) = c.cluster_status().await
            {
                seen.push(s.leader);
            }
        }
        let agreed = seen.len() == among.len() && !seen[0].is_empty() && seen.iter().all(|l| *l == seen[0]);
        if agreed
            && let Some(i) = cluster.members.iter().position(|m| m.name == seen[0])
            && among.contains(&i)
        {
            return i;
        }
        assert!(Instant::now() < deadline, "no agreed leader among {among:?}: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// All rows of a query on one node, as text, read locally.
pub async fn rows_at(address: &str, sql: &str) -> Result<Vec<String>, String> {
    let mut client = Client::connect(address).await.map_err(|e| e.to_string())?;
    client.consistency = chronos::client::Consistency::Local;
    let mut stream = client.query(sql).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    loop {
        let batch = stream.next_batch().await.map_err(|e| e.to_string())?;
        if batch.is_empty() {
            return Ok(out);
        }
        out.extend(batch.iter().map(|r| format!("{r:?}")));
    }
}

/// Waits until every running member answers `sql` identically (row by
/// row) and returns that answer.
pub async fn converged(cluster: &Cluster, members: &[usize], sql: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut answers = Vec::new();
        for &i in members {
            answers.push(rows_at(&cluster.members[i].address, sql).await);
        }
        if let Some(Ok(first)) = answers.first()
            && answers.iter().all(|a| a.as_ref() == Ok(first))
        {
            return first.clone();
        }
        if Instant::now() > deadline {
            // Row counts, and the first rows, so a failure shows who lags.
            let shown: Vec<_> = answers
                .iter()
                .map(|a| {
                    a.as_ref()
                        .map(|r| (r.len(), r.iter().take(3).cloned().collect::<Vec<_>>()))
                })
                .collect();
            panic!("members did not converge on `{sql}`: (row count, first rows) per member {shown:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}
