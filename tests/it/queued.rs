//! Queued writes through real nodes: under load through a follower that
//! is killed (SIGKILL) and restarted, every acknowledged queued write is
//! committed exactly once and `wait_for` reports it; a full queue refuses
//! clearly, even while the cluster has no majority.

use crate::common;

use chronos::client::Client;
use chronos::sql::types::Value;
use common::cluster::{Cluster, connect, leader, rows_at};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Queues `count` inserts of (client, n), retrying across the node's
/// restart; returns the sequences of the acknowledged ones, by n.
/// The client retries each write itself (same key, same node) while the
/// node is down, so a write whose answer was lost is queued once.
async fn queue_writes(address: String, client: i64, count: i64, acked: Arc<Mutex<BTreeMap<(i64, i64), u64>>>) {
    let mut c = Client::connect_lazy(&address, &chronos::client::Access::none())
        .await
        .unwrap();
    c.retry_for = Duration::from_secs(30);
    for n in 0..count {
        // A table without a primary key: a write applied twice would show
        // as two rows.
        let seq = c
            .execute_queued("INSERT INTO q VALUES (?, ?)", &[Value::Int(client), Value::Int(n)])
            .await
            .expect("queued");
        acked.lock().unwrap().insert((client, n), seq);
    }
}

#[test]
fn queued_writes_survive_a_killed_node_and_apply_once() {
    common::block_on(async {
        let mut cluster = Cluster::start(3, &[0, 1, 2], 1_000);
        let l = leader(&cluster, &[0, 1, 2]).await;
        let f = (l + 1) % 3;
        let mut c = connect(&cluster.members[l].address).await;
        let created = c.execute("CREATE TABLE q (client INT, n INT)").await.unwrap();
        assert!(created.error.is_none());

        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let address = cluster.members[f].address.clone();
        let writers: Vec<_> = (0..3)
            .map(|client| tokio::spawn(queue_writes(address.clone(), client, 300, acked.clone())))
            .collect();
        // Kill the queueing follower under load, then bring it back.
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().unwrap().len() < 300 {
            assert!(Instant::now() < deadline, "writes too slow");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cluster.kill(f);
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.spawn(f, &[]);
        for w in writers {
            w.await.unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        assert_eq!(acked.len(), 900);

        // wait_for the last write: every write before it is committed too.
        let last = *acked.values().max().unwrap();
        let mut fc = connect(&cluster.members[f].address).await;
        let outcome = fc.wait_for(last).await.unwrap();
        assert!(outcome.error.is_none(), "{outcome:?}");
        assert_eq!(outcome.results.first().map(|r| r.rows_affected), Some(1));

        // Every acknowledged write is there exactly once, on every member.
        let rows = common::cluster::converged(
            &cluster,
            &[0, 1, 2],
            "SELECT client, n, count(*) FROM q GROUP BY client, n ORDER BY client, n",
        )
        .await;
        let mut seen = BTreeMap::new();
        for row in &rows {
            // Rows print as `[Int(0), Int(5), Int(1)]`.
            let parts: Vec<i64> = row
                .trim_matches(['[', ']'])
                .split(", ")
                .map(|p| p.trim_start_matches("Int(").trim_end_matches(')').parse().unwrap())
                .collect();
            seen.insert((parts[0], parts[1]), parts[2]);
        }
        for key in acked.keys() {
            assert_eq!(seen.get(key), Some(&1), "write {key:?}");
        }
        assert!(seen.values().all(|&n| n == 1), "a write was applied twice");
        let total = rows_at(&cluster.members[l].address, "SELECT count(*) FROM q")
            .await
            .unwrap();
        println!("{} queued writes acknowledged, {} rows", acked.len(), total[0]);
        // An unknown sequence is named as such.
        let e = fc.wait_for(last + 1_000).await.unwrap_err();
        assert!(
            e.to_string().contains(&format!("no queued write {}", last + 1_000)),
            "{e}"
        );
    });
}

#[test]
fn a_full_queue_refuses_clearly_without_a_majority() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chronos.toml");
    std::fs::write(&config, "[queue]\nmax_entries = 3\n").unwrap();
    // A member of a three-node cluster whose peers never start: no leader,
    // so nothing commits, but writes can still be queued.
    let (p1, p2) = (common::free_port(), common::free_port());
    let peers = format!("node2=127.0.0.1:{p1},node3=127.0.0.1:{p2}");
    let node = common::Node::start_with_env(
        dir.path(),
        common::free_port(),
        &[("CHRONOS_CONFIG", config.to_str().unwrap()), ("CHRONOS_PEERS", &peers)],
    );
    common::block_on(async {
        let mut c = Client::connect(&node.address).await.unwrap();
        for expected in 1..=3 {
            let seq = c.execute_queued("INSERT INTO t VALUES (1)", &[]).await.unwrap();
            assert_eq!(seq, expected);
        }
        let e = c.execute_queued("INSERT INTO t VALUES (1)", &[]).await.unwrap_err();
        assert!(e.to_string().contains("the write queue is full (3 writes wait"), "{e}");
        // Bad SQL is refused at once, never queued.
        let e = c.execute_queued("INSERT INTO", &[]).await.unwrap_err();
        assert!(e.to_string().contains("syntax error"), "{e}");
    });
    assert!(node.terminate().success());
}
