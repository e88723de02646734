//! The fuzz targets' checks (fuzz/checks/), run by `cargo test` over seed
//! inputs made here and a fixed number of seeded mutations of them: what
//! the cargo-fuzz targets assert holds for the inputs CI can afford, in
//! the same run as every other test and without a second, sanitized build
//! of the crate. Coverage-guided runs are `fuzz/run.sh`
//! (docs/security.md#fuzzing); a crash they find becomes a seed here or a
//! unit test next to the code. `CHRONOS_FUZZ_REPLAY=N` sets the number of
//! mutations per target (default 5,000); inputs in fuzz/corpus/<target>/
//! (left by local runs) are replayed too.

#[path = "../../fuzz/checks/codecs.rs"]
mod codecs;
#[path = "../../fuzz/checks/grpc_requests.rs"]
mod grpc_requests;
#[path = "../../fuzz/checks/log_entries.rs"]
mod log_entries;
#[path = "../../fuzz/checks/snapshot.rs"]
mod snapshot;
#[path = "../../fuzz/checks/sql_parser.rs"]
mod sql_parser;

use crate::common::{Rng, slt_files};
use chronos::proto::v1::{ExecuteRequest, QueryRequest};
use chronos::raft::{Command, IdempotencyKey};
use chronos::sql::{ApplyContext, Database};
use chronos::storage::sync::Change;
use chronos::storage::{MemoryEngine, RowVersion, keycode, rowcodec};
use chronos::types::Value;
use prost::Message;
use std::path::Path;
use std::sync::Arc;

const VERSION: RowVersion = RowVersion { hlc: 7 << 16, site: 3 };

fn mutations() -> usize {
    std::env::var("CHRONOS_FUZZ_REPLAY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// One mutation of a seed, as libFuzzer's simplest mutators make them.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len() as u64) as usize].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() as u64 + 1) as usize;
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.insert(at, rng.next() as u8),
            2 => data.truncate(at),
            3 if at < data.len() => {
                let end = (at + 1 + rng.below(16) as usize).min(data.len());
                data.drain(at..end);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len() as u64) as usize];
                let from = rng.below(other.len() as u64 + 1) as usize;
                data.splice(at..at, other[from..].iter().copied().take(64));
            }
            _ if !data.is_empty() => {
                // Interesting values: boundaries of the integers a decoder
                // reads as lengths and counts.
                let i = at.min(data.len() - 1);
                data[i] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5) as usize];
            }
            _ => data.push(rng.next() as u8),
        }
    }
    data
}

/// Runs `check` over the seeds, the local corpus and the mutations.
fn replay(target: &str, seeds: Vec<Vec<u8>>, check: fn(&[u8])) {
    assert!(!seeds.is_empty(), "{target}: no seeds");
    let mut inputs = seeds.clone();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    if let Ok(dir) = std::fs::read_dir(&corpus) {
        inputs.extend(dir.filter_map(|e| std::fs::read(e.ok()?.path()).ok()));
    }
    let mut rng = Rng::new(target.len() as u64 * 7919 + 20261203);
    inputs.extend((0..mutations()).map(|_| mutate(&mut rng, &seeds)));
    for (i, input) in inputs.iter().enumerate() {
        let caught = std::panic::catch_unwind(|| check(input));
        assert!(
            caught.is_ok(),
            "{target}: input {i} panicked; its bytes: {input:?}\n(save them under fuzz/artifacts/{target}/ and run `cargo fuzz run {target} <file>`)"
        );
    }
    println!("{target}: {} inputs, none panicked", inputs.len());
}

/// Every statement and query of the SQL logic tests (as fuzz/run.sh seeds
/// its corpus).
fn sql_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for file in slt_files() {
        let text = std::fs::read_to_string(&file).expect("slt readable");
        for record in text.split("\n\n") {
            let record = record.trim_start_matches('\n');
            if !(record.starts_with("statement") || record.starts_with("query")) {
                continue;
            }
            let body = record.split_once('\n').map_or("", |(_, b)| b);
            let sql = body.split("\n----").next().unwrap_or(body);
            seeds.push(sql.as_bytes().to_vec());
        }
    }
    seeds
}

fn rows() -> Vec<Vec<Value>> {
    vec![
        vec![Value::Int(1), Value::Text("sensor-1".into()), Value::Float(21.5)],
        vec![Value::Null, Value::Bool(true), Value::Timestamp(1_767_225_600_000)],
        vec![Value::Int(i64::MIN), Value::Text(String::new()), Value::Float(f64::NAN)],
    ]
}

fn changes() -> Vec<Change> {
    rows()
        .into_iter()
        .enumerate()
        .map(|(i, row)| Change {
            key: keycode::encode_values(row.iter().take(1)),
            version: RowVersion {
                hlc: VERSION.hlc + i as u64,
                site: 3,
            },
            row: (i != 1).then_some(row),
        })
        .collect()
}

