//! Local SQLite (bundled, through rusqlite) as a gateway would use it:
//! WAL mode with synchronous=FULL, so every commit is fsynced. SQLite takes
//! one writer at a time, so it runs with a single writer.

use crate::load::{Outcome, Recorder, write_key};
use rusqlite::Connection;
use std::path::Path;
use std::time::{Duration, Instant};

/// Inserts `batch` rows per transaction for `duration` (after the warm-up).
pub fn ingest(dir: &Path, batch: usize, value: &str, duration: Duration) -> Result<Outcome, String> {
    let path = dir.join(format!("ingest-{batch}.db"));
    let mut db = Connection::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT);",
    )
    .map_err(|e| format!("sqlite set-up: {e}"))?;
    let mut recorder = Recorder::new(duration);
    let mut next = 0u64;
    while !recorder.finished() {
        let began = Instant::now();
        let result = insert_rows(&mut db, next, batch, value);
        next += batch as u64;
        recorder.record(began, result);
    }
    Ok(Recorder::merge(vec![recorder]))
}

fn insert_rows(db: &mut Connection, first: u64, batch: usize, value: &str) -> Result<u64, String> {
    let tx = db.transaction().map_err(|e| e.to_string())?;
    {
        let mut insert = tx
            .prepare_cached("INSERT INTO kv VALUES (?1, ?2)")
            .map_err(|e| e.to_string())?;
        for n in first..first + batch as u64 {
            insert
                .execute((write_key("sqlite", 0, n), value))
                .map_err(|e| e.to_string())?;
        }
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(batch as u64)
}
