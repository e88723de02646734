//! A two-gateway site: two data nodes and a witness (`role = "witness"`).
//! Losing any one of the three keeps the site writable, including the data
//! node that led while the other lagged: the witness then leads only until
//! the survivor holds the whole log, and hands over. The witness answers no
//! queries and forwards writes.

use crate::common;

use common::cluster::{Cluster, connect, converged, leader, rows_at};
use std::time::{Duration, Instant};

const WITNESS: usize = 2;
const WITNESS_ENV: &[(&str, &str)] = &[("CHRONOS_ROLE", "witness")];

fn start_witness(cluster: &mut Cluster) {
    cluster.spawn_with_env(WITNESS, &[], WITNESS_ENV);
}

/// The data node that leads, once the members in `among` agree on one
/// (the witness may lead for a moment first).
async fn data_leader(cluster: &Cluster, among: &[usize]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = leader(cluster, among).await;
        if l != WITNESS {
            return l;
        }
        assert!(Instant::now() < deadline, "the witness kept the lead");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn insert(address: &str, ids: std::ops::RangeInclusive<i64>, what: &str) {
    let mut c = connect(address).await;
    for id in ids {
        let r = c
            .execute(&format!("INSERT INTO t VALUES ({id}, '{what}')"))
            .await
            .unwrap_or_else(|e| panic!("insert {id} ({what}) through {address}: {e}"));
        assert!(r.error.is_none(), "insert {id} ({what}): {r:?}");
    }
}

async fn count_at(address: &str) -> String {
    let rows = rows_at(address, "SELECT count(*) FROM t").await.expect("count");
    rows.join(",")
}

#[test]
fn two_data_nodes_and_a_witness_survive_the_loss_of_any_one() {
    let mut cluster = Cluster::start(3, &[], 100_000);
    cluster.spawn(0, &[]);
    cluster.spawn(1, &[]);
    start_witness(&mut cluster);
    let witness = cluster.members[WITNESS].address.clone();
    common::block_on(async {
        let l = data_leader(&cluster, &[0, 1, 2]).await;
        let address = cluster.members[l].address.clone();
        let mut c = connect(&address).await;
        c.execute("CREATE TABLE t (id INT PRIMARY KEY, v STRING)")
            .await
            .unwrap();
        insert(&address, 1..=10, "all three up").await;
        // Writes through the witness reach the leader; queries are refused.
        insert(&witness, 11..=12, "through the witness").await;
        let refused = rows_at(&witness, "SELECT count(*) FROM t").await;
        assert!(refused.as_ref().is_err_and(|e| e.contains("witness")), "{refused:?}");
        let mut through = connect(&witness).await;
        let queued = through.execute_queued("INSERT INTO t VALUES (99, 'queued')", &[]).await;
        assert!(
            queued.as_ref().is_err_and(|e| e.to_string().contains("witness")),
            "{queued:?}"
        );
        converged(&cluster, &[0, 1], "SELECT count(*) FROM t").await;
    });

    // The witness lost: the two data nodes go on.
    cluster.kill(WITNESS);
    common::block_on(async {
        let l = data_leader(&cluster, &[0, 1]).await;
        insert(&cluster.members[l].address, 13..=15, "without the witness").await;
    });
    start_witness(&mut cluster);

    // The leading data node lost (the other up to date): the other leads.
    let first = common::block_on(data_leader(&cluster, &[0, 1, 2]));
    let second = 1 - first;
    cluster.kill(first);
    common::block_on(async {
        let l = data_leader(&cluster, &[second, WITNESS]).await;
        assert_eq!(l, second);
        insert(&cluster.members[second].address, 16..=20, "without a data node").await;
        assert_eq!(count_at(&cluster.members[second].address).await, "[Int(20)]");
    });
    cluster.spawn(first, &[]);

    // The leading data node lost while the other lagged: entries committed
    // on the leader and the witness only. The witness leads until the
    // survivor has them, then hands over.
    let (lead, lagging) = common::block_on(async {
        let l = data_leader(&cluster, &[0, 1, 2]).await;
        converged(&cluster, &[0, 1], "SELECT count(*) FROM t").await;
        (l, 1 - l)
    });
    cluster.partition(&[lagging], &[lead, WITNESS]);
    common::block_on(insert(&cluster.members[lead].address, 21..=30, "while one lagged"));
    cluster.kill(lead);
    cluster.heal();
    common::block_on(async {
        let l = data_leader(&cluster, &[lagging, WITNESS]).await;
        assert_eq!(l, lagging);
        let address = cluster.members[lagging].address.clone();
        insert(&address, 31..=35, "after the hand-over").await;
        assert_eq!(
            count_at(&address).await,
            "[Int(35)]",
            "every acknowledged write is on the survivor"
        );
    });
    let log = cluster.log_of(WITNESS);
    assert!(log.contains("stepping back"), "the witness led and handed over: {log}");

    // All back: the data nodes agree.
    cluster.spawn(lead, &[]);
    common::block_on(async {
        let counts = converged(&cluster, &[0, 1], "SELECT count(*) FROM t").await;
        assert_eq!(counts.join(","), "[Int(35)]");
    });
}

/// Bytes of the files directly in `dir` whose names end with `suffix`.
fn bytes_in(dir: &std::path::Path, suffix: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_witness_that_joins_late_takes_the_position_of_a_snapshot_not_its_rows() {
    // Snapshots every 20 entries: the witness, started after 60 writes,
    // is brought up to date with one.
    let mut cluster = Cluster::start(3, &[], 20);
    cluster.spawn(0, &[]);
    cluster.spawn(1, &[]);
    let filler = "x".repeat(500);
    common::block_on(async {
        let l = data_leader(&cluster, &[0, 1]).await;
        let address = cluster.members[l].address.clone();
        let mut c = connect(&address).await;
        c.execute("CREATE TABLE t (id INT PRIMARY KEY, v STRING)")
            .await
            .unwrap();
        insert(&address, 1..=60, &filler).await;
    });
    start_witness(&mut cluster);
    let witness_snapshots = cluster.data_dir().join("node3").join("snapshots");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster.log_of(WITNESS).contains("installed snapshot from the leader") {
        assert!(Instant::now() < deadline, "the witness was not sent a snapshot");
        std::thread::sleep(Duration::from_millis(100));
    }
    let data_snapshots = cluster.data_dir().join("node1").join("snapshots");
    let (kept, data) = (
        bytes_in(&witness_snapshots, ".snap"),
        bytes_in(&data_snapshots, ".snap"),
    );
    assert!(data > 30_000, "a data node's snapshot holds the rows: {data} bytes");
    assert!(kept < 2_000, "the witness keeps no rows: {kept} bytes of snapshot");

    // Either data node lost: the other and the witness go on.
    let l = common::block_on(data_leader(&cluster, &[0, 1, 2]));
    cluster.kill(l);
    common::block_on(async {
        let other = 1 - l;
        let l = data_leader(&cluster, &[other, WITNESS]).await;
        assert_eq!(l, other);
        insert(&cluster.members[other].address, 61..=70, "after the loss").await;
        assert_eq!(count_at(&cluster.members[other].address).await, "[Int(70)]");
    });
}
