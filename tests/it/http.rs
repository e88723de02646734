//! The HTTP listener of a real node: /healthz, /readyz, /metrics and the
//! JSON API, errors included.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;

/// One HTTP/1.1 request; returns the status code and the body.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP listener");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().expect("status code");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn health_metrics_and_json_api() {
    let dir = tempfile::tempdir().unwrap();
    let http_port = common::free_port();
    let address = format!("127.0.0.1:{http_port}");
    let node = common::Node::start_with_env(dir.path(), common::free_port(), &[("CHRONOS_HTTP_ADDRESS", &address)]);
    // Ready once the HTTP listener is up (it binds just after the gRPC
    // one) and the single-node cluster has elected itself.
    let mut ready = (0, String::new());
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", http_port)).is_ok() {
            ready = http(http_port, "GET", "/readyz", "");
            if ready.0 == 200 {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(ready, (200, "ready\n".into()));
    assert_eq!(http(http_port, "GET", "/healthz", ""), (200, "ok\n".into()));

    let create = r#"{"sql": "CREATE TABLE t (id INT PRIMARY KEY, name STRING, at TIMESTAMP)"}"#;
    assert_eq!(
        http(http_port, "POST", "/v1/execute", create),
        (200, r#"{"rows_affected":0}"#.into())
    );
    let insert =
        r#"{"sql": "INSERT INTO t VALUES (1, 'a', '2026-11-25T10:00:00Z'), (2, NULL, NULL); SELECT count(*) FROM t"}"#;
    let (status, body) = http(http_port, "POST", "/v1/execute", insert);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        r#"{"results":[{"rows_affected":2},{"columns":["count(*)"],"rows":[[2]]}]}"#
    );
    let (status, body) = http(
        http_port,
        "POST",
        "/v1/query",
        r#"{"sql": "SELECT * FROM t ORDER BY id"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        r#"{"columns":["id","name","at"],"types":["INT","STRING","TIMESTAMP"],"rows":[[1,"a","2026-11-25T10:00:00Z"],[2,null,null]]}"#
    );
    let local = r#"{"sql": "SELECT name FROM t WHERE id = 1", "consistency": "local"}"#;
    assert_eq!(
        http(http_port, "POST", "/v1/query", local).1,
        r#"{"columns":["name"],"types":["STRING"],"rows":[["a"]]}"#
    );

    // Parameters: positional and named, sent apart from the SQL, so
    // quotes in a value are data.
    let insert = r#"{"sql": "INSERT INTO t VALUES (?, ?, ?)", "params": [3, "it's'); DROP TABLE t; --", "2026-11-26T00:00:00Z"]}"#;
    assert_eq!(
        http(http_port, "POST", "/v1/execute", insert).1,
        r#"{"rows_affected":1}"#
    );
    let named = r#"{"sql": "SELECT name FROM t WHERE id = :id", "params": {"id": 3}}"#;
    assert_eq!(
        http(http_port, "POST", "/v1/query", named).1,
        r#"{"columns":["name"],"types":["STRING"],"rows":[["it's'); DROP TABLE t; --"]]}"#
    );
    // A batch commits together: the failing second item undoes the first.
    let batch = r#"{"batch": [{"sql": "INSERT INTO t (id) VALUES (?)", "params": [4]},
                              {"sql": "INSERT INTO t (id) VALUES (?)", "params": [1]}]}"#;
    let (status, body) = http(http_port, "POST", "/v1/execute", batch);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(r#""code":"duplicate_key""#) && body.contains(r#""statement_index":1"#),
        "{body}"
    );
    let batch = r#"{"batch": [{"sql": "INSERT INTO t (id) VALUES (?)", "params": [4]},
                              {"sql": "DELETE FROM t WHERE id = :id", "params": {":id": 3}}]}"#;
    assert_eq!(
        http(http_port, "POST", "/v1/execute", batch).1,
        r#"{"results":[{"rows_affected":1},{"rows_affected":1}]}"#
    );
    let ids = r#"{"sql": "SELECT id FROM t ORDER BY id"}"#;
    assert_eq!(
        http(http_port, "POST", "/v1/query", ids).1,
        r#"{"columns":["id"],"types":["INT"],"rows":[[1],[2],[4]]}"#
    );
    // UPSERT with RETURNING: the rows come back as a result set, with
    // parameters, and a window function over the result.
    let upsert = r#"{"sql": "INSERT INTO t (id, name) VALUES (?, ?), (5, 'e') ON CONFLICT (id) DO UPDATE SET name = excluded.name || '!' RETURNING id, name", "params": [4, "d"]}"#;
    assert_eq!(
        http(http_port, "POST", "/v1/execute", upsert).1,
        r#"{"columns":["id","name"],"rows":[[4,"d!"],[5,"e"]]}"#
    );
    let ranked = r#"{"sql": "SELECT id, row_number() OVER (ORDER BY id DESC) AS r, lag(id) OVER (ORDER BY id) AS prev FROM t ORDER BY id"}"#;
    assert_eq!(
        http(http_port, "POST", "/v1/query", ranked).1,
        r#"{"columns":["id","r","prev"],"types":["INT","INT","INT"],"rows":[[1,4,null],[2,3,1],[4,2,2],[5,1,4]]}"#
    );
    let copied =
        r#"{"sql": "INSERT INTO t (id, name) SELECT id + 10, upper(name) FROM t WHERE id >= 4 RETURNING id, name"}"#;
    assert_eq!(
        http(http_port, "POST", "/v1/execute", copied).1,
        r#"{"columns":["id","name"],"rows":[[14,"D!"],[15,"E"]]}"#
    );
    let deleted = r#"{"sql": "DELETE FROM t WHERE id >= 10; DELETE FROM t WHERE id = 5 RETURNING *"}"#;
    assert_eq!(
        http(http_port, "POST", "/v1/execute", deleted).1,
        r#"{"results":[{"rows_affected":2},{"columns":["id","name","at"],"rows":[[5,"e",null]]}]}"#
    );

    // SHOW SYNC STATUS answers from the node (no sync configured here).
    let (status, body) = http(http_port, "POST", "/v1/query", r#"{"sql": "SHOW SYNC STATUS"}"#);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""upstream_reachable""#), "{body}");
    assert!(
        body.contains(r#"[[null,null,"off",null,null,false,null,null,null,0,0,0,0,0,null]]"#),
        "{body}"
    );

    // Errors: the same codes as over gRPC, with a 4xx status.
    let cases = [
        ("/v1/query", r#"{"sql": "SELECT * FROM nope"}"#, 400, "unknown_table"),
        ("/v1/query", r#"{"sql": "SELEC 1"}"#, 400, "syntax_error"),
        (
            "/v1/query",
            r#"{"sql": "INSERT INTO t VALUES (3, 'c', NULL)"}"#,
            400,
            "invalid_statement",
        ),
        (
            "/v1/query",
            r#"{"sql": "SELECT 1", "consistency": "eventual"}"#,
            400,
            "bad_request",
        ),
        (
            "/v1/execute",
            r#"{"sql": "INSERT INTO t VALUES (1, 'dup', NULL)"}"#,
            400,
            "duplicate_key",
        ),
        ("/v1/execute", r#"{"sq": "SELECT 1"}"#, 400, "bad_request"),
        (
            "/v1/query",
            r#"{"sql": "SELECT ?", "params": [[1]]}"#,
            400,
            "invalid_parameter",
        ),
        (
            "/v1/query",
            r#"{"sql": "SELECT ?, ?", "params": [1]}"#,
            400,
            "invalid_parameter",
        ),
        (
            "/v1/query",
            r#"{"sql": "SELECT :a", "params": "a"}"#,
            400,
            "invalid_parameter",
        ),
        (
            "/v1/execute",
            r#"{"batch": [{"sql": "COMMIT"}]}"#,
            400,
            "transaction_error",
        ),
        (
            "/v1/execute",
            r#"{"sql": "SELECT 1", "batch": [{"sql": "SELECT 1"}]}"#,
            400,
            "invalid_argument",
        ),
        ("/v1/execute", "not json", 400, "bad_request"),
    ];
    for (path, body, status, code) in cases {
        let (got, answer) = http(http_port, "POST", path, body);
        assert_eq!(got, status, "{path} {body}: {answer}");
        assert!(
            answer.contains(&format!(r#""code":"{code}""#)),
            "{path} {body}: {answer}"
        );
    }
    assert_eq!(http(http_port, "GET", "/nope", "").0, 404);

    let (status, metrics) = http(http_port, "GET", "/metrics", "");
    assert_eq!(status, 200);
    for line in [
        "chronos_raft_role{role=\"leader\"} 1",
        "chronos_raft_has_leader 1",
        "chronos_raft_commit_index ",
        "chronos_requests_total{kind=\"execute\",outcome=\"ok\"} 7",
        "chronos_requests_total{kind=\"execute\",outcome=\"error\"} 4",
        "chronos_request_seconds_count{kind=\"query\"}",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in:\n{metrics}");
    }
    assert!(node.terminate().success());
}
