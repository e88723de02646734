//! Bound expressions: column references resolved to row positions, ready to
//! evaluate against a row.

use super::coerce::cast;
use super::functions::ScalarFunction;
use super::operators::{binary, comparison, like};
use crate::sql::error::{Result, SqlError};
use crate::types::DataType;
use crate::types::{Row, Value};
use std::cmp::Ordering;
use std::sync::Arc;

/// What an expression may read besides the row: the statement's clock.
/// During apply this is the log entry's timestamp, never the wall clock.
#[derive(Clone, Copy, Debug)]
pub struct EvalContext {
    pub now_ms: i64,
    /// A query that reads past this instant fails (`limits.query_timeout_ms`).
    /// Never set while applying a write: apply takes no wall clock.
    pub deadline: Option<std::time::Instant>,
}

impl EvalContext {
    /// A context without a deadline.
    pub fn at(now_ms: i64) -> EvalContext {
        EvalContext { now_ms, deadline: None }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Concat => "||",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq
        )
    }

    /// The comparison with its operands swapped: `a < b` is `b > a`.
    pub fn flip(self) -> BinaryOp {
        match self {
            BinaryOp::Lt => BinaryOp::Gt,
            BinaryOp::LtEq => BinaryOp::GtEq,
            BinaryOp::Gt => BinaryOp::Lt,
            BinaryOp::GtEq => BinaryOp::LtEq,
            op => op,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Constant(Value),
    Column(usize),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Negate(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    IsNull(Box<Expr>, bool),
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
    },
    Function(ScalarFunction, Vec<Expr>),
    /// CASE: with an operand, the first WHEN equal to it (NULL equals
    /// nothing); without, the first WHEN that is true. Only the chosen
    /// branch is evaluated.
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Cast(Box<Expr>, DataType),
    /// Inside a subquery's plan: the subquery's k-th outer value, filled in
    /// before each run (see [`Subquery`]).
    Param(usize),
    Subquery(Box<Subquery>),
}

/// A subquery inside an expression: `(SELECT ...)`, `EXISTS (SELECT ...)`
/// or `x IN (SELECT ...)`. `args` are the outer query's values it reads
/// (for a correlated subquery), evaluated against the outer row; the
/// subquery's plan sees them as [`Expr::Param`].
#[derive(Clone)]
pub struct Subquery {
    pub kind: SubqueryKind,
    pub args: Vec<Expr>,
    pub query: Arc<dyn RunSubquery>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SubqueryKind {
    /// A single value: NULL for no row, an error for more than one.
    Value,
    Exists,
    /// `expr [NOT] IN (SELECT ...)`, with IN-list NULL semantics.
    In {
        expr: Box<Expr>,
        negated: bool,
    },
}

/// A planned subquery, run by the executor.
pub trait RunSubquery: Send + Sync {
    /// The subquery's rows for these outer values.
    fn run(&self, params: &[Value], ctx: &EvalContext) -> Result<Arc<Vec<Row>>>;
    /// The subquery's plan on one line, for EXPLAIN.
    fn describe(&self) -> String;
}

impl PartialEq for Subquery {
    fn eq(&self, other: &Subquery) -> bool {
        self.kind == other.kind && self.args == other.args && Arc::ptr_eq(&self.query, &other.query)
    }
}

impl std::fmt::Debug for Subquery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subquery")
            .field("kind", &self.kind)
            .field("args", &self.args)
            .field("query", &self.query.describe())
            .finish()
    }
}

impl Subquery {
    fn evaluate(&self, row: &Row, ctx: &EvalContext) -> Result<Value> {
        let params = self
            .args
            .iter()
            .map(|a| a.evaluate(row, ctx))
            .collect::<Result<Vec<_>>>()?;
        let rows = self.query.run(&params, ctx)?;
        let first = |r: &Row| r.first().cloned().unwrap_or(Value::Null);
        Ok(match &self.kind {
            SubqueryKind::Exists => Value::Bool(!rows.is_empty()),
            SubqueryKind::Value => match rows.as_slice() {
                [] => Value::Null,
                [r] => first(r),
                _ => {
                    return Err(SqlError::Invalid(
                        "a subquery used as a value returned more than one row".into(),
                    ));
                }
            },
            SubqueryKind::In { expr, negated } => {
                in_values(expr.evaluate(row, ctx)?, rows.iter().map(|r| Ok(first(r))), *negated)?
            }
        })
    }
}

