//! What the node's storage costs: fsync latency (the Raft log's flushes),
//! bytes written to the device (card wear) and how that compares with the
//! bytes of the log entries themselves (write amplification). Also the
//! test-only fault hook that makes fsyncs stall like a worn SD card.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds of the fsync latency buckets, in seconds.
pub const FSYNC_BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Environment variable of the fault hook: `MIN-MAX` milliseconds added
/// before each Raft log flush (or one number). For tests of slow storage.
pub const FSYNC_DELAY_ENV: &str = "CHRONOS_FAULT_FSYNC_DELAY_MS";

pub struct IoStats {
    started: Instant,
    fsyncs: AtomicU64,
    fsync_micros: AtomicU64,
    /// Cumulative counts per bucket.
    buckets: [AtomicU64; FSYNC_BUCKETS.len()],
    /// Bytes of log entries appended.
    logged: AtomicU64,
    delay: Option<(u64, u64)>,
    seed: AtomicU64,
}

impl Default for IoStats {
    fn default() -> IoStats {
        IoStats::new(std::env::var(FSYNC_DELAY_ENV).ok().as_deref().and_then(parse_delay))
    }
}

/// "300-800" or "500" (milliseconds).
fn parse_delay(text: &str) -> Option<(u64, u64)> {
    let (lo, hi) = text.split_once('-').unwrap_or((text, text));
    let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    (lo <= hi).then_some((lo, hi))
}

impl IoStats {
    pub fn new(delay: Option<(u64, u64)>) -> IoStats {
        if let Some((lo, hi)) = delay {
            tracing::warn!(lo, hi, "fault injection: every Raft log flush stalls {lo}-{hi} ms");
        }
        IoStats {
            started: Instant::now(),
            fsyncs: AtomicU64::new(0),
            fsync_micros: AtomicU64::new(0),
            buckets: Default::default(),
            logged: AtomicU64::new(0),
            delay,
            seed: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
        }
    }

    /// The injected stall before the next flush, if the hook is on.
    pub fn injected_stall(&self) -> Option<Duration> {
        let (lo, hi) = self.delay?;
        // xorshift: spread, not secure; outside the state machine.
        let mut x = self.seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, Ordering::Relaxed);
        Some(Duration::from_millis(lo + x % (hi - lo + 1)))
    }

    pub fn record_fsync(&self, took: Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.fsync_micros.fetch_add(micros, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (bound, count) in FSYNC_BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn record_logged(&self, bytes: usize) {
        self.logged.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    pub fn fsync_seconds_sum(&self) -> f64 {
        self.fsync_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Cumulative bucket counts, in `FSYNC_BUCKETS` order.
    pub fn fsync_buckets(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect()
    }

    pub fn logged_bytes(&self) -> u64 {
        self.logged.load(Ordering::Relaxed)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Bytes this process caused to be written to storage (Linux
/// /proc/self/io `write_bytes`); None where that is not available.
pub fn process_written_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalls_stay_in_their_range_and_fsyncs_are_bucketed() {
        assert_eq!(parse_delay("300-800"), Some((300, 800)));
        assert_eq!(parse_delay("50"), Some((50, 50)));
        assert_eq!(parse_delay("9-1"), None);
        assert_eq!(parse_delay("x"), None);
        let stats = IoStats::new(Some((300, 800)));
        for _ in 0..1000 {
            let d = stats.injected_stall().unwrap().as_millis();
            assert!((300..=800).contains(&d), "{d}");
        }
        assert!(IoStats::new(None).injected_stall().is_none());
        stats.record_fsync(Duration::from_millis(3));
        stats.record_fsync(Duration::from_millis(700));
        let b = stats.fsync_buckets();
        assert_eq!((b[4], b[10], b[11]), (1, 1, 2), "{b:?}");
        assert_eq!(stats.fsyncs(), 2);
    }
}
