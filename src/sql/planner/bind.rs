//! Binding: AST expressions to executable expressions, resolving names to
//! row positions and functions to their implementations.
//!
//! In an aggregate query, expressions above the aggregation see a different
//! row (group values, then aggregate values): there an aggregate call binds
//! to its slot, a GROUP BY expression to its group slot, and any other
//! column reference is an error.

use super::correlate::Correlation;
use super::plan::{Aggregate, AggregateFunction, Node, SortKey};
use super::scope::Scope;
use super::select::plan_select_within;
use super::window::{Frame, FrameBound, WINDOW_SLOT, WindowCall, plan_call};
use crate::sql::error::{Result, SqlError};
use crate::sql::parser::ast;
use crate::sql::subquery::PlannedSubquery;
use crate::sql::types::{BinaryOp, DataType, EvalContext, Expr, ScalarFunction, Subquery, SubqueryKind, Value};
use std::sync::Arc;

/// The row above an Aggregate node.
pub struct Aggregation<'a> {
    /// The scope below the aggregation.
    pub source: &'a Scope,
    /// GROUP BY expressions, bound against `source`.
    pub groups: &'a [Expr],
    /// Aggregate calls found so far; new ones are appended.
    pub aggregates: &'a mut Vec<Aggregate>,
}

/// Binds an expression that may not contain aggregates; `clause` names where
/// it stands, for the error.
pub fn bind(e: &ast::Expr, scope: &Scope, clause: &str) -> Result<Expr> {
    Binder {
        scope,
        aggregation: None,
        clause,
        windows: None,
    }
    .bind(e)
}

/// Binds an expression above an aggregation.
pub fn bind_aggregated(e: &ast::Expr, aggregation: Aggregation, clause: &str) -> Result<Expr> {
    Binder {
        scope: aggregation.source,
        aggregation: Some(aggregation),
        clause,
        windows: None,
    }
    .bind(e)
}

/// Binds a select-list or ORDER BY expression (above an aggregation when
/// `aggregation` is set), where window functions may be called: each call
/// is added to `windows` and bound as the column [`WINDOW_SLOT`] + its
/// number ([`super::window::place_calls`] moves it later).
pub fn bind_windowed(
    e: &ast::Expr,
    scope: &Scope,
    aggregation: Option<Aggregation>,
    windows: &mut Vec<WindowCall>,
    clause: &str,
) -> Result<Expr> {
    Binder {
        scope: aggregation.as_ref().map_or(scope, |a| a.source),
        aggregation,
        clause,
        windows: Some(windows),
    }
    .bind(e)
}

/// Evaluates a constant expression (DEFAULT, LIMIT) at plan time.
pub fn evaluate_constant(e: &ast::Expr, clause: &str) -> Result<Value> {
    let bound = bind(e, &Scope::default(), clause)?;
    bound.evaluate(&Vec::new(), &EvalContext::at(0))
}

/// An aggregate call (not one used as a window function with OVER).
pub fn is_aggregate_call(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Function { name, over: None, .. } if AggregateFunction::lookup(name).is_some())
}

pub fn contains_aggregate(e: &ast::Expr) -> bool {
    if is_aggregate_call(e) {
        return true;
    }
    e.children().into_iter().any(contains_aggregate)
}

pub fn literal(l: &ast::Literal) -> Value {
    match l {
        ast::Literal::Null => Value::Null,
        ast::Literal::Bool(b) => Value::Bool(*b),
        ast::Literal::Int(i) => Value::Int(*i),
        ast::Literal::Float(f) => Value::Float(*f),
        ast::Literal::String(s) => Value::Text(s.clone()),
    }
}

struct Binder<'a> {
    scope: &'a Scope,
    aggregation: Option<Aggregation<'a>>,
    clause: &'a str,
    /// Where window calls go; None where they are not allowed.
    windows: Option<&'a mut Vec<WindowCall>>,
}

