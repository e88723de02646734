//! Storing a value into a typed column: conversions that keep the value
//! exactly, and a clear error otherwise.

use super::datatype::DataType;
use super::time;
use super::value::Value;
use crate::sql::error::{Result, SqlError};

/// Converts `value` to the type of column `column`, or explains why it
/// cannot be stored there. NULL passes through (NOT NULL is checked apart).
pub fn coerce(value: Value, ty: DataType, column: &str) -> Result<Value> {
    let mismatch = |v: &Value| {
        SqlError::TypeMismatch(format!(
            "column '{column}' is {ty}, cannot store {} {}",
            v.type_name(),
            quote(v)
        ))
    };
    let out_of_range =
        |v: &Value| SqlError::Overflow(format!("{} is out of range for {ty} column '{column}'", quote(v)));
    Ok(match (ty, value) {
        (_, Value::Null) => Value::Null,
        (DataType::Int, Value::Int(i)) => {
            if i32::try_from(i).is_err() {
                return Err(out_of_range(&Value::Int(i)));
            }
            Value::Int(i)
        }
        (DataType::BigInt, Value::Int(i)) => Value::Int(i),
        (DataType::Int | DataType::BigInt, Value::Float(f)) => {
            if f.fract() != 0.0 || !f.is_finite() {
                return Err(mismatch(&Value::Float(f)));
            }
            let limit = if ty == DataType::Int {
                2f64.powi(31)
            } else {
                2f64.powi(63)
            };
            if f < -limit || f >= limit {
                return Err(out_of_range(&Value::Float(f)));
            }
            Value::Int(f as i64)
        }
        (DataType::Float | DataType::Double, Value::Int(i)) => Value::Float(i as f64),
        (DataType::Float | DataType::Double, Value::Float(f)) => Value::Float(f),
        (DataType::String, Value::Text(s)) => Value::Text(s),
        (DataType::Varchar(max), Value::Text(s)) => {
            let length = s.chars().count();
            if length > max as usize {
                return Err(SqlError::ValueTooLong {
                    column: column.to_string(),
                    max,
                    length,
                });
            }
            Value::Text(s)
        }
        (DataType::Bool, Value::Bool(b)) => Value::Bool(b),
        (DataType::Timestamp, Value::Timestamp(ms)) => Value::Timestamp(ms),
        (DataType::Timestamp, Value::Int(ms)) => Value::Timestamp(ms),
        (DataType::Timestamp, Value::Text(s)) => Value::Timestamp(time::parse_timestamp(&s)?),
        (_, v) => return Err(mismatch(&v)),
    })
}

fn quote(v: &Value) -> String {
    match v {
        Value::Text(s) => format!("'{s}'"),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_conversions_pass() {
        assert_eq!(coerce(Value::Int(3), DataType::Double, "x").unwrap(), Value::Float(3.0));
        assert_eq!(coerce(Value::Float(4.0), DataType::Int, "x").unwrap(), Value::Int(4));
        assert_eq!(
            coerce(Value::Text("1970-01-01T00:00:01Z".into()), DataType::Timestamp, "t").unwrap(),
            Value::Timestamp(1000)
        );
    }

    #[test]
    fn lossy_or_wrong_values_fail_with_the_column_name() {
        let e = coerce(Value::Int(1 << 40), DataType::Int, "n").unwrap_err().to_string();
        assert!(e.contains("out of range for INT column 'n'"), "{e}");
        let e = coerce(Value::Text("abc".into()), DataType::Int, "n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("column 'n' is INT, cannot store STRING 'abc'"), "{e}");
        let e = coerce(Value::Text("abcd".into()), DataType::Varchar(3), "v")
            .unwrap_err()
            .to_string();
        assert!(e.contains("VARCHAR(3)"), "{e}");
        assert!(coerce(Value::Float(1.5), DataType::BigInt, "n").is_err());
    }
}
