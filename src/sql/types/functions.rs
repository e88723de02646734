//! Scalar (row-at-a-time) functions. Aggregates live in the planner and
//! executor, since they consume many rows.

use super::expr::EvalContext;
use super::time;
use super::value::Value;
use crate::sql::error::{Result, SqlError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarFunction {
    Now,
    TimeBucket,
    Abs,
    Round,
    Lower,
    Upper,
    Length,
    Coalesce,
    IfNull,
    NullIf,
}

impl ScalarFunction {
    /// Looks a function up by its SQL name (any case).
    pub fn lookup(name: &str) -> Option<ScalarFunction> {
        Some(match name.to_ascii_lowercase().as_str() {
            "now" | "current_timestamp" => ScalarFunction::Now,
            "time_bucket" => ScalarFunction::TimeBucket,
            "abs" => ScalarFunction::Abs,
            "round" => ScalarFunction::Round,
            "lower" => ScalarFunction::Lower,
            "upper" => ScalarFunction::Upper,
            "length" => ScalarFunction::Length,
            "coalesce" => ScalarFunction::Coalesce,
            "ifnull" => ScalarFunction::IfNull,
            "nullif" => ScalarFunction::NullIf,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ScalarFunction::Now => "now",
            ScalarFunction::TimeBucket => "time_bucket",
            ScalarFunction::Abs => "abs",
            ScalarFunction::Round => "round",
            ScalarFunction::Lower => "lower",
            ScalarFunction::Upper => "upper",
            ScalarFunction::Length => "length",
            ScalarFunction::Coalesce => "coalesce",
            ScalarFunction::IfNull => "ifnull",
            ScalarFunction::NullIf => "nullif",
        }
    }

    /// Checks the number of arguments when the statement is planned.
    pub fn check_arity(self, n: usize) -> Result<()> {
        let ok = match self {
            ScalarFunction::Now => n == 0,
            ScalarFunction::TimeBucket | ScalarFunction::IfNull | ScalarFunction::NullIf => n == 2,
            ScalarFunction::Round => n == 1 || n == 2,
            ScalarFunction::Coalesce => n >= 1,
            _ => n == 1,
        };
        if ok {
            Ok(())
        } else {
            Err(SqlError::Invalid(format!(
                "wrong number of arguments to {}(): got {n}",
                self.name()
            )))
        }
    }

    pub fn call(self, args: Vec<Value>, ctx: &EvalContext) -> Result<Value> {
        if matches!(self, ScalarFunction::Coalesce | ScalarFunction::IfNull) {
            return Ok(args.into_iter().find(|v| !v.is_null()).unwrap_or(Value::Null));
        }
        let mut args = args.into_iter();
        let mut next = || args.next().unwrap_or(Value::Null);
        Ok(match self {
            ScalarFunction::Now => Value::Timestamp(ctx.now_ms),
            ScalarFunction::TimeBucket => {
                let interval = next();
                let ts = next();
                time_bucket(interval, ts)?
            }
            ScalarFunction::Abs => match next() {
                Value::Int(i) => Value::Int(
                    i.checked_abs()
                        .ok_or_else(|| SqlError::Overflow(format!("abs({i}) overflows BIGINT")))?,
                ),
                Value::Float(f) => Value::Float(f.abs()),
                Value::Null => Value::Null,
                v => return Err(wrong_type(self, &v)),
            },
            ScalarFunction::Round => {
                let v = next();
                let digits = match next() {
                    Value::Null => 0,
                    Value::Int(d) => d.clamp(-20, 20) as i32,
                    v => return Err(wrong_type(self, &v)),
                };
                match v {
                    Value::Null => Value::Null,
                    Value::Int(i) => Value::Float(i as f64),
                    Value::Float(f) => {
                        let scale = 10f64.powi(digits);
                        Value::Float((f * scale).round() / scale)
                    }
                    v => return Err(wrong_type(self, &v)),
                }
            }
            ScalarFunction::Lower | ScalarFunction::Upper => match next() {
                Value::Null => Value::Null,
                Value::Text(s) if self == ScalarFunction::Lower => Value::Text(s.to_lowercase()),
                Value::Text(s) => Value::Text(s.to_uppercase()),
                v => return Err(wrong_type(self, &v)),
            },
            ScalarFunction::Length => match next() {
                Value::Null => Value::Null,
                Value::Text(s) => Value::Int(s.chars().count() as i64),
                v => Value::Int(v.to_string().chars().count() as i64),
            },
            ScalarFunction::Coalesce | ScalarFunction::IfNull => unreachable!("handled above"),
            ScalarFunction::NullIf => {
                let a = next();
                let b = next();
                if a.compare(&b)? == Some(std::cmp::Ordering::Equal) {
                    Value::Null
                } else {
                    a
                }
            }
        })
    }
}

fn wrong_type(f: ScalarFunction, v: &Value) -> SqlError {
    SqlError::TypeMismatch(format!("{}() does not take {} {v}", f.name(), v.type_name()))
}

/// `time_bucket(interval, ts)`: the start of the interval-wide bucket (aligned
/// to the Unix epoch) that holds `ts`.
fn time_bucket(interval: Value, ts: Value) -> Result<Value> {
    let width = match interval {
        Value::Text(s) => time::parse_interval(&s)?,
        Value::Int(ms) if ms > 0 => ms,
        Value::Null => return Ok(Value::Null),
        v => {
            return Err(SqlError::InvalidValue(format!(
                "time_bucket interval must be a string like '5 minutes' or positive milliseconds, got {v}"
            )));
        }
    };
    let ms = match ts {
        Value::Timestamp(ms) | Value::Int(ms) => ms,
        Value::Text(s) => time::parse_timestamp(&s)?,
        Value::Null => return Ok(Value::Null),
        v => return Err(wrong_type(ScalarFunction::TimeBucket, &v)),
    };
    Ok(Value::Timestamp(ms.div_euclid(width) * width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bucket_floors_to_the_interval() {
        let ctx = EvalContext { now_ms: 0 };
        let ts = time::parse_timestamp("2026-11-24T10:07:31Z").unwrap();
        let got = ScalarFunction::TimeBucket
            .call(vec![Value::Text("5 minutes".into()), Value::Timestamp(ts)], &ctx)
            .unwrap();
        assert_eq!(
            got,
            Value::Timestamp(time::parse_timestamp("2026-11-24T10:05:00Z").unwrap())
        );
    }

    #[test]
    fn coalesce_takes_first_non_null() {
        let ctx = EvalContext { now_ms: 0 };
        let got = ScalarFunction::Coalesce
            .call(vec![Value::Null, Value::Int(2), Value::Int(3)], &ctx)
            .unwrap();
        assert_eq!(got, Value::Int(2));
    }
}
