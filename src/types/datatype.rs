use serde::{Deserialize, Serialize};
use std::fmt;

/// A column type, as declared in CREATE TABLE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataType {
    /// 32-bit signed integer.
    Int,
    /// 64-bit signed integer.
    BigInt,
    /// Floating point, stored as 64-bit (like SQLite's REAL).
    Float,
    /// 64-bit floating point.
    Double,
    /// UTF-8 text of any length (STRING and TEXT).
    String,
    /// UTF-8 text of at most n characters.
    Varchar(u32),
    Bool,
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp,
}

impl DataType {
    /// Parses a type name as written in SQL, e.g. `INTEGER` or `VARCHAR` with
    /// its length. Returns None for an unknown name.
    pub fn from_sql(name: &str, length: Option<u32>) -> Option<DataType> {
        let t = match name.to_ascii_uppercase().as_str() {
            "INT" | "INTEGER" | "INT4" | "SMALLINT" => DataType::Int,
            "BIGINT" | "INT8" => DataType::BigInt,
            "FLOAT" | "REAL" | "FLOAT4" => DataType::Float,
            "DOUBLE" | "FLOAT8" => DataType::Double,
            // Exact decimals are stored as DOUBLE (as SQLite's REAL affinity
            // does); the precision is accepted and not enforced.
            "NUMERIC" | "DECIMAL" => return Some(DataType::Double),
            "STRING" | "TEXT" => DataType::String,
            // Without a length, text of any length, as in SQLite (and
            // PostgreSQL's VARCHAR).
            "VARCHAR" | "CHAR" => match length {
                Some(n) => DataType::Varchar(n),
                None => DataType::String,
            },
            "BOOL" | "BOOLEAN" => DataType::Bool,
            "TIMESTAMP" | "DATETIME" => DataType::Timestamp,
            _ => return None,
        };
        if length.is_some() && !matches!(t, DataType::Varchar(_)) {
            return None;
        }
        Some(t)
    }

    pub fn is_integer(self) -> bool {
        matches!(self, DataType::Int | DataType::BigInt)
    }

    pub fn is_float(self) -> bool {
        matches!(self, DataType::Float | DataType::Double)
    }

    pub fn is_text(self) -> bool {
        matches!(self, DataType::String | DataType::Varchar(_))
    }

    /// True when a non-NULL value is what a column of this type stores
    /// (for checking rows that arrive from another site).
    pub fn holds(self, value: &super::Value) -> bool {
        use super::Value;
        match (self, value) {
            (DataType::Int, Value::Int(i)) => i32::try_from(*i).is_ok(),
            (DataType::BigInt, Value::Int(_)) => true,
            (DataType::Float | DataType::Double, Value::Float(_)) => true,
            (DataType::String, Value::Text(_)) => true,
            (DataType::Varchar(n), Value::Text(s)) => s.chars().count() <= n as usize,
            (DataType::Bool, Value::Bool(_)) => true,
            (DataType::Timestamp, Value::Timestamp(_)) => true,
            _ => false,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Int => write!(f, "INT"),
            DataType::BigInt => write!(f, "BIGINT"),
            DataType::Float => write!(f, "FLOAT"),
            DataType::Double => write!(f, "DOUBLE"),
            DataType::String => write!(f, "STRING"),
            DataType::Varchar(n) => write!(f, "VARCHAR({n})"),
            DataType::Bool => write!(f, "BOOL"),
            DataType::Timestamp => write!(f, "TIMESTAMP"),
        }
    }
}
