//! Request counters and latency histograms, rendered with the Raft and
//! storage gauges in Prometheus' text format for `/metrics`.

use crate::raft::{RaftNode, role_name};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The kinds of request counted.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Execute,
    Query,
}

const KINDS: [(Kind, &str); 2] = [(Kind::Execute, "execute"), (Kind::Query, "query")];

#[derive(Default)]
struct Series {
    ok: AtomicU64,
    errors: AtomicU64,
    /// Cumulative counts per bucket, plus the sum of latencies in µs.
    buckets: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
}

#[derive(Default)]
pub struct Metrics {
    series: [Series; 2],
}

impl Metrics {
    pub fn record(&self, kind: Kind, ok: bool, elapsed: Duration) {
        let s = &self.series[kind as usize];
        match ok {
            true => s.ok.fetch_add(1, Ordering::Relaxed),
            false => s.errors.fetch_add(1, Ordering::Relaxed),
        };
        let secs = elapsed.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&s.buckets) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        s.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Everything in Prometheus' text exposition format.
    pub fn render(&self, node: &RaftNode, queued_writes: u64) -> String {
        let mut out = String::new();
        let m = node.raft().metrics().borrow().clone();
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        gauge(&mut out, "chronos_raft_term", "Current Raft term.", m.current_term);
        let _ = writeln!(
            out,
            "# HELP chronos_raft_role This node's Raft role (1 for the current one).\n# TYPE chronos_raft_role gauge"
        );
        for role in ["leader", "follower", "candidate", "learner", "stopped"] {
            let on = u8::from(role_name(m.state) == role);
            let _ = writeln!(out, "chronos_raft_role{{role=\"{role}\"}} {on}");
        }
        let leader = u8::from(m.current_leader.is_some());
        gauge(
            &mut out,
            "chronos_raft_has_leader",
            "1 when this node knows a leader.",
            u64::from(leader),
        );
        let last = m.last_log_index.unwrap_or(0);
        let applied = m.last_applied.map_or(0, |l| l.index);
        let purged = m.purged.map_or(0, |l| l.index);
        gauge(
            &mut out,
            "chronos_raft_last_log_index",
            "Index of the last log entry.",
            last,
        );
        gauge(
            &mut out,
            "chronos_raft_commit_index",
            "Highest index known to be committed.",
            node.committed_index(),
        );
        gauge(
            &mut out,
            "chronos_raft_applied_index",
            "Index of the last applied entry.",
            applied,
        );
        gauge(
            &mut out,
            "chronos_raft_snapshot_index",
            "Index the last snapshot covers.",
            m.snapshot.map_or(0, |l| l.index),
        );
        gauge(
            &mut out,
            "chronos_raft_log_entries",
            "Log entries kept (after the last purge).",
            last.saturating_sub(purged),
        );
        gauge(
            &mut out,
            "chronos_raft_members",
            "Members in the membership.",
            m.membership_config.membership().nodes().count() as u64,
        );
        gauge(
            &mut out,
            "chronos_storage_bytes",
            "Size of the node's sled database on disk.",
            node.storage_bytes(),
        );
        storage_costs(&mut out, node.log().stats());
        storage_layout(&mut out, node.database());
        let space = node.space();
        gauge(
            &mut out,
            "chronos_disk_free_bytes",
            "Free space on the data directory's file system.",
            space.free(),
        );
        gauge(
            &mut out,
            "chronos_disk_low",
            "1 while writes are refused for lack of disk space (storage.low_space_bytes).",
            u64::from(space.is_low()),
        );
        gauge(
            &mut out,
            "chronos_disk_reserve_held",
            "1 while the reserve file (storage.reserved_bytes) is held.",
            u64::from(space.reserve_held()),
        );
        gauge(
            &mut out,
            "chronos_queued_writes",
            "Queued writes waiting on this node to be committed.",
            queued_writes,
        );
        let _ = writeln!(
            out,
            "# HELP chronos_requests_total Requests served, by kind and outcome.\n# TYPE chronos_requests_total counter"
        );
        for (kind, name) in KINDS {
            let s = &self.series[kind as usize];
            let _ = writeln!(
                out,
                "chronos_requests_total{{kind=\"{name}\",outcome=\"ok\"}} {}",
                s.ok.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "chronos_requests_total{{kind=\"{name}\",outcome=\"error\"}} {}",
                s.errors.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP chronos_request_seconds Request latency, by kind.\n# TYPE chronos_request_seconds histogram"
        );
        for (kind, name) in KINDS {
            let s = &self.series[kind as usize];
            for (bound, count) in BUCKETS.iter().zip(&s.buckets) {
                let _ = writeln!(
                    out,
                    "chronos_request_seconds_bucket{{kind=\"{name}\",le=\"{bound}\"}} {}",
                    count.load(Ordering::Relaxed)
                );
            }
            let total = s.ok.load(Ordering::Relaxed) + s.errors.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "chronos_request_seconds_bucket{{kind=\"{name}\",le=\"+Inf\"}} {total}"
            );
            let sum = s.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "chronos_request_seconds_sum{{kind=\"{name}\"}} {sum}");
            let _ = writeln!(out, "chronos_request_seconds_count{{kind=\"{name}\"}} {total}");
        }
        out
    }
}

