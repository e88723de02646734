//! Raft entries appended and made durable, PER_FLUSH at a time: raft-log
//! (segment files, one fdatasync per flush) against sled (a batch insert,
//! sled's flush, then fdatasync of its file, as ChronosDB's log store does
//! today). raft-log's flush worker waits `flush_batch_wait` (1 ms by
//! default) for more writes before it syncs; WAIT_US sets it.
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::{Config, RaftLog, Types};
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct T;
impl Types for T {
    type LogId = (u64, u64);
    type LogPayload = String;
    type Vote = (u64, u64);
    type UserData = String;
    type Callback = SyncSender<io::Result<()>>;
    fn log_index(l: &Self::LogId) -> u64 {
        l.1
    }
    fn payload_size(p: &Self::LogPayload) -> u64 {
        p.len() as u64
    }
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let batch: u64 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let base = std::env::args().nth(3).unwrap_or_else(|| "/tmp/rlbench".into());
    let payload = "x".repeat(300);
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(format!("{base}/rl")).unwrap();
    let mut config = Config::new(format!("{base}/rl"));
    config.wal.flush_batch_wait = Some(std::time::Duration::from_micros(
        std::env::var("WAIT_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    ));
    let mut rl = RaftLog::<T>::open(Arc::new(config)).unwrap();
    rl.save_vote((1, 1)).unwrap();
    let start = Instant::now();
    let mut index = 0;
    for _ in 0..n / batch {
        let entries: Vec<_> = (0..batch)
            .map(|_| {
                index += 1;
                ((1, index), payload.clone())
            })
            .collect();
        rl.append(entries).unwrap();
        let (tx, rx) = sync_channel(1);
        rl.flush(true, Some(tx)).unwrap();
        rx.recv().unwrap().unwrap();
    }
    let rl_us = start.elapsed().as_secs_f64() * 1e6 / (n / batch) as f64;

    let db = sled::Config::new().path(format!("{base}/sled")).open().unwrap();
    let tree = db.open_tree("raft.log").unwrap();
    let file = std::fs::File::open(format!("{base}/sled/db")).unwrap();
    let start = Instant::now();
    let mut index = 0u64;
    for _ in 0..n / batch {
        let mut b = sled::Batch::default();
        for _ in 0..batch {
            index += 1;
            b.insert(&index.to_be_bytes(), payload.as_bytes());
        }
        tree.apply_batch(b).unwrap();
        db.flush().unwrap();
        file.sync_data().unwrap();
    }
    let sled_us = start.elapsed().as_secs_f64() * 1e6 / (n / batch) as f64;
    println!(
        "{n} entries of 300 bytes, {batch} per durable flush: raft-log {rl_us:.0} us per flush, sled {sled_us:.0} us per flush ({:.2}x)",
        sled_us / rl_us
    );
}
