//! Change positions: where the change feed of synced tables stands. A
//! position is a Raft log index plus the feed base (zero, except in a
//! cluster restored from a backup, whose log starts again at 1); a sync
//! cursor starts with the position it has reached.

use super::engine::{Engine, Result, WriteBatch};

const META: &str = "meta";
const FEED_BASE: &[u8] = b"feed_base";

/// Added to Raft log indexes to give change positions.
pub fn feed_base(engine: &dyn Engine) -> Result<u64> {
    Ok(engine
        .get(META, FEED_BASE)?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_be_bytes))
}

pub fn set_feed_base(engine: &dyn Engine, base: u64) -> Result<()> {
    let mut batch = WriteBatch::default();
    batch
        .writes
        .entry(META.to_string())
        .or_default()
        .insert(FEED_BASE.to_vec(), Some(base.to_be_bytes().to_vec()));
    engine.commit(batch)
}

/// The feed position (Raft log index) a cursor points at.
pub fn cursor_position(cursor: &[u8]) -> u64 {
    cursor
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}
