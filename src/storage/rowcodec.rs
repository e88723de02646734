//! The compact row codec: how a row is stored as a sled value.
//!
//! Layout: format byte (2), row version (hlc and site, varints), the row's
//! change position (varint, see [`Transaction::change`]), column count
//! (varint), then one tagged value per column. Format 1 (no change
//! position) is still read.
//!
//! [`Transaction::change`]: super::Transaction::change Integers and timestamps are
//! zigzag varints, floats 8 bytes, text a varint length and UTF-8 bytes, and
//! NULL and booleans are a lone tag byte.

use super::error::StorageError;
use crate::types::{Row, Value};

const FORMAT: u8 = 2;
const FORMAT_V1: u8 = 1;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const TEXT: u8 = 5;
const TIMESTAMP: u8 = 6;

/// Who wrote a row version and when: the writing entry's hybrid logical
/// clock and the site it came from. Used to merge rows between sites.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowVersion {
    pub hlc: u64,
    pub site: u64,
}

pub fn encode_row(row: &[Value], version: RowVersion, change: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + row.len() * 6);
    out.push(FORMAT);
    put_varint(&mut out, version.hlc);
    put_varint(&mut out, version.site);
    put_varint(&mut out, change);
    put_varint(&mut out, row.len() as u64);
    for v in row {
        match v {
            Value::Null => out.push(NULL),
            Value::Bool(false) => out.push(FALSE),
            Value::Bool(true) => out.push(TRUE),
            Value::Int(i) => {
                out.push(INT);
                put_varint(&mut out, zigzag(*i));
            }
            Value::Float(f) => {
                out.push(FLOAT);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Text(s) => {
                out.push(TEXT);
                put_varint(&mut out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Timestamp(ms) => {
                out.push(TIMESTAMP);
                put_varint(&mut out, zigzag(*ms));
            }
        }
    }
    out
}

/// The version and change position of a stored row, without its values.
pub fn decode_meta(bytes: &[u8]) -> Result<(RowVersion, u64), StorageError> {
    let mut r = Reader { bytes, pos: 0 };
    r.meta()
}

pub fn decode_row(bytes: &[u8]) -> Result<(Row, RowVersion), StorageError> {
    decode_row_reading(bytes, None)
}

/// Like [`decode_row`], but only the columns marked in `read` are decoded;
/// the others (and columns past its end) read as NULL. A scan whose query
/// reads few columns skips the cost of the rest (text above all). Every
/// value is still checked to be well formed.
pub fn decode_row_reading(bytes: &[u8], read: Option<&[bool]>) -> Result<(Row, RowVersion), StorageError> {
    let mut row = Vec::new();
    let version = decode_row_into(bytes, read, &mut row)?;
    Ok((row, version))
}

/// [`decode_row_reading`] into `row` (cleared first), so that a scan can
/// reuse one row's allocation for every row it reads.
pub fn decode_row_into(bytes: &[u8], read: Option<&[bool]>, row: &mut Row) -> Result<RowVersion, StorageError> {
    row.clear();
    let mut r = Reader { bytes, pos: 0 };
    let (version, _) = r.meta()?;
    let n = r.varint()? as usize;
    if n > bytes.len() {
        return Err(corrupt("column count larger than the row"));
    }
    row.reserve(n);
    for i in 0..n {
        let wanted = read.is_none_or(|read| read.get(i).copied().unwrap_or(false));
        let tag = r.byte()?;
        if !wanted {
            r.skip_value(tag)?;
            row.push(Value::Null);
            continue;
        }
        row.push(match tag {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT => Value::Int(unzigzag(r.varint()?)),
            TIMESTAMP => Value::Timestamp(unzigzag(r.varint()?)),
            FLOAT => {
                let b: [u8; 8] = r.take(8)?.try_into().map_err(|_| corrupt("float"))?;
                Value::Float(f64::from_le_bytes(b))
            }
            TEXT => {
                let len = r.varint()? as usize;
                let s = std::str::from_utf8(r.take(len)?).map_err(|_| corrupt("text is not UTF-8"))?;
                Value::Text(s.to_string())
            }
            _ => return Err(corrupt("unknown value tag")),
        });
    }
    if r.pos != bytes.len() {
        return Err(corrupt("trailing bytes after the row"));
    }
    Ok(version)
}

fn corrupt(detail: &str) -> StorageError {
    StorageError::Corrupt {
        space: "row".into(),
        detail: detail.into(),
    }
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn meta(&mut self) -> Result<(RowVersion, u64), StorageError> {
        let format = self.byte()?;
        if format != FORMAT && format != FORMAT_V1 {
            return Err(corrupt("unknown row format"));
        }
        let version = RowVersion {
            hlc: self.varint()?,
            site: self.varint()?,
        };
        let change = match format {
            FORMAT => self.varint()?,
            _ => 0,
        };
        Ok((version, change))
    }

    fn byte(&mut self) -> Result<u8, StorageError> {
        let b = *self.bytes.get(self.pos).ok_or_else(|| corrupt("truncated row"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        let end = self.pos.checked_add(n).ok_or_else(|| corrupt("length overflow"))?;
        let s = self.bytes.get(self.pos..end).ok_or_else(|| corrupt("truncated row"))?;
        self.pos = end;
        Ok(s)
    }

    /// Steps over one value of the given tag without decoding it.
    fn skip_value(&mut self, tag: u8) -> Result<(), StorageError> {
        match tag {
            NULL | FALSE | TRUE => {}
            INT | TIMESTAMP => {
                self.varint()?;
            }
            FLOAT => {
                self.take(8)?;
            }
            TEXT => {
                let len = self.varint()? as usize;
                self.take(len)?;
            }
            _ => return Err(corrupt("unknown value tag")),
        }
        Ok(())
    }

    /// Every row header holds several, so this reads from the slice in one
    /// loop rather than byte by byte through `byte`.
    fn varint(&mut self) -> Result<u64, StorageError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let mut v: u64 = 0;
        for (i, &b) in rest.iter().take(10).enumerate() {
            v |= u64::from(b & 0x7F) << (7 * i);
            if b < 0x80 {
                self.pos += i + 1;
                return Ok(v);
            }
        }
        match rest.len() < 10 {
            true => Err(corrupt("truncated row")),
            false => Err(corrupt("varint too long")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind_of_value() {
        let row = vec![
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::Int(-1),
            Value::Int(300),
            Value::Float(-2.5),
            Value::Text("héllo".into()),
            Value::Timestamp(1_764_000_000_000),
        ];
        let version = RowVersion { hlc: 77, site: 3 };
        let bytes = encode_row(&row, version, 12);
        let (back, v) = decode_row(&bytes).unwrap();
        assert_eq!(back, row);
        assert_eq!(v, version);
        assert_eq!(decode_meta(&bytes).unwrap(), (version, 12));
    }

    #[test]
    fn a_partial_decode_reads_only_the_marked_columns() {
        let row = vec![
            Value::Int(7),
            Value::Text("sensor-001".into()),
            Value::Timestamp(5),
            Value::Float(25.5),
            Value::Bool(true),
        ];
        let bytes = encode_row(&row, RowVersion::default(), 1);
        let (back, _) = decode_row_reading(&bytes, Some(&[false, false, false, true])).unwrap();
        assert_eq!(
            back,
            vec![Value::Null, Value::Null, Value::Null, Value::Float(25.5), Value::Null]
        );
        let (all, _) = decode_row_reading(&bytes, Some(&[true; 5])).unwrap();
        assert_eq!(all, row);
        for n in 0..bytes.len() {
            assert!(
                decode_row_reading(&bytes[..n], Some(&[false; 5])).is_err(),
                "prefix of {n} bytes"
            );
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode_row(&[Value::Text("abc".into()), Value::Int(5)], RowVersion::default(), 3);
        for n in 0..bytes.len() {
            assert!(decode_row(&bytes[..n]).is_err(), "prefix of {n} bytes");
        }
    }
}
