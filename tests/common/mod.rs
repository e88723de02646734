//! Helpers for tests that run the real `chronos` binary as child processes
//! on 127.0.0.1 with free ports.

#![allow(dead_code)]

pub mod cluster;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_chronos");

/// The SQL logic test files, in name order.
pub fn slt_files() -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slt"))
        .expect("tests/slt exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files found");
    files
}

/// A port for a node to listen on. Taken below the kernel's ephemeral range
/// (32768 and up), so no outgoing connection or port-0 listener (the test's
/// proxies) can grab it between this check and the node's bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Spread test binaries running side by side over the range.
    let base = 20_000 + (std::process::id() % 64) * 190;
    for _ in 0..12_000 {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = (20_000 + (base - 20_000 + offset) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-31999");
}

/// A node process; killed when dropped.
pub struct Node {
    pub child: Child,
    pub address: String,
    pub data_dir: PathBuf,
}

impl Node {
    /// Starts `chronos node` with its files under `data_dir` and waits until
    /// it accepts connections.
    pub fn start(data_dir: &Path, port: u16) -> Node {
        Node::start_with_env(data_dir, port, &[])
    }

    /// Like `start`, with extra environment variables for the node.
    pub fn start_with_env(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> Node {
        Node::start_named(data_dir, port, "node1", env)
    }

    /// Starts a single node with the given id.
    pub fn start_named(data_dir: &Path, port: u16, id: &str, env: &[(&str, &str)]) -> Node {
        let address = format!("127.0.0.1:{port}");
        let child = Command::new(BIN)
            .envs(env.iter().copied())
            .args(["node", "--id", id, "--address", &address])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn chronos node");
        let node = Node {
            child,
            address,
            data_dir: data_dir.to_path_buf(),
        };
        node.wait_ready();
        node
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(&self.address).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node on {} did not start listening", self.address);
    }

    /// Runs `chronos client -e sql` against this node.
    pub fn sql(&self, sql: &str) -> Output {
        self.client(&["-e", sql])
    }

    pub fn client(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(["client", "--leader", &self.address])
            .args(args)
            .output()
            .expect("run chronos client")
    }

    /// Like `sql`, but the statement must succeed; returns its stdout.
    pub fn ok(&self, sql: &str) -> String {
        let out = self.sql(sql);
        assert!(
            out.status.success(),
            "`{sql}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Like `sql`, but the statement must fail; returns its stderr.
    pub fn fails(&self, sql: &str) -> String {
        let out = self.sql(sql);
        assert!(!out.status.success(), "`{sql}` should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for node") {
                return status;
            }
            assert!(Instant::now() < deadline, "node did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill_hard(mut self) {
        self.child.kill().expect("kill node");
        self.child.wait().expect("reap node");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs an async test body on its own two-thread runtime.
pub fn block_on<T>(body: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(body)
}

/// A small seeded generator (xorshift): fault schedules and crash points
/// that a seed reproduces.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A real sled engine in a temporary directory, with blocks of at most 1 KiB
/// so that even small tests split and merge blocks; the directory lives as
/// long as the returned handle.
pub fn block_engine() -> (std::sync::Arc<chronos::storage::SledEngine>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = chronos::storage::SledEngine::open_with(dir.path(), 4 << 20, 1024).expect("open the block engine");
    (std::sync::Arc::new(engine), dir)
}
