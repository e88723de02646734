//! A hybrid logical clock: wall-clock milliseconds plus a logical counter,
//! so stamps are unique and increase even when the wall clock stalls or
//! steps back.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// A stamp: physical milliseconds since the Unix epoch and a counter that
/// orders stamps within one millisecond.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub physical_ms: i64,
    pub logical: u16,
}

impl Timestamp {
    /// Packs the stamp into 64 bits that sort like the stamp itself:
    /// 48 bits of milliseconds (good until the year 10889), 16 logical.
    pub fn to_u64(self) -> u64 {
        ((self.physical_ms.max(0) as u64) << 16) | u64::from(self.logical)
    }

    pub fn from_u64(v: u64) -> Timestamp {
        Timestamp {
            physical_ms: (v >> 16) as i64,
            logical: (v & 0xffff) as u16,
        }
    }
}

/// Persists the clock's high-water mark (milliseconds): the clock never
/// issues a stamp at or beyond a mark that is not yet durable, so after a
/// restart it starts past every stamp it issued before.
pub trait HighWater: Send + Sync {
    fn persist(&self, mark_ms: i64) -> std::io::Result<()>;
}

/// How far ahead of the wall clock the persisted mark is set: one flushed
/// write per this many milliseconds of stamps. After a quick restart the
/// first stamps (and `now()`) may run up to this far ahead of the wall
/// clock, so it is kept short.
const HIGH_WATER_LEAD_MS: i64 = 1_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClockError {
    #[error(
        "a timestamp {ahead_ms} ms ahead of this node's clock was refused (max_clock_offset is {max_ms} ms): check the clocks (NTP) of both machines"
    )]
    TooFarAhead { ahead_ms: i64, max_ms: i64 },
    #[error("cannot persist the clock's high-water mark: {0}")]
    Persist(String),
}

struct State {
    last: Timestamp,
    /// Stamps stay below this (durably recorded) physical time.
    high_water: i64,
}

/// The clock of one node. `now` never returns the same stamp twice, nor
/// (with a [`HighWater`]) a stamp at or below one issued before a restart.
pub struct Clock {
    state: Mutex<State>,
    wall: fn() -> i64,
    persist: Option<Box<dyn HighWater>>,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::with_wall_clock(system_ms)
    }
}

/// Fault hook for tests: shifts this process's wall clock by this many
/// milliseconds (a gateway whose clock is off).
pub const CLOCK_OFFSET_ENV: &str = "CHRONOS_FAULT_CLOCK_OFFSET_MS";

fn clock_offset_ms() -> i64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        let offset = std::env::var(CLOCK_OFFSET_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if offset != 0 {
            tracing::warn!(offset_ms = offset, "fault injection: this node's clock is shifted");
        }
        offset
    })
}

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        + clock_offset_ms()
}

impl Clock {
    /// A clock over another wall clock (for tests), not persisted.
    pub fn with_wall_clock(wall: fn() -> i64) -> Clock {
        Clock {
            state: Mutex::new(State {
                last: Timestamp::default(),
                high_water: i64::MAX,
            }),
            wall,
            persist: None,
        }
    }

    /// A clock that resumes after `stored_mark` (the mark persisted by an
    /// earlier run; 0 for none) and persists its mark through `persist`.
    pub fn persistent(stored_mark: i64, persist: Box<dyn HighWater>) -> Clock {
        Clock::persistent_with_wall_clock(stored_mark, persist, system_ms)
    }

