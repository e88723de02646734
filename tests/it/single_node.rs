//! The real binary, end to end: the Quick Start session, restarts after
//! SIGTERM and SIGKILL, bad input of every kind, and config errors.

use crate::common;

use common::{BIN, Node, free_port};
use std::io::Write;
use std::process::{Command, Stdio};

const QUICK_START: &str = "\
CREATE TABLE users (id INT, name STRING, balance FLOAT);
INSERT INTO users VALUES (1, 'alice', 100.0), (2, 'bob', 50.5), (3, 'carol', 0);
SELECT * FROM users;
DELETE FROM users WHERE id = 2;
BEGIN;
INSERT INTO users VALUES (4, 'dave', 12.25);
UPDATE users SET balance = balance + 1 WHERE id = 1;
COMMIT;
SELECT * FROM users ORDER BY id;";

const AFTER_QUICK_START: &str = "\
+----+-------+---------+
| id | name  | balance |
+----+-------+---------+
|  1 | alice |   101.0 |
|  3 | carol |     0.0 |
|  4 | dave  |   12.25 |
+----+-------+---------+
3 rows in set";

#[test]
fn quick_start_survives_sigterm_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let node = Node::start(dir.path(), port);
    let out = node.ok(QUICK_START);
    assert!(out.starts_with("Query OK, 0 rows affected"), "{out}");
    assert!(out.contains("Query OK, 3 rows affected"), "{out}");
    assert!(out.contains("|  2 | bob   |    50.5 |"), "{out}");
    assert!(out.contains(AFTER_QUICK_START), "{out}");
    assert!(dir.path().join("node1").is_dir(), "files live in <data-dir>/<id>");

    let status = node.terminate();
    assert!(status.success(), "SIGTERM exit status: {status}");

    let node = Node::start(dir.path(), port);
    let out = node.ok("SELECT * FROM users ORDER BY id;");
    assert!(out.contains(AFTER_QUICK_START), "after restart: {out}");
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let node = Node::start(dir.path(), port);
    node.ok("CREATE TABLE t (id INT PRIMARY KEY, v STRING)");
    for i in 0..20 {
        node.ok(&format!("INSERT INTO t VALUES ({i}, 'v{i}')"));
    }
    node.ok("BEGIN; UPDATE t SET v = 'changed' WHERE id < 5; DELETE FROM t WHERE id >= 15; COMMIT;");
    // Killed right after the last acknowledgement: nothing may be lost.
    node.kill_hard();
    let node = Node::start(dir.path(), port);
    let out = node.ok("SELECT count(*), sum(id) FROM t; SELECT count(*) FROM t WHERE v = 'changed';");
    assert!(out.contains("|       15 |     105 |"), "{out}");
    assert!(out.contains("|        5 |"), "{out}");
}

