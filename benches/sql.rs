//! The SQL engine on real sled files: parse, 1,000-row INSERTs (flushed to
//! disk before they return), point lookups, a filtered full scan and a
//! time_bucket GROUP BY over 100,000 rows. Figures are in the README.

use chronos::sql::parser::params::{Params, bind};
use chronos::sql::parser::{parse_one, parse_script};
use chronos::sql::types::Value;
use chronos::sql::{ApplyContext, Database};
use chronos::storage::{RowVersion, SledEngine};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROWS: i64 = 100_000;
const START_MS: i64 = 1_767_225_600_000; // 2026-01-01

fn ctx() -> ApplyContext {
    ApplyContext {
        now_ms: START_MS,
        version: RowVersion { hlc: 1, site: 1 },
        change: 0,
    }
}

fn open() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = SledEngine::open(dir.path()).expect("open sled");
    let db = Database::open(Arc::new(engine)).expect("open database");
    run(
        &db,
        "CREATE TABLE readings (id BIGINT PRIMARY KEY, sensor STRING, ts TIMESTAMP, temp DOUBLE)",
    );
    (dir, db)
}

fn run(db: &Database, sql: &str) {
    let outcome = db.execute_script(sql, ctx());
    if let Some((i, e)) = outcome.error {
        panic!("statement {i} failed: {e}");
    }
}

/// One INSERT statement of `n` rows with ids from `first`.
fn insert_sql(first: i64, n: i64) -> String {
    let mut sql = String::with_capacity(n as usize * 48);
    sql.push_str("INSERT INTO readings VALUES ");
    for id in first..first + n {
        if id > first {
            sql.push_str(", ");
        }
        let ts = START_MS + id * 1000;
        sql.push_str(&format!("({id}, 'sensor-{}', {ts}, {}.5)", id % 16, id % 100));
    }
    sql
}

fn loaded() -> (tempfile::TempDir, Database) {
    let (dir, db) = open();
    for chunk in 0..ROWS / 1000 {
        run(&db, &insert_sql(chunk * 1000, 1000));
    }
    (dir, db)
}

fn count(db: &Database, sql: &str) -> usize {
    let statement = parse_one(sql).expect("parse");
    db.query(&statement, START_MS, |r| r.rows.filter(|row| row.is_ok()).count())
        .expect("query")
}

fn benches(c: &mut Criterion) {
    let query = "SELECT sensor, time_bucket('5 minutes', ts) AS bucket, avg(temp) FROM readings \
                 WHERE temp > 20 AND sensor IN ('sensor-1', 'sensor-2') GROUP BY sensor, bucket ORDER BY bucket LIMIT 10";
    c.bench_function("parse/select", |b| {
        b.iter(|| parse_script(black_box(query)).expect("parse"))
    });
    let insert = insert_sql(0, 1000);
    c.bench_function("parse/insert_1000_rows", |b| {
        b.iter(|| parse_script(black_box(&insert)).expect("parse"))
    });

    let mut group = c.benchmark_group("insert");
    group.throughput(Throughput::Elements(1000));
    group.sample_size(20);
    let (_dir, db) = open();
    let mut next = 0;
    group.bench_function("1000_rows_flushed", |b| {
        b.iter_batched(
            || {
                next += 1000;
                insert_sql(next, 1000)
            },
            |sql| run(&db, &sql),
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let (_dir, db) = loaded();
    let mut id = 0;
    c.bench_function("point_lookup/primary_key", |b| {
        b.iter(|| {
            id = (id + 7919) % ROWS;
            assert_eq!(count(&db, &format!("SELECT * FROM readings WHERE id = {id}")), 1);
        })
    });
    // The same lookup parsed once and bound per run, as a prepared statement
    // is: storage, planning and execution without the SQL parser.
    let template = parse_script("SELECT * FROM readings WHERE id = ?").expect("parse");
    c.bench_function("point_lookup/primary_key_prepared", |b| {
        b.iter(|| {
            id = (id + 7919) % ROWS;
            let mut statements = template.clone();
            let values = Params {
                positional: vec![Value::Int(id)],
                ..Params::default()
            };
            bind(&mut statements, &values).expect("bind");
            let found = db
                .query(&statements[0].statement, START_MS, |r| {
                    r.rows.filter(|row| row.is_ok()).count()
                })
                .expect("query");
            assert_eq!(found, 1);
        })
    });

    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(20);
    group.bench_function("filter_100k", |b| {
        b.iter(|| assert_eq!(count(&db, "SELECT id, temp FROM readings WHERE temp > 89"), 11_000))
    });
    group.bench_function("group_by_time_bucket_100k", |b| {
        b.iter(|| {
            let n = count(
                &db,
                "SELECT time_bucket('1 hour', ts) AS hour, avg(temp), max(temp) FROM readings GROUP BY hour",
            );
            assert_eq!(n, 28);
        })
    });
    group.finish();
}

criterion_group!(sql, benches);
criterion_main!(sql);
