//! The bytes of one block: many key-value entries in key order, stored as
//! one sled value.
//!
//! Layout: an 18-byte header, then the payload, lz4-compressed when that
//! saves an eighth or more.
//!
//! ```text
//! header:  format u8 (1) | codec u8 (0 raw, 1 lz4) | id u64 LE | count u32 LE | raw_len u32 LE
//! payload: per entry: shared u16-varint | suffix_len varint | suffix | value_len varint | value
//! ```
//!
//! `shared` is how many leading bytes the key has in common with the key
//! before it (keys of one table share long prefixes), `suffix` the rest.
//! The id is unique to these bytes: a block is never rewritten under the same
//! id, so the decoded-block cache is keyed by it and can never serve stale
//! rows.

use super::super::error::StorageError;
use sled::IVec;

pub const FORMAT: u8 = 1;
const CODEC_RAW: u8 = 0;
const CODEC_LZ4: u8 = 1;
pub const HEADER_LEN: usize = 18;
/// Payloads smaller than this are stored raw: lz4 would save too little.
const COMPRESS_FROM: usize = 256;

/// A block decoded for reading: keys rebuilt into one buffer, values left
/// in place in the payload, so handing out a value copies nothing.
#[derive(Debug)]
pub struct Block {
    pub id: u64,
    keys: Vec<u8>,
    key_ends: Vec<u32>,
    payload: IVec,
    values: Vec<(u32, u32)>,
}

impl Block {
    pub fn len(&self) -> usize {
        self.key_ends.len()
    }

    pub fn key(&self, i: usize) -> &[u8] {
        let start = match i {
            0 => 0,
            _ => self.key_ends[i - 1] as usize,
        };
        &self.keys[start..self.key_ends[i] as usize]
    }

    pub fn value(&self, i: usize) -> &[u8] {
        let (at, len) = self.values[i];
        &self.payload[at as usize..(at + len) as usize]
    }

    /// The value as shared bytes (no copy when the payload is on the heap).
    pub fn value_bytes(&self, i: usize) -> IVec {
        let (at, len) = self.values[i];
        self.payload.subslice(at as usize, len as usize)
    }

    /// Index of `key`, or where it would go.
    pub fn search(&self, key: &[u8]) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.key(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// Bytes of memory this decoded block holds, for the cache's budget.
    pub fn weight(&self) -> usize {
        self.keys.len() + self.key_ends.len() * 4 + self.payload.len() + self.values.len() * 8 + 96
    }

    /// Bytes of its entries before compression.
    pub fn raw_len(&self) -> usize {
        self.payload.len()
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(n);
        }
    }
    None
}

/// The bytes an entry adds to a block before compression, near enough to
/// size blocks by.
pub fn entry_size(key: &[u8], value: &[u8]) -> usize {
    key.len() + value.len() + 6
}

/// Encodes entries (in strictly increasing key order) as a block with `id`.
pub fn encode<'a>(id: u64, entries: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Result<Vec<u8>, StorageError> {
    let mut payload = Vec::new();
    let mut prev: &[u8] = &[];
    let mut count: u32 = 0;
    for (key, value) in entries {
        let shared = prev.iter().zip(key).take_while(|(a, b)| a == b).count();
        put_varint(&mut payload, shared as u64);
        put_varint(&mut payload, (key.len() - shared) as u64);
        payload.extend_from_slice(&key[shared..]);
        put_varint(&mut payload, value.len() as u64);
        payload.extend_from_slice(value);
        prev = key;
        count += 1;
    }
    let raw_len = u32::try_from(payload.len())
        .map_err(|_| StorageError::Io(format!("a block of {} bytes is over 4 GiB", payload.len())))?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(FORMAT);
    out.push(CODEC_RAW);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&raw_len.to_le_bytes());
    if payload.len() >= COMPRESS_FROM {
        let mut packed = vec![0; lz4_flex::block::get_maximum_output_size(payload.len())];
        if let Ok(n) = lz4_flex::block::compress_into(&payload, &mut packed)
            && n < payload.len() - payload.len() / 8
        {
            out[1] = CODEC_LZ4;
            out.extend_from_slice(&packed[..n]);
            return Ok(out);
        }
    }
    out.extend_from_slice(&payload);
    Ok(out)
}

/// The id in a block's header, without decoding the block.
pub fn peek_id(bytes: &[u8]) -> Option<u64> {
    let id = bytes.get(2..10)?;
    Some(u64::from_le_bytes(id.try_into().ok()?))
}

/// The entry count and the payload's length before compression, from a
/// block's header.
pub fn header_counts(bytes: &[u8]) -> Option<(u64, u64)> {
    let word = |at: usize| -> Option<u64> { Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?).into()) };
    match bytes.first() {
        Some(&FORMAT) => Some((word(10)?, word(14)?)),
        _ => None,
    }
}

