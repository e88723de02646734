//! The change feed through real nodes: a `chronos changes` consumer killed
//! (SIGKILL) and restarted sees every change exactly once after dropping
//! repeats by (index, seq); members of a cluster, one of them rebuilt from
//! a snapshot, hold the same feed; positions older than the retention are
//! refused clearly; and the webhook delivers through failures and restarts.

use crate::common;

use chronos::changes::ChangeOp;
use chronos::client::Access;
use chronos::client::changes::Subscription;
use common::cluster::{Cluster, connect, leader};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn config_file(dir: &std::path::Path, changes: &str) -> String {
    let path = dir.join("chronos.toml");
    std::fs::write(&path, format!("[changes]\n{changes}\n")).unwrap();
    path.display().to_string()
}

/// Every event of a node's feed (not following), as (index, seq, table, op, after).
async fn feed_of(address: &str) -> Vec<(u64, u32, String, ChangeOp, String)> {
    try_feed_of(address).await.expect("the feed")
}

async fn try_feed_of(address: &str) -> Result<Vec<(u64, u32, String, ChangeOp, String)>, String> {
    let mut feed = Subscription::open(address, &Access::none(), 0, &[], false)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(e) = feed.next().await.map_err(|e| e.to_string())? {
        out.push((e.index, e.seq, e.table, e.op, format!("{:?}", e.after)));
    }
    Ok(out)
}

/// A `chronos changes` process whose lines are collected as they come.
struct Consumer {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<Json>>>,
}

impl Consumer {
    fn start(address: &str, from: u64) -> Consumer {
        let mut child = Command::new(common::BIN)
            .args([
                "changes",
                "--leader",
                address,
                "--table",
                "t",
                "--from",
                &from.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chronos changes");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let json: Json = serde_json::from_str(&line).expect("a JSON line");
                sink.lock().unwrap().push(json);
            }
        });
        Consumer { child, lines }
    }

    fn seen(&self) -> Vec<Json> {
        self.lines.lock().unwrap().clone()
    }

    fn kill(mut self) -> Vec<Json> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        // The reader thread has the lines that reached the pipe.
        std::thread::sleep(Duration::from_millis(100));
        self.seen()
    }
}

