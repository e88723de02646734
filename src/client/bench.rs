//! `chronos bench`: a load generator against a running node or cluster.
//! Clients write multi-row INSERTs and read rows back by primary key in a
//! chosen mix, and the run ends with throughput and latency percentiles.

use super::connection::{Client, ClientError, Consistency};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Nodes to spread the clients over (client i uses address i mod n).
    pub addresses: Vec<String>,
    pub clients: usize,
    /// Run this long, unless `count` is set.
    pub duration: Duration,
    /// Total operations, over all clients.
    pub count: Option<u64>,
    /// Rows per INSERT.
    pub rows: usize,
    /// Fraction of operations that are reads (0.0 to 1.0).
    pub read_ratio: f64,
    pub consistency: Consistency,
    pub table: String,
    /// Send writes as queued writes (acknowledged once queued on the node)
    /// and, at the end, wait until every one is committed.
    pub queued: bool,
    /// TLS and login settings.
    pub access: super::Access,
}

/// Latencies of one kind of operation, in microseconds.
#[derive(Default)]
struct Samples {
    micros: Vec<u64>,
}

impl Samples {
    fn percentile(&self, sorted: &[u64], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
        sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
    }

    fn summary(&self, name: &str, elapsed: Duration, rows_per_op: usize) -> String {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let ops = sorted.len() as f64 / elapsed.as_secs_f64();
        let rows = match rows_per_op {
            1 => String::new(),
            n => format!(", {:.0} rows/s", ops * n as f64),
        };
        format!(
            "{name:<7} {:>9} ops  {ops:>10.1} ops/s{rows}  latency ms p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}\n",
            sorted.len(),
            self.percentile(&sorted, 50.0),
            self.percentile(&sorted, 95.0),
            self.percentile(&sorted, 99.0),
            sorted.last().map_or(0.0, |m| *m as f64 / 1000.0),
        )
    }
}

/// xorshift64*: cheap, deterministic for a seed, and good enough to pick
/// keys and operations (the bench, and the differential test's queries).
pub struct Rng(u64);

