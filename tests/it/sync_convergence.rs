//! Randomized convergence of site-to-upstream sync: three sites and one
//! upstream write, update and delete overlapping rows while batches are
//! lost (a cut link, a site leader killed mid-batch) and replicas restart;
//! once the links heal and sync runs to the end, every replica holds the
//! same tables, and no append-only row is lost or doubled.
//!
//! Each replica is a real database (storage, SQL engine, change feeds) on
//! an in-memory engine; sync uses the library's own feed reader, batch wire
//! form, merge operation and entry stamping, i.e. what the daemon's agent
//! and service run, minus gRPC and Raft. Seeds: CHRONOS_SYNC_SEEDS (default
//! 40) starting at CHRONOS_SYNC_SEED (default 1).

use chronos::client::bench::Rng;
use chronos::raft::hlc::entry_stamp;
use chronos::sql::{ApplyContext, Database, StatementOutput};
use chronos::storage::sync::FeedFilter;
use chronos::storage::{RowVersion, SledEngine};
use chronos::sync::ops::{self, MergeOp};
use chronos::sync::service::{pull_cursor_name, push_cursor_name};
use chronos::sync::{SyncSettings, Timestamp, feed};
use std::collections::BTreeSet;
use std::sync::Arc;

const TABLES: [&str; 2] = ["kv", "log"];
/// Pushed by the sites only; the upstream keeps no feed for it.
const PUSHED: &str = "pushed";
const SCHEMA: &str = "CREATE TABLE kv (k INT PRIMARY KEY, v STRING, n INT); CREATE TABLE log (site STRING, seq INT); \
    CREATE TABLE pushed (site STRING, seq INT)";

struct Replica {
    name: String,
    site: u64,
    engine: Arc<SledEngine>,
    _dir: tempfile::TempDir,
    db: Database,
    /// The Raft log index the next entry would get.
    index: u64,
    /// Physical clock, with this replica's skew.
    clock_ms: i64,
}

impl Replica {
    fn new(name: &str, skew_ms: i64, upstream: bool) -> Replica {
        // Real sled files in the block layout, with small blocks.
        let (engine, dir) = crate::common::block_engine();
        let db = Database::open(engine.clone()).expect("open");
        let mut r = Replica {
            name: name.to_string(),
            site: SyncSettings::site_hash(name),
            engine,
            _dir: dir,
            db,
            index: 0,
            clock_ms: 1_767_225_600_000 + skew_ms,
        };
        let ctx = r.next_ctx(0);
        let outcome = r.db.execute_script(SCHEMA, ctx);
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        let ctx = r.next_ctx(0);
        let tables: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
        r.db.apply_with(ctx, |txn| ops::enable_sync(txn, &tables, true))
            .expect("enable sync");
        let ctx = r.next_ctx(0);
        let pushed = vec![PUSHED.to_string()];
        r.db.apply_with(ctx, |txn| ops::enable_sync(txn, &pushed, !upstream))
            .expect("enable sync");
        r
    }

    /// The context of the next log entry, stamped as the state machine does.
    fn next_ctx(&mut self, merged_max: u64) -> ApplyContext {
        self.index += 1;
        self.clock_ms += 1;
        let last = self.last_hlc();
        let leader = Timestamp {
            physical_ms: self.clock_ms,
            logical: 0,
        }
        .to_u64();
        let hlc = entry_stamp(leader, last, merged_max);
        self.db
            .engine()
            .apply({
                let mut b = chronos::storage::WriteBatch::default();
                b.writes
                    .entry("test.state".into())
                    .or_default()
                    .insert(b"last".to_vec(), Some(hlc.to_be_bytes().to_vec()));
                b
            })
            .expect("state");
        ApplyContext {
            now_ms: Timestamp::from_u64(hlc).physical_ms,
            version: RowVersion { hlc, site: self.site },
            change: self.index,
        }
    }

