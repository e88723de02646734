//! Window functions and UPSERT, the two targets of the SQL issue:
//! - a 3-row moving average per sensor over 1,000,000 readings, ChronosDB
//!   (sled files) and SQLite (a WAL file) in the same run;
//! - a single-row UPSERT into a 1,000-row table (every one a conflict that
//!   updates) beside a plain single-row INSERT, both applied the way a
//!   node applies a Raft entry (`Database::apply_script`: one atomic batch,
//!   durable through the Raft log, so no fsync of its own).
//!
//! Figures and ratios are in docs/performance.md.

use chronos::sql::parser::params::Params;
use chronos::sql::parser::parse_one;
use chronos::sql::script::prepare;
use chronos::sql::{ApplyContext, Database};
use chronos::storage::{RowVersion, SledEngine};
use criterion::{Criterion, criterion_group, criterion_main};
use std::cell::OnceCell;
use std::sync::Arc;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const READINGS: i64 = 1_000_000;
const SENSORS: i64 = 100;

const MOVING_AVERAGE: &str = "SELECT sensor, ts, avg(value) OVER (PARTITION BY sensor ORDER BY ts \
    ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM readings";

fn ctx(n: u64) -> ApplyContext {
    ApplyContext {
        now_ms: 0,
        version: RowVersion { hlc: n, site: 1 },
        change: n,
    }
}

/// 1,000-row INSERTs of readings: 100 sensors, one reading each per second.
fn readings() -> Vec<String> {
    let mut out = Vec::new();
    let mut n = 0;
    while n < READINGS {
        let values: Vec<String> = (n..n + 1000)
            .map(|i| format!("({i}, {}, {}, {}.25)", i % SENSORS, 1_700_000_000 + i / SENSORS, i % 97))
            .collect();
        out.push(format!("INSERT INTO readings VALUES {}", values.join(", ")));
        n += 1000;
    }
    out
}

const SCHEMA: &str = "CREATE TABLE readings (id BIGINT PRIMARY KEY, sensor INT, ts BIGINT, value DOUBLE)";

fn run(db: &Database, sql: &str) {
    if let Some((_, e)) = db.execute_script(sql, ctx(1)).error {
        panic!("{sql}: {e}");
    }
}

fn chronos(dir: &std::path::Path) -> Database {
    let db = Database::open(Arc::new(SledEngine::open(dir).expect("open sled"))).expect("open database");
    run(&db, SCHEMA);
    for sql in readings() {
        run(&db, &sql);
    }
    db
}

fn sqlite(dir: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join("bench.db")).expect("open sqlite");
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .expect("pragmas");
    conn.execute_batch(SCHEMA).expect("schema");
    for sql in readings() {
        conn.execute_batch(&sql).expect("sqlite load");
    }
    conn
}

/// Rows read and the sum of the third column (so both engines are seen to
/// compute the same averages).
fn chronos_query(db: &Database, sql: &str) -> (usize, f64) {
    let statement = parse_one(sql).expect("parse");
    db.query(&statement, 0, |r| {
        let (mut n, mut total) = (0, 0.0);
        for row in r.rows {
            let row = row.expect("row");
            if let Some(chronos::sql::types::Value::Float(f)) = row.get(2) {
                total += f;
            }
            n += 1;
        }
        (n, total)
    })
    .expect("query")
}

fn sqlite_query(conn: &rusqlite::Connection, sql: &str) -> (usize, f64) {
    let mut statement = conn.prepare_cached(sql).expect("prepare");
    let mut rows = statement.query([]).expect("query");
    let (mut n, mut total) = (0, 0.0);
    while let Some(row) = rows.next().expect("row") {
        total += row.get::<_, f64>(2).expect("avg");
        n += 1;
    }
    (n, total)
}

