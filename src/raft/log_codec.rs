//! How one Raft log entry is stored: its JSON, lz4-compressed when large.
//!
//! A 1,000-row INSERT is about 50 KB of SQL in its entry; lz4 makes it about
//! a quarter of that, which is that much less to write and fsync on every
//! member and to keep on disk until a snapshot purges it. Small entries
//! (single-row writes, votes, membership) stay plain JSON: compressing them
//! saves little and costs latency.
//!
//! Layout: plain JSON (its first byte is `{`, as every entry written before
//! compression was), or the byte [`LZ4`] followed by lz4_flex's
//! size-prepended block of the JSON.

use lz4_flex::block::{compress_prepend_size, decompress_size_prepended};

/// Entries of at least this many JSON bytes are compressed.
const COMPRESS_FROM: usize = 1024;
/// Marks a compressed entry; JSON never starts with it.
const LZ4: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum LogCodecError {
    #[error("log entry encoding: {0}")]
    Json(#[from] serde_json::Error),
    #[error("log entry of {stored} bytes is damaged: {detail}")]
    Damaged { stored: usize, detail: String },
}

pub fn encode<T: serde::Serialize>(entry: &T) -> Result<Vec<u8>, LogCodecError> {
    let json = serde_json::to_vec(entry)?;
    if json.len() < COMPRESS_FROM {
        return Ok(json);
    }
    let packed = compress_prepend_size(&json);
    if packed.len() + 1 >= json.len() {
        return Ok(json);
    }
    let mut out = Vec::with_capacity(packed.len() + 1);
    out.push(LZ4);
    out.extend_from_slice(&packed);
    Ok(out)
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, LogCodecError> {
    let damaged = |detail: String| LogCodecError::Damaged {
        stored: bytes.len(),
        detail,
    };
    match bytes.first() {
        Some(&LZ4) => {
            let packed = &bytes[1..];
            // The prepended size sizes an allocation: lz4 expands at most 255
            // times, so a larger claim is damage, not a reason to allocate.
            let claimed = packed
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| damaged("cut short before its length".into()))?;
            if claimed > packed.len().saturating_mul(255) {
                return Err(damaged(format!("claims {claimed} bytes, more than lz4 can expand to")));
            }
            let json = decompress_size_prepended(packed).map_err(|e| damaged(format!("does not decompress: {e}")))?;
            Ok(serde_json::from_slice(&json)?)
        }
        _ => Ok(serde_json::from_slice(bytes)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Probe {
        sql: String,
    }

    fn probe(len: usize) -> Probe {
        Probe {
            sql: (0..len).map(|i| char::from(b'a' + (i % 7) as u8)).collect(),
        }
    }

    #[test]
    fn small_entries_stay_plain_json() {
        let bytes = encode(&probe(10)).unwrap();
        assert_eq!(bytes[0], b'{');
        assert_eq!(decode::<Probe>(&bytes).unwrap(), probe(10));
    }

    #[test]
    fn large_entries_are_compressed_and_read_back() {
        let entry = probe(50_000);
        let bytes = encode(&entry).unwrap();
        assert_eq!(bytes[0], LZ4);
        assert!(bytes.len() < 5_000, "{} bytes", bytes.len());
        assert_eq!(decode::<Probe>(&bytes).unwrap(), entry);
    }

    #[test]
    fn entries_written_before_compression_still_read() {
        let json = serde_json::to_vec(&probe(5_000)).unwrap();
        assert_eq!(decode::<Probe>(&json).unwrap(), probe(5_000));
    }

    #[test]
    fn damage_is_an_error_not_a_panic_or_a_huge_allocation() {
        let mut bytes = encode(&probe(50_000)).unwrap();
        assert!(decode::<Probe>(&bytes[..3]).is_err());
        bytes[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = decode::<Probe>(&bytes).unwrap_err().to_string();
        assert!(err.contains("more than lz4 can expand to"), "{err}");
        let mut bytes = encode(&probe(50_000)).unwrap();
        let last = bytes.len() - 1;
        bytes.truncate(last - 10);
        assert!(decode::<Probe>(&bytes).is_err());
        assert!(decode::<Probe>(&[LZ4]).is_err());
    }
}
