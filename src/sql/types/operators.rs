//! Binary operators on values, with SQL NULL semantics: comparison,
//! checked arithmetic, string concatenation, AND/OR on booleans, LIKE.

use super::expr::BinaryOp;
use crate::sql::error::{Result, SqlError};
use crate::types::Value;

/// A comparison operator on borrowed values (a filter's `column > constant`
/// compares in place, with no copy of either side); NULL in, NULL out.
pub(super) fn comparison(op: BinaryOp, l: &Value, r: &Value) -> Result<Value> {
    if l.is_null() || r.is_null() {
        return Ok(Value::Null);
    }
    Ok(match l.compare(r)? {
        None => Value::Null,
        Some(o) => Value::Bool(match op {
            BinaryOp::Eq => o.is_eq(),
            BinaryOp::NotEq => o.is_ne(),
            BinaryOp::Lt => o.is_lt(),
            BinaryOp::LtEq => o.is_le(),
            BinaryOp::Gt => o.is_gt(),
            _ => o.is_ge(),
        }),
    })
}

/// Evaluates a binary operator with SQL NULL semantics: NULL in, NULL out.
pub(super) fn binary(op: BinaryOp, l: Value, r: Value) -> Result<Value> {
    use Value::*;
    if l.is_null() || r.is_null() {
        return Ok(Null);
    }
    if op.is_comparison() {
        return comparison(op, &l, &r);
    }
    if op == BinaryOp::Concat {
        return match (&l, &r) {
            (Text(a), Text(b)) => Ok(Text(format!("{a}{b}"))),
            (Bool(_), _) | (_, Bool(_)) => Err(mismatch(op, &l, &r)),
            _ => Ok(Text(format!("{l}{r}"))),
        };
    }
    let overflow = || SqlError::Overflow(format!("{l} {} {r} overflows BIGINT", op.symbol()));
    match (&l, &r) {
        (Int(a), Int(b)) => {
            let (a, b) = (*a, *b);
            let v = match op {
                BinaryOp::Add => a.checked_add(b),
                BinaryOp::Sub => a.checked_sub(b),
                BinaryOp::Mul => a.checked_mul(b),
                BinaryOp::Div | BinaryOp::Mod if b == 0 => return Err(SqlError::DivisionByZero),
                BinaryOp::Div => a.checked_div(b),
                _ => a.checked_rem(b),
            };
            v.map(Int).ok_or_else(overflow)
        }
        (Int(_) | Float(_), Int(_) | Float(_)) => {
            let a = as_f64(&l);
            let b = as_f64(&r);
            let v = match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Div | BinaryOp::Mod if b == 0.0 => return Err(SqlError::DivisionByZero),
                BinaryOp::Div => a / b,
                _ => a % b,
            };
            if v.is_finite() {
                Ok(Float(v))
            } else {
                Err(SqlError::Overflow(format!(
                    "{l} {} {r} is not a finite number",
                    op.symbol()
                )))
            }
        }
        // Timestamp arithmetic in milliseconds.
        (Timestamp(a), Int(b)) if op == BinaryOp::Add => a.checked_add(*b).map(Timestamp).ok_or_else(overflow),
        (Int(a), Timestamp(b)) if op == BinaryOp::Add => a.checked_add(*b).map(Timestamp).ok_or_else(overflow),
        (Timestamp(a), Int(b)) if op == BinaryOp::Sub => a.checked_sub(*b).map(Timestamp).ok_or_else(overflow),
        (Timestamp(a), Timestamp(b)) if op == BinaryOp::Sub => a.checked_sub(*b).map(Int).ok_or_else(overflow),
        _ => Err(mismatch(op, &l, &r)),
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => f64::NAN,
    }
}

fn mismatch(op: BinaryOp, l: &Value, r: &Value) -> SqlError {
    SqlError::TypeMismatch(format!(
        "cannot apply {} to {} and {}",
        op.symbol(),
        l.type_name(),
        r.type_name()
    ))
}

/// SQL LIKE: `%` matches any run of characters, `_` exactly one; ASCII
/// letters match without regard to case (as in SQLite).
pub(super) fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    // Where to resume after the last `%`: (pattern index, text index).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '%' {
            star = Some((pi + 1, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '_' || p[pi].eq_ignore_ascii_case(&t[ti])) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o"));
        assert!(like("hello", "HELLO"));
        assert!(like("hello", "_ello"));
        assert!(like("", "%"));
        assert!(!like("hello", "h_o"));
        assert!(like("abcabc", "%bc"));
        assert!(!like("abc", "abcd"));
    }

    #[test]
    fn integer_arithmetic_is_checked() {
        assert!(matches!(
            binary(BinaryOp::Add, Value::Int(i64::MAX), Value::Int(1)),
            Err(SqlError::Overflow(_))
        ));
        assert!(matches!(
            binary(BinaryOp::Div, Value::Int(1), Value::Int(0)),
            Err(SqlError::DivisionByZero)
        ));
        assert_eq!(
            binary(BinaryOp::Div, Value::Int(-7), Value::Int(2)).unwrap(),
            Value::Int(-3)
        );
        assert_eq!(
            binary(BinaryOp::Add, Value::Int(1), Value::Float(0.5)).unwrap(),
            Value::Float(1.5)
        );
    }
}