/// Decodes a block read from disk. `space` names the keyspace in errors.
pub fn decode(space: &str, bytes: &IVec) -> Result<Block, StorageError> {
    let corrupt = |detail: &str| StorageError::Corrupt {
        space: space.to_string(),
        detail: format!("block of {} bytes: {detail}", bytes.len()),
    };
    if bytes.len() < HEADER_LEN {
        return Err(corrupt("shorter than its header"));
    }
    if bytes[0] != FORMAT {
        return Err(corrupt(&format!("unknown block format {}", bytes[0])));
    }
    let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let id = peek_id(bytes).ok_or_else(|| corrupt("no id"))?;
    let count = word(10) as usize;
    let raw_len = word(14) as usize;
    let stored_len = bytes.len() - HEADER_LEN;
    let payload: IVec = match bytes[1] {
        CODEC_RAW if stored_len == raw_len => bytes.subslice(HEADER_LEN, raw_len),
        CODEC_RAW => return Err(corrupt("payload length does not match its header")),
        CODEC_LZ4 => {
            // An lz4 block expands at most 255 times; a larger claim is damage.
            if raw_len > stored_len.saturating_mul(255) {
                return Err(corrupt("claims more bytes than lz4 can expand to"));
            }
            let mut raw = vec![0; raw_len];
            match lz4_flex::block::decompress_into(&bytes[HEADER_LEN..], &mut raw) {
                Ok(n) if n == raw_len => IVec::from(raw),
                Ok(_) => return Err(corrupt("payload decompresses to the wrong length")),
                Err(e) => return Err(corrupt(&format!("payload does not decompress: {e}"))),
            }
        }
        codec => return Err(corrupt(&format!("unknown codec {codec}"))),
    };
    // Each entry takes at least 3 payload bytes, so a larger count is damage
    // (and must not size an allocation).
    if count > raw_len / 3 + 1 {
        return Err(corrupt("more entries than its payload can hold"));
    }
    let mut keys: Vec<u8> = Vec::with_capacity(raw_len);
    let mut key_ends = Vec::with_capacity(count);
    let mut values = Vec::with_capacity(count);
    let mut at = 0;
    let mut prev_start = 0;
    for _ in 0..count {
        let shared = get_varint(&payload, &mut at).ok_or_else(|| corrupt("entry cut short"))? as usize;
        let suffix = get_varint(&payload, &mut at).ok_or_else(|| corrupt("entry cut short"))? as usize;
        let prev_len = keys.len() - prev_start;
        if shared > prev_len || at.checked_add(suffix).is_none_or(|end| end > payload.len()) {
            return Err(corrupt("key runs past its bounds"));
        }
        let start = keys.len();
        keys.extend_from_within(prev_start..prev_start + shared);
        keys.extend_from_slice(&payload[at..at + suffix]);
        at += suffix;
        if !key_ends.is_empty() && keys[prev_start..start] >= keys[start..] {
            return Err(corrupt("keys out of order"));
        }
        let len = get_varint(&payload, &mut at).ok_or_else(|| corrupt("entry cut short"))? as usize;
        if at.checked_add(len).is_none_or(|end| end > payload.len()) {
            return Err(corrupt("value runs past the payload"));
        }
        key_ends.push(keys.len() as u32);
        values.push((at as u32, len as u32));
        at += len;
        prev_start = start;
    }
    if at != payload.len() {
        return Err(corrupt("bytes left over after the last entry"));
    }
    keys.shrink_to_fit();
    Ok(Block {
        id,
        keys,
        key_ends,
        payload,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let key = format!("sensor-{:06}", i * 7).into_bytes();
                let value = format!("reading {} at {}", i % 13, 1_700_000_000 + i).into_bytes();
                (key, value)
            })
            .collect()
    }

    fn round_trip(n: usize) -> (Vec<u8>, Block) {
        let e = entries(n);
        let bytes = encode(42, e.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).unwrap();
        let block = decode("t.x", &IVec::from(bytes.clone())).unwrap();
        assert_eq!(block.len(), n);
        assert_eq!(block.id, 42);
        for (i, (k, v)) in e.iter().enumerate() {
            assert_eq!(block.key(i), k.as_slice());
            assert_eq!(block.value(i), v.as_slice());
            assert_eq!(&*block.value_bytes(i), v.as_slice());
            assert_eq!(block.search(k), Ok(i));
        }
        (bytes, block)
    }

    #[test]
    fn entries_come_back_in_order_raw_and_compressed() {
        let (small, _) = round_trip(3);
        assert_eq!(small[1], CODEC_RAW);
        let (large, block) = round_trip(200);
        assert_eq!(large[1], CODEC_LZ4, "repetitive rows compress");
        assert!(
            large.len() < block.raw_len() / 2,
            "{} of {}",
            large.len(),
            block.raw_len()
        );
        round_trip(0);
    }

    #[test]
    fn search_finds_insertion_points() {
        let (_, block) = round_trip(10);
        assert_eq!(block.search(b"a"), Err(0));
        assert_eq!(block.search(b"sensor-000001"), Err(1));
        assert_eq!(block.search(b"z"), Err(10));
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let (bytes, _) = round_trip(200);
        for cut in [0, 5, HEADER_LEN, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode("t.x", &IVec::from(&bytes[..cut])).is_err(), "cut at {cut}");
        }
        let mut seed: u64 = 7;
        for _ in 0..2000 {
            let mut b = bytes.clone();
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let at = (seed >> 33) as usize % b.len();
            b[at] ^= (seed >> 8) as u8 | 1;
            let _ = decode("t.x", &IVec::from(b));
        }
        let (raw, _) = round_trip(3);
        let mut b = raw.clone();
        b[10] = 0xff; // count
        assert!(decode("t.x", &IVec::from(b)).is_err());
    }
}