/// Fsync latency, bytes written to the device and write amplification.
fn storage_costs(out: &mut String, stats: &crate::storage::io_stats::IoStats) {
    use crate::storage::io_stats::{FSYNC_BUCKETS, process_written_bytes};
    let _ = writeln!(
        out,
        "# HELP chronos_fsync_seconds Raft log flush (fsync) latency.\n# TYPE chronos_fsync_seconds histogram"
    );
    for (bound, count) in FSYNC_BUCKETS.iter().zip(stats.fsync_buckets()) {
        let _ = writeln!(out, "chronos_fsync_seconds_bucket{{le=\"{bound}\"}} {count}");
    }
    let n = stats.fsyncs();
    let _ = writeln!(out, "chronos_fsync_seconds_bucket{{le=\"+Inf\"}} {n}");
    let _ = writeln!(out, "chronos_fsync_seconds_sum {}", stats.fsync_seconds_sum());
    let _ = writeln!(out, "chronos_fsync_seconds_count {n}");
    let logged = stats.logged_bytes();
    let _ = writeln!(
        out,
        "# HELP chronos_raft_logged_bytes_total Bytes of Raft log entries appended (the data clients sent, as logged).\n# TYPE chronos_raft_logged_bytes_total counter\nchronos_raft_logged_bytes_total {logged}"
    );
    let Some(written) = process_written_bytes() else {
        return;
    };
    let days = stats.uptime().as_secs_f64().max(1.0) / 86_400.0;
    let _ = writeln!(
        out,
        "# HELP chronos_disk_written_bytes_total Bytes this node wrote to storage (card wear).\n# TYPE chronos_disk_written_bytes_total counter\nchronos_disk_written_bytes_total {written}"
    );
    let _ = writeln!(
        out,
        "# HELP chronos_disk_written_bytes_per_day Bytes written per day at the rate since start.\n# TYPE chronos_disk_written_bytes_per_day gauge\nchronos_disk_written_bytes_per_day {:.0}",
        written as f64 / days
    );
    if logged > 0 {
        let _ = writeln!(
            out,
            "# HELP chronos_write_amplification Bytes written to storage per byte of Raft log entries.\n# TYPE chronos_write_amplification gauge\nchronos_write_amplification {:.2}",
            written as f64 / logged as f64
        );
    }
}

/// The block cache's counters and each table's bytes on disk. Reading the
/// sizes walks every block header, so /metrics is rendered off the async
/// threads (see `metrics_text`).
fn storage_layout(out: &mut String, db: &crate::sql::Database) {
    use crate::sql::stats::TableStats;
    if let Some(cache) = db.engine().block_cache() {
        let _ = writeln!(
            out,
            "# HELP chronos_block_cache_hits_total Reads of a block found decoded in the cache.\n# TYPE chronos_block_cache_hits_total counter\nchronos_block_cache_hits_total {}",
            cache.hits
        );
        let _ = writeln!(
            out,
            "# HELP chronos_block_cache_misses_total Reads of a block that had to be decoded.\n# TYPE chronos_block_cache_misses_total counter\nchronos_block_cache_misses_total {}",
            cache.misses
        );
        let _ = writeln!(
            out,
            "# HELP chronos_block_cache_bytes Bytes of decoded blocks held.\n# TYPE chronos_block_cache_bytes gauge\nchronos_block_cache_bytes {}\n\
             # HELP chronos_block_cache_limit_bytes Most bytes of decoded blocks held (half of storage.cache_bytes).\n# TYPE chronos_block_cache_limit_bytes gauge\nchronos_block_cache_limit_bytes {}",
            cache.bytes, cache.capacity
        );
    }
    let Ok(tables) = db.table_stats() else { return };
    if tables.is_empty() {
        return;
    }
    let gauge = |out: &mut String, name: &str, help: &str, value: &dyn Fn(&TableStats) -> String| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for t in &tables {
            let _ = writeln!(out, "{name}{{table=\"{}\"}} {}", label(&t.table), value(t));
        }
    };
    gauge(out, "chronos_table_rows", "Rows per table.", &|t| t.rows.to_string());
    gauge(
        out,
        "chronos_table_disk_bytes",
        "Bytes a table's rows, indexes, feed and tombstones take in storage (compressed).",
        &|t| t.stored.stored_bytes.to_string(),
    );
    gauge(
        out,
        "chronos_table_compression_ratio",
        "Bytes before compression per byte stored.",
        &|t| format!("{:.2}", t.compression()),
    );
}

/// A label value escaped as the text format asks (a quoted identifier may
/// hold anything).
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
