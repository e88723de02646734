//! Order-preserving key encoding: the bytes of encoded values sort exactly as
//! the values do, so sled's byte order is the primary-key and index order,
//! and a range predicate becomes a range scan.
//!
//! Each value is a tag byte and a payload. Integers and timestamps are
//! big-endian with the sign bit flipped; floats use the IEEE total-order
//! trick; text has 0x00 escaped as 0x00 0xFF and ends with 0x00 0x00, so a
//! shorter string sorts before its extensions. Keys of several columns are
//! the concatenation of their values.

use super::error::StorageError;
use crate::types::Value;

const NULL: u8 = 0x00;
const BOOL: u8 = 0x01;
const INT: u8 = 0x02;
const FLOAT: u8 = 0x03;
const TIMESTAMP: u8 = 0x04;
const TEXT: u8 = 0x05;

pub fn encode_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(b) => out.extend_from_slice(&[BOOL, u8::from(*b)]),
        Value::Int(i) => {
            out.push(INT);
            out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes());
        }
        Value::Float(f) => {
            out.push(FLOAT);
            let bits = f.to_bits();
            let ordered = if bits >> 63 == 1 { !bits } else { bits ^ (1 << 63) };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        Value::Timestamp(ms) => {
            out.push(TIMESTAMP);
            out.extend_from_slice(&((*ms as u64) ^ (1 << 63)).to_be_bytes());
        }
        Value::Text(s) => {
            out.push(TEXT);
            for &b in s.as_bytes() {
                if b == 0 {
                    out.extend_from_slice(&[0, 0xFF]);
                } else {
                    out.push(b);
                }
            }
            out.extend_from_slice(&[0, 0]);
        }
    }
}

pub fn encode_values<'a>(values: impl IntoIterator<Item = &'a Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    for v in values {
        encode_value(&mut out, v);
    }
    out
}

fn corrupt(detail: &str) -> StorageError {
    StorageError::Corrupt {
        space: "key".into(),
        detail: detail.into(),
    }
}

/// Decodes one value at the start of `bytes`; returns it and its length.
pub fn decode_value(bytes: &[u8]) -> Result<(Value, usize), StorageError> {
    let tag = *bytes.first().ok_or_else(|| corrupt("empty key"))?;
    let fixed = |bytes: &[u8]| -> Result<u64, StorageError> {
        let b: [u8; 8] = bytes
            .get(1..9)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| corrupt("truncated number"))?;
        Ok(u64::from_be_bytes(b))
    };
    Ok(match tag {
        NULL => (Value::Null, 1),
        BOOL => {
            let b = *bytes.get(1).ok_or_else(|| corrupt("truncated bool"))?;
            (Value::Bool(b != 0), 2)
        }
        INT => (Value::Int((fixed(bytes)? ^ (1 << 63)) as i64), 9),
        TIMESTAMP => (Value::Timestamp((fixed(bytes)? ^ (1 << 63)) as i64), 9),
        FLOAT => {
            let o = fixed(bytes)?;
            let bits = if o >> 63 == 1 { o ^ (1 << 63) } else { !o };
            (Value::Float(f64::from_bits(bits)), 9)
        }
        TEXT => {
            let mut s = Vec::new();
            let mut i = 1;
            loop {
                match (bytes.get(i), bytes.get(i + 1)) {
                    (Some(0), Some(0)) => break,
                    (Some(0), Some(0xFF)) => {
                        s.push(0);
                        i += 2;
                    }
                    (Some(0), _) | (None, _) => return Err(corrupt("bad text escape")),
                    (Some(&b), _) => {
                        s.push(b);
                        i += 1;
                    }
                }
            }
            let s = String::from_utf8(s).map_err(|_| corrupt("text is not UTF-8"))?;
            (Value::Text(s), i + 2)
        }
        _ => return Err(corrupt("unknown value tag")),
    })
}

/// Decodes every value in a key.
pub fn decode_values(mut bytes: &[u8]) -> Result<Vec<Value>, StorageError> {
    let mut values = Vec::new();
    while !bytes.is_empty() {
        let (v, n) = decode_value(bytes)?;
        values.push(v);
        bytes = &bytes[n..];
    }
    Ok(values)
}

/// The byte length of the first `n` values of a key.
pub fn prefix_len(bytes: &[u8], n: usize) -> Result<usize, StorageError> {
    let mut pos = 0;
    for _ in 0..n {
        let rest = bytes.get(pos..).ok_or_else(|| corrupt("short key"))?;
        pos += decode_value(rest)?.1;
    }
    Ok(pos)
}

/// The smallest key greater than every key that starts with `prefix`, or
/// None when there is none (the prefix is all 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_same(values: Vec<Value>) {
        let mut by_value = values.clone();
        by_value.sort();
        let mut by_key = values.clone();
        by_key.sort_by_key(|v| encode_values([v]));
        assert_eq!(by_value, by_key);
        for v in values {
            let key = encode_values([&v]);
            assert_eq!(decode_values(&key).unwrap(), vec![v]);
        }
    }

    #[test]
    fn integers_sort_as_numbers() {
        sorted_same(
            [i64::MIN, -1000, -1, 0, 1, 255, 256, i64::MAX]
                .into_iter()
                .map(Value::Int)
                .collect(),
        );
    }

    #[test]
    fn floats_sort_as_numbers() {
        sorted_same(
            [f64::NEG_INFINITY, -2.5, -0.1, 0.0, 0.1, 3.0, 1e300]
                .into_iter()
                .map(Value::Float)
                .collect(),
        );
    }

    #[test]
    fn text_sorts_bytewise_with_prefixes_first() {
        sorted_same(
            ["", "a", "a\0b", "ab", "b", "ba", "é"]
                .into_iter()
                .map(|s| Value::Text(s.into()))
                .collect(),
        );
    }

    #[test]
    fn composite_keys_sort_by_first_then_second() {
        let a = encode_values(&[Value::Text("a".into()), Value::Int(9)]);
        let b = encode_values(&[Value::Text("ab".into()), Value::Int(1)]);
        assert!(a < b);
        assert_eq!(prefix_len(&a, 1).unwrap(), 4);
    }

    #[test]
    fn prefix_end_bounds_all_extensions() {
        let p = encode_values(&[Value::Int(5)]);
        let end = prefix_end(&p).unwrap();
        let k = encode_values(&[Value::Int(5), Value::Text("zzz".into())]);
        assert!(k > p && k < end);
        assert!(encode_values(&[Value::Int(6)]) >= end);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&[0x09u8][..], &[INT, 1, 2], &[TEXT, b'a'], &[TEXT, 0, 7]] {
            assert!(decode_values(bytes).is_err());
        }
    }
}
