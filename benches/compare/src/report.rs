//! The table: workloads × systems, the ratio to each target's anchor, and
//! whether the target of issue #11 is met.

use crate::load::Outcome;
use std::io::Write;
use std::path::Path;

#[derive(Default)]
pub struct Results {
    pub seconds: u64,
    pub value_size: usize,
    pub etcd_single: Outcome,
    pub etcd_concurrent: [Outcome; 3],
    pub etcd_batch: Outcome,
    pub etcd_strong_read: Outcome,
    pub etcd_local_read: Outcome,
    pub etcd_idle_mib: f64,
    pub etcd_peak_mib: f64,
    pub chronos3_single: Outcome,
    pub chronos3_concurrent: [Outcome; 3],
    pub chronos3_batch: Outcome,
    pub chronos3_strong_read: Outcome,
    pub chronos3_local_read: Outcome,
    pub chronos3_idle_mib: f64,
    pub chronos3_peak_mib: f64,
    pub chronos1_batch_one: Outcome,
    pub chronos1_batch: Outcome,
    pub chronos1_single: Outcome,
    pub chronos1_idle_mib: f64,
    pub chronos1_peak_mib: f64,
    pub small_cache: Outcome,
    pub small_cache_peak_mib: f64,
    pub chronos1_sensors: crate::sensors::Figures,
    pub sqlite_sensors: crate::sensors::Figures,
    pub sqlite_batch: Outcome,
    pub sqlite_single: Outcome,
    pub binary_bytes: Option<u64>,
    /// The same, built as packaged (the `dist` profile).
    pub packaged_bytes: Option<u64>,
}

/// One line of the table.
struct Line {
    workload: String,
    etcd: String,
    chronos3: String,
    chronos1: String,
    sqlite: String,
    /// ChronosDB's figure over the anchor's, and the target for it.
    ratio: Option<f64>,
    target: Option<Target>,
}

#[derive(Clone, Copy)]
enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtMost(t) => ratio <= t,
            Target::AtLeast(t) => ratio >= t,
        }
    }

    fn text(self) -> String {
        match self {
            Target::AtMost(t) => format!("≤ {t}×"),
            Target::AtLeast(t) => format!("≥ {t}×"),
        }
    }
}

fn ms(outcome: &Outcome, p: f64) -> String {
    with_errors(outcome, format!("{:.2} ms", outcome.percentile_ms(p)))
}

fn per_s(outcome: &Outcome) -> String {
    with_errors(outcome, format!("{:.0}/s", outcome.ops_per_s()))
}

fn rows_per_s(outcome: &Outcome) -> String {
    with_errors(outcome, format!("{:.0} rows/s", outcome.rows_per_s()))
}

/// Marks a figure whose run had failed operations.
fn with_errors(outcome: &Outcome, text: String) -> String {
    match outcome.errors {
        0 => text,
        n => format!("{text} ({n} errors)"),
    }
}

fn none() -> String {
    "".to_string()
}

impl Results {
    pub fn new(seconds: u64, value_size: usize) -> Results {
        Results {
            seconds,
            value_size,
            ..Results::default()
        }
    }

