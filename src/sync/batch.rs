//! The wire form of a batch of changes: compact, checksummed, and checked
//! field by field when read, so a truncated or corrupted batch is an error
//! that names what is wrong, never a panic or a half-merged batch.
//!
//! Per change: key length (varint), key, kind (0 delete, 1 row), then for a
//! delete its version (hlc, site varints), for a row the row codec's bytes
//! (length varint first), which hold the version.

use super::SyncError;
use crate::storage::RowVersion;
use crate::storage::rowcodec::{decode_row, encode_row, put_varint};
use crate::storage::sync::Change;

const DELETE: u8 = 0;
const ROW: u8 = 1;

pub fn encode_changes(changes: &[Change]) -> Vec<u8> {
    let mut out = Vec::with_capacity(changes.len() * 48);
    for change in changes {
        put_varint(&mut out, change.key.len() as u64);
        out.extend_from_slice(&change.key);
        match &change.row {
            None => {
                out.push(DELETE);
                put_varint(&mut out, change.version.hlc);
                put_varint(&mut out, change.version.site);
            }
            Some(row) => {
                out.push(ROW);
                let bytes = encode_row(row, change.version, 0);
                put_varint(&mut out, bytes.len() as u64);
                out.extend_from_slice(&bytes);
            }
        }
    }
    out
}

/// The checksum sent with a batch's bytes.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

pub fn decode_changes(table: &str, bytes: &[u8]) -> Result<Vec<Change>, SyncError> {
    let mut r = Reader { bytes, pos: 0, table };
    let mut changes = Vec::new();
    while r.pos < bytes.len() {
        let n = changes.len();
        let key_len = r.varint(n)? as usize;
        let key = r.take(key_len, n)?.to_vec();
        let change = match r.take(1, n)?[0] {
            DELETE => Change {
                key,
                version: RowVersion {
                    hlc: r.varint(n)?,
                    site: r.varint(n)?,
                },
                row: None,
            },
            ROW => {
                let len = r.varint(n)? as usize;
                let (row, version) = decode_row(r.take(len, n)?).map_err(|e| r.error(n, &e.to_string()))?;
                Change {
                    key,
                    version,
                    row: Some(row),
                }
            }
            other => return Err(r.error(n, &format!("unknown change kind {other}"))),
        };
        changes.push(change);
    }
    Ok(changes)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    table: &'a str,
}

impl<'a> Reader<'a> {
    fn error(&self, change: usize, detail: &str) -> SyncError {
        SyncError::Corrupt {
            table: self.table.to_string(),
            detail: format!("change {change} (byte {}): {detail}", self.pos),
        }
    }

    fn take(&mut self, n: usize, change: usize) -> Result<&'a [u8], SyncError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| self.error(change, "truncated"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn varint(&mut self, change: usize) -> Result<u64, SyncError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1, change)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.error(change, "varint too long"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::types::Value;

    fn sample() -> Vec<Change> {
        vec![
            Change {
                key: vec![2, 0, 0, 0, 0, 0, 0, 0, 1],
                version: RowVersion { hlc: 99, site: 7 },
                row: Some(vec![Value::Int(1), Value::Text("a".into())]),
            },
            Change {
                key: vec![2, 0, 0, 0, 0, 0, 0, 0, 2],
                version: RowVersion { hlc: 100, site: 8 },
                row: None,
            },
        ]
    }

    #[test]
    fn round_trips() {
        let bytes = encode_changes(&sample());
        assert_eq!(decode_changes("t", &bytes).unwrap(), sample());
    }

    #[test]
    fn every_truncation_is_an_error_or_a_shorter_batch() {
        let bytes = encode_changes(&sample());
        let first_len = encode_changes(&sample()[..1]).len();
        for n in 0..bytes.len() {
            match decode_changes("t", &bytes[..n]) {
                Err(e) => assert!(e.to_string().contains("corrupt sync batch for table t"), "{e}"),
                // Cut exactly between changes: the checksum catches that.
                Ok(changes) => assert!(n == 0 || n == first_len, "{n}: {changes:?}"),
            }
        }
    }

    #[test]
    fn the_checksum_changes_with_any_flipped_byte() {
        let bytes = encode_changes(&sample());
        let sum = checksum(&bytes);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert_ne!(checksum(&bad), sum, "byte {i}");
        }
    }
}