    fn last_hlc(&self) -> u64 {
        self.db
            .engine()
            .get("test.state", b"last")
            .expect("read")
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_be_bytes)
    }

    /// Runs SQL as one entry; returns rows affected (0 when it failed).
    fn write(&mut self, sql: &str) -> u64 {
        let ctx = self.next_ctx(0);
        let units = chronos::sql::script::prepare(sql, &Default::default());
        let outcome = self.db.apply_script(units, ctx, |_, _| Ok(())).expect("storage");
        match (outcome.error, outcome.outputs.first()) {
            (None, Some(StatementOutput::Affected { count, .. })) => *count,
            _ => 0,
        }
    }

    fn rows(&self, sql: &str) -> Vec<String> {
        let outcome = self.db.execute_script(sql, ApplyContext::default());
        match outcome.outputs.into_iter().next() {
            Some(StatementOutput::Rows { rows, .. }) => rows.iter().map(|r| format!("{r:?}")).collect(),
            other => panic!("{sql}: {other:?} {:?}", outcome.error),
        }
    }

    /// A crash and restart: the database is opened again over its storage.
    fn restart(&mut self) {
        self.db = Database::open(self.engine.clone()).expect("reopen");
    }

    /// Merges a batch read from a peer, as one entry.
    fn merge(&mut self, table: &str, out: &feed::Outgoing, pulled: bool, cursor_name: String) -> u64 {
        let changes = (out.bytes.as_slice(), out.max_hlc);
        let op = MergeOp::new(table, &out.signature, changes, pulled, cursor_name, &out.cursor);
        let ctx = self.next_ctx(op.max_hlc());
        let report = ops::apply_locally(&self.db, ctx, &op).expect("merge");
        report.applied
    }
}

/// Moves one batch of `table` from site to upstream (push) or back (pull).
/// Returns None when there was nothing to move; Some(delivered) otherwise.
fn step(
    sites: &mut [Replica],
    up: &mut Replica,
    s: usize,
    table: &str,
    push: bool,
    lose: bool,
    batch: usize,
) -> Option<bool> {
    let site = &mut sites[s];
    if push {
        let name = push_cursor_name(&site.name, table);
        let cursor = ops::cursor(&up.db, &name).expect("cursor");
        let filter = FeedFilter {
            skip_pulled: true,
            skip_site: None,
        };
        let out = feed::read(&site.db, table, &cursor, batch, filter).expect("read feed");
        if out.cursor == cursor {
            return None;
        }
        if !lose {
            up.merge(table, &out, false, name);
        }
    } else {
        let name = pull_cursor_name(table);
        let cursor = ops::cursor(&site.db, &name).expect("cursor");
        let filter = FeedFilter {
            skip_pulled: false,
            skip_site: Some(site.site),
        };
        let out = feed::read(&up.db, table, &cursor, batch, filter).expect("read feed");
        if out.cursor == cursor {
            return None;
        }
        if !lose {
            site.merge(table, &out, true, name);
        }
    }
    Some(!lose)
}