    fn persistent_with_wall_clock(stored_mark: i64, persist: Box<dyn HighWater>, wall: fn() -> i64) -> Clock {
        Clock {
            state: Mutex::new(State {
                // Every stamp of the earlier run was below its mark.
                last: Timestamp {
                    physical_ms: stored_mark,
                    logical: 0,
                },
                high_water: stored_mark,
            }),
            wall,
            persist: Some(persist),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next stamp: after every stamp issued or observed so far.
    pub fn now(&self) -> Timestamp {
        let wall = (self.wall)();
        let mut state = self.lock();
        let last = state.last;
        let next = if wall > last.physical_ms {
            Timestamp {
                physical_ms: wall,
                logical: 0,
            }
        } else if last.logical == u16::MAX {
            // 65536 stamps in one millisecond: borrow the next millisecond.
            Timestamp {
                physical_ms: last.physical_ms + 1,
                logical: 0,
            }
        } else {
            Timestamp {
                physical_ms: last.physical_ms,
                logical: last.logical + 1,
            }
        };
        self.raise_high_water(&mut state, next.physical_ms);
        state.last = next;
        next
    }

    /// Keeps the persisted mark ahead of `physical_ms`. If it cannot be
    /// written, stamps still increase within this run; the failure is
    /// logged (it only matters after a restart with a clock set back).
    fn raise_high_water(&self, state: &mut State, physical_ms: i64) {
        let Some(persist) = &self.persist else { return };
        if physical_ms < state.high_water {
            return;
        }
        let mark = physical_ms + HIGH_WATER_LEAD_MS;
        match persist.persist(mark) {
            Ok(()) => state.high_water = mark,
            Err(e) => tracing::error!(error = %e, "cannot persist the clock's high-water mark"),
        }
    }

    /// Moves the clock past a stamp seen elsewhere (a replicated log entry),
    /// so this node's next stamp orders after it even if its wall clock is
    /// behind the node that made it. Log entries are applied whatever their
    /// stamp; [`Clock::receive`] is the checked form for stamps from outside.
    pub fn observe(&self, seen: Timestamp) {
        let mut state = self.lock();
        if seen > state.last {
            self.raise_high_water(&mut state, seen.physical_ms);
            state.last = seen;
        }
    }

    /// Merges a stamp from another node or site, refusing one more than
    /// `max_offset_ms` ahead of this node's wall clock (a broken clock would
    /// otherwise drag every later stamp into the future). Returns a stamp
    /// after both.
    pub fn receive(&self, remote: Timestamp, max_offset_ms: i64) -> Result<Timestamp, ClockError> {
        let wall = (self.wall)();
        let ahead_ms = remote.physical_ms - wall;
        if ahead_ms > max_offset_ms {
            return Err(ClockError::TooFarAhead {
                ahead_ms,
                max_ms: max_offset_ms,
            });
        }
        self.observe(remote);
        Ok(self.now())
    }
}

/// The stamp an entry is applied with: the leader's stamp, raised when
/// needed so stamps increase in log order and are at least the greatest
/// version the entry merges. Every later local write then outranks every
/// row it could overwrite, which keeps last-writer-wins causal.
pub fn entry_stamp(leader_hlc: u64, last_applied_hlc: u64, merged_max_hlc: u64) -> u64 {
    leader_hlc.max(last_applied_hlc.saturating_add(1)).max(merged_max_hlc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    /// A wall clock the test moves, per test thread.
    static WALL: AtomicI64 = AtomicI64::new(0);
    fn test_wall() -> i64 {
        WALL.load(Ordering::SeqCst)
    }

    struct Mark(Arc<AtomicI64>);
    impl HighWater for Mark {
        fn persist(&self, mark_ms: i64) -> std::io::Result<()> {
            self.0.store(mark_ms, Ordering::SeqCst);
            Ok(())
        }
    }

    /// xorshift, so each case reproduces from its seed.
    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let state = AtomicU64::new(seed | 1);
        move || {
            let mut x = state.load(Ordering::Relaxed);
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            state.store(x, Ordering::Relaxed);
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    // The property tests share WALL, so they run as one test.
    #[test]
    fn ordering_rules_hold_for_random_wall_clocks_restarts_and_remote_stamps() {
        for seed in 1..200u64 {
            let mut next = rng(seed);
            WALL.store(1_000_000, Ordering::SeqCst);
            let mark = Arc::new(AtomicI64::new(0));
            let mut clock = Clock::persistent_with_wall_clock(0, Box::new(Mark(mark.clone())), test_wall);
            let mut previous = Timestamp::default();
            let mut issued_before_restart = Timestamp::default();
            for _ in 0..300 {
                match next() % 10 {
                    // The wall clock jumps forward, stalls or steps back.
                    0..=2 => {
                        let step = (next() % 2_000) as i64 - 700;
                        WALL.fetch_add(step, Ordering::SeqCst);
                    }
                    // A restart: the new clock resumes from the stored mark.
                    3 => {
                        issued_before_restart = previous;
                        let stored = mark.load(Ordering::SeqCst);
                        clock = Clock::persistent_with_wall_clock(stored, Box::new(Mark(mark.clone())), test_wall);
                    }
                    // A remote stamp, sometimes too far ahead.
                    4 => {
                        let offset = (next() % 3_000) as i64 - 1_000;
                        let remote = Timestamp {
                            physical_ms: test_wall() + offset,
                            logical: (next() % 5) as u16,
                        };
                        match clock.receive(remote, 1_000) {
                            Ok(t) => {
                                assert!(t > remote, "seed {seed}: merged stamp not after the remote one");
                                assert!(t > previous, "seed {seed}: merged stamp went back");
                                previous = t;
                            }
                            Err(ClockError::TooFarAhead { ahead_ms, .. }) => {
                                assert!(ahead_ms > 1_000, "seed {seed}: refused a stamp within the offset");
                            }
                            Err(e) => panic!("seed {seed}: {e}"),
                        }
                    }
                    _ => {
                        let t = clock.now();
                        assert!(t > previous, "seed {seed}: {t:?} is not after {previous:?}");
                        assert!(
                            t > issued_before_restart,
                            "seed {seed}: a stamp repeated across a restart"
                        );
                        assert!(
                            t.physical_ms < mark.load(Ordering::SeqCst),
                            "seed {seed}: stamp beyond the durable mark"
                        );
                        assert!(t.to_u64() > previous.to_u64(), "seed {seed}: packed order differs");
                        previous = t;
                    }
                }
            }
        }
    }

    #[test]
    fn increases_when_the_wall_clock_stalls_or_steps_back() {
        fn frozen() -> i64 {
            1000
        }
        let clock = Clock::with_wall_clock(frozen);
        let a = clock.now();
        let b = clock.now();
        assert!(b > a);
        assert_eq!(b.physical_ms, 1000);
        assert!(b.to_u64() > a.to_u64());
        assert_eq!(Timestamp::from_u64(b.to_u64()), b);
    }
}
