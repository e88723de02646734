//! Offline-first building blocks. So far: the hybrid logical clock that
//! stamps every write.

pub mod hlc;

pub use hlc::{Clock, ClockError, HighWater, Timestamp};
