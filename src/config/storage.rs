//! The `[storage]` section.

use serde::{Deserialize, Serialize};

/// The storage memory budget when `storage.cache_bytes` is not set: half
/// for sled's page cache, half for decoded blocks. Sized for a 512 MB
/// gateway (docs/operations.md#memory has the measurements).
pub const DEFAULT_CACHE_BYTES: u64 = 32 << 20;

/// The `[storage]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// A preallocated file of this size, released when the disk is nearly
    /// full so the node can finish what is under way; 0: none.
    pub reserved_bytes: u64,
    /// Below this much free space the node refuses writes (and serves
    /// reads); 0: never.
    pub low_space_bytes: u64,
    /// Memory for storage's caches: half for sled's page cache, half for
    /// decoded blocks.
    pub cache_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            reserved_bytes: 64 << 20,
            low_space_bytes: 128 << 20,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}
