//! Limits through a real node: over-long SQL, an over-large INSERT, a query
//! past its time limit, and one client opening too many connections each
//! get a clear refusal naming the setting, and the node keeps serving.

use crate::common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn limits_refuse_clearly_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("CHRONOS_LIMITS_MAX_STATEMENT_BYTES", "4000"),
        ("CHRONOS_LIMITS_MAX_INSERT_ROWS", "100"),
        ("CHRONOS_LIMITS_QUERY_TIMEOUT_MS", "200"),
        ("CHRONOS_LIMITS_MAX_CONNECTIONS_PER_CLIENT", "6"),
    ];
    let node = common::Node::start_with_env(dir.path(), common::free_port(), &env);
    common::block_on(async {
        let mut c = common::cluster::connect(&node.address).await;
        c.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await.unwrap();
        let rows = |from: i64, n: i64| {
            (from..from + n)
                .map(|i| format!("({i}, {i})"))
                .collect::<Vec<_>>()
                .join(",")
        };

        let e = c
            .execute(&format!("INSERT INTO t VALUES {}", rows(0, 101)))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("an INSERT of 101 rows is more than limits.max_insert_rows (100)"),
            "{e}"
        );
        let long = format!("SELECT 1 -- {}", "x".repeat(4000));
        let e = c.execute(&long).await.unwrap_err();
        assert!(
            e.to_string().contains("more than limits.max_statement_bytes (4000)"),
            "{e}"
        );
        let e = c.query(&long).await.err().expect("refused");
        assert!(e.to_string().contains("limits.max_statement_bytes"), "{e}");

        for batch in 0..30 {
            let answer = c
                .execute(&format!("INSERT INTO t VALUES {}", rows(batch * 100, 100)))
                .await
                .unwrap();
            assert!(answer.error.is_none(), "{answer:?}");
        }
        // 9 million combinations: far longer than 200 ms.
        let slow = c.query("SELECT count(*) FROM t a, t b").await;
        let e = match slow {
            Err(e) => e,
            Ok(mut stream) => stream.next_batch().await.expect_err("timed out"),
        };
        assert!(
            e.to_string()
                .contains("longer than its time limit (limits.query_timeout_ms)"),
            "{e}"
        );
        let mut q = c.query("SELECT count(*) FROM t").await.unwrap();
        assert_eq!(
            q.next_batch().await.unwrap()[0][0],
            chronos::sql::types::Value::Int(3000)
        );
    });

    // The client above has closed; of seven raw connections six are
    // allowed and one is closed at once. Which one depends on the order the
    // node's connection tasks run in, so the test counts them.
    let open: Vec<TcpStream> = (0..7).map(|_| TcpStream::connect(&node.address).unwrap()).collect();
    let closed_now = || open.iter().filter(|c| is_closed(c)).count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while closed_now() == 0 {
        assert!(Instant::now() < deadline, "none of seven connections was closed");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(closed_now(), 1, "exactly one of seven connections is closed");
    drop(open);
    std::thread::sleep(Duration::from_millis(200));
    let out = node.sql("SELECT count(*) FROM t");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(node.terminate().success());
}

/// True once the node closed `conn` (waits up to 100 ms for a sign).
fn is_closed(mut conn: &TcpStream) -> bool {
    conn.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0u8; 64];
    match conn.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}