    fn lines(&self) -> Vec<Line> {
        let ratio = |a: f64, b: f64| Some(a / b);
        let mut lines = vec![
            Line {
                workload: "single-row write, 1 client, p50".into(),
                etcd: ms(&self.etcd_single, 50.0),
                chronos3: ms(&self.chronos3_single, 50.0),
                chronos1: ms(&self.chronos1_single, 50.0),
                sqlite: ms(&self.sqlite_single, 50.0),
                ratio: ratio(
                    self.chronos3_single.percentile_ms(50.0),
                    self.etcd_single.percentile_ms(50.0),
                ),
                target: Some(Target::AtMost(0.6)),
            },
            Line {
                workload: "single-row write, 1 client, p99".into(),
                etcd: ms(&self.etcd_single, 99.0),
                chronos3: ms(&self.chronos3_single, 99.0),
                chronos1: ms(&self.chronos1_single, 99.0),
                sqlite: ms(&self.sqlite_single, 99.0),
                ratio: ratio(
                    self.chronos3_single.percentile_ms(99.0),
                    self.etcd_single.percentile_ms(99.0),
                ),
                target: None,
            },
        ];
        for (i, clients) in [16, 64, 256].iter().enumerate() {
            let (etcd, chronos) = (&self.etcd_concurrent[i], &self.chronos3_concurrent[i]);
            lines.push(Line {
                workload: format!("single-row writes, {clients} clients"),
                etcd: per_s(etcd),
                chronos3: per_s(chronos),
                chronos1: none(),
                sqlite: none(),
                ratio: ratio(chronos.ops_per_s(), etcd.ops_per_s()),
                target: (*clients == 256).then_some(Target::AtLeast(2.0)),
            });
        }
        lines.push(Line {
            workload: "1,000-row batches, 4 clients (SQLite: 1 writer); ratio to SQLite".into(),
            etcd: rows_per_s(&self.etcd_batch),
            chronos3: rows_per_s(&self.chronos3_batch),
            chronos1: rows_per_s(&self.chronos1_batch),
            sqlite: rows_per_s(&self.sqlite_batch),
            ratio: ratio(self.chronos3_batch.rows_per_s(), self.sqlite_batch.rows_per_s()),
            target: Some(Target::AtLeast(0.5)),
        });
        lines.push(Line {
            workload: "single node: 1,000-row batches, 4 clients, against SQLite".into(),
            etcd: none(),
            chronos3: none(),
            chronos1: rows_per_s(&self.chronos1_batch),
            sqlite: rows_per_s(&self.sqlite_batch),
            ratio: ratio(self.chronos1_batch.rows_per_s(), self.sqlite_batch.rows_per_s()),
            target: Some(Target::AtLeast(1.0)),
        });
        lines.push(Line {
            workload: "single node: 1,000-row batches, 1 client, against SQLite".into(),
            etcd: none(),
            chronos3: none(),
            chronos1: rows_per_s(&self.chronos1_batch_one),
            sqlite: rows_per_s(&self.sqlite_batch),
            ratio: ratio(self.chronos1_batch_one.rows_per_s(), self.sqlite_batch.rows_per_s()),
            target: None,
        });
        lines.push(Line {
            workload: "point reads, strong (etcd: linearizable), 32 clients".into(),
            etcd: per_s(&self.etcd_strong_read),
            chronos3: per_s(&self.chronos3_strong_read),
            chronos1: none(),
            sqlite: none(),
            ratio: ratio(self.chronos3_strong_read.ops_per_s(), self.etcd_strong_read.ops_per_s()),
            target: Some(Target::AtLeast(2.0)),
        });
        lines.push(Line {
            workload: "point reads, local (etcd: serializable), 32 clients; ratio to etcd linearizable".into(),
            etcd: per_s(&self.etcd_local_read),
            chronos3: per_s(&self.chronos3_local_read),
            chronos1: none(),
            sqlite: none(),
            ratio: ratio(self.chronos3_local_read.ops_per_s(), self.etcd_strong_read.ops_per_s()),
            target: Some(Target::AtLeast(4.0)),
        });
        lines.extend(self.sensor_lines());
        lines
    }