impl Rng {
    /// A generator for a seed (any value; zero is mapped to one).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// A number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Sql(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

struct Shared {
    done: AtomicBool,
    ops: AtomicU64,
    rows: AtomicU64,
    errors: AtomicU64,
    /// Local reads that did not yet see a row this client had written.
    stale: AtomicU64,
    /// Operations handed out so far, when running a fixed count.
    claimed: AtomicU64,
}

/// Runs the benchmark, printing a progress line to `progress` each second
/// and the report to `out`.
pub async fn run(options: BenchOptions, out: &mut dyn Write, progress: &mut dyn Write) -> Result<(), BenchError> {
    let first = options.addresses.first().cloned().unwrap_or_default();
    let mut setup = Client::connect_with(&first, &options.access).await?;
    let table = &options.table;
    let create =
        format!("CREATE TABLE IF NOT EXISTS {table} (id BIGINT PRIMARY KEY, client INT, value DOUBLE, note STRING)");
    check(setup.execute(&create).await?)?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    // Each run writes its own key range, so runs can repeat on one table.
    let base = (seed % 1_000_000) as i64 * 1_000_000_000_000;
    let shared = Arc::new(Shared {
        done: AtomicBool::new(false),
        ops: AtomicU64::new(0),
        rows: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stale: AtomicU64::new(0),
        claimed: AtomicU64::new(0),
    });
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..options.clients {
        let address = options.addresses[c % options.addresses.len()].clone();
        let (options, shared) = (options.clone(), shared.clone());
        let first_id = base + c as i64 * 1_000_000_000;
        tasks.spawn(async move { client_loop(address, options, shared, first_id, seed ^ (c as u64 + 1)).await });
    }
    let mut last = (Instant::now(), 0u64);
    let mut writes = Samples::default();
    let mut reads = Samples::default();
    let mut committed: Option<Instant> = None;
    let finished = loop {
        tokio::select! {
            joined = tasks.join_next() => {
                match joined {
                    None => break Ok(()),
                    Some(Ok(Ok((w, r, done)))) => {
                        writes.micros.extend(w);
                        reads.micros.extend(r);
                        committed = committed.max(done);
                    }
                    Some(Ok(Err(e))) => break Err(e),
                    Some(Err(e)) => break Err(BenchError::Sql(format!("client task failed: {e}"))),
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let ops = shared.ops.load(Ordering::Relaxed);
                let rate = (ops - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), ops);
                write!(
                    progress,
                    "\r[{:>4.0}s] {ops} ops, {rate:.0} ops/s, {} rows, {} errors   ",
                    start.elapsed().as_secs_f64(),
                    shared.rows.load(Ordering::Relaxed),
                    shared.errors.load(Ordering::Relaxed),
                )?;
                progress.flush()?;
                if options.count.is_none() && start.elapsed() >= options.duration {
                    shared.done.store(true, Ordering::SeqCst);
                }
            }
        }
    };
    shared.done.store(true, Ordering::SeqCst);
    writeln!(progress)?;
    finished?;
    let elapsed = start.elapsed();
    writeln!(
        out,
        "chronos bench: {} clients on {}, {:.1}s, {} rows per INSERT, read ratio {}, {:?} reads",
        options.clients,
        options.addresses.join(","),
        elapsed.as_secs_f64(),
        options.rows,
        options.read_ratio,
        options.consistency
    )?;
    if !writes.micros.is_empty() {
        out.write_all(writes.summary("INSERT", elapsed, options.rows).as_bytes())?;
    }
    if !reads.micros.is_empty() {
        out.write_all(reads.summary("SELECT", elapsed, 1).as_bytes())?;
    }
    if let Some(done) = committed {
        let all = done.duration_since(start).as_secs_f64();
        writeln!(
            out,
            "queued  all {} rows committed {:.1}s after the start: {:.0} rows/s end to end",
            shared.rows.load(Ordering::Relaxed),
            all,
            shared.rows.load(Ordering::Relaxed) as f64 / all
        )?;
    }
    writeln!(out, "errors  {}", shared.errors.load(Ordering::Relaxed))?;
    if options.consistency == Consistency::Local && !reads.micros.is_empty() {
        writeln!(
            out,
            "stale   {} (local reads that did not see a row just written elsewhere)",
            shared.stale.load(Ordering::Relaxed)
        )?;
    }
    Ok(())
}

/// Write and read latencies measured by one client, in microseconds, and
/// (queued writes) when its last write was committed.
type Latencies = (Vec<u64>, Vec<u64>, Option<Instant>);

fn check(response: crate::proto::v1::ExecuteResponse) -> Result<(), BenchError> {
    match response.error {
        None => Ok(()),
        Some(e) => Err(BenchError::Sql(format!("{} ({})", e.message, e.code))),
    }
}

async fn client_loop(
    address: String,
    options: BenchOptions,
    shared: Arc<Shared>,
    first_id: i64,
    seed: u64,
) -> Result<Latencies, BenchError> {
    let mut client = Client::connect_with(&address, &options.access).await?;
    client.consistency = options.consistency;
    let mut rng = Rng::new(seed);
    let mut next_id = first_id;
    let (mut writes, mut reads) = (Vec::new(), Vec::new());
    let table = &options.table;
    let mut sql = String::new();
    let mut last_queued = 0;
    loop {
        if shared.done.load(Ordering::SeqCst) {
            break;
        }
        if let Some(count) = options.count
            && shared.claimed.fetch_add(1, Ordering::SeqCst) >= count
        {
            break;
        }
        let read = next_id > first_id && rng.unit() < options.read_ratio;
        let began = Instant::now();
        if read {
            let id = first_id + (rng.next_u64() % (next_id - first_id) as u64) as i64;
            let mut stream = client.query(&format!("SELECT * FROM {table} WHERE id = {id}")).await;
            let found = match &mut stream {
                Ok(s) => s.next_batch().await.map(|rows| rows.len() == 1).ok(),
                Err(_) => None,
            };
            match found {
                Some(true) => {}
                // A local read on a follower may not see a write the leader
                // just acknowledged; a strong read must.
                Some(false) if options.consistency == Consistency::Local => {
                    shared.stale.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            reads.push(began.elapsed().as_micros() as u64);
        } else {
            sql.clear();
            sql.push_str("INSERT INTO ");
            sql.push_str(table);
            sql.push_str(" VALUES ");
            for i in 0..options.rows {
                if i > 0 {
                    sql.push(',');
                }
                let id = next_id + i as i64;
                sql.push_str(&format!(
                    "({id}, {}, {:.3}, 'reading {id}')",
                    id % 97,
                    rng.unit() * 100.0
                ));
            }
            let written = match options.queued {
                true => client
                    .execute_queued(&sql, &[])
                    .await
                    .map(|seq| last_queued = seq)
                    .is_ok(),
                false => matches!(client.execute(&sql).await, Ok(r) if r.error.is_none()),
            };
            if !written {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            next_id += options.rows as i64;
            shared.rows.fetch_add(options.rows as u64, Ordering::Relaxed);
            writes.push(began.elapsed().as_micros() as u64);
        }
        shared.ops.fetch_add(1, Ordering::Relaxed);
    }
    let committed = match last_queued {
        0 => None,
        seq => {
            check(client.wait_for(seq).await?)?;
            Some(Instant::now())
        }
    };
    Ok((writes, reads, committed))
}