/// Both databases with the readings, loaded once and only when a moving
/// average bench runs (loading takes a minute); both answers checked equal.
struct Loaded {
    db: Database,
    conn: rusqlite::Connection,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn load() -> Loaded {
    let ours_dir = tempfile::tempdir().expect("temp dir");
    let theirs_dir = tempfile::tempdir().expect("temp dir");
    let db = chronos(ours_dir.path());
    let conn = sqlite(theirs_dir.path());
    let (ours, theirs) = (chronos_query(&db, MOVING_AVERAGE), sqlite_query(&conn, MOVING_AVERAGE));
    assert_eq!(ours.0, READINGS as usize);
    assert_eq!(theirs.0, READINGS as usize);
    assert!(
        (ours.1 - theirs.1).abs() < 1e-6 * theirs.1.abs(),
        "{ours:?} vs {theirs:?}"
    );
    Loaded {
        db,
        conn,
        _dirs: (ours_dir, theirs_dir),
    }
}

fn moving_average(c: &mut Criterion) {
    let loaded = OnceCell::new();
    let mut group = c.benchmark_group("moving_average_1m");
    group.sample_size(10);
    group.bench_function("chronos", |b| {
        let l = loaded.get_or_init(load);
        b.iter(|| chronos_query(&l.db, MOVING_AVERAGE))
    });
    group.bench_function("sqlite", |b| {
        let l = loaded.get_or_init(load);
        b.iter(|| sqlite_query(&l.conn, MOVING_AVERAGE))
    });
    group.finish();
}

/// Applies one statement as a Raft entry is applied.
fn apply(db: &Database, sql: &str, n: u64) {
    let outcome = db
        .apply_script(prepare(sql, &Params::default()), ctx(n), |_, _| Ok(()))
        .expect("storage");
    if let Some((_, e)) = outcome.error {
        panic!("{sql}: {e}");
    }
}

fn upsert_vs_insert(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::open(Arc::new(SledEngine::open(dir.path()).expect("open sled"))).expect("open database");
    run(&db, "CREATE TABLE latest (sensor INT PRIMARY KEY, v DOUBLE, n INT)");
    run(&db, "CREATE TABLE log (id BIGINT PRIMARY KEY, sensor INT, v DOUBLE)");
    let rows: Vec<String> = (0..1000).map(|i| format!("({i}, 0.5, 1)")).collect();
    run(&db, &format!("INSERT INTO latest VALUES {}", rows.join(", ")));
    let mut group = c.benchmark_group("single_row_write");
    let mut n = 0u64;
    // A new row at the end of a table: the common write of a gateway.
    group.bench_function("insert", |b| {
        b.iter(|| {
            n += 1;
            apply(&db, &format!("INSERT INTO log VALUES ({n}, {}, {n}.5)", n % 1000), n);
        })
    });
    // The same row changed with UPDATE, to show what an UPSERT adds to it.
    group.bench_function("update", |b| {
        b.iter(|| {
            n += 1;
            apply(
                &db,
                &format!("UPDATE latest SET v = {n}.5, n = n + 1 WHERE sensor = {}", n % 1000),
                n,
            );
        })
    });
    // The "latest value per sensor" UPSERT: every one a conflict.
    group.bench_function("upsert", |b| {
        b.iter(|| {
            n += 1;
            apply(
                &db,
                &format!(
                    "INSERT INTO latest VALUES ({}, {n}.5, 1) ON CONFLICT (sensor) DO UPDATE SET v = excluded.v, n = excluded.n",
                    n % 1000
                ),
                n,
            );
        })
    });
    // With an expression in SET, which the grammar parses.
    group.bench_function("upsert_expression", |b| {
        b.iter(|| {
            n += 1;
            apply(
                &db,
                &format!(
                    "INSERT INTO latest VALUES ({}, {n}.5, 1) ON CONFLICT (sensor) DO UPDATE SET v = excluded.v, n = n + 1",
                    n % 1000
                ),
                n,
            );
        })
    });
    // Parsing alone (planning happens as it is applied).
    group.bench_function("upsert_prepare", |b| {
        b.iter(|| {
            n += 1;
            prepare(
                &format!(
                    "INSERT INTO latest VALUES ({}, {n}.5, 1) ON CONFLICT (sensor) DO UPDATE SET v = excluded.v, n = excluded.n",
                    n % 1000
                ),
                &Params::default(),
            )
        })
    });
    group.bench_function("insert_prepare", |b| {
        b.iter(|| {
            n += 1;
            prepare(
                &format!("INSERT INTO log VALUES ({n}, {}, {n}.5)", n % 1000),
                &Params::default(),
            )
        })
    });
    group.finish();
}

criterion_group!(window_upsert, moving_average, upsert_vs_insert);
criterion_main!(window_upsert);
