//! The queries of the SQL-completeness work, side by side with SQLite (the
//! bundled rusqlite, on a file in WAL mode) in the same run: a correlated
//! scalar subquery over 10,000 outer rows, an 8-table join, a UNION of
//! two 100,000-row selects, and the storage issue's filtered count over a
//! million sensor rows. Figures and ratios are in the README and
//! docs/performance.md.

use chronos::sql::parser::parse_one;
use chronos::sql::{ApplyContext, Database};
use chronos::storage::{RowVersion, SledEngine};
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The tables, in SQL both engines accept.
fn schema() -> Vec<String> {
    let mut sql = vec![
        "CREATE TABLE outer_rows (id INT PRIMARY KEY, a INT)".to_string(),
        "CREATE TABLE inner_rows (id INT PRIMARY KEY, k INT, v INT)".to_string(),
        "CREATE INDEX inner_k ON inner_rows (k)".to_string(),
        "CREATE TABLE u1 (id INT, v INT)".to_string(),
        "CREATE TABLE u2 (id INT, v INT)".to_string(),
    ];
    for t in 1..=8 {
        sql.push(format!("CREATE TABLE j{t} (id INT PRIMARY KEY, next INT, v INT)"));
    }
    sql.push("CREATE TABLE readings (id INT PRIMARY KEY, sensor TEXT, ts INT, value DOUBLE)".to_string());
    sql
}

/// INSERT statements of 1,000 rows each.
fn data() -> Vec<String> {
    let mut sql = Vec::new();
    let mut insert = |table: &str, rows: std::ops::Range<i64>, row: &dyn Fn(i64) -> String| {
        let rows: Vec<i64> = rows.collect();
        for chunk in rows.chunks(1000) {
            let values: Vec<String> = chunk.iter().map(|&n| row(n)).collect();
            sql.push(format!("INSERT INTO {table} VALUES {}", values.join(", ")));
        }
    };
    insert("outer_rows", 0..10_000, &|n| format!("({n}, {})", n % 5000));
    insert("inner_rows", 0..10_000, &|n| {
        format!("({n}, {}, {n})", (n * 7) % 10_000)
    });
    insert("u1", 0..100_000, &|n| format!("({n}, {})", n % 1000));
    insert("u2", 50_000..150_000, &|n| format!("({n}, {})", n % 1000));
    for t in 1..=8 {
        insert(&format!("j{t}"), 0..1000, &|n| {
            format!("({n}, {}, {})", (n * 31 + 7) % 1000, n % 10)
        });
    }
    // The storage issue's sensor rows: 100 sensors, values 20.00-29.99.
    insert("readings", 0..SENSOR_ROWS, &|n| {
        format!(
            "({n}, 'sensor-{:03}', {}, {:.2})",
            n % 100,
            1_764_547_200 + (n / 100) * 10,
            20.0 + ((n * 7919) % 1000) as f64 / 100.0
        )
    });
    sql
}

const SENSOR_ROWS: i64 = 1_000_000;
/// A filtered count over a non-key column of a million rows.
const FILTERED_COUNT: &str = "SELECT count(*) FROM readings WHERE value > 25.0";

const CORRELATED: &str = "SELECT o.id, (SELECT count(*) FROM inner_rows i WHERE i.k = o.a) FROM outer_rows o";
/// Written in an order that would build cross products if run as written.
const JOIN8: &str = "SELECT j1.id, j8.v FROM j1, j3, j5, j7, j2, j4, j6, j8 \
    WHERE j1.next = j2.id AND j2.next = j3.id AND j3.next = j4.id AND j4.next = j5.id \
    AND j5.next = j6.id AND j6.next = j7.id AND j7.next = j8.id AND j1.v < 5";
const UNION: &str = "SELECT id, v FROM u1 UNION SELECT id, v FROM u2";

fn ctx() -> ApplyContext {
    ApplyContext {
        now_ms: 0,
        version: RowVersion { hlc: 1, site: 1 },
        change: 0,
    }
}

fn chronos(dir: &std::path::Path) -> Database {
    let db = Database::open(Arc::new(SledEngine::open(dir).expect("open sled"))).expect("open database");
    for sql in schema().iter().chain(&data()) {
        if let Some((_, e)) = db.execute_script(sql, ctx()).error {
            panic!("{sql}: {e}");
        }
    }
    db
}

fn sqlite(dir: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join("bench.db")).expect("open sqlite");
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .expect("pragmas");
    for sql in schema().iter().chain(&data()) {
        conn.execute_batch(sql).expect("sqlite load");
    }
    conn.execute_batch("ANALYZE").expect("analyze");
    conn
}

fn chronos_count(db: &Database, sql: &str) -> usize {
    let statement = parse_one(sql).expect("parse");
    db.query(&statement, 0, |r| {
        let mut n = 0;
        for row in r.rows {
            row.expect("row");
            n += 1;
        }
        n
    })
    .expect("query")
}

fn sqlite_count(conn: &rusqlite::Connection, sql: &str) -> usize {
    let mut statement = conn.prepare_cached(sql).expect("prepare");
    let mut rows = statement.query([]).expect("query");
    let mut n = 0;
    while rows.next().expect("row").is_some() {
        n += 1;
    }
    n
}

fn benches(c: &mut Criterion) {
    let ours_dir = tempfile::tempdir().expect("temp dir");
    let theirs_dir = tempfile::tempdir().expect("temp dir");
    let db = chronos(ours_dir.path());
    let conn = sqlite(theirs_dir.path());
    // 499 of every 1,000 values are above 25.00.
    let counted: i64 = conn.query_row(FILTERED_COUNT, [], |r| r.get(0)).expect("sqlite count");
    assert_eq!(counted, 499_000, "sqlite: {FILTERED_COUNT}");
    let statement = parse_one(FILTERED_COUNT).expect("parse");
    let ours = db
        .query(&statement, 0, |mut r| r.rows.next().map(|row| row.expect("row")))
        .expect("query");
    assert_eq!(
        ours,
        Some(vec![chronos::sql::types::Value::Int(499_000)]),
        "chronos: {FILTERED_COUNT}"
    );
    for (name, sql, rows) in [
        ("correlated_subquery_10k", CORRELATED, 10_000),
        ("join_8_tables", JOIN8, 500),
        ("union_2x100k", UNION, 150_000),
        ("filtered_count_1m", FILTERED_COUNT, 1),
    ] {
        // Same answer first: a comparison of wrong results means nothing.
        assert_eq!(chronos_count(&db, sql), rows, "chronos: {sql}");
        assert_eq!(sqlite_count(&conn, sql), rows, "sqlite: {sql}");
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.bench_function("chronos", |b| b.iter(|| chronos_count(&db, sql)));
        group.bench_function("sqlite", |b| b.iter(|| sqlite_count(&conn, sql)));
        group.finish();
    }
}

criterion_group!(sql_vs_sqlite, benches);
criterion_main!(sql_vs_sqlite);