fn run_seed(seed: u64) {
    let mut rng = Rng::new(seed);
    let mut sites: Vec<Replica> = (0..3)
        .map(|i| Replica::new(&format!("site{i}"), rng.below(2000) as i64 - 1000, false))
        .collect();
    let mut up = Replica::new("hq", 0, true);
    let mut pushed_seq = 0;
    let mut inserted = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    let mut seq = 0;
    let batch = 1 + rng.below(6);
    for _ in 0..400 {
        let who = rng.below(4);
        let r = match who {
            3 => &mut up,
            i => &mut sites[i],
        };
        match rng.below(10) {
            0..=2 => {
                let k = rng.below(12);
                r.write(&format!("INSERT INTO kv VALUES ({k}, '{}-{k}', 0)", r.name));
            }
            3..=4 => {
                let k = rng.below(12);
                r.write(&format!("UPDATE kv SET v = '{}', n = n + 1 WHERE k = {k}", r.name));
            }
            5 => {
                let k = rng.below(12);
                r.write(&format!("DELETE FROM kv WHERE k = {k}"));
            }
            6..=7 => {
                seq += 1;
                r.write(&format!("INSERT INTO log VALUES ('{}', {seq})", r.name));
                inserted.insert((r.name.clone(), seq));
            }
            9 if who < 3 && rng.chance(50) => {
                let r = &mut sites[who];
                match rng.chance(80) {
                    true => {
                        pushed_seq += 1;
                        r.write(&format!("INSERT INTO pushed VALUES ('{}', {pushed_seq})", r.name));
                    }
                    false => {
                        r.write(&format!("DELETE FROM pushed WHERE seq % 5 = {}", rng.below(5)));
                    }
                }
            }
            8 => {
                if let Some((name, n)) = inserted.iter().nth(rng.below(inserted.len().max(1))).cloned()
                    && r.write(&format!("DELETE FROM log WHERE site = '{name}' AND seq = {n}")) == 1
                {
                    deleted.insert((name, n));
                }
            }
            _ => {
                // Sync traffic, with lost batches, and now and then a restart.
                let s = rng.below(3);
                let lose = rng.chance(25);
                match rng.below(3) {
                    2 => step(&mut sites, &mut up, s, PUSHED, true, lose, batch),
                    t => step(&mut sites, &mut up, s, TABLES[t], rng.chance(50), lose, batch),
                };
                if rng.chance(10) {
                    match rng.below(4) {
                        3 => up.restart(),
                        i => sites[i].restart(),
                    }
                }
            }
        }
    }
    // The links heal: sync until nothing moves.
    let mut rounds = 0;
    loop {
        let mut moved = false;
        for s in 0..3 {
            while step(&mut sites, &mut up, s, PUSHED, true, false, batch).is_some() {
                moved = true;
            }
            for table in TABLES {
                for push in [true, false] {
                    while step(&mut sites, &mut up, s, table, push, false, batch).is_some() {
                        moved = true;
                    }
                }
            }
        }
        rounds += 1;
        assert!(rounds < 20, "seed {seed}: sync did not settle");
        if !moved {
            break;
        }
    }
    let kv = up.rows("SELECT k, v, n FROM kv ORDER BY k");
    let log = up.rows("SELECT site, seq FROM log ORDER BY site, seq");
    for site in &sites {
        assert_eq!(
            site.rows("SELECT k, v, n FROM kv ORDER BY k"),
            kv,
            "seed {seed}: kv at {}",
            site.name
        );
        assert_eq!(
            site.rows("SELECT site, seq FROM log ORDER BY site, seq"),
            log,
            "seed {seed}: log at {}",
            site.name
        );
    }
    // The pushed table upstream is the union of the sites' own.
    let mut union: Vec<String> = sites
        .iter()
        .flat_map(|s| s.rows("SELECT site, seq FROM pushed"))
        .collect();
    union.sort();
    let mut upstream_pushed = up.rows("SELECT site, seq FROM pushed");
    upstream_pushed.sort();
    assert_eq!(upstream_pushed, union, "seed {seed}: pushed rows upstream");
    let expected: Vec<String> = inserted
        .difference(&deleted)
        .map(|(s, n)| {
            format!(
                "{:?}",
                vec![
                    chronos::sql::types::Value::Text(s.clone()),
                    chronos::sql::types::Value::Int(*n as i64)
                ]
            )
        })
        .collect();
    let mut expected_sorted = expected;
    expected_sorted.sort();
    let mut got = log.clone();
    got.sort();
    assert_eq!(got, expected_sorted, "seed {seed}: append-only rows lost or doubled");
}

#[test]
fn replicas_converge_under_lost_batches_and_restarts() {
    let first: u64 = std::env::var("CHRONOS_SYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let seeds: u64 = std::env::var("CHRONOS_SYNC_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    for seed in first..first + seeds {
        run_seed(seed);
    }
}

#[test]
fn a_conflicting_update_resolves_the_same_everywhere() {
    let mut site = vec![Replica::new("plant", 0, false)];
    let mut up = Replica::new("hq", 0, true);
    site[0].write("INSERT INTO kv VALUES (1, 'first', 0)");
    while step(&mut site, &mut up, 0, "kv", true, false, 10).is_some() {}
    // Both change the row while the link is down; the site's write is later.
    up.write("UPDATE kv SET v = 'hq' WHERE k = 1");
    site[0].clock_ms += 50;
    site[0].write("UPDATE kv SET v = 'plant' WHERE k = 1");
    for push in [true, false] {
        while step(&mut site, &mut up, 0, "kv", push, false, 10).is_some() {}
    }
    let want = vec![format!(
        "{:?}",
        vec![
            chronos::sql::types::Value::Int(1),
            chronos::sql::types::Value::Text("plant".into())
        ]
    )];
    assert_eq!(up.rows("SELECT k, v FROM kv"), want);
    assert_eq!(site[0].rows("SELECT k, v FROM kv"), want);
}
