//! Three-node clusters of real `chronos node` processes on 127.0.0.1, with
//! faults: the leader killed under load, a minority partition, a wiped node
//! rejoining through a snapshot, members added and removed under load, and
//! bad cluster configurations. Each test checks that every write the client
//! saw acknowledged is present afterwards, exactly once, on every member,
//! and that all members hold identical tables, row by row.

use crate::common;

use common::cluster::{Cluster, ELECTION_MS, connect, converged, leader, rows_at};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Cluster tests start many processes; one at a time keeps them honest on
/// a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs an async test body alone, on its own runtime.
fn run(body: impl std::future::Future<Output = ()>) {
    let _serial = serial();
    common::block_on(body);
}

const SCHEMA: &str = "CREATE TABLE t (id INT, w INT, at TIMESTAMP DEFAULT now())";
/// Every row, in a stable order, for comparing members row by row.
const ALL_ROWS: &str = "SELECT id, w, at FROM t ORDER BY id, w, at";

/// A client writing rows with increasing ids until stopped, remembering
/// which writes were acknowledged. Every tenth write is a BEGIN..COMMIT
/// with an UPDATE, so the workload mixes statement kinds.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<i64>>>,
    handle: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(address: String, first_id: i64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<Vec<i64>>> = Arc::default();
        let (s, a) = (stop.clone(), acked.clone());
        let handle = tokio::spawn(async move {
            let mut client = connect(&address).await;
            let mut id = first_id;
            while !s.load(Ordering::SeqCst) {
                let sql = match id % 10 {
                    0 => format!(
                        "BEGIN; INSERT INTO t (id, w) VALUES ({id}, 1); UPDATE t SET w = w + 1 WHERE id = {id}; COMMIT"
                    ),
                    _ => format!("INSERT INTO t (id, w) VALUES ({id}, 0)"),
                };
                match client.execute(&sql).await {
                    Ok(r) if r.error.is_none() => a.lock().unwrap().push(id),
                    Ok(r) => panic!("write {id} failed in SQL: {:?}", r.error),
                    // Not acknowledged: it may or may not have taken effect.
                    Err(_) => {}
                }
                id += 1;
            }
        });
        Writer { stop, acked, handle }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn finish(self) -> Vec<i64> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.await.expect("writer task");
        Arc::try_unwrap(self.acked).unwrap().into_inner().unwrap()
    }
}

