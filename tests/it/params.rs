//! Parameterized statements and atomic batches through a real node and the
//! library client: values of every type round-trip, injection attempts
//! stay data, a failing batch leaves nothing behind, and bad parameter
//! lists get clear errors.

use crate::common;

use chronos::client::Client;
use chronos::proto::v1::{ExecuteRequest, ExecuteResponse, Value as ProtoValue};
use chronos::sql::types::Value;

async fn rows(client: &mut Client, sql: &str, params: &[Value]) -> Vec<Vec<Value>> {
    let mut stream = client.query_with(sql, params).await.expect("query");
    let mut out = Vec::new();
    loop {
        let batch = stream.next_batch().await.expect("rows");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

fn ok(response: ExecuteResponse) -> Vec<u64> {
    assert!(response.error.is_none(), "{:?}", response.error);
    response.results.iter().map(|r| r.rows_affected).collect()
}

fn failed(response: ExecuteResponse) -> (u32, String, String) {
    let e = response.error.expect("an error");
    (e.statement_index, e.code, e.message)
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn parameters_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::Node::start(dir.path(), common::free_port());
    common::block_on(async {
        let mut c = common::cluster::connect(&node.address).await;
        ok(
            c.execute("CREATE TABLE people (id INT PRIMARY KEY, name STRING, score DOUBLE, ok BOOL, seen TIMESTAMP)")
                .await
                .unwrap(),
        );

        // Every type, positional.
        let row = vec![
            Value::Int(1),
            text("Ada"),
            Value::Float(2.5),
            Value::Bool(true),
            Value::Timestamp(1_764_000_000_000),
        ];
        assert_eq!(
            ok(c.execute_with("INSERT INTO people VALUES (?, ?, ?, ?, ?)", &row)
                .await
                .unwrap()),
            [1]
        );
        assert_eq!(
            rows(&mut c, "SELECT * FROM people WHERE id = ?", &[Value::Int(1)]).await,
            [row]
        );

        // Injection attempts are stored and matched as plain text.
        let attacks = [
            "x'); DROP TABLE people; --",
            "' OR '1'='1",
            "Robert'); DELETE FROM people WHERE ('1' = '1",
            "?; :name; ?1",
        ];
        for (i, attack) in attacks.iter().enumerate() {
            let id = Value::Int(10 + i as i64);
            let answer = c
                .execute_with("INSERT INTO people (id, name) VALUES (?, ?)", &[id, text(attack)])
                .await
                .unwrap();
            assert_eq!(ok(answer), [1]);
        }
        for attack in attacks {
            let found = rows(&mut c, "SELECT name FROM people WHERE name = ?", &[text(attack)]).await;
            assert_eq!(found, [vec![text(attack)]], "{attack}");
        }
        let nothing = rows(
            &mut c,
            "SELECT id FROM people WHERE name = ?",
            &[text("' OR '1'='1' --")],
        )
        .await;
        assert!(nothing.is_empty());
        let count = rows(&mut c, "SELECT count(*) FROM people", &[]).await;
        assert_eq!(count, [vec![Value::Int(5)]]);

        // Named parameters (with or without the colon), and NULL.
        let named = ExecuteRequest {
            sql: "UPDATE people SET score = :score, seen = :seen WHERE id = :id".into(),
            named_params: [
                ("id".to_string(), ProtoValue::from(&Value::Int(10))),
                (":score".to_string(), ProtoValue::from(&Value::Float(-1.0))),
                ("seen".to_string(), ProtoValue::from(&Value::Null)),
            ]
            .into(),
            ..ExecuteRequest::default()
        };
        assert_eq!(ok(c.execute_request(named).await.unwrap()), [1]);
        let updated = rows(
            &mut c,
            "SELECT score, seen FROM people WHERE id = ?1",
            &[Value::Int(10)],
        )
        .await;
        assert_eq!(updated, [vec![Value::Float(-1.0), Value::Null]]);

        // A batch commits all of its statements ...
        let batch: [(&str, &[Value]); 3] = [
            (
                "INSERT INTO people (id, name) VALUES (?, ?)",
                &[Value::Int(20), text("b1")],
            ),
            (
                "UPDATE people SET name = ? WHERE id = ?",
                &[text("Ada L."), Value::Int(1)],
            ),
            ("DELETE FROM people WHERE id = ?", &[Value::Int(13)]),
        ];
        assert_eq!(ok(c.execute_batch(&batch).await.unwrap()), [1, 1, 1]);
        // ... or, when one fails, none of them.
        let batch: [(&str, &[Value]); 3] = [
            (
                "INSERT INTO people (id, name) VALUES (?, ?)",
                &[Value::Int(21), text("b2")],
            ),
            (
                "UPDATE people SET name = ? WHERE id = ?",
                &[text("lost"), Value::Int(1)],
            ),
            (
                "INSERT INTO people (id, name) VALUES (?, ?)",
                &[Value::Int(20), text("duplicate")],
            ),
        ];
        let (index, code, _) = failed(c.execute_batch(&batch).await.unwrap());
        assert_eq!((index, code.as_str()), (2, "duplicate_key"));
        let after = rows(
            &mut c,
            "SELECT id, name FROM people WHERE id IN (?, ?, ?) ORDER BY id",
            &[Value::Int(1), Value::Int(20), Value::Int(21)],
        )
        .await;
        assert_eq!(
            after,
            [vec![Value::Int(1), text("Ada L.")], vec![Value::Int(20), text("b1")]]
        );

        // Bad parameter lists never reach the log, and say what is wrong.
        let cases: [(&str, Vec<Value>, &str); 4] = [
            (
                "INSERT INTO people (id) VALUES (?)",
                vec![],
                "no value for parameter ?1",
            ),
            (
                "DELETE FROM people WHERE id = ?",
                vec![Value::Int(1), Value::Int(2)],
                "2 positional values given",
            ),
            (
                "CREATE TABLE x (a INT DEFAULT ?)",
                vec![Value::Int(1)],
                "not in CREATE TABLE",
            ),
            ("INSERT INTO people (id) VALUES (?0)", vec![], "out of range"),
        ];
        for (sql, params, expected) in cases {
            let (_, code, message) = failed(c.execute_with(sql, &params).await.unwrap());
            assert!(message.contains(expected), "{sql}: {code} {message}");
        }
        let e = c.query_with("SELECT ?", &[]).await.err().expect("refused");
        assert!(e.to_string().contains("no value for parameter ?1"), "{e}");
        let count = rows(&mut c, "SELECT count(*) FROM people", &[]).await;
        assert_eq!(count, [vec![Value::Int(5)]]);
    });
    assert!(node.terminate().success());
}
