//! Storing a value into a typed column: conversions that keep the value
//! exactly, and a clear error otherwise.

use super::time;
use crate::sql::error::{Result, SqlError};
use crate::types::DataType;
use crate::types::Value;

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

/// `CAST(value AS ty)`: explicit conversions, looser than storing into a
/// column. Floats convert to integers by truncation toward zero (as in
/// SQLite); text must spell a value of the target type, or it is an error
/// (as in PostgreSQL, rather than SQLite's silent 0).
pub fn cast(value: Value, ty: DataType) -> Result<Value> {
    let fail = |v: &Value| SqlError::InvalidValue(format!("cannot cast {} {} to {ty}", v.type_name(), quote(v)));
    let to_int = |f: f64, v: &Value| -> Result<i64> {
        let t = f.trunc();
        if !t.is_finite() || !(-9.223_372_036_854_775e18..9.223_372_036_854_775e18).contains(&t) {
            return Err(SqlError::Overflow(format!("{} does not fit {ty}", quote(v))));
        }
        Ok(t as i64)
    };
    Ok(match (ty, value) {
        (_, Value::Null) => Value::Null,
        (DataType::Int | DataType::BigInt, v) => {
            let i = match &v {
                Value::Int(i) => *i,
                Value::Float(f) => to_int(*f, &v)?,
                Value::Text(s) => match s.trim().parse::<i64>() {
                    Ok(i) => i,
                    Err(_) => to_int(s.trim().parse::<f64>().map_err(|_| fail(&v))?, &v)?,
                },
                Value::Bool(b) => i64::from(*b),
                Value::Timestamp(ms) => *ms,
                Value::Null => return Ok(Value::Null),
            };
            if ty == DataType::Int && i32::try_from(i).is_err() {
                return Err(SqlError::Overflow(format!("{i} does not fit INT")));
            }
            Value::Int(i)
        }
        (DataType::Float | DataType::Double, v) => Value::Float(match &v {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            Value::Text(s) => s.trim().parse::<f64>().map_err(|_| fail(&v))?,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Timestamp(ms) => *ms as f64,
            Value::Null => return Ok(Value::Null),
        }),
        (DataType::String, v) => Value::Text(v.to_string()),
        (DataType::Varchar(n), v) => Value::Text(v.to_string().chars().take(n as usize).collect()),
        (DataType::Bool, v) => Value::Bool(match &v {
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "on" | "1" => true,
                "false" | "f" | "no" | "n" | "off" | "0" => false,
                _ => return Err(fail(&v)),
            },
            Value::Timestamp(_) => return Err(fail(&v)),
            Value::Null => return Ok(Value::Null),
        }),
        (DataType::Timestamp, v) => Value::Timestamp(match &v {
            Value::Timestamp(ms) | Value::Int(ms) => *ms,
            Value::Float(f) if f.fract() == 0.0 => to_int(*f, &v)?,
            Value::Text(s) => time::parse_timestamp(s)?,
            _ => return Err(fail(&v)),
        }),
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