#[test]
fn a_killed_consumer_resumes_and_sees_every_change_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut node = common::Node::start(dir.path(), port);
    let address = node.address.clone();
    common::block_on(async {
        let mut c = connect(&address).await;
        c.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT); CREATE TABLE other (x INT)")
            .await
            .unwrap();
    });
    // A writer in the background: single rows, multi-row entries, updates
    // and changes to a table the consumer does not follow.
    let written = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (written, stop, address) = (written.clone(), stop.clone(), address.clone());
        std::thread::spawn(move || {
            common::block_on(async move {
                let mut c = connect(&address).await;
                let mut id = 0i64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let sql = match id % 3 {
                        0 => format!("INSERT INTO t VALUES ({id}, 0)"),
                        1 => format!(
                            "INSERT INTO t VALUES ({id}, 0), ({}, 0); INSERT INTO other VALUES (1)",
                            id + 1
                        ),
                        _ => format!("UPDATE t SET v = v + 1 WHERE id = {}", id - 1),
                    };
                    if let Ok(r) = c.execute(&sql).await
                        && r.error.is_none()
                    {
                        let mut w = written.lock().unwrap();
                        match id % 3 {
                            0 => {
                                w.insert(("insert", id));
                            }
                            1 => {
                                w.insert(("insert", id));
                                w.insert(("insert", id + 1));
                            }
                            _ => {
                                w.insert(("update", id - 1));
                            }
                        }
                    }
                    id += if id % 3 == 1 { 2 } else { 1 };
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
    };

    // The consumer is killed three times mid-stream, and the node is
    // restarted once; each new consumer resumes from the last index it saw.
    let mut all: Vec<Json> = Vec::new();
    let mut from = 0;
    for round in 0..4 {
        let consumer = Consumer::start(&address, from);
        let deadline = Instant::now() + Duration::from_secs(20);
        while consumer.seen().len() < 40 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let seen = consumer.kill();
        assert!(!seen.is_empty(), "round {round}: the consumer saw nothing");
        let indexes: Vec<u64> = seen.iter().map(|e| e["index"].as_u64().unwrap()).collect();
        assert!(
            indexes.windows(2).all(|w| w[0] <= w[1]),
            "round {round}: out of order {indexes:?}"
        );
        from = *indexes.last().unwrap();
        all.extend(seen);
        if round == 1 {
            node.terminate();
            node = common::Node::start(dir.path(), port);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();

    // A last consumer catches up to everything written.
    let expected = written.lock().unwrap().clone();
    let consumer = Consumer::start(&address, from);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut unique = BTreeMap::new();
    loop {
        unique.clear();
        for e in all.iter().chain(consumer.seen().iter()) {
            let key = (e["index"].as_u64().unwrap(), e["seq"].as_u64().unwrap());
            let id = e["after"]["id"].as_i64().expect("id");
            let op = e["op"].as_str().unwrap().to_string();
            if let Some(earlier) = unique.insert(key, (op.clone(), id)) {
                assert_eq!(earlier, (op, id), "two different changes at {key:?}");
            }
        }
        let ops: BTreeSet<(String, i64)> = unique.values().cloned().collect();
        let wanted: BTreeSet<(String, i64)> = expected.iter().map(|(o, i)| (o.to_string(), *i)).collect();
        if ops.is_superset(&wanted) {
            // Exactly once: one (index, seq) per acknowledged change, and
            // nothing that was not written (writes whose answer was lost
            // may be there too, once).
            assert_eq!(unique.len(), ops.len(), "a change appears under two positions");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missing changes: {:?}",
            wanted.difference(&ops).take(10).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let repeats = all.len() + consumer.seen().len() - unique.len();
    println!("{} changes, {} delivered twice after the kills", unique.len(), repeats);
    consumer.kill();
    assert!(node.terminate().success());
}

#[test]
fn members_hold_the_same_feed_even_after_a_snapshot_install() {
    common::block_on(async {
        let mut cluster = Cluster::start(3, &[0, 1, 2], 20);
        let l = leader(&cluster, &[0, 1, 2]).await;
        let lagging = (l + 1) % 3;
        let mut c = connect(&cluster.members[l].address).await;
        c.execute("CREATE TABLE t (id INT PRIMARY KEY, v STRING)")
            .await
            .unwrap();
        cluster.kill(lagging);
        // Enough entries that the log behind them is compacted: the
        // returning member gets a snapshot, and the feed must come with it.
        for i in 0..60 {
            let answer = c.execute(&format!("INSERT INTO t VALUES ({i}, 'v{i}')")).await.unwrap();
            assert!(answer.error.is_none(), "{answer:?}");
        }
        c.execute("DELETE FROM t WHERE id < 5").await.unwrap();
        cluster.spawn(lagging, &[]);
        let deadline = Instant::now() + Duration::from_secs(30);
        let reference = feed_of(&cluster.members[l].address).await;
        assert_eq!(reference.len(), 65);
        assert_eq!(reference.iter().filter(|e| e.3 == ChangeOp::Delete).count(), 5);
        for m in 0..3 {
            loop {
                // The returning member may not listen yet.
                let feed = try_feed_of(&cluster.members[m].address).await;
                if feed.as_ref() == Ok(&reference) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "member {m}: {:?} events, the leader has {}",
                    feed.map(|f| f.len()),
                    reference.len()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        assert!(
            cluster.log_of(lagging).contains("installed snapshot"),
            "the returning member should have installed a snapshot"
        );
    });
}

#[test]
fn old_positions_and_a_disabled_feed_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "retain_entries = 8");
    let node = common::Node::start_with_env(dir.path(), common::free_port(), &[("CHRONOS_CONFIG", &config)]);
    common::block_on(async {
        let mut c = connect(&node.address).await;
        c.execute("CREATE TABLE t (id INT)").await.unwrap();
        for i in 0..30 {
            c.execute(&format!("INSERT INTO t VALUES ({i})")).await.unwrap();
        }
        let e = Subscription::open(&node.address, &Access::none(), 1, &[], false)
            .await
            .err()
            .expect("refused");
        let message = e.to_string();
        assert!(message.contains("are no longer kept (asked from 1)"), "{message}");
        let feed = feed_of(&node.address).await;
        assert!((8..=10).contains(&feed.len()), "kept {} entries", feed.len());
        // From the oldest kept on, nothing is refused.
        let oldest = feed[0].0;
        let resumed = Subscription::open(&node.address, &Access::none(), oldest, &[], false).await;
        assert!(resumed.is_ok());
    });
    assert!(node.terminate().success());

    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "enabled = false");
    let node = common::Node::start_with_env(dir.path(), common::free_port(), &[("CHRONOS_CONFIG", &config)]);
    common::block_on(async {
        let e = Subscription::open(&node.address, &Access::none(), 0, &[], false)
            .await
            .err()
            .expect("refused");
        assert!(e.to_string().contains("the change feed is off on this node"), "{e}");
    });
    assert!(node.terminate().success());
}

/// Lines received, shared with the receiver's thread.
type Shared<T> = Arc<Mutex<T>>;

/// A webhook receiver that refuses its first posts, then keeps every line.
/// Returns its address, the lines and the number of posts.
fn receiver(failures: usize) -> (String, Shared<Vec<Json>>, Shared<usize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let posts = Arc::new(Mutex::new(0usize));
    let (sink, count) = (lines.clone(), posts.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    break;
                }
                if header == "\r\n" {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            std::io::Read::read_exact(&mut reader, &mut body).unwrap();
            let n = {
                let mut c = count.lock().unwrap();
                *c += 1;
                *c
            };
            let status = if n <= failures {
                "503 Service Unavailable"
            } else {
                let text = String::from_utf8(body).unwrap();
                let mut s = sink.lock().unwrap();
                s.extend(text.lines().map(|l| serde_json::from_str::<Json>(l).unwrap()));
                "200 OK"
            };
            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = std::io::Write::write_all(&mut stream, answer.as_bytes());
        }
    });
    (address, lines, posts)
}

#[test]
fn the_webhook_delivers_through_failures_and_restarts() {
    let (target, received, posts) = receiver(3);
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        &format!("webhook_url = \"http://{target}/in\"\nwebhook_batch = 7\nwebhook_tables = [\"t\"]"),
    );
    let port = common::free_port();
    let env = [("CHRONOS_CONFIG", config.as_str())];
    let mut node = common::Node::start_with_env(dir.path(), port, &env);
    let write = |address: String, ids: std::ops::Range<i64>| {
        common::block_on(async move {
            let mut c = connect(&address).await;
            c.execute("CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY); CREATE TABLE IF NOT EXISTS u (x INT)")
                .await
                .unwrap();
            for id in ids {
                let answer = c
                    .execute(&format!("INSERT INTO t VALUES ({id}); INSERT INTO u VALUES ({id})"))
                    .await
                    .unwrap();
                assert!(answer.error.is_none(), "{answer:?}");
            }
        })
    };
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ids: BTreeSet<i64> = received
                .lock()
                .unwrap()
                .iter()
                .map(|e| e["after"]["id"].as_i64().expect("only table t"))
                .collect();
            if ids.len() == n {
                assert_eq!(ids, (0..n as i64).collect());
                return;
            }
            assert!(Instant::now() < deadline, "received {} of {n}", ids.len());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    write(node.address.clone(), 0..40);
    wait_for(40);
    assert!(*posts.lock().unwrap() >= 3 + 40 / 7);
    let before_restart = received.lock().unwrap().len();
    node.terminate();
    node = common::Node::start_with_env(dir.path(), port, &env);
    write(node.address.clone(), 40..55);
    wait_for(55);
    // The cursor survived the restart: nothing was posted twice.
    let total = received.lock().unwrap().len();
    assert_eq!(total - before_restart, 15, "re-delivered after the restart");
    assert!(node.terminate().success());
}