#[test]
fn bad_input_gets_clear_errors_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), free_port());
    node.ok("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(4) NOT NULL, n INT)");
    node.ok("INSERT INTO t VALUES (1, 'a', 1)");
    let cases = [
        ("SELECT * FORM t", "syntax error at line 1, column 10"),
        ("SELECT * FROM nope", "table 'nope' does not exist"),
        ("SELECT nope FROM t", "column 'nope' does not exist"),
        ("INSERT INTO t VALUES ('x', 'a', 1)", "column 'id' is INT"),
        ("INSERT INTO t VALUES (1, 'b', 2)", "duplicate key (1)"),
        ("INSERT INTO t (id, n) VALUES (2, 2)", "violates NOT NULL"),
        ("SELECT n / 0 FROM t", "division by zero"),
        ("INSERT INTO t VALUES (3, 'toolong', 1)", "too long"),
        ("INSERT INTO t VALUES (3, 'c', 99999999999)", "out of range"),
        ("COMMIT", "COMMIT without BEGIN"),
    ];
    for (sql, expected) in cases {
        let err = node.fails(sql);
        assert!(err.contains(expected), "`{sql}`: expected '{expected}' in: {err}");
    }
    // A failure inside a batch leaves no partial change.
    node.fails("BEGIN; INSERT INTO t VALUES (5, 'e', 5); INSERT INTO t VALUES (1, 'dup', 0); COMMIT;");
    assert!(node.ok("SELECT count(*) FROM t").contains("|        1 |"));

    // Garbage bytes on the gRPC port and an oversized request are refused.
    let mut raw = std::net::TcpStream::connect(&node.address).unwrap();
    let _ = raw.write_all(b"\x00\x01garbage that is not HTTP/2\r\n\r\n");
    drop(raw);
    let huge = format!("SELECT '{}'", "x".repeat(17 * 1024 * 1024));
    let mut child = Command::new(BIN)
        .args(["client", "--leader", &node.address])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(huge.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("message length too large") || err.contains("too large"),
        "{err}"
    );

    // Hostile nesting straight at the API (the client's own parser would
    // refuse these first): an error each, never a crashed node.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = chronos::client::Client::connect(&node.address).await.unwrap();
        let hostile = [
            format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000)),
            format!("SELECT 1{}", " + 1".repeat(50_000)),
            format!("SELECT {}1", "-".repeat(20_000)),
            format!("SELECT {}true", "NOT ".repeat(20_000)),
            format!(
                "SELECT ({}) AS c",
                vec!["CASE WHEN true THEN 1 ELSE "; 100].concat() + "0" + &" END".repeat(100)
            ),
        ];
        for (i, sql) in hostile.into_iter().enumerate() {
            eprintln!("hostile input {i}");
            let reply = client.execute(&sql).await.unwrap();
            // Any clear error will do (pest gives up on some of these
            // before our depth limit does); the node must stay up.
            let error = reply.error.expect("refused");
            assert!(!error.message.is_empty());
            assert!(client.query(&sql).await.is_err());
        }
        // A long OR chain is not deep (it is balanced): it just works.
        let many = format!("SELECT count(*) FROM t WHERE {}", vec!["n = 1"; 20_000].join(" OR "));
        let reply = client.execute(&many).await.unwrap();
        assert!(reply.error.is_none(), "{:?}", reply.error);
    });

    assert!(node.ok("SELECT name FROM t WHERE id = 1").contains("| a    |"));
}

#[test]
fn client_formats_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), free_port());
    node.ok("CREATE TABLE s (k STRING PRIMARY KEY, ts TIMESTAMP, ok BOOL); INSERT INTO s VALUES ('a,b', '2026-11-24T10:00:00Z', true), ('c', 0, NULL)");
    let csv = String::from_utf8(
        node.client(&["--format", "csv", "-e", "SELECT * FROM s ORDER BY k"])
            .stdout,
    )
    .unwrap();
    assert_eq!(
        csv,
        "k,ts,ok\n\"a,b\",2026-11-24T10:00:00Z,true\nc,1970-01-01T00:00:00Z,\n"
    );
    let json = String::from_utf8(
        node.client(&["--format", "json", "-e", "SELECT k, ok FROM s ORDER BY k"])
            .stdout,
    )
    .unwrap();
    assert_eq!(json, "[{\"k\":\"a,b\",\"ok\":true},{\"k\":\"c\",\"ok\":null}]\n");

    let mut child = Command::new(BIN)
        .args(["client", "--leader", &node.address])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"-- piped script\nSELECT count(*)\n  AS n FROM s;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("| 2 |"));
}

#[test]
fn config_errors_exit_2_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chronos.toml");
    std::fs::write(&file, "max_request_bytes = \"big\"\n").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN).arg("node").args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&["--config", file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("max_request_bytes"), "{err}");
    let (code, err) = run(&["--config", "/nonexistent/chronos.toml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no such file"), "{err}");
    let (code, err) = run(&["--address", "not-an-address"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("address"), "{err}");
    let (code, err) = run(&["--bogus-flag"]);
    assert_eq!(code, Some(2), "{err}");
}
