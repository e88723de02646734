//! Automatic clustering with real nodes: three nodes started at the same
//! moment with only `cluster.join` and `bootstrap_expect = 3` form exactly
//! one cluster (20 times over); a re-imaged node (empty data directory,
//! same id) rejoins as a new member; a dead member is reaped.

use crate::common;

use chronos::client::Client;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tests start many processes: one at a time on a 2-core machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

struct Node {
    child: Child,
    address: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, id: &str, address: &str, join: &str, extra: &[(&str, &str)]) -> Node {
    let log = std::fs::File::create(dir.join(format!("{id}.log"))).unwrap();
    let child = Command::new(common::BIN)
        .arg("node")
        .env("CHRONOS_ID", id)
        .env("CHRONOS_ADDRESS", address)
        .env("CHRONOS_DATA_DIR", dir.join("data"))
        .env("CHRONOS_ELECTION_TIMEOUT_MS", "400")
        .env("CHRONOS_CLUSTER_BOOTSTRAP_EXPECT", "3")
        .env("CHRONOS_CLUSTER_JOIN", join)
        .envs(extra.iter().copied())
        .env("RUST_LOG", "info,openraft=error")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn chronos node");
    Node {
        child,
        address: address.to_string(),
    }
}

/// Waits until every node reports the same leader and all `n` members as
/// voters;
/// on failure, shows the nodes' logs from `dir`.
async fn one_cluster(dir: &Path, nodes: &[&Node], n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut views = Vec::new();
        for node in nodes {
            let view = match Client::connect(&node.address).await {
                Ok(mut c) => c.cluster_status().await.ok().map(|s| {
                    // Learners (a node still catching up) do not count yet.
                    let mut names: Vec<String> = s.members.iter().filter(|m| m.voter).map(|m| m.id.clone()).collect();
                    names.sort();
                    (s.leader, names)
                }),
                Err(_) => None,
            };
            views.push(view);
        }
        if let Some(Some(first)) = views.first()
            && !first.0.is_empty()
            && first.1.len() == n
            && views.iter().all(|v| v.as_ref() == Some(first))
        {
            return first.0.clone();
        }
        if Instant::now() >= deadline {
            for i in 1..=3 {
                let log = std::fs::read_to_string(dir.join(format!("node{i}.log"))).unwrap_or_default();
                for line in log
                    .lines()
                    .filter(|l| l.contains("panicked at") || l.contains("formed") || l.contains("joining it"))
                {
                    eprintln!("node{i}: {line}");
                }
                let tail: Vec<&str> = log.lines().rev().take(25).collect();
                eprintln!(
                    "---- node{i} ----\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            panic!("no single cluster: {views:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(address: &str) -> i64 {
    let mut c = Client::connect(address).await.unwrap();
    c.consistency = chronos::client::Consistency::Local;
    let mut q = c.query("SELECT count(*) FROM t").await.unwrap();
    match q.next_batch().await.unwrap().first().and_then(|r| r.first()) {
        Some(chronos::sql::types::Value::Int(n)) => *n,
        other => panic!("count: {other:?}"),
    }
}

#[test]
fn three_nodes_started_together_form_one_cluster_every_time() {
    let _serial = serial();
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
        // Half the rounds find each other through a DNS name.
        let host = if round % 2 == 0 { "127.0.0.1" } else { "localhost" };
        let join = ports
            .iter()
            .map(|p| format!("{host}:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes: Vec<Node> = (0..3)
            .map(|i| {
                start(
                    dir.path(),
                    &format!("node{}", i + 1),
                    &format!("127.0.0.1:{}", ports[i]),
                    &join,
                    &[],
                )
            })
            .collect();
        common::block_on(async {
            let refs: Vec<&Node> = nodes.iter().collect();
            one_cluster(dir.path(), &refs, 3).await;
            let mut c = Client::connect(&nodes[round % 3].address).await.unwrap();
            let answer = c
                .execute("CREATE TABLE t (id INT); INSERT INTO t VALUES (1)")
                .await
                .unwrap();
            assert!(answer.error.is_none(), "round {round}: {answer:?}");
        });
        let formed = (1..=3)
            .filter(|i| {
                std::fs::read_to_string(dir.path().join(format!("node{i}.log")))
                    .unwrap_or_default()
                    .contains("formed the cluster")
            })
            .count();
        assert!(formed >= 1, "round {round}: nobody formed the cluster");
    }
}

#[test]
fn a_reimaged_node_rejoins_and_a_dead_member_is_reaped() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let join = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let reap = [("CHRONOS_CLUSTER_REAP_AFTER_S", "10")];
    let address = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let mut nodes: Vec<Option<Node>> = (0..3)
        .map(|i| Some(start(dir.path(), &format!("node{}", i + 1), &address(i), &join, &reap)))
        .collect();
    common::block_on(async {
        let refs: Vec<&Node> = nodes.iter().flatten().collect();
        one_cluster(dir.path(), &refs, 3).await;
        let mut c = Client::connect(&address(0)).await.unwrap();
        c.execute("CREATE TABLE t (id INT)").await.unwrap();
        for i in 0..50 {
            c.execute(&format!("INSERT INTO t VALUES ({i})")).await.unwrap();
        }
    });
    // node3 loses its disk and comes back empty, under the same id. (The
    // members publish their forming proposal for 5 s after the first
    // leader; a node seen in it then is taken for a late starter.)
    std::thread::sleep(Duration::from_secs(6));
    nodes[2] = None;
    std::fs::remove_dir_all(dir.path().join("data").join("node3")).unwrap();
    nodes[2] = Some(start(dir.path(), "node3", &address(2), &join, &reap));
    common::block_on(async {
        let refs: Vec<&Node> = nodes.iter().flatten().collect();
        one_cluster(dir.path(), &refs, 3).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while count(&address(2)).await != 50 {
            assert!(Instant::now() < deadline, "the re-imaged node did not catch up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let log = std::fs::read_to_string(dir.path().join("node3.log")).unwrap();
    assert!(log.contains("removing it before joining again"), "{log}");

    // node2 dies for good: after reap_after_s the leader removes it.
    nodes[1] = None;
    common::block_on(async {
        let refs: Vec<&Node> = [&nodes[0], &nodes[2]].into_iter().flatten().collect();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let mut c = Client::connect(&address(0)).await.unwrap();
            let members = c.cluster_status().await.map(|s| s.members.len()).unwrap_or(0);
            if members == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "node2 was not reaped");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        one_cluster(dir.path(), &refs, 2).await;
        let mut c = Client::connect(&address(2)).await.unwrap();
        let answer = c.execute("INSERT INTO t VALUES (99)").await.unwrap();
        assert!(answer.error.is_none(), "{answer:?}");
    });
}
