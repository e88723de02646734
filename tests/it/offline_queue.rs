//! The client's offline queue against a real node: writes made while the
//! node is down are queued durably (across client restarts), replayed in
//! order when it is back, and a replay of a write whose answer was lost
//! applies it once.

use crate::common;

use chronos::client::{Client, OfflineQueue};
use common::{BIN, Node, free_port};
use std::process::{Command, Output};

fn client(address: &str, queue: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["client", "--leader", address, "--offline-queue"])
        .arg(queue)
        .args(args)
        .output()
        .expect("run chronos client")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn writes_queue_while_the_node_is_down_and_replay_once_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let queue = dir.path().join("queue");
    let port = free_port();
    let address = format!("127.0.0.1:{port}");

    // No node yet: each write is kept, by one client process after another.
    let first = client(&address, &queue, &["-e", "CREATE TABLE log (v INT)"]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("queued offline: 1 statements pending"),
        "{}",
        text(&first)
    );
    for v in 1..=3 {
        let out = client(&address, &queue, &["-e", &format!("INSERT INTO log VALUES ({v})")]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains(&format!("queued offline: {} statements pending", v + 1)),
            "{}",
            text(&out)
        );
    }
    let status = client(&address, &queue, &["queue", "status"]);
    assert!(text(&status).contains("4 statements pending"), "{}", text(&status));
    let flush = client(&address, &queue, &["queue", "flush"]);
    assert!(!flush.status.success(), "flush with no node must fail");
    assert!(text(&flush).contains("4 still pending"), "{}", text(&flush));

    // A write applied whose answer never reached the client (it crashed
    // before taking the write off its queue).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let node = Node::start(&dir.path().join("data"), port);
    {
        let q = OfflineQueue::open(&queue).expect("open queue");
        let pending = q.pending().expect("pending");
        let mut c = rt.block_on(Client::connect(&address)).expect("connect");
        for (sequence, sql) in &pending {
            let reply = rt
                .block_on(c.execute_keyed(sql, q.client_id(), *sequence))
                .expect("execute");
            assert!(reply.error.is_none(), "{reply:?}");
        }
        // Nothing removed: as if the client died here.
        assert_eq!(q.len(), 4);
    }

    // The node is back: the next write replays the queue first, in order,
    // and every write takes effect once.
    let out = client(&address, &queue, &["-e", "INSERT INTO log VALUES (4)"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("queued offline"), "{}", text(&out));
    assert!(text(&out).contains("replayed queued statement"), "{}", text(&out));
    let rows = node.ok("SELECT v, COUNT(*) FROM log GROUP BY v ORDER BY v");
    for v in 1..=4 {
        assert!(
            rows.contains(&format!("| {v} |        1 |")),
            "each value once:\n{rows}"
        );
    }
    let status = client(&address, &queue, &["queue", "status"]);
    assert!(text(&status).contains("0 statements pending"), "{}", text(&status));

    // clear drops what waits; flush with nothing waiting succeeds.
    drop(node);
    let out = client(&address, &queue, &["-e", "INSERT INTO log VALUES (5)"]);
    assert!(
        text(&out).contains("queued offline: 1 statements pending"),
        "{}",
        text(&out)
    );
    let cleared = client(&address, &queue, &["queue", "clear"]);
    assert!(
        text(&cleared).contains("dropped 1 queued statements"),
        "{}",
        text(&cleared)
    );
}

#[test]
fn a_queue_is_named_and_used_by_one_client_at_a_time() {
    let out = Command::new(BIN)
        .args(["client", "queue", "status"])
        .env_remove("CHRONOS_OFFLINE_QUEUE")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--offline-queue"), "{}", text(&out));

    let dir = tempfile::tempdir().expect("temp dir");
    let _held = OfflineQueue::open(dir.path()).expect("open");
    let out = Command::new(BIN)
        .args(["client", "--offline-queue"])
        .arg(dir.path())
        .args(["queue", "status"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("in use by another chronos client"),
        "{}",
        text(&out)
    );
}
