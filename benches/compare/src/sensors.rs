//! The storage issue's sensor workload, on a fresh single node and on
//! SQLite (WAL, synchronous=FULL) with the same SQL: a million readings
//! (id, sensor, ts, value) inserted as 1,000-row INSERTs by one client, then
//! a filtered count over non-key columns, the bytes on disk a few seconds
//! after the last write, and the node's peak memory.

use crate::chronosdb::{connect, execute};
use crate::procs::Cluster;
use rusqlite::Connection;
use std::path::Path;
use std::time::{Duration, Instant};

pub const ROWS: usize = 1_000_000;
const PER_INSERT: usize = 1_000;
const CREATE: &str =
    "CREATE TABLE readings (id INTEGER PRIMARY KEY, sensor TEXT NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE)";
pub const SCAN: &str = "SELECT count(*) FROM readings WHERE value > 25.0";

#[derive(Clone, Copy, Debug, Default)]
pub struct Figures {
    pub rows_per_s: f64,
    /// Best of three runs of `SCAN`.
    pub scan_ms: f64,
    pub disk_bytes: u64,
    pub peak_mib: f64,
}

/// The INSERT statements: 100 sensors, a reading each every 10 s, values
/// from a fixed generator (so both systems get the same text).
fn inserts(rows: usize) -> Vec<String> {
    let mut seed: u64 = 1;
    let mut statements = Vec::new();
    for first in (0..rows).step_by(PER_INSERT) {
        let mut sql = String::from("INSERT INTO readings VALUES ");
        for i in first..(first + PER_INSERT).min(rows) {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let value = 20.0 + (seed >> 33) as f64 / (1u64 << 31) as f64 * 10.0;
            let secs = (i / 100) * 10;
            let ts = format!(
                "2025-12-{:02} {:02}:{:02}:{:02}",
                1 + secs / 86_400,
                secs / 3600 % 24,
                secs / 60 % 60,
                secs % 60
            );
            if i > first {
                sql.push(',');
            }
            sql.push_str(&format!("({i}, 'sensor-{:03}', '{ts}', {value:.2})", i % 100));
        }
        statements.push(sql);
    }
    statements
}

/// Bytes of every file under `dir` but the full-disk reserve.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) if e.file_name() == "reserve" => 0,
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

pub async fn chronos(cluster: &Cluster, dir: &Path, rows: usize) -> Result<Figures, String> {
    let mut client = connect(&cluster.addresses[0]).await?;
    execute(&mut client, CREATE).await?;
    let statements = inserts(rows);
    let began = Instant::now();
    for sql in &statements {
        execute(&mut client, sql).await?;
    }
    let rows_per_s = rows as f64 / began.elapsed().as_secs_f64();
    let mut scan_ms = f64::INFINITY;
    for _ in 0..3 {
        let began = Instant::now();
        let mut stream = client.query(SCAN).await.map_err(|e| e.to_string())?;
        while !stream.next_batch().await.map_err(|e| e.to_string())?.is_empty() {}
        scan_ms = scan_ms.min(began.elapsed().as_secs_f64() * 1000.0);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(Figures {
        rows_per_s,
        scan_ms,
        disk_bytes: dir_bytes(dir),
        peak_mib: cluster.memory_mib().1,
    })
}

pub fn sqlite(dir: &Path, rows: usize) -> Result<Figures, String> {
    let path = dir.join("readings.db");
    let db = Connection::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let fail = |e: rusqlite::Error| format!("sqlite: {e}");
    db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .map_err(fail)?;
    db.execute_batch(CREATE).map_err(fail)?;
    let statements = inserts(rows);
    let began = Instant::now();
    for sql in &statements {
        db.execute_batch(sql).map_err(fail)?;
    }
    let rows_per_s = rows as f64 / began.elapsed().as_secs_f64();
    let mut scan_ms = f64::INFINITY;
    for _ in 0..3 {
        let began = Instant::now();
        let _: i64 = db.query_row(SCAN, [], |r| r.get(0)).map_err(fail)?;
        scan_ms = scan_ms.min(began.elapsed().as_secs_f64() * 1000.0);
    }
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").map_err(fail)?;
    drop(db);
    Ok(Figures {
        rows_per_s,
        scan_ms,
        disk_bytes: dir_bytes(dir),
        peak_mib: f64::NAN,
    })
}