impl Binder<'_> {
    fn bind(&mut self, e: &ast::Expr) -> Result<Expr> {
        if let ast::Expr::Function {
            name,
            args,
            star,
            distinct,
            over: Some(spec),
        } = e
        {
            return self.bind_window(name, args, *star, *distinct, spec);
        }
        if self.aggregation.is_some()
            && let Some(bound) = self.bind_group_or_aggregate(e)?
        {
            return Ok(bound);
        }
        let b = |binder: &mut Self, e: &ast::Expr| binder.bind(e).map(Box::new);
        Ok(match e {
            ast::Expr::Literal(l) => Expr::Constant(literal(l)),
            // Parameters are replaced by their values before planning; one
            // left here had none.
            ast::Expr::Parameter(p) => {
                return Err(SqlError::Parameter(format!("no value given for parameter {}", p.name)));
            }
            ast::Expr::Column { table, name } => match self.scope.resolve(table.as_deref(), name) {
                Ok(_) if self.aggregation.is_some() => {
                    let shown = table.as_ref().map_or(name.clone(), |t| format!("{t}.{name}"));
                    return Err(SqlError::Invalid(format!(
                        "column '{shown}' must appear in the GROUP BY clause or be used in an aggregate function"
                    )));
                }
                Ok(i) => Expr::Column(i),
                // A column of an enclosing query: a correlated subquery.
                Err(SqlError::UnknownColumn(m)) => match self.scope.resolve_outer(table.as_deref(), name)? {
                    Some(param) => param,
                    None => return Err(SqlError::UnknownColumn(m)),
                },
                Err(e) => return Err(e),
            },
            ast::Expr::Unary { op, expr } => match op {
                ast::UnaryOp::Not => Expr::Not(b(self, expr)?),
                ast::UnaryOp::Minus => Expr::Negate(b(self, expr)?),
                ast::UnaryOp::Plus => self.bind(expr)?,
            },
            ast::Expr::Binary { op, left, right } => {
                let l = b(self, left)?;
                let r = b(self, right)?;
                match op {
                    ast::BinaryOp::And => Expr::And(l, r),
                    ast::BinaryOp::Or => Expr::Or(l, r),
                    op => Expr::Binary(binary_op(*op), l, r),
                }
            }
            ast::Expr::IsNull { expr, negated } => Expr::IsNull(b(self, expr)?, *negated),
            ast::Expr::InList { expr, list, negated } => Expr::InList {
                expr: b(self, expr)?,
                list: list.iter().map(|e| self.bind(e)).collect::<Result<_>>()?,
                negated: *negated,
            },
            ast::Expr::Between {
                expr,
                low,
                high,
                negated,
            } => Expr::Between {
                expr: b(self, expr)?,
                low: b(self, low)?,
                high: b(self, high)?,
                negated: *negated,
            },
            ast::Expr::Like { expr, pattern, negated } => Expr::Like {
                expr: b(self, expr)?,
                pattern: b(self, pattern)?,
                negated: *negated,
            },
            ast::Expr::Function {
                name,
                args,
                star,
                distinct,
                ..
            } => {
                if AggregateFunction::lookup(name).is_some() {
                    return Err(SqlError::Invalid(format!(
                        "aggregate function {name}() is not allowed in {}",
                        self.clause
                    )));
                }
                let f = ScalarFunction::lookup(name).ok_or_else(|| SqlError::UnknownFunction(name.clone()))?;
                if *star || *distinct {
                    return Err(SqlError::Invalid(format!(
                        "{name}() does not take {}",
                        if *star { "*" } else { "DISTINCT" }
                    )));
                }
                f.check_arity(args.len())?;
                Expr::Function(f, args.iter().map(|e| self.bind(e)).collect::<Result<_>>()?)
            }
            ast::Expr::Case {
                operand,
                whens,
                otherwise,
            } => Expr::Case {
                operand: operand.as_ref().map(|o| b(self, o)).transpose()?,
                whens: whens
                    .iter()
                    .map(|(w, t)| Ok((self.bind(w)?, self.bind(t)?)))
                    .collect::<Result<_>>()?,
                otherwise: otherwise.as_ref().map(|e| b(self, e)).transpose()?,
            },
            // Database runs uncorrelated subqueries before planning and puts
            // their values in their place; correlated ones (and those in a
            // view's SELECT) are planned here.
            ast::Expr::Subquery(query) => self.bind_subquery(query, SubqueryKind::Value)?,
            ast::Expr::Exists(query) => self.bind_subquery(query, SubqueryKind::Exists)?,
            ast::Expr::InSubquery { expr, query, negated } => {
                let kind = SubqueryKind::In {
                    expr: b(self, expr)?,
                    negated: *negated,
                };
                self.bind_subquery(query, kind)?
            }
            ast::Expr::Cast {
                expr,
                type_name,
                type_length,
            } => {
                let ty = DataType::from_sql(type_name, *type_length)
                    .ok_or_else(|| SqlError::Invalid(format!("unknown type {type_name} in CAST")))?;
                Expr::Cast(b(self, expr)?, ty)
            }
        })
    }

    /// Plans a subquery in the expression being bound. Its names that its
    /// own FROM lacks are looked up here, through a [`Correlation`].
    fn bind_subquery(&mut self, query: &ast::Select, kind: SubqueryKind) -> Result<Expr> {
        let Some(context) = self.scope.context.clone() else {
            return Err(SqlError::Invalid(format!(
                "subqueries are not allowed in {}",
                self.clause
            )));
        };
        let groups = self.aggregation.as_ref().map(|a| a.groups.to_vec());
        let correlation = Arc::new(Correlation::new(self.scope.clone(), groups));
        let plan = plan_select_within(query, &context.txn, Some(correlation.clone()))?;
        let mut root = plan.root;
        match kind {
            SubqueryKind::Exists => {
                root = Node::Limit {
                    source: Box::new(root),
                    count: 1,
                }
            }
            _ if plan.columns.len() != 1 => {
                return Err(SqlError::Invalid(format!(
                    "a subquery used as a value must return one column, this one returns {}",
                    plan.columns.len()
                )));
            }
            _ => {}
        }
        Ok(Expr::Subquery(Box::new(Subquery {
            kind,
            args: correlation.into_args(),
            query: Arc::new(PlannedSubquery::new(root, context.txn.snapshot())),
        })))
    }

    /// A window function call: its arguments, PARTITION BY and ORDER BY are
    /// bound here (they may use aggregates, not other window calls), the
    /// call is recorded, and its value is a column behind the input row.
    fn bind_window(
        &mut self,
        name: &str,
        args: &[ast::Expr],
        star: bool,
        distinct: bool,
        spec: &ast::WindowSpec,
    ) -> Result<Expr> {
        let Some(windows) = self.windows.take() else {
            return Err(SqlError::Invalid(format!(
                "window function {name}() is not allowed in {}",
                self.clause
            )));
        };
        let clause = std::mem::replace(&mut self.clause, "another window function");
        let call = self.bind_window_parts(name, args, star, distinct, spec);
        self.clause = clause;
        windows.push(call?);
        let slot = WINDOW_SLOT + windows.len() - 1;
        self.windows = Some(windows);
        Ok(Expr::Column(slot))
    }

    fn bind_window_parts(
        &mut self,
        name: &str,
        args: &[ast::Expr],
        star: bool,
        distinct: bool,
        spec: &ast::WindowSpec,
    ) -> Result<WindowCall> {
        if let Some(base) = &spec.base {
            return Err(SqlError::Invalid(format!("window '{base}' is not defined")));
        }
        let args = args.iter().map(|a| self.bind(a)).collect::<Result<Vec<_>>>()?;
        let partition_by = spec
            .partition_by
            .iter()
            .map(|e| self.bind(e))
            .collect::<Result<Vec<_>>>()?;
        let order_by = spec
            .order_by
            .iter()
            .map(|o| {
                Ok(SortKey {
                    expr: self.bind(&o.expr)?,
                    descending: o.descending,
                    nulls_first: o.nulls_first.unwrap_or(!o.descending),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let frame = match &spec.frame {
            None => None,
            Some(f) => Some(Frame {
                units: f.units,
                start: frame_bound(&f.start)?,
                end: frame_bound(&f.end)?,
            }),
        };
        plan_call(name, args, star, distinct, partition_by, order_by, frame)
    }

    /// Above an aggregation: an aggregate call binds to its slot, and an
    /// expression equal to a GROUP BY expression to the group's slot.
    fn bind_group_or_aggregate(&mut self, e: &ast::Expr) -> Result<Option<Expr>> {
        let Some(agg) = self.aggregation.as_mut() else {
            return Ok(None);
        };
        let groups = agg.groups.len();
        if let ast::Expr::Function {
            name,
            args,
            star,
            distinct,
            over: None,
        } = e
            && let Some(function) = AggregateFunction::lookup(name)
        {
            let aggregate = bind_aggregate_call(function, name, args, *star, *distinct, agg.source)?;
            let slot = match agg.aggregates.iter().position(|a| *a == aggregate) {
                Some(i) => i,
                None => {
                    agg.aggregates.push(aggregate);
                    agg.aggregates.len() - 1
                }
            };
            return Ok(Some(Expr::Column(groups + slot)));
        }
        if !contains_aggregate(e)
            && !matches!(e, ast::Expr::Literal(_))
            && let Ok(bound) = bind(e, agg.source, self.clause)
            && let Some(i) = agg.groups.iter().position(|g| *g == bound)
        {
            return Ok(Some(Expr::Column(i)));
        }
        Ok(None)
    }
}

fn frame_bound(b: &ast::FrameBound) -> Result<FrameBound> {
    let offset = |e: &ast::Expr| evaluate_constant(e, "a window frame offset");
    Ok(match b {
        ast::FrameBound::UnboundedPreceding => FrameBound::UnboundedPreceding,
        ast::FrameBound::Preceding(e) => FrameBound::Preceding(offset(e)?),
        ast::FrameBound::CurrentRow => FrameBound::CurrentRow,
        ast::FrameBound::Following(e) => FrameBound::Following(offset(e)?),
        ast::FrameBound::UnboundedFollowing => FrameBound::UnboundedFollowing,
    })
}

fn bind_aggregate_call(
    function: AggregateFunction,
    name: &str,
    args: &[ast::Expr],
    star: bool,
    distinct: bool,
    source: &Scope,
) -> Result<Aggregate> {
    if star {
        if function != AggregateFunction::Count || distinct {
            return Err(SqlError::Invalid(format!("{name}(*) is not valid; only count(*) is")));
        }
        return Ok(Aggregate {
            function: AggregateFunction::CountStar,
            arg: None,
            distinct: false,
        });
    }
    let [arg] = args else {
        return Err(SqlError::Invalid(format!(
            "{name}() takes exactly one argument, got {}",
            args.len()
        )));
    };
    if contains_aggregate(arg) {
        return Err(SqlError::Invalid(format!(
            "aggregate calls cannot be nested: {name}({arg})"
        )));
    }
    let bound = bind(arg, source, "an aggregate argument")?;
    // Over only an outer query's columns, SQL makes the aggregate the outer
    // query's; computing it in the subquery would give another answer.
    let (mut outer, mut local) = (false, false);
    bound.walk(&mut |e| match e {
        Expr::Param(_) => outer = true,
        Expr::Column(_) => local = true,
        _ => {}
    });
    if outer && !local {
        return Err(SqlError::Invalid(format!(
            "{name}({arg}) aggregates only columns of an outer query; compute it in that query"
        )));
    }
    Ok(Aggregate {
        function,
        arg: Some(bound),
        distinct,
    })
}

fn binary_op(op: ast::BinaryOp) -> BinaryOp {
    match op {
        ast::BinaryOp::Eq => BinaryOp::Eq,
        ast::BinaryOp::NotEq => BinaryOp::NotEq,
        ast::BinaryOp::Lt => BinaryOp::Lt,
        ast::BinaryOp::LtEq => BinaryOp::LtEq,
        ast::BinaryOp::Gt => BinaryOp::Gt,
        ast::BinaryOp::GtEq => BinaryOp::GtEq,
        ast::BinaryOp::Add => BinaryOp::Add,
        ast::BinaryOp::Sub => BinaryOp::Sub,
        ast::BinaryOp::Mul => BinaryOp::Mul,
        ast::BinaryOp::Div => BinaryOp::Div,
        ast::BinaryOp::Mod => BinaryOp::Mod,
        // AND and OR are bound as their own expression kinds above.
        ast::BinaryOp::Concat | ast::BinaryOp::And | ast::BinaryOp::Or => BinaryOp::Concat,
    }
}

/// The static type of an expression's result, when it can be known.
pub fn infer_type(e: &Expr, input: &[Option<DataType>]) -> Option<DataType> {
    match e {
        Expr::Constant(v) => match v {
            Value::Null => None,
            Value::Int(_) => Some(DataType::BigInt),
            Value::Float(_) => Some(DataType::Double),
            Value::Text(_) => Some(DataType::String),
            Value::Bool(_) => Some(DataType::Bool),
            Value::Timestamp(_) => Some(DataType::Timestamp),
        },
        Expr::Column(i) => input.get(*i).copied().flatten(),
        Expr::Not(_)
        | Expr::And(..)
        | Expr::Or(..)
        | Expr::IsNull(..)
        | Expr::InList { .. }
        | Expr::Between { .. }
        | Expr::Like { .. } => Some(DataType::Bool),
        Expr::Negate(e) => infer_type(e, input),
        Expr::Binary(op, l, r) => {
            if op.is_comparison() {
                return Some(DataType::Bool);
            }
            if *op == BinaryOp::Concat {
                return Some(DataType::String);
            }
            let (l, r) = (infer_type(l, input), infer_type(r, input));
            match (l, r) {
                (Some(DataType::Timestamp), Some(DataType::Timestamp)) => Some(DataType::BigInt),
                (Some(DataType::Timestamp), _) | (_, Some(DataType::Timestamp)) => Some(DataType::Timestamp),
                (Some(a), Some(b)) if a.is_float() || b.is_float() => Some(DataType::Double),
                (Some(DataType::Int), Some(DataType::Int)) => Some(DataType::Int),
                (Some(a), Some(b)) if a.is_integer() && b.is_integer() => Some(DataType::BigInt),
                _ => None,
            }
        }
        Expr::Function(f, args) => match f {
            ScalarFunction::Now | ScalarFunction::TimeBucket => Some(DataType::Timestamp),
            ScalarFunction::Round => Some(DataType::Double),
            ScalarFunction::Length => Some(DataType::BigInt),
            ScalarFunction::Lower
            | ScalarFunction::Upper
            | ScalarFunction::Substr
            | ScalarFunction::Trim
            | ScalarFunction::LTrim
            | ScalarFunction::RTrim
            | ScalarFunction::Replace => Some(DataType::String),
            ScalarFunction::Abs | ScalarFunction::NullIf => args.first().and_then(|a| infer_type(a, input)),
            ScalarFunction::Coalesce | ScalarFunction::IfNull => args.iter().find_map(|a| infer_type(a, input)),
        },
        Expr::Case { whens, otherwise, .. } => whens
            .iter()
            .map(|(_, t)| t)
            .chain(otherwise.as_deref())
            .find_map(|e| infer_type(e, input)),
        Expr::Cast(_, ty) => Some(*ty),
        Expr::Param(_) => None,
        Expr::Subquery(q) => match q.kind {
            SubqueryKind::Value => None,
            SubqueryKind::Exists | SubqueryKind::In { .. } => Some(DataType::Bool),
        },
    }
}

/// The type of an aggregate's result.
pub fn aggregate_type(a: &Aggregate, input: &[Option<DataType>]) -> Option<DataType> {
    let arg = a.arg.as_ref().and_then(|e| infer_type(e, input));
    match a.function {
        AggregateFunction::CountStar | AggregateFunction::Count => Some(DataType::BigInt),
        AggregateFunction::Avg => Some(DataType::Double),
        AggregateFunction::Sum => match arg {
            Some(t) if t.is_integer() => Some(DataType::BigInt),
            Some(_) => Some(DataType::Double),
            None => None,
        },
        AggregateFunction::Min | AggregateFunction::Max => arg,
    }
}
