//! An IoT sensor demo on the embedded SQL engine and real sled files:
//! four sensors report every minute for a day; then per-sensor hourly
//! averages and each sensor's latest reading.
//!
//!     cargo run --example storage_demo

use chronos::client::format::{self, Format};
use chronos::sql::parser::parse_one;
use chronos::sql::{ApplyContext, Database};
use chronos::storage::{RowVersion, SledEngine};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY_START_MS: i64 = 1_795_478_400_000; // 2026-11-24T00:00:00Z
const SENSORS: [&str; 4] = ["boiler", "cellar", "roof", "server-room"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(Arc::new(SledEngine::open(dir.path())?))?;
    let ctx = ApplyContext {
        now_ms: DAY_START_MS + 86_400_000,
        version: RowVersion { hlc: 1, site: 1 },
        change: 0,
    };
    execute(
        &db,
        ctx,
        "CREATE TABLE readings (sensor STRING NOT NULL, ts TIMESTAMP NOT NULL, temp DOUBLE, humidity DOUBLE, \
         PRIMARY KEY (sensor, ts))",
    )?;

    // A day of one-minute readings, written in 1,000-row statements.
    let started = Instant::now();
    let mut seed: u64 = 42;
    let mut rows = Vec::new();
    for minute in 0..24 * 60 {
        for (i, sensor) in SENSORS.iter().enumerate() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let noise = (seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5;
            let daily = ((minute as f64 / 1440.0) * std::f64::consts::TAU).sin();
            let temp = 15.0 + 10.0 * i as f64 + 5.0 * daily + noise;
            let humidity = 40.0 + 20.0 * noise;
            let ts = DAY_START_MS + minute * 60_000;
            rows.push(format!("('{sensor}', {ts}, {temp:.2}, {humidity:.1})"));
        }
    }
    for chunk in rows.chunks(1000) {
        execute(&db, ctx, &format!("INSERT INTO readings VALUES {}", chunk.join(", ")))?;
    }
    println!(
        "stored {} readings in {:.2?} (each statement flushed to disk)\n",
        rows.len(),
        started.elapsed()
    );

    query(
        &db,
        "Hourly averages, boiler, first six hours",
        "SELECT sensor, time_bucket('1 hour', ts) AS hour, round(avg(temp), 2) AS avg_temp, \
         round(max(temp), 2) AS max_temp, count(*) AS readings FROM readings \
         WHERE sensor = 'boiler' AND ts < '2026-11-24T06:00:00Z' GROUP BY sensor, hour ORDER BY hour",
    )?;
    query(
        &db,
        "Daily average per sensor",
        "SELECT sensor, round(avg(temp), 2) AS avg_temp, round(min(temp), 2) AS min_temp, \
         round(max(temp), 2) AS max_temp FROM readings GROUP BY sensor ORDER BY sensor",
    )?;
    for sensor in SENSORS {
        query(
            &db,
            &format!("Latest reading of {sensor}"),
            &format!(
                "SELECT sensor, ts, temp, humidity FROM readings WHERE sensor = '{sensor}' ORDER BY ts DESC LIMIT 1"
            ),
        )?;
    }
    query(
        &db,
        "How the latest-reading query finds its rows",
        "EXPLAIN SELECT ts, temp FROM readings WHERE sensor = 'roof' ORDER BY ts DESC LIMIT 1",
    )?;
    Ok(())
}

fn execute(db: &Database, ctx: ApplyContext, sql: &str) -> Result<(), Box<dyn std::error::Error>> {
    match db.execute_script(sql, ctx).error {
        Some((_, e)) => Err(e.into()),
        None => Ok(()),
    }
}

fn query(db: &Database, title: &str, sql: &str) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let statement = parse_one(sql)?;
    let (columns, rows) = db.query(&statement, DAY_START_MS, |result| {
        let columns: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
        (columns, result.rows.collect::<Result<Vec<_>, _>>())
    })?;
    let elapsed: Duration = started.elapsed();
    println!("{title}:");
    print!("{}", format::rows(Format::Table, &columns, &rows?, elapsed));
    println!();
    Ok(())
}
