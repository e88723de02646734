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

/// The clock of one node. `now` never returns the same stamp twice.
pub struct Clock {
    last: Mutex<Timestamp>,
    wall: fn() -> i64,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::with_wall_clock(system_ms)
    }
}

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Clock {
    /// A clock over another wall clock (for tests).
    pub fn with_wall_clock(wall: fn() -> i64) -> Clock {
        Clock {
            last: Mutex::new(Timestamp::default()),
            wall,
        }
    }

    pub fn now(&self) -> Timestamp {
        let wall = (self.wall)();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
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
        *last = next;
        next
    }

    /// Moves the clock past a stamp seen elsewhere (a replicated log entry),
    /// so this node's next stamp orders after it even if its wall clock is
    /// behind the node that made it.
    pub fn observe(&self, seen: Timestamp) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if seen > *last {
            *last = seen;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
