//! The `[storage]` section.

use serde::{Deserialize, Serialize};

/// sled's page cache when `storage.cache_bytes` is not set.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

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
    /// Most memory sled's page cache may use.
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