    /// The storage issue's rows: a million sensor readings, one node against
    /// SQLite.
    fn sensor_lines(&self) -> Vec<Line> {
        let (c, s) = (&self.chronos1_sensors, &self.sqlite_sensors);
        let mb = |b: u64| {
            format!(
                "{:.1} MB ({:.0} B/row)",
                b as f64 / 1e6,
                b as f64 / crate::sensors::ROWS as f64
            )
        };
        let line = |workload: &str, chronos1: String, sqlite: String, ratio: f64, target: Target| Line {
            workload: workload.into(),
            etcd: none(),
            chronos3: none(),
            chronos1,
            sqlite,
            ratio: Some(ratio),
            target: Some(target),
        };
        vec![
            line(
                "sensors: 1M readings as 1,000-row INSERTs, 1 client; ratio to SQLite",
                format!("{:.0} rows/s", c.rows_per_s),
                format!("{:.0} rows/s", s.rows_per_s),
                c.rows_per_s / s.rows_per_s,
                Target::AtLeast(1.0),
            ),
            line(
                &format!(
                    "sensors: `{}` over 1M rows; SQLite's time over ChronosDB's",
                    crate::sensors::SCAN
                ),
                format!("{:.1} ms", c.scan_ms),
                format!("{:.1} ms", s.scan_ms),
                s.scan_ms / c.scan_ms,
                Target::AtLeast(1.0),
            ),
            line(
                "sensors: bytes on disk 5 s after the last write (less the full-disk reserve)",
                mb(c.disk_bytes),
                mb(s.disk_bytes),
                c.disk_bytes as f64 / s.disk_bytes as f64,
                Target::AtMost(1.0),
            ),
            line(
                "sensors: peak RSS of the node over the ingest; ratio to 128 MiB",
                format!("{:.1} MiB", c.peak_mib),
                none(),
                c.peak_mib / 128.0,
                Target::AtMost(1.0),
            ),
        ]
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{} s per workload after a 1 s warm-up, {}-byte values, every write fsynced before it is acknowledged.\n\n",
            self.seconds, self.value_size
        ));
        out.push_str("| Workload | etcd, 3 members | ChronosDB, 3 nodes | ChronosDB, 1 node | SQLite, local | ChronosDB ÷ anchor | Target | Met |\n");
        out.push_str("|---|---|---|---|---|---|---|---|\n");
        for line in self.lines() {
            let ratio = line.ratio.filter(|r| r.is_finite());
            let (target, met) = match (line.target, ratio) {
                (Some(t), Some(r)) => (t.text(), if t.met(r) { "yes" } else { "no" }.to_string()),
                (Some(t), None) => (t.text(), "not measured".to_string()),
                (None, _) => (none(), none()),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                line.workload,
                line.etcd,
                line.chronos3,
                line.chronos1,
                line.sqlite,
                ratio.map_or(none(), |r| format!("{r:.2}×")),
                target,
                met
            ));
        }
        out.push_str(&format!(
            "\nMemory (largest resident set of any member, MiB): etcd idle {:.1}, peak {:.1}; \
             ChronosDB 3 nodes idle {:.1}, peak {:.1}; ChronosDB 1 node idle {:.1} (target < 20), peak {:.1}.\n",
            self.etcd_idle_mib,
            self.etcd_peak_mib,
            self.chronos3_idle_mib,
            self.chronos3_peak_mib,
            self.chronos1_idle_mib,
            self.chronos1_peak_mib
        ));
        out.push_str(&format!(
            "With `storage.cache_bytes` = 32 MiB, 1 node, 1,000-row INSERTs from 4 clients: {}, peak {:.1} MiB.\n",
            rows_per_s(&self.small_cache),
            self.small_cache_peak_mib
        ));
        let mb = |bytes: u64| format!("{bytes} bytes ({:.2} MB)", bytes as f64 / 1e6);
        match (self.binary_bytes, self.packaged_bytes) {
            (Some(release), Some(packaged)) => out.push_str(&format!(
                "Stripped `chronos` binary of this run: {} as packaged (`dist` profile), {} in the release profile; target < 8 MB.\n",
                mb(packaged),
                mb(release)
            )),
            (Some(release), None) => out.push_str(&format!(
                "Stripped `chronos` binary of this run (release profile): {}; target < 8 MB.\n",
                mb(release)
            )),
            _ => {}
        }
        out
    }
}

/// Appends the table to `path` under a heading with the date and machine.
pub fn append(path: &Path, table: &str) -> Result<(), String> {
    let heading = std::env::var("COMPARE_HEADING").unwrap_or_else(|_| "Run".to_string());
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    writeln!(file, "\n### {heading}\n\n{table}").map_err(|e| format!("cannot write {}: {e}", path.display()))
}
