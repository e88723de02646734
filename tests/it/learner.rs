//! A read replica: a node with `role = "learner"` joins a running
//! three-voter cluster, stays a non-voter, serves local reads, forwards
//! writes, and neither its loss nor a voter's stops the cluster.

use crate::common;

use common::cluster::{Cluster, connect, converged, leader};
use common::{BIN, free_port};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_learner_follows_serves_reads_and_never_votes() {
    let mut cluster = Cluster::start(3, &[0, 1, 2], 100_000);
    let first = common::block_on(async {
        let l = leader(&cluster, &[0, 1, 2]).await;
        let mut c = connect(&cluster.members[l].address).await;
        c.execute("CREATE TABLE t (id INT PRIMARY KEY, v STRING)")
            .await
            .unwrap();
        c.execute("INSERT INTO t VALUES (1, 'before the learner')")
            .await
            .unwrap();
        l
    });
    let learner_address = format!("127.0.0.1:{}", free_port());
    let mut learner = Command::new(BIN)
        .args(["node", "--id", "replica", "--address", &learner_address])
        .arg("--data-dir")
        .arg(cluster.data_dir())
        .args(["--join", &cluster.members[first].address])
        .env("CHRONOS_ROLE", "learner")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["client", "--leader", &learner_address])
            .args(args)
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // It joins as a learner and stays one (a voter would be promoted as
    // soon as it caught up).
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = Command::new(BIN)
            .args(["cluster", "--leader", &cluster.members[first].address, "status"])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&s.stdout).into_owned();
        if s.contains("| replica ") {
            break s;
        }
        assert!(Instant::now() < deadline, "the learner did not join: {s}");
        std::thread::sleep(Duration::from_millis(300));
    };
    std::thread::sleep(Duration::from_secs(3));
    let status_later = Command::new(BIN)
        .args(["cluster", "--leader", &cluster.members[first].address, "status"])
        .output()
        .unwrap();
    let later = String::from_utf8_lossy(&status_later.stdout).into_owned();
    let row = later
        .lines()
        .find(|l| l.contains("| replica "))
        .unwrap_or_default()
        .to_string();
    assert!(row.contains("learner") && row.contains("false"), "{status}\n{later}");

    // Local reads on the replica; writes through it reach the cluster.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client(&["--consistency", "local", "-e", "SELECT v FROM t WHERE id = 1"]).contains("before the learner") {
        assert!(Instant::now() < deadline, "the replica did not catch up");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = client(&["-e", "INSERT INTO t VALUES (2, 'through the replica')"]);
    assert!(out.contains("1 row"), "{out}");
    let out = client(&["-e", "SELECT count(*) FROM t"]);
    assert!(out.contains(" 2 |"), "a strong read on the replica: {out}");

    // Losing the replica, then a voter, leaves a writable majority: the
    // replica never counted toward it.
    learner.kill().unwrap();
    learner.wait().unwrap();
    let other = (0..3).find(|i| *i != first).unwrap();
    cluster.kill(other);
    common::block_on(async {
        let rest: Vec<usize> = (0..3).filter(|i| *i != other).collect();
        let l = leader(&cluster, &rest).await;
        let mut c = connect(&cluster.members[l].address).await;
        let r = c
            .execute("INSERT INTO t VALUES (3, 'without the replica')")
            .await
            .unwrap();
        assert!(r.error.is_none(), "{r:?}");
        let counts = converged(&cluster, &rest, "SELECT count(*) FROM t").await;
        assert!(counts.iter().all(|c| c.contains('3')), "{counts:?}");
    });
}
