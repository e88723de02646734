use super::error::{Result, TypeError};
use super::time;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// A row: one value per column.
pub type Row = Vec<Value>;

/// A SQL value. NULL is a value of its own; comparisons with it follow SQL's
/// three-valued logic in [`Value::compare`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp(i64),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The type name used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "INT",
            Value::Float(_) => "FLOAT",
            Value::Text(_) => "STRING",
            Value::Bool(_) => "BOOL",
            Value::Timestamp(_) => "TIMESTAMP",
        }
    }

    /// SQL comparison: None when either side is NULL. Integers and floats
    /// compare by value; a timestamp compares with an integer (epoch
    /// milliseconds) or an ISO-8601 string.
    pub fn compare(&self, other: &Value) -> Result<Option<Ordering>> {
        use Value::*;
        Ok(Some(match (self, other) {
            (Null, _) | (_, Null) => return Ok(None),
            (Int(a), Int(b)) => a.cmp(b),
            (Int(a), Float(b)) => compare_int_float(*a, *b),
            (Float(a), Int(b)) => compare_int_float(*b, *a).reverse(),
            (Float(a), Float(b)) => a.total_cmp(b),
            (Text(a), Text(b)) => a.cmp(b),
            (Bool(a), Bool(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Timestamp(a), Int(b)) | (Int(a), Timestamp(b)) => a.cmp(b),
            (Timestamp(a), Text(s)) => a.cmp(&time::parse_timestamp(s)?),
            (Text(s), Timestamp(b)) => time::parse_timestamp(s)?.cmp(b),
            (a, b) => {
                return Err(TypeError::Mismatch(format!(
                    "cannot compare {} with {}",
                    a.type_name(),
                    b.type_name()
                )));
            }
        }))
    }

    /// A total order for sorting, grouping and DISTINCT: NULL first, then
    /// booleans, numbers (by value), timestamps, and text.
    pub fn sort_cmp(&self, other: &Value) -> Ordering {
        use Value::*;
        fn rank(v: &Value) -> u8 {
            match v {
                Null => 0,
                Bool(_) => 1,
                Int(_) | Float(_) => 2,
                Timestamp(_) => 3,
                Text(_) => 4,
            }
        }
        match (self, other) {
            (Int(a), Int(b)) => a.cmp(b),
            (Int(a), Float(b)) => compare_int_float(*a, *b),
            (Float(a), Int(b)) => compare_int_float(*b, *a).reverse(),
            (Float(a), Float(b)) => a.total_cmp(b),
            (Text(a), Text(b)) => a.cmp(b),
            (Bool(a), Bool(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (a, b) => rank(a).cmp(&rank(b)),
        }
    }

    /// The value as a SQL boolean for WHERE, AND, OR, NOT: None is NULL.
    pub fn as_bool(&self) -> Result<Option<bool>> {
        match self {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            Value::Int(i) => Ok(Some(*i != 0)),
            other => Err(TypeError::Mismatch(format!(
                "expected a boolean, got {} {}",
                other.type_name(),
                other
            ))),
        }
    }
}

/// Compares an integer with a float exactly, without losing precision on
/// large integers.
fn compare_int_float(i: i64, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Less;
    }
    if f >= 9.3e18 {
        return Ordering::Less;
    }
    if f <= -9.3e18 {
        return Ordering::Greater;
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - t)).unwrap_or(Ordering::Equal),
        o => o,
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.sort_cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_cmp(other)
    }
}

impl Value {
    /// The value as native JSON: numbers, strings, booleans and null;
    /// timestamps as ISO-8601 strings; a non-finite float as null.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
            Value::Text(s) => s.clone().into(),
            Value::Bool(b) => (*b).into(),
            Value::Timestamp(_) => self.to_string().into(),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "NULL"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{}", format_float(*x)),
            Value::Text(s) => write!(f, "{s}"),
            Value::Bool(b) => write!(f, "{}", if *b { "true" } else { "false" }),
            Value::Timestamp(ms) => write!(f, "{}", time::format_timestamp(*ms)),
        }
    }
}

/// Formats a float the way SQLite does for whole numbers ("3.0"), and with
/// the shortest round-tripping digits otherwise.
pub fn format_float(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_compares_to_nothing() {
        assert_eq!(Value::Null.compare(&Value::Int(1)).unwrap(), None);
        assert_eq!(Value::Int(1).compare(&Value::Null).unwrap(), None);
    }

    #[test]
    fn int_and_float_compare_by_value() {
        assert_eq!(Value::Int(2).compare(&Value::Float(2.5)).unwrap(), Some(Ordering::Less));
        assert_eq!(
            Value::Float(3.0).compare(&Value::Int(3)).unwrap(),
            Some(Ordering::Equal)
        );
        assert_eq!(
            Value::Int(i64::MAX).compare(&Value::Float(9.3e18)).unwrap(),
            Some(Ordering::Less)
        );
    }

    #[test]
    fn timestamp_compares_with_iso_text() {
        let ts = Value::Timestamp(time::parse_timestamp("2026-11-24T10:00:00Z").unwrap());
        assert_eq!(
            ts.compare(&Value::Text("2026-11-24T09:00:00Z".into())).unwrap(),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn mismatched_types_are_an_error() {
        assert!(Value::Int(1).compare(&Value::Text("a".into())).is_err());
    }

    #[test]
    fn sort_order_puts_null_first() {
        let mut v = vec![Value::Int(2), Value::Null, Value::Float(1.5)];
        v.sort();
        assert_eq!(v, vec![Value::Null, Value::Float(1.5), Value::Int(2)]);
    }

    #[test]
    fn floats_format_like_sqlite() {
        assert_eq!(format_float(3.0), "3.0");
        assert_eq!(format_float(100.5), "100.5");
    }
}
