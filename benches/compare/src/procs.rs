//! Starting and stopping the servers under test: a 3-member etcd, and
//! ChronosDB with 3 nodes or 1, on 127.0.0.1 with free ports, each with its
//! data in a directory of the run (all on the same disk). Every process is
//! killed when its handle is dropped, so a failed run leaves none behind.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process; killed on drop.
pub struct Server {
    child: Child,
}

impl Server {
    fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Server, String> {
        let log_file = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Server { child })
    }

    /// Resident memory now and at its peak, in MiB (from /proc).
    pub fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(f64::NAN, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Stops with SIGTERM, then SIGKILL after 10 s.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// A running cluster: its servers and the addresses clients use.
pub struct Cluster {
    pub servers: Vec<Server>,
    /// host:port of each member, for clients.
    pub addresses: Vec<String>,
}

impl Cluster {
    pub fn stop(self) {
        for server in self.servers {
            server.stop();
        }
    }

    /// The members' resident memory, in MiB: the largest now, and the
    /// largest peak.
    pub fn memory_mib(&self) -> (f64, f64) {
        self.servers
            .iter()
            .map(Server::memory_mib)
            .fold((0.0, 0.0), |(now, peak), (n, p)| (f64::max(now, n), f64::max(peak, p)))
    }
}

/// Starts an etcd cluster of `members`, with the WAL fsynced as by default
/// and transactions of up to 1,000 operations allowed.
pub fn start_etcd(etcd: &Path, dir: &Path, members: usize) -> Result<Cluster, String> {
    let mut peer_ports = Vec::new();
    let mut client_ports = Vec::new();
    for _ in 0..members {
        peer_ports.push(free_port()?);
        client_ports.push(free_port()?);
    }
    let initial = (0..members)
        .map(|i| format!("e{}=http://127.0.0.1:{}", i + 1, peer_ports[i]))
        .collect::<Vec<_>>()
        .join(",");
    let mut cluster = Cluster {
        servers: Vec::new(),
        addresses: Vec::new(),
    };
    for i in 0..members {
        let name = format!("e{}", i + 1);
        let data = dir.join(&name);
        let (peer, client) = (
            format!("http://127.0.0.1:{}", peer_ports[i]),
            format!("http://127.0.0.1:{}", client_ports[i]),
        );
        let mut command = Command::new(etcd);
        command
            .args(["--name", &name])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "chronos-compare"])
            .args(["--max-txn-ops", "1000", "--quota-backend-bytes", "8589934592"])
            .args(["--logger", "zap", "--log-level", "warn"]);
        cluster
            .servers
            .push(Server::spawn(&name, command, &dir.join(format!("{name}.log")))?);
        cluster.addresses.push(format!("127.0.0.1:{}", client_ports[i]));
    }
    Ok(cluster)
}

/// Starts ChronosDB with `nodes` members (1: a single node), with its
/// default settings plus the `CHRONOS_*` settings in `env`.
pub fn start_chronos(chronos: &Path, dir: &Path, nodes: usize, env: &[(&str, &str)]) -> Result<Cluster, String> {
    let mut addresses = Vec::new();
    for _ in 0..nodes {
        addresses.push(format!("127.0.0.1:{}", free_port()?));
    }
    let mut cluster = Cluster {
        servers: Vec::new(),
        addresses: addresses.clone(),
    };
    for i in 0..nodes {
        let id = format!("node{}", i + 1);
        let peers = (0..nodes)
            .filter(|j| *j != i)
            .map(|j| format!("node{}={}", j + 1, addresses[j]))
            .collect::<Vec<_>>()
            .join(",");
        let mut command = Command::new(chronos);
        command
            .args(["node", "--id", &id, "--address", &addresses[i]])
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied());
        if !peers.is_empty() {
            command.args(["--peers", &peers]);
        }
        cluster
            .servers
            .push(Server::spawn(&id, command, &dir.join(format!("{id}.log")))?);
    }
    Ok(cluster)
}

/// A fresh directory for one system's data under the run's directory.
pub fn data_dir(base: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = base.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Size in bytes of `binary` once stripped of symbols (a copy is stripped).
pub fn stripped_size(binary: &Path, scratch: &Path) -> Result<u64, String> {
    let copy = scratch.join("stripped");
    let status = Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg(binary)
        .status()
        .map_err(|e| format!("cannot run strip: {e}"))?;
    if !status.success() {
        return Err(format!("strip failed on {}", binary.display()));
    }
    let size = std::fs::metadata(&copy).map_err(|e| e.to_string())?.len();
    let _ = std::fs::remove_file(&copy);
    Ok(size)
}
