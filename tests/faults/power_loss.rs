//! Power loss: a node under concurrent writes is killed at a random moment
//! and its files are turned into what a power cut then could have left
//! (power_loss/crashsim.c journals every write and fsync; journal.rs keeps
//! what was fsynced, a random part of what followed, and tears the next
//! write). Then it restarts. Every time it must start and still hold every
//! write it acknowledged. CHRONOS_POWER_CUTS (30) sets the number of cuts,
//! CHRONOS_POWER_SEED (1) the seed; docs/testing.md has the longer run.

use crate::common;
mod journal;

use chronos::client::Client;
use common::{BIN, Rng, block_on, free_port};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: usize = 4;
/// Every this many writes, one carries a value large enough for sled to
/// keep it in a file of its own under `blobs/`.
const LARGE_EVERY: i64 = 25;
const LARGE_BYTES: usize = 200_000;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Compiles the simulator with the system's C compiler.
fn build_simulator(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults/power_loss/crashsim.c");
    let library = dir.join("libcrashsim.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&library)
        .arg(&source)
        .args(["-ldl", "-lpthread"])
        .status()
        .unwrap_or_else(|e| panic!("the power-loss test compiles {} with `{cc}`: {e}", source.display()));
    assert!(status.success(), "cannot compile {}", source.display());
    library
}

struct Run {
    data: PathBuf,
    log: PathBuf,
    env: Vec<(String, PathBuf)>,
}

impl Run {
    /// Starts the node after `cuts` power cuts and waits until it answers
    /// a strong read; panics with its log when it exits instead.
    fn start(&self, port: u16, cuts: u64) -> (Child, String) {
        let address = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(&self.log).expect("node log");
        let mut child = Command::new(BIN)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["node", "--id", "node1", "--address", &address])
            .arg("--data-dir")
            .arg(&self.data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn chronos node");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("after power cut {cuts} the node did not start ({status}):\n{log}");
            }
            if block_on(strong_read_works(&address)) {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                assert!(
                    cuts == 0 || log.contains("did not stop cleanly"),
                    "after power cut {cuts} the node does not say it recovered from one:\n{log}"
                );
                return (child, address);
            }
            assert!(
                Instant::now() < deadline,
                "after power cut {cuts} the node did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

async fn strong_read_works(address: &str) -> bool {
    match Client::connect(address).await {
        Ok(mut c) => {
            c.retry_for = Duration::ZERO;
            c.query("SELECT 1").await.is_ok()
        }
        Err(_) => false,
    }
}

/// The ids in table t, read strongly.
async fn stored_ids(address: &str) -> BTreeSet<i64> {
    let mut c = Client::connect(address).await.expect("connect");
    let mut stream = c.query("SELECT id FROM t").await.expect("read table t");
    let mut ids = BTreeSet::new();
    loop {
        let batch = stream.next_batch().await.expect("rows");
        if batch.is_empty() {
            return ids;
        }
        for row in batch {
            let text = format!("{:?}", row[0]);
            let id = text.trim_start_matches("Int(").trim_end_matches(')').parse();
            ids.insert(id.unwrap_or_else(|_| panic!("unexpected id {text}")));
        }
    }
}

/// Writes from `WRITERS` clients until `stop`; the ids acknowledged.
async fn write_until(address: String, next: Arc<AtomicI64>, stop: Arc<AtomicBool>) -> Vec<i64> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (address, next, stop, acked) = (address.clone(), next.clone(), stop.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut c) = Client::connect(&address).await else {
                return;
            };
            c.retry_for = Duration::ZERO;
            while !stop.load(Ordering::SeqCst) {
                let id = next.fetch_add(1, Ordering::SeqCst);
                let value = match id % LARGE_EVERY {
                    0 => "L".repeat(LARGE_BYTES),
                    _ => format!("row {id}"),
                };
                match c.execute(&format!("INSERT INTO t VALUES ({id}, '{value}')")).await {
                    Ok(r) if r.error.is_none() => acked.lock().unwrap().push(id),
                    // Killed, or refused: not acknowledged; stop.
                    _ => return,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    acked.lock().unwrap().clone()
}

fn check(address: &str, acked: &BTreeSet<i64>, point: u64, seed: u64) {
    let stored = block_on(stored_ids(address));
    let lost: Vec<&i64> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "after power cut {point} (seed {seed}) {} acknowledged writes are missing, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

#[test]
fn every_acknowledged_write_survives_power_cuts_and_the_node_always_starts() {
    let cuts = setting("CHRONOS_POWER_CUTS", 30);
    let seed = setting("CHRONOS_POWER_SEED", 1);
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let data = data.canonicalize().expect("data dir");
    let journal_path = tmp.path().join("journal");
    let run = Run {
        data: data.clone(),
        log: tmp.path().join("node.log"),
        env: vec![
            ("LD_PRELOAD".into(), build_simulator(tmp.path())),
            ("CRASHSIM_DIR".into(), data.clone()),
            ("CRASHSIM_JOURNAL".into(), journal_path.clone()),
        ],
    };
    let next = Arc::new(AtomicI64::new(1));
    let mut acked = BTreeSet::new();
    let mut table = false;
    let mut total = journal::Cut::default();
    let began = Instant::now();
    for point in 1..=cuts {
        let _ = std::fs::remove_file(&journal_path);
        let (mut child, address) = run.start(free_port(), point - 1);
        if table {
            check(&address, &acked, point - 1, seed);
        } else {
            let r = block_on(async {
                Client::connect(&address)
                    .await?
                    .execute("CREATE TABLE t (id INT PRIMARY KEY, v STRING)")
                    .await
            });
            assert!(r.as_ref().is_ok_and(|r| r.error.is_none()), "{r:?}");
            table = true;
        }
        // Cut at a random moment while the writers are busy.
        let writing_ms = 50 + rng.below(400);
        let stop = Arc::new(AtomicBool::new(false));
        let written = block_on(async {
            let writers = tokio::spawn(write_until(address.clone(), next.clone(), stop.clone()));
            tokio::time::sleep(Duration::from_millis(writing_ms)).await;
            child.kill().expect("kill node");
            stop.store(true, Ordering::SeqCst);
            writers.await.expect("writers")
        });
        child.wait().expect("reap node");
        acked.extend(written);
        let cut = journal::cut(&journal_path, &mut rng);
        total.files += cut.files;
        total.kept += cut.kept;
        total.torn += cut.torn;
        total.undone += cut.undone;
    }
    let (mut child, address) = run.start(free_port(), cuts);
    check(&address, &acked, cuts, seed);
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "{cuts} power cuts (seed {seed}) in {:.0?}: {} acknowledged writes, all kept; {} starts, 0 failed; \
         unsynced writes at the cuts: {} kept, {} torn, {} undone, in {} files",
        began.elapsed(),
        acked.len(),
        cuts + 1,
        total.kept,
        total.torn,
        total.undone,
        total.files
    );
    assert!(!acked.is_empty(), "no write was acknowledged: the test checked nothing");
    assert!(
        total.torn + total.undone > 0,
        "no cut dropped a write: the test checked nothing"
    );
}