/// `v [NOT] IN (items)`: TRUE on a match, NULL when no match but a NULL was
/// compared (or `v` is NULL), FALSE otherwise. Nothing is IN an empty set,
/// not even NULL.
fn in_values(v: Value, items: impl ExactSizeIterator<Item = Result<Value>>, negated: bool) -> Result<Value> {
    if items.len() == 0 {
        return Ok(Value::Bool(negated));
    }
    if v.is_null() {
        return Ok(Value::Null);
    }
    let mut saw_null = false;
    for item in items {
        match v.compare(&item?)? {
            Some(Ordering::Equal) => return Ok(Value::Bool(!negated)),
            None => saw_null = true,
            _ => {}
        }
    }
    Ok(if saw_null { Value::Null } else { Value::Bool(negated) })
}

impl Expr {
    /// A constant's or a column's value, borrowed; None for any other
    /// expression (and for a column past the row, which `evaluate` reports).
    fn in_place<'a>(&'a self, row: &'a Row) -> Option<&'a Value> {
        match self {
            Expr::Constant(v) => Some(v),
            Expr::Column(i) => row.get(*i),
            _ => None,
        }
    }

    pub fn evaluate(&self, row: &Row, ctx: &EvalContext) -> Result<Value> {
        Ok(match self {
            Expr::Constant(v) => v.clone(),
            Expr::Column(i) => row
                .get(*i)
                .cloned()
                .ok_or_else(|| SqlError::Invalid(format!("column #{i} out of range")))?,
            Expr::Not(e) => match e.evaluate(row, ctx)?.as_bool()? {
                Some(b) => Value::Bool(!b),
                None => Value::Null,
            },
            Expr::And(l, r) => {
                let l = l.evaluate(row, ctx)?.as_bool()?;
                if l == Some(false) {
                    return Ok(Value::Bool(false));
                }
                match (l, r.evaluate(row, ctx)?.as_bool()?) {
                    (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                }
            }
            Expr::Or(l, r) => {
                let l = l.evaluate(row, ctx)?.as_bool()?;
                if l == Some(true) {
                    return Ok(Value::Bool(true));
                }
                match (l, r.evaluate(row, ctx)?.as_bool()?) {
                    (_, Some(true)) => Value::Bool(true),
                    (Some(false), Some(false)) => Value::Bool(false),
                    _ => Value::Null,
                }
            }
            Expr::Negate(e) => match e.evaluate(row, ctx)? {
                Value::Null => Value::Null,
                Value::Int(i) => Value::Int(
                    i.checked_neg()
                        .ok_or_else(|| SqlError::Overflow(format!("-({i}) overflows BIGINT")))?,
                ),
                Value::Float(f) => Value::Float(-f),
                v => {
                    return Err(SqlError::TypeMismatch(format!("cannot negate {} {v}", v.type_name())));
                }
            },
            Expr::Binary(op, l, r) => match (op.is_comparison(), l.in_place(row), r.in_place(row)) {
                (true, Some(a), Some(b)) => comparison(*op, a, b)?,
                _ => binary(*op, l.evaluate(row, ctx)?, r.evaluate(row, ctx)?)?,
            },
            Expr::IsNull(e, negated) => Value::Bool(e.evaluate(row, ctx)?.is_null() != *negated),
            Expr::InList { expr, list, negated } => in_values(
                expr.evaluate(row, ctx)?,
                list.iter().map(|item| item.evaluate(row, ctx)),
                *negated,
            )?,
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let v = expr.evaluate(row, ctx)?;
                let ge = v.compare(&low.evaluate(row, ctx)?)?.map(|o| o.is_ge());
                let le = v.compare(&high.evaluate(row, ctx)?)?.map(|o| o.is_le());
                let within = match (ge, le) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                };
                match within {
                    Some(b) => Value::Bool(b != *negated),
                    None => Value::Null,
                }
            }
            Expr::Like { expr, pattern, negated } => match (expr.evaluate(row, ctx)?, pattern.evaluate(row, ctx)?) {
                (Value::Null, _) | (_, Value::Null) => Value::Null,
                (Value::Text(s), Value::Text(p)) => Value::Bool(like(&s, &p) != *negated),
                (a, b) => {
                    return Err(SqlError::TypeMismatch(format!(
                        "LIKE needs STRING operands, got {} and {}",
                        a.type_name(),
                        b.type_name()
                    )));
                }
            },
            Expr::Function(f, args) => {
                let values = args.iter().map(|a| a.evaluate(row, ctx)).collect::<Result<Vec<_>>>()?;
                f.call(values, ctx)?
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                let subject = operand.as_ref().map(|o| o.evaluate(row, ctx)).transpose()?;
                for (when, then) in whens {
                    let w = when.evaluate(row, ctx)?;
                    let hit = match &subject {
                        Some(s) => s.compare(&w)? == Some(Ordering::Equal),
                        None => w.as_bool()? == Some(true),
                    };
                    if hit {
                        return then.evaluate(row, ctx);
                    }
                }
                match otherwise {
                    Some(e) => e.evaluate(row, ctx)?,
                    None => Value::Null,
                }
            }
            Expr::Cast(e, ty) => cast(e.evaluate(row, ctx)?, *ty)?,
            Expr::Param(k) => {
                return Err(SqlError::Invalid(format!(
                    "outer value #{k} of a subquery was not filled in"
                )));
            }
            Expr::Subquery(q) => q.evaluate(row, ctx)?,
        })
    }

    /// True if the expression reads no column (so it can be evaluated once,
    /// e.g. to pick an index range).
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.walk(&mut |e| {
            if matches!(e, Expr::Column(_) | Expr::Param(_) | Expr::Subquery(_)) {
                constant = false;
            }
        });
        constant
    }

    /// Calls `f` on this expression and every expression inside it.
    pub fn walk(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Constant(_) | Expr::Column(_) => {}
            Expr::Not(e) | Expr::Negate(e) | Expr::IsNull(e, _) => e.walk(f),
            Expr::And(l, r) | Expr::Or(l, r) | Expr::Binary(_, l, r) => {
                l.walk(f);
                r.walk(f);
            }
            Expr::InList { expr, list, .. } => {
                expr.walk(f);
                list.iter().for_each(|e| e.walk(f));
            }
            Expr::Between { expr, low, high, .. } => {
                expr.walk(f);
                low.walk(f);
                high.walk(f);
            }
            Expr::Like { expr, pattern, .. } => {
                expr.walk(f);
                pattern.walk(f);
            }
            Expr::Function(_, args) => args.iter().for_each(|e| e.walk(f)),
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                operand.iter().chain(otherwise).for_each(|e| e.walk(f));
                whens.iter().flat_map(|(w, t)| [w, t]).for_each(|e| e.walk(f));
            }
            Expr::Cast(e, _) => e.walk(f),
            Expr::Param(_) => {}
            // The subquery's own plan has its own rows; only what it reads
            // from this row is visited.
            Expr::Subquery(q) => {
                if let SubqueryKind::In { expr, .. } = &q.kind {
                    expr.walk(f);
                }
                q.args.iter().for_each(|e| e.walk(f));
            }
        }
    }

    /// Adds `offset` to every column reference (used when a row is the
    /// concatenation of several sources, as in joins).
    pub fn shift_columns(&mut self, offset: usize) {
        self.walk_mut(&mut |e| {
            if let Expr::Column(i) = e {
                *i += offset;
            }
        });
    }

    pub fn walk_mut(&mut self, f: &mut impl FnMut(&mut Expr)) {
        f(self);
        match self {
            Expr::Constant(_) | Expr::Column(_) => {}
            Expr::Not(e) | Expr::Negate(e) | Expr::IsNull(e, _) => e.walk_mut(f),
            Expr::And(l, r) | Expr::Or(l, r) | Expr::Binary(_, l, r) => {
                l.walk_mut(f);
                r.walk_mut(f);
            }
            Expr::InList { expr, list, .. } => {
                expr.walk_mut(f);
                list.iter_mut().for_each(|e| e.walk_mut(f));
            }
            Expr::Between { expr, low, high, .. } => {
                expr.walk_mut(f);
                low.walk_mut(f);
                high.walk_mut(f);
            }
            Expr::Like { expr, pattern, .. } => {
                expr.walk_mut(f);
                pattern.walk_mut(f);
            }
            Expr::Function(_, args) => args.iter_mut().for_each(|e| e.walk_mut(f)),
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                operand.iter_mut().chain(otherwise).for_each(|e| e.walk_mut(f));
                whens.iter_mut().flat_map(|(w, t)| [w, t]).for_each(|e| e.walk_mut(f));
            }
            Expr::Cast(e, _) => e.walk_mut(f),
            Expr::Param(_) => {}
            Expr::Subquery(q) => {
                if let SubqueryKind::In { expr, .. } = &mut q.kind {
                    expr.walk_mut(f);
                }
                q.args.iter_mut().for_each(|e| e.walk_mut(f));
            }
        }
    }

    /// Renders the expression for EXPLAIN, naming columns by `labels`.
    pub fn format(&self, labels: &[String]) -> String {
        let f = |e: &Expr| e.format(labels);
        match self {
            Expr::Constant(Value::Text(s)) => format!("'{}'", s.replace('\'', "''")),
            Expr::Constant(Value::Timestamp(ms)) => {
                format!("'{}'", super::time::format_timestamp(*ms))
            }
            Expr::Constant(v) => v.to_string(),
            Expr::Column(i) => labels.get(*i).cloned().unwrap_or_else(|| format!("#{i}")),
            Expr::Not(e) => format!("NOT {}", f(e)),
            Expr::And(l, r) => format!("({} AND {})", f(l), f(r)),
            Expr::Or(l, r) => format!("({} OR {})", f(l), f(r)),
            Expr::Negate(e) => format!("-{}", f(e)),
            Expr::Binary(op, l, r) => format!("{} {} {}", f(l), op.symbol(), f(r)),
            Expr::IsNull(e, false) => format!("{} IS NULL", f(e)),
            Expr::IsNull(e, true) => format!("{} IS NOT NULL", f(e)),
            Expr::InList { expr, list, negated } => format!(
                "{} {}IN ({})",
                f(expr),
                if *negated { "NOT " } else { "" },
                list.iter().map(f).collect::<Vec<_>>().join(", ")
            ),
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => format!(
                "{} {}BETWEEN {} AND {}",
                f(expr),
                if *negated { "NOT " } else { "" },
                f(low),
                f(high)
            ),
            Expr::Like { expr, pattern, negated } => {
                format!("{} {}LIKE {}", f(expr), if *negated { "NOT " } else { "" }, f(pattern))
            }
            Expr::Function(func, args) => {
                format!("{}({})", func.name(), args.iter().map(f).collect::<Vec<_>>().join(", "))
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                let mut out = "CASE".to_string();
                if let Some(o) = operand {
                    out += &format!(" {}", f(o));
                }
                for (w, t) in whens {
                    out += &format!(" WHEN {} THEN {}", f(w), f(t));
                }
                if let Some(e) = otherwise {
                    out += &format!(" ELSE {}", f(e));
                }
                out + " END"
            }
            Expr::Cast(e, ty) => format!("CAST({} AS {ty})", f(e)),
            Expr::Param(k) => format!("${}", k + 1),
            Expr::Subquery(q) => {
                let args = match q.args.is_empty() {
                    true => String::new(),
                    false => format!(" with {}", q.args.iter().map(f).collect::<Vec<_>>().join(", ")),
                };
                let body = format!("(subquery{args}: {})", q.query.describe());
                match &q.kind {
                    SubqueryKind::Value => body,
                    SubqueryKind::Exists => format!("EXISTS {body}"),
                    SubqueryKind::In { expr, negated } => {
                        format!("{} {}IN {body}", f(expr), if *negated { "NOT " } else { "" })
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_valued_logic() {
        let ctx = EvalContext::at(0);
        let null = || Box::new(Expr::Constant(Value::Null));
        let f = || Box::new(Expr::Constant(Value::Bool(false)));
        let t = || Box::new(Expr::Constant(Value::Bool(true)));
        let row = vec![];
        assert_eq!(Expr::And(null(), f()).evaluate(&row, &ctx).unwrap(), Value::Bool(false));
        assert!(Expr::And(null(), t()).evaluate(&row, &ctx).unwrap().is_null());
        assert_eq!(Expr::Or(null(), t()).evaluate(&row, &ctx).unwrap(), Value::Bool(true));
        assert!(Expr::Not(null()).evaluate(&row, &ctx).unwrap().is_null());
        let not_in = Expr::InList {
            expr: Box::new(Expr::Constant(Value::Int(1))),
            list: vec![Expr::Constant(Value::Int(2)), Expr::Constant(Value::Null)],
            negated: true,
        };
        assert!(not_in.evaluate(&row, &ctx).unwrap().is_null());
    }
}