/// Waits until `n` more writes are acknowledged.
async fn wait_for_acks(writer: &Writer, n: usize, what: &str) {
    let target = writer.count() + n;
    let deadline = Instant::now() + Duration::from_secs(60);
    while writer.count() < target {
        assert!(Instant::now() < deadline, "writes stalled: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The leader's index, as seen by the given members (all must agree).
/// Every acknowledged id is present exactly once, and no id appears twice.
fn check_acknowledged(rows: &[String], acked: &[i64]) {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for row in rows {
        // Rows print as [Int(7), Int(0), Timestamp(..)].
        let id: i64 = row
            .trim_start_matches("[Int(")
            .split(')')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected row {row}"));
        *counts.entry(id).or_default() += 1;
    }
    for id in acked {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "acknowledged write {id} is not present exactly once"
        );
    }
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "writes applied twice: {doubled:?}");
}

async fn create_schema(cluster: &Cluster, i: usize) {
    let mut client = connect(&cluster.members[i].address).await;
    let r = client.execute(SCHEMA).await.expect("create table");
    assert!(r.error.is_none(), "{:?}", r.error);
}

#[test]
fn leader_killed_under_load_then_restarted() {
    run(leader_killed_under_load_then_restarted_body());
}

async fn leader_killed_under_load_then_restarted_body() {
    // Started in an arbitrary order, as three terminals would be.
    let mut c = Cluster::start(3, &[2, 0, 1], 10_000);
    let first = leader(&c, &[0, 1, 2]).await;
    let status = std::process::Command::new(common::BIN)
        .args(["cluster", "status", "--leader", &c.members[0].address])
        .output()
        .expect("run chronos cluster status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(text.matches("| leader ").count(), 1, "{text}");
    assert_eq!(text.matches("| follower ").count(), 2, "{text}");

    create_schema(&c, first).await;
    let follower = (first + 1) % 3;
    // A client connected to a follower learns where the leader is.
    let learned = connect(&c.members[follower].address).await;
    assert!(
        learned.leader_address().is_some(),
        "the client did not learn the leader"
    );
    // One writer through a follower (forwarded), one on the leader itself
    // (it must fail over to another member when the leader dies).
    let via_follower = Writer::start(c.members[follower].address.clone(), 1);
    let on_leader = Writer::start(c.members[first].address.clone(), 1_000_000);
    wait_for_acks(&via_follower, 30, "before the kill").await;

    c.kill(first);
    let killed_at = Instant::now();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != first).collect();
    let second = leader(&c, &survivors).await;
    let failover = killed_at.elapsed();
    assert_ne!(second, first);
    eprintln!("new leader after {failover:?}");
    assert!(
        failover < Duration::from_millis(ELECTION_MS * 25),
        "no new leader within 25 election timeouts ({failover:?})"
    );
    wait_for_acks(&via_follower, 30, "after the kill").await;
    wait_for_acks(&on_leader, 10, "failed-over writer after the kill").await;

    c.spawn(first, &[]);
    wait_for_acks(&via_follower, 30, "after the restart").await;
    let mut acked = via_follower.finish().await;
    acked.extend(on_leader.finish().await);

    let rows = converged(&c, &[0, 1, 2], ALL_ROWS).await;
    check_acknowledged(&rows, &acked);
    assert!(rows.len() >= acked.len());
}

#[test]
fn minority_partition_cannot_commit_and_heals() {
    run(minority_partition_cannot_commit_and_heals_body());
}

async fn minority_partition_cannot_commit_and_heals_body() {
    let c = Cluster::start(3, &[0, 1, 2], 10_000);
    let old = leader(&c, &[0, 1, 2]).await;
    create_schema(&c, old).await;
    let majority: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let writer = Writer::start(c.members[majority[0]].address.clone(), 1);
    wait_for_acks(&writer, 20, "before the partition").await;
    // Slow links (20 ms per message) still commit.
    c.delay_all(20);
    wait_for_acks(&writer, 10, "over slow links").await;
    c.delay_all(0);

    c.partition(&[old], &majority);
    // The majority elects a new leader and keeps committing.
    let new = leader(&c, &majority).await;
    assert_ne!(new, old);
    wait_for_acks(&writer, 30, "on the majority side").await;

    // The isolated old leader cannot commit: its client gets a clear error.
    let mut isolated = connect(&c.members[old].address).await;
    isolated.retry_for = Duration::ZERO;
    let err = isolated
        .execute("INSERT INTO t (id, w) VALUES (-1, -1)")
        .await
        .expect_err("a minority must not commit");
    let message = err.to_string();
    eprintln!("isolated leader said: {message}");
    assert!(
        message.contains("majority") || message.contains("leader"),
        "unclear error: {message}"
    );
    isolated.consistency = chronos::client::Consistency::Strong;
    assert!(
        isolated.query("SELECT count(*) FROM t").await.is_err(),
        "strong read in a minority"
    );

    c.heal();
    wait_for_acks(&writer, 20, "after healing").await;
    let acked = writer.finish().await;
    let rows = converged(&c, &[0, 1, 2], ALL_ROWS).await;
    check_acknowledged(&rows, &acked);
    assert!(
        !rows.iter().any(|r| r.starts_with("[Int(-1)")),
        "an unacknowledged minority write was kept"
    );
}

#[test]
fn wiped_member_rejoins_through_a_snapshot() {
    run(wiped_member_rejoins_through_a_snapshot_body());
}

async fn wiped_member_rejoins_through_a_snapshot_body() {
    let mut c = Cluster::start(3, &[0, 1, 2], 40);
    let l = leader(&c, &[0, 1, 2]).await;
    create_schema(&c, l).await;
    let writer = Writer::start(c.members[(l + 1) % 3].address.clone(), 1);
    wait_for_acks(&writer, 150, "before the wipe").await;

    // node1 is the member that formed the cluster: wiped, it must not form
    // a new one but catch up from the others.
    c.kill(0);
    std::fs::remove_dir_all(c.data_dir().join("node1")).expect("wipe node1");
    c.spawn(0, &[]);
    wait_for_acks(&writer, 50, "after the wipe").await;
    let acked = writer.finish().await;
    let rows = converged(&c, &[0, 1, 2], ALL_ROWS).await;
    check_acknowledged(&rows, &acked);
    assert!(
        c.log_of(0).contains("installed snapshot"),
        "node1 caught up without a snapshot:\n{}",
        c.log_of(0)
    );
}

#[test]
fn members_added_and_removed_under_load() {
    run(members_added_and_removed_under_load_body());
}

async fn members_added_and_removed_under_load_body() {
    let mut c = Cluster::start(3, &[0, 1, 2], 10_000);
    let l = leader(&c, &[0, 1, 2]).await;
    create_schema(&c, l).await;
    let writer = Writer::start(c.members[0].address.clone(), 1);
    wait_for_acks(&writer, 20, "before adding").await;

    // node4 joins through node1: learner first, then voter.
    let port = common::free_port();
    let address = format!("127.0.0.1:{port}");
    c.members.push(common::cluster::Member {
        name: "node4".into(),
        address: address.clone(),
        child: None,
        log: c.dir.path().join("node4.log"),
    });
    c.links.iter_mut().for_each(|row| row.push(None));
    c.links.push(vec![None, None, None, None]);
    let join = c.members[0].address.clone();
    c.spawn(3, &["--join", &join]);
    let mut admin = connect(&c.members[0].address).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = admin.cluster_status().await.expect("status");
        if s.members
            .iter()
            .any(|m| m.id == "node4" && m.voter && m.role == "follower")
        {
            break;
        }
        assert!(Instant::now() < deadline, "node4 did not become a voter: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_acks(&writer, 20, "after adding node4").await;

    // Remove node2 (whichever role it has) while writes continue.
    let s = admin.remove_member("node2").await.expect("remove node2");
    assert!(!s.members.iter().any(|m| m.id == "node2"), "{s:?}");
    c.kill(1);
    wait_for_acks(&writer, 20, "after removing node2").await;
    let acked = writer.finish().await;
    let rows = converged(&c, &[0, 2, 3], ALL_ROWS).await;
    check_acknowledged(&rows, &acked);
}

#[test]
fn bad_cluster_configurations_are_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(common::BIN)
            .arg("node")
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env("RUST_LOG", "error")
            .output()
            .expect("run chronos node")
    };
    // A duplicate id in --peers, or this node's own id among them.
    let out = run(&["--id", "node1", "--peers", "node2=127.0.0.1:1,node2=127.0.0.1:2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("appears twice"));
    let out = run(&["--id", "node1", "--peers", "node1=127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2));
    // --join and --peers together.
    let out = run(&["--id", "node1", "--join", "127.0.0.1:1", "--peers", "node2=127.0.0.1:2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exclude each other"));

    // Another node's data directory.
    let port = common::free_port().to_string();
    let a = common::Node::start(dir.path(), port.parse().unwrap());
    a.ok("CREATE TABLE x (a INT)");
    a.terminate();
    std::fs::rename(dir.path().join("node1"), dir.path().join("node7")).unwrap();
    let out = run(&["--id", "node7", "--address", &format!("127.0.0.1:{port}")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("belongs to node 'node1'"), "{err}");
}

#[test]
fn disagreeing_peer_lists_do_not_form_a_cluster() {
    run(disagreeing_peer_lists_do_not_form_a_cluster_body());
}

async fn disagreeing_peer_lists_do_not_form_a_cluster_body() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (common::free_port(), common::free_port());
    let spawn = |id: &str, port: u16, peers: &str| {
        let log = std::fs::File::create(dir.path().join(format!("{id}.log"))).unwrap();
        std::process::Command::new(common::BIN)
            .args([
                "node",
                "--id",
                id,
                "--address",
                &format!("127.0.0.1:{port}"),
                "--peers",
                peers,
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "info,openraft=error")
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut n1 = spawn("node1", p1, &format!("node2=127.0.0.1:{p2}"));
    let mut n2 = spawn(
        "node2",
        p2,
        &format!("node1=127.0.0.1:{p1},node3=127.0.0.1:{}", common::free_port()),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = loop {
        let log = std::fs::read_to_string(dir.path().join("node1.log")).unwrap_or_default();
        if log.contains("fix --peers") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(log.contains("fix --peers"), "{log}");
    let s = connect(&format!("127.0.0.1:{p1}"))
        .await
        .cluster_status()
        .await
        .unwrap();
    assert_eq!(s.leader, "", "a cluster formed despite disagreeing --peers");
    assert!(rows_at(&format!("127.0.0.1:{p1}"), "SELECT 1").await.is_ok());
    let _ = (n1.kill(), n2.kill(), n1.wait(), n2.wait());
}

#[test]
fn member_with_another_clusters_data_is_refused() {
    run(member_with_another_clusters_data_is_refused_body());
}

async fn member_with_another_clusters_data_is_refused_body() {
    // node1 and node2 form cluster B (a majority of the three members).
    let mut c = Cluster::start(3, &[0, 1], 10_000);
    let l = leader(&c, &[0, 1]).await;
    create_schema(&c, l).await;
    // node3's directory is filled by a cluster of its own first.
    let port = common::free_port();
    let other = common::Node::start_named(&c.data_dir(), port, "node3", &[]);
    other.ok("CREATE TABLE other_cluster (a INT); INSERT INTO other_cluster VALUES (1)");
    assert!(other.terminate().success());

    c.spawn(2, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.log_of(2).contains("refusing a message from another cluster") {
        assert!(
            Instant::now() < deadline,
            "node3 accepted another cluster:\n{}",
            c.log_of(2)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Cluster B keeps committing, and neither side took the other's data.
    let mut client = connect(&c.members[l].address).await;
    let r = client.execute("INSERT INTO t (id, w) VALUES (1, 1)").await.unwrap();
    assert!(r.error.is_none(), "{:?}", r.error);
    assert!(
        rows_at(&c.members[l].address, "SELECT * FROM other_cluster")
            .await
            .is_err()
    );
    assert!(rows_at(&c.members[2].address, "SELECT * FROM t").await.is_err());
}

#[test]
fn a_retried_write_applies_once() {
    run(a_retried_write_applies_once_body());
}

async fn a_retried_write_applies_once_body() {
    use chronos::proto::v1::ExecuteRequest;
    use chronos::proto::v1::chronos_client::ChronosClient;
    let c = Cluster::start(3, &[1, 2, 0], 10_000);
    let l = leader(&c, &[0, 1, 2]).await;
    create_schema(&c, l).await;
    let request = ExecuteRequest {
        sql: "INSERT INTO t (id, w) VALUES (7, 0), (8, 0)".into(),
        client_id: "test-client".into(),
        sequence: 1,
        ..ExecuteRequest::default()
    };
    // The same request through a follower (forwarded) and then the leader,
    // as a client would retry after losing the first answer.
    let mut answers = Vec::new();
    for i in [(l + 1) % 3, l, (l + 2) % 3] {
        let mut raw = ChronosClient::connect(format!("http://{}", c.members[i].address))
            .await
            .unwrap();
        answers.push(raw.execute(request.clone()).await.unwrap().into_inner());
    }
    assert!(answers[0].error.is_none(), "{:?}", answers[0].error);
    assert_eq!(answers[0].results[0].rows_affected, 2);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    // An older sequence of the same client is recognised too.
    let mut raw = ChronosClient::connect(format!("http://{}", c.members[l].address))
        .await
        .unwrap();
    let newer = ExecuteRequest {
        sequence: 2,
        sql: "INSERT INTO t (id, w) VALUES (9, 0)".into(),
        ..request.clone()
    };
    assert!(raw.execute(newer).await.unwrap().into_inner().error.is_none());
    let stale = raw.execute(request).await.unwrap().into_inner();
    assert_eq!(stale.error.map(|e| e.code).as_deref(), Some("already_applied"));
    let rows = converged(&c, &[0, 1, 2], ALL_ROWS).await;
    check_acknowledged(&rows, &[7, 8, 9]);
    assert_eq!(rows.len(), 3);
}

/// INSERT ... SELECT applies alike on every member: rows from a join and a
/// GROUP BY into a table without a primary key (row ids in the query's
/// order, `now()` from the entry), a table read by its own INSERT, and a
/// statement that fails part-way leaves nothing on any member.
#[test]
fn insert_select_upsert_and_returning_apply_alike_on_every_member() {
    run(insert_select_applies_alike_on_every_member_body());
}

async fn insert_select_applies_alike_on_every_member_body() {
    let c = Cluster::start(3, &[0, 1, 2], 10_000);
    let l = leader(&c, &[0, 1, 2]).await;
    // Through a follower: the statement is forwarded and applied by all.
    let mut client = connect(&c.members[(l + 1) % 3].address).await;
    for sql in [
        "CREATE TABLE r (id INT PRIMARY KEY, sensor STRING, v INT)",
        "INSERT INTO r VALUES (1, 'a', 10), (2, 'b', 20), (3, 'a', 30), (4, 'c', 40), (5, 'b', NULL)",
        "CREATE TABLE s (sensor STRING PRIMARY KEY, site STRING)",
        "INSERT INTO s VALUES ('a', 'north'), ('b', 'south'), ('c', 'north')",
        "CREATE TABLE out (site STRING, total INT, at TIMESTAMP DEFAULT now())",
        "INSERT INTO out (site, total) SELECT s.site, sum(r.v) FROM r JOIN s ON r.sensor = s.sensor GROUP BY s.site",
        "INSERT INTO out (site, total) SELECT site || '2', total * 2 FROM out",
    ] {
        let r = client.execute(sql).await.expect(sql);
        assert!(r.error.is_none(), "{sql}: {:?}", r.error);
    }
    let r = client
        .execute("INSERT INTO out (site, total) SELECT 'x', v FROM r UNION ALL SELECT 'y', 'not a number'")
        .await
        .expect("send");
    assert!(r.error.is_some(), "a failing INSERT ... SELECT is refused");
    let rows = converged(&c, &[0, 1, 2], "SELECT site, total, at FROM out ORDER BY site").await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows[0].contains("\"north\"") && rows[0].contains("Int(80)"), "{rows:?}");
    assert!(
        rows[1].contains("\"north2\"") && rows[1].contains("Int(160)"),
        "{rows:?}"
    );

    // UPSERT and RETURNING: the reply carries the rows, and every member
    // stores the same result (rows handled in statement order).
    for sql in [
        "CREATE TABLE latest (sensor STRING PRIMARY KEY, v INT, n INT DEFAULT 1, at TIMESTAMP DEFAULT now())",
        "INSERT INTO latest (sensor, v) SELECT sensor, v FROM r WHERE v IS NOT NULL ON CONFLICT (sensor) DO UPDATE SET v = excluded.v, n = n + 1",
        "INSERT OR REPLACE INTO latest (sensor, v) VALUES ('c', 41)",
        "INSERT OR IGNORE INTO latest (sensor, v) VALUES ('c', 0), ('d', 1)",
    ] {
        let r = client.execute(sql).await.expect(sql);
        assert!(r.error.is_none(), "{sql}: {:?}", r.error);
    }
    let r = client
        .execute("UPDATE latest SET v = v + 1 WHERE sensor <> 'd' RETURNING sensor, v")
        .await
        .expect("send");
    assert!(r.error.is_none(), "{:?}", r.error);
    let returned = &r.results[0];
    assert_eq!(returned.columns.len(), 2, "{returned:?}");
    assert_eq!(returned.rows.len(), 3, "{returned:?}");
    let r = client
        .execute("INSERT INTO latest (sensor, v) VALUES ('e', 1), ('a', 0) ON CONFLICT (sensor) DO UPDATE SET v = 'not a number'")
        .await
        .expect("send");
    assert!(r.error.is_some(), "a failing UPSERT is refused");
    let rows = converged(&c, &[0, 1, 2], "SELECT sensor, v, n, at FROM latest ORDER BY sensor").await;
    let shown = format!("{rows:?}");
    assert_eq!(rows.len(), 4, "nothing of the failed UPSERT stays: {shown}");
    assert!(rows[0].contains("Int(31)") && rows[0].contains("Int(2)"), "{shown}");
    assert!(rows[2].contains("Int(42)"), "{shown}");

    // A window function in a write: every member ranks alike (ties keep
    // the input's key order).
    for sql in [
        "CREATE TABLE ranks (sensor STRING, id INT, pos INT, moving DOUBLE)",
        "INSERT INTO ranks SELECT sensor, id, rank() OVER (PARTITION BY sensor ORDER BY v DESC), avg(v) OVER (ORDER BY id ROWS 1 PRECEDING) FROM r",
    ] {
        let r = client.execute(sql).await.expect(sql);
        assert!(r.error.is_none(), "{sql}: {:?}", r.error);
    }
    let rows = converged(&c, &[0, 1, 2], "SELECT * FROM ranks ORDER BY id").await;
    assert_eq!(rows.len(), 5, "{rows:?}");
}
