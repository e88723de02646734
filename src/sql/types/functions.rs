//! Scalar (row-at-a-time) functions. Aggregates live in the planner and
//! executor, since they consume many rows.

use super::expr::EvalContext;
use super::time;
use crate::sql::error::{Result, SqlError};
use crate::types::Value;

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
    Substr,
    Trim,
    LTrim,
    RTrim,
    Replace,
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
            "substr" | "substring" => ScalarFunction::Substr,
            "trim" => ScalarFunction::Trim,
            "ltrim" => ScalarFunction::LTrim,
            "rtrim" => ScalarFunction::RTrim,
            "replace" => ScalarFunction::Replace,
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
            ScalarFunction::Substr => "substr",
            ScalarFunction::Trim => "trim",
            ScalarFunction::LTrim => "ltrim",
            ScalarFunction::RTrim => "rtrim",
            ScalarFunction::Replace => "replace",
        }
    }

    /// Checks the number of arguments when the statement is planned.
    pub fn check_arity(self, n: usize) -> Result<()> {
        let ok = match self {
            ScalarFunction::Now => n == 0,
            ScalarFunction::TimeBucket | ScalarFunction::IfNull | ScalarFunction::NullIf => n == 2,
            ScalarFunction::Round | ScalarFunction::Trim | ScalarFunction::LTrim | ScalarFunction::RTrim => {
                n == 1 || n == 2
            }
            ScalarFunction::Substr => n == 2 || n == 3,
            ScalarFunction::Replace => n == 3,
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
        let args_len = args.len();
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
            ScalarFunction::Substr => {
                let (s, start, len) = (next(), next(), next());
                let (Some(s), Value::Int(start)) = (text_of(s), &start) else {
                    return match start {
                        Value::Null | Value::Int(_) => Ok(Value::Null),
                        v => Err(wrong_type(self, &v)),
                    };
                };
                let len = match len {
                    Value::Int(n) => Some(n),
                    Value::Null if args_len == 2 => None,
                    Value::Null => return Ok(Value::Null),
                    v => return Err(wrong_type(self, &v)),
                };
                Value::Text(substr(&s, *start, len))
            }
            ScalarFunction::Trim | ScalarFunction::LTrim | ScalarFunction::RTrim => {
                let s = next();
                let set = match args_len {
                    1 => Some(" ".to_string()),
                    _ => text_of(next()),
                };
                let (Some(s), Some(set)) = (text_of(s), set) else {
                    return Ok(Value::Null);
                };
                let strip = |c: char| set.contains(c);
                Value::Text(
                    match self {
                        ScalarFunction::Trim => s.trim_matches(strip),
                        ScalarFunction::LTrim => s.trim_start_matches(strip),
                        _ => s.trim_end_matches(strip),
                    }
                    .to_string(),
                )
            }
            ScalarFunction::Replace => {
                let (s, from, to) = (text_of(next()), text_of(next()), text_of(next()));
                match (s, from, to) {
                    (Some(s), Some(from), _) if from.is_empty() => Value::Text(s),
                    (Some(s), Some(from), Some(to)) => Value::Text(s.replace(&from, &to)),
                    _ => Value::Null,
                }
            }
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

/// Text functions take numbers as their text, as SQLite does; NULL is None.
fn text_of(v: Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Text(s) => Some(s),
        v => Some(v.to_string()),
    }
}

/// SQLite's substr: 1-based `start` (negative counts from the end, 0 is just
/// before the first character); a negative `len` takes characters before
/// `start`.
fn substr(s: &str, start: i64, len: Option<i64>) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len() as i64;
    let (mut p1, mut p2) = (start, len.unwrap_or(n.saturating_add(1)));
    let negative = p2 < 0;
    if negative {
        p2 = p2.saturating_neg();
    }
    if p1 < 0 {
        p1 = p1.saturating_add(n);
        if p1 < 0 {
            p2 = (p2.saturating_add(p1)).max(0);
            p1 = 0;
        }
    } else if p1 > 0 {
        p1 -= 1;
    } else if p2 > 0 {
        p2 -= 1;
    }
    if negative {
        p1 = p1.saturating_sub(p2);
        if p1 < 0 {
            p2 = (p2.saturating_add(p1)).max(0);
            p1 = 0;
        }
    }
    let from = p1.min(n) as usize;
    let to = p1.saturating_add(p2).min(n).max(p1.min(n)) as usize;
    chars[from..to].iter().collect()
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
        let ctx = EvalContext::at(0);
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
        let ctx = EvalContext::at(0);
        let got = ScalarFunction::Coalesce
            .call(vec![Value::Null, Value::Int(2), Value::Int(3)], &ctx)
            .unwrap();
        assert_eq!(got, Value::Int(2));
    }
}
