//! Fault tests: nodes killed, paused, partitioned, power-cut, starved of
//! disk or fsync, damaged and recovered, with checks that nothing
//! acknowledged was lost. docs/testing.md says how to run them longer.

#[path = "../common/mod.rs"]
mod common;

mod chaos;
mod full_disk;
mod integrity;
mod power_loss;
mod recover;
mod slow_disk;
mod witness;