fn with_selector(which: u8, bytes: Vec<u8>) -> Vec<u8> {
    let mut out = vec![which];
    out.extend(bytes);
    out
}

/// A change-feed record by its layout (changes/record.rs): one table, two
/// columns, one insert.
fn feed_record() -> Vec<u8> {
    let row = rowcodec::encode_row(&rows()[0], VERSION, 9);
    let put = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend((b.len() as u32).to_le_bytes());
        out.extend(b);
    };
    let mut out = vec![1];
    out.extend(VERSION.hlc.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    put(&mut out, b"readings");
    out.extend(2u32.to_le_bytes());
    put(&mut out, b"id");
    put(&mut out, b"v");
    put(&mut out, &row);
    out.extend(1u32.to_le_bytes());
    out.extend([0, 0, 1]);
    put(&mut out, &row);
    out
}

#[test]
fn sql_parser_inputs_never_panic() {
    replay("sql_parser", sql_seeds(), sql_parser::check);
}

#[test]
fn codec_inputs_decode_or_fail_cleanly() {
    let mut seeds = Vec::new();
    for row in rows() {
        seeds.push(with_selector(0, rowcodec::encode_row(&row, VERSION, 5)));
        seeds.push(with_selector(1, keycode::encode_values(row.iter())));
        seeds.push(with_selector(4, keycode::encode_values(row.iter().take(1))));
    }
    seeds.push(with_selector(2, feed_record()));
    seeds.push(with_selector(3, chronos::sync::batch::encode_changes(&changes())));
    replay("codecs", seeds, codecs::check);
}

#[test]
fn log_entries_and_raft_messages_decode_or_fail_cleanly() {
    let command = Command {
        sql: "INSERT INTO t VALUES (1, 'a'); UPDATE t SET v = v + 1 WHERE id = 1".into(),
        params: Default::default(),
        batch: Vec::new(),
        queued: Vec::new(),
        group: Vec::new(),
        hlc: VERSION.hlc,
        site: 3,
        key: Some(IdempotencyKey {
            client_id: "c1".into(),
            sequence: 4,
        }),
        op: None,
    };
    let entry = chronos::raft::Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(2, 1), 17),
        payload: openraft::EntryPayload::Normal(command.clone()),
    };
    let seeds = vec![
        serde_json::to_vec(&command).unwrap(),
        serde_json::to_vec(&entry).unwrap(),
        serde_json::to_vec(&openraft::raft::VoteRequest::<u64>::new(
            openraft::Vote::new(3, 1),
            None,
        ))
        .unwrap(),
    ];
    replay("log_entries", seeds, log_entries::check);
}

#[test]
fn snapshot_files_install_whole_or_fail_cleanly() {
    let engine = Arc::new(MemoryEngine::new());
    let db = Database::open(engine.clone()).expect("open");
    let ctx = ApplyContext {
        now_ms: 1_767_225_600_000,
        version: VERSION,
        change: 1,
    };
    let outcome = db.execute_script(
        "CREATE TABLE r (id INT PRIMARY KEY, name TEXT, v FLOAT); CREATE INDEX r_name ON r (name);
         INSERT INTO r VALUES (1, 'a', 1.5), (2, 'b', NULL), (3, 'c', -2.0)",
        ctx,
    );
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot");
    chronos::raft::snapshot::write(engine.as_ref(), &file).expect("snapshot written");
    replay("snapshot", vec![std::fs::read(&file).unwrap()], snapshot::check);
}

#[test]
fn client_and_peer_requests_decode_or_fail_cleanly() {
    let execute = ExecuteRequest {
        sql: "INSERT INTO t VALUES (?, ?)".into(),
        client_id: "c1".into(),
        sequence: 9,
        ..Default::default()
    };
    let query = QueryRequest {
        sql: "SELECT id, count(*) FROM t WHERE v > :min GROUP BY id".into(),
        ..Default::default()
    };
    let changes = chronos::sync::batch::encode_changes(&changes());
    let push = chronos::proto::sync::PushRequest {
        site_id: "site-a".into(),
        batch: Some(chronos::proto::sync::Batch {
            table: "readings".into(),
            signature: "id INT".into(),
            count: 3,
            changes,
            ..Default::default()
        }),
        forwarded: false,
    };
    let seeds = vec![
        with_selector(0, execute.encode_to_vec()),
        with_selector(1, query.encode_to_vec()),
        with_selector(2, push.encode_to_vec()),
        with_selector(3, chronos::proto::raft::RaftMessage::default().encode_to_vec()),
    ];
    replay("grpc_requests", seeds, grpc_requests::check);
}
