//! The load generator shared by every system: N workers, each running one
//! operation after another for a fixed time, and the figures of the run.
//! The first second is a warm-up and is not counted.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const WARM_UP: Duration = Duration::from_secs(1);

/// One operation's future: the rows it wrote or read, or what went wrong.
pub type OpFuture<'a> = Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>>;

/// A client of one system, running one kind of operation.
pub trait Worker: Send + 'static {
    /// Runs operation number `seq` of this worker.
    fn once(&mut self, seq: u64) -> OpFuture<'_>;
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub ops: u64,
    pub rows: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    /// Latency of each counted operation, in microseconds, sorted.
    pub latencies: Vec<u64>,
}

impl Outcome {
    pub fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.seconds.max(1e-9)
    }

    pub fn rows_per_s(&self) -> f64 {
        self.rows as f64 / self.seconds.max(1e-9)
    }

    /// The p-th percentile latency in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[rank.min(self.latencies.len() - 1)] as f64 / 1000.0
    }

    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} ops ({:.0}/s), {} rows ({:.0}/s), p50 {:.3} ms, p99 {:.3} ms, {} errors",
            self.ops,
            self.ops_per_s(),
            self.rows,
            self.rows_per_s(),
            self.percentile_ms(50.0),
            self.percentile_ms(99.0),
            self.errors
        );
        if let Some(e) = &self.first_error {
            line.push_str(&format!(" (first: {e})"));
        }
        line
    }
}

/// Collects the operations that end inside the measured window.
pub struct Recorder {
    from: Instant,
    until: Instant,
    outcome: Outcome,
}

impl Recorder {
    pub fn new(duration: Duration) -> Recorder {
        let from = Instant::now() + WARM_UP;
        Recorder {
            from,
            until: from + duration,
            outcome: Outcome::default(),
        }
    }

    pub fn finished(&self) -> bool {
        Instant::now() >= self.until
    }

    /// Notes an operation that began at `began` and just ended.
    pub fn record(&mut self, began: Instant, result: Result<u64, String>) {
        let now = Instant::now();
        if now < self.from || now > self.until {
            return;
        }
        match result {
            Ok(rows) => {
                self.outcome.ops += 1;
                self.outcome.rows += rows;
                self.outcome
                    .latencies
                    .push(now.duration_since(began).as_micros() as u64);
            }
            Err(e) => {
                self.outcome.errors += 1;
                self.outcome.first_error.get_or_insert(e);
            }
        }
    }

    /// Merges workers' recorders into one outcome for the window.
    pub fn merge(parts: Vec<Recorder>) -> Outcome {
        let mut all = Outcome::default();
        let mut window = Duration::ZERO;
        for part in parts {
            window = window.max(part.until.duration_since(part.from));
            let o = part.outcome;
            all.ops += o.ops;
            all.rows += o.rows;
            all.errors += o.errors;
            all.latencies.extend(o.latencies);
            if all.first_error.is_none() {
                all.first_error = o.first_error;
            }
        }
        all.seconds = window.as_secs_f64();
        all.latencies.sort_unstable();
        all
    }
}

/// Runs every worker at once for `duration` (after the warm-up).
pub async fn drive(workers: Vec<Box<dyn Worker>>, duration: Duration) -> Outcome {
    let parts = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for mut worker in workers {
        let parts = parts.clone();
        tasks.spawn(async move {
            let mut recorder = Recorder::new(duration);
            let mut seq = 0;
            while !recorder.finished() {
                let began = Instant::now();
                let result = worker.once(seq).await;
                recorder.record(began, result);
                seq += 1;
            }
            if let Ok(mut parts) = parts.lock() {
                parts.push(recorder);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let parts = match parts.lock() {
        Ok(mut parts) => std::mem::take(&mut *parts),
        Err(_) => Vec::new(),
    };
    Recorder::merge(parts)
}

/// The value written with every key: `size` printable bytes.
pub fn value_of(size: usize) -> String {
    (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect()
}

/// The key of a worker's n-th written row (unique per run and worker).
pub fn write_key(run: &str, worker: usize, n: u64) -> String {
    format!("{run}-{worker:03}-{n:012}")
}

/// The keys written before the read workloads, read back at random.
pub fn read_key(i: u64) -> String {
    format!("read-{i:08}")
}

/// xorshift64*, to pick keys to read.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}
