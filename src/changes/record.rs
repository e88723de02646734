//! The stored form of one entry's changes: a compact binary record whose
//! rows stay in the storage row encoding (copied, not re-encoded, when
//! recorded; decoded when read).
//!
//! Layout (integers little-endian): format byte, hlc u64, table count u32;
//! per table: name, column count u32 and names, the encoded fill row, row
//! count u32; per row: op byte, then before and after, each a presence
//! byte and, if present, the encoded row. Strings and rows are a u32
//! length and bytes.

use super::capture::{ChangeOp, TableChanges};
use super::store::ChangeEvent;
use crate::sql::types::Row;
use crate::storage::StorageError;
use crate::storage::rowcodec::{RowVersion, decode_row, encode_row};

const FORMAT: u8 = 1;

fn corrupt(detail: impl ToString) -> StorageError {
    StorageError::Corrupt {
        space: "changes.log".into(),
        detail: detail.to_string(),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

pub fn encode(hlc: u64, tables: &[TableChanges]) -> Vec<u8> {
    let mut out = vec![FORMAT];
    out.extend_from_slice(&hlc.to_le_bytes());
    out.extend_from_slice(&(tables.len() as u32).to_le_bytes());
    for t in tables {
        put_bytes(&mut out, t.table.as_bytes());
        out.extend_from_slice(&(t.columns.len() as u32).to_le_bytes());
        for c in &t.columns {
            put_bytes(&mut out, c.as_bytes());
        }
        put_bytes(&mut out, &encode_row(&t.fill, RowVersion::default(), 0));
        out.extend_from_slice(&(t.rows.len() as u32).to_le_bytes());
        for r in &t.rows {
            out.push(match r.op {
                ChangeOp::Insert => 0,
                ChangeOp::Update => 1,
                ChangeOp::Delete => 2,
            });
            for image in [&r.before, &r.after] {
                match image {
                    None => out.push(0),
                    Some(bytes) => {
                        out.push(1);
                        put_bytes(&mut out, bytes);
                    }
                }
            }
        }
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| corrupt("record ends early"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, StorageError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, StorageError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, StorageError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StorageError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, StorageError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(corrupt)
    }

    /// A count of items that each take at least one byte.
    fn count(&mut self) -> Result<usize, StorageError> {
        let n = self.u32()? as usize;
        match n <= self.bytes.len() - self.at {
            true => Ok(n),
            false => Err(corrupt("count larger than the record")),
        }
    }
}

/// A stored row as one value per column.
fn row(bytes: &[u8], fill: &[crate::sql::types::Value]) -> Result<Row, StorageError> {
    let (mut row, _) = decode_row(bytes)?;
    if row.len() > fill.len() {
        return Err(corrupt(format!(
            "a row of {} values in a table of {} columns",
            row.len(),
            fill.len()
        )));
    }
    row.extend_from_slice(&fill[row.len()..]);
    Ok(row)
}

/// The events of the record of entry `index`, in order.
pub fn decode(index: u64, bytes: &[u8]) -> Result<Vec<ChangeEvent>, StorageError> {
    let mut r = Reader { bytes, at: 0 };
    if r.u8()? != FORMAT {
        return Err(corrupt(format!("unknown record format at index {index}")));
    }
    let hlc = r.u64()?;
    let mut events = Vec::new();
    let mut seq = 0u32;
    for _ in 0..r.count()? {
        let table = r.string()?;
        let columns = (0..r.count()?).map(|_| r.string()).collect::<Result<Vec<_>, _>>()?;
        let (fill, _) = decode_row(r.bytes()?)?;
        if fill.len() != columns.len() {
            return Err(corrupt("fill row and columns differ"));
        }
        for _ in 0..r.count()? {
            let op = match r.u8()? {
                0 => ChangeOp::Insert,
                1 => ChangeOp::Update,
                2 => ChangeOp::Delete,
                other => return Err(corrupt(format!("unknown change kind {other}"))),
            };
            let mut image = || -> Result<Option<Row>, StorageError> {
                match r.u8()? {
                    0 => Ok(None),
                    _ => row(r.bytes()?, &fill).map(Some),
                }
            };
            let before = image()?;
            let after = image()?;
            events.push(ChangeEvent {
                index,
                seq,
                hlc,
                table: table.clone(),
                op,
                columns: columns.clone(),
                before,
                after,
            });
            seq += 1;
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::capture::RowChange;
    use crate::sql::types::Value;

    #[test]
    fn records_round_trip_and_pad_short_rows() {
        let old = encode_row(&[Value::Int(1)], RowVersion::default(), 0);
        let new = encode_row(&[Value::Int(1), Value::Text("x".into())], RowVersion::default(), 0);
        let tables = vec![TableChanges {
            table: "t".into(),
            columns: vec!["id".into(), "note".into()],
            fill: vec![Value::Null, Value::Text("default".into())],
            rows: vec![
                RowChange {
                    op: ChangeOp::Update,
                    before: Some(old),
                    after: Some(new.clone()),
                },
                RowChange {
                    op: ChangeOp::Delete,
                    before: Some(new),
                    after: None,
                },
            ],
        }];
        let bytes = encode(77, &tables);
        let events = decode(5, &bytes).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].index, events[0].seq, events[0].hlc), (5, 0, 77));
        assert_eq!(
            events[0].before,
            Some(vec![Value::Int(1), Value::Text("default".into())])
        );
        assert_eq!(events[1].op, ChangeOp::Delete);
        assert_eq!(events[1].after, None);
        // Every truncation is an error, never a panic.
        for n in 0..bytes.len() {
            assert!(decode(5, &bytes[..n]).is_err(), "cut at {n}");
        }
    }
}
