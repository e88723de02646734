//! Subqueries inside expressions: `(SELECT ...)`, `EXISTS (SELECT ...)` and
//! `x IN (SELECT ...)`. Each one runs once, in the statement's transaction,
//! before the statement is planned, and its result takes its place: a value,
//! TRUE or FALSE, or a list of values. That covers uncorrelated subqueries;
//! a subquery that refers to a column of the outer query is refused.

use super::error::{Result, SqlError};
use super::executor::execute_node;
use super::parser::ast::{Expr, From, Literal, Select, SelectItem, Statement, TableRef};
use super::planner::plan_select;
use super::types::{EvalContext, Row, Value};
use crate::storage::Transaction;

/// The statement with every subquery replaced by its result, or None when
/// it has none.
pub fn inline(statement: &Statement, txn: &Transaction, ctx: &EvalContext) -> Result<Option<Statement>> {
    let mut statement = statement.clone();
    let mut found = false;
    visit_statement(&mut statement, &mut |query| {
        found = true;
        run(query, txn, ctx)
    })?;
    Ok(found.then_some(statement))
}

/// A cheap test on the statement's text: a statement that never says SELECT
/// (a bulk INSERT, say) has no subquery and need not be walked or copied.
pub fn may_contain(text: &str) -> bool {
    text.as_bytes().windows(6).any(|w| w.eq_ignore_ascii_case(b"select"))
}

/// Runs one subquery, whose own subqueries are already replaced.
fn run(query: &Select, txn: &Transaction, ctx: &EvalContext) -> Result<Vec<Row>> {
    let plan = plan_select(query, txn).map_err(|e| match e {
        SqlError::UnknownColumn(m) => SqlError::UnknownColumn(format!(
            "{m} (in a subquery; subqueries that refer to columns of the outer query are not supported)"
        )),
        e => e,
    })?;
    if plan.columns.len() != 1 {
        return Err(SqlError::Invalid(format!(
            "a subquery used as a value must return one column, this one returns {}",
            plan.columns.len()
        )));
    }
    execute_node(plan.root, txn, *ctx)?.collect()
}

type Runner<'a> = dyn FnMut(&Select) -> Result<Vec<Row>> + 'a;

/// WITH entries visible where a subquery stands.
type Names = [(String, Select)];

fn visit_statement(statement: &mut Statement, run: &mut Runner) -> Result<()> {
    match statement {
        Statement::Select(s) => visit_select(s, run, &[]),
        Statement::Explain(inner) => visit_statement(inner, run),
        Statement::Insert { rows, .. } => rows.iter_mut().flatten().try_for_each(|e| visit_expr(e, run, &[])),
        Statement::Update { set, filter, .. } => {
            set.iter_mut().try_for_each(|(_, e)| visit_expr(e, run, &[]))?;
            filter.iter_mut().try_for_each(|e| visit_expr(e, run, &[]))
        }
        Statement::Delete { filter, .. } => filter.iter_mut().try_for_each(|e| visit_expr(e, run, &[])),
        _ => Ok(()),
    }
}

fn visit_select(s: &mut Select, run: &mut Runner, outer: &Names) -> Result<()> {
    for (_, q) in &mut s.with {
        visit_select(q, run, outer)?;
    }
    // This select's WITH entries join those of the selects around it.
    let mut names: Vec<(String, Select)> = outer.to_vec();
    names.retain(|(n, _)| !s.with.iter().any(|(m, _)| m == n));
    names.extend(s.with.iter().cloned());
    let names = names.as_slice();
    for item in &mut s.items {
        if let SelectItem::Expr { expr, .. } = item {
            visit_expr(expr, run, names)?;
        }
    }
    if let Some(from) = &mut s.from {
        if let Some(q) = &mut from.table.subquery {
            visit_select(q, run, names)?;
        }
        for join in &mut from.joins {
            if let Some(q) = &mut join.table.subquery {
                visit_select(q, run, names)?;
            }
            join.on.iter_mut().try_for_each(|e| visit_expr(e, run, names))?;
        }
    }
    let exprs = s
        .filter
        .iter_mut()
        .chain(s.having.iter_mut())
        .chain(s.group_by.iter_mut())
        .chain(s.order_by.iter_mut().map(|o| &mut o.expr))
        .chain(s.limit.iter_mut())
        .chain(s.offset.iter_mut());
    for e in exprs {
        visit_expr(e, run, names)?;
    }
    for (_, q) in &mut s.compound {
        visit_select(q, run, names)?;
    }
    Ok(())
}

fn visit_expr(e: &mut Expr, run: &mut Runner, names: &Names) -> Result<()> {
    match e {
        Expr::Literal(_) | Expr::Column { .. } => {}
        Expr::Unary { expr, .. } | Expr::IsNull { expr, .. } | Expr::Cast { expr, .. } => visit_expr(expr, run, names)?,
        Expr::Binary { left, right, .. } => {
            visit_expr(left, run, names)?;
            visit_expr(right, run, names)?;
        }
        Expr::InList { expr, list, .. } => {
            visit_expr(expr, run, names)?;
            list.iter_mut().try_for_each(|e| visit_expr(e, run, names))?;
        }
        Expr::Between { expr, low, high, .. } => {
            visit_expr(expr, run, names)?;
            visit_expr(low, run, names)?;
            visit_expr(high, run, names)?;
        }
        Expr::Like { expr, pattern, .. } => {
            visit_expr(expr, run, names)?;
            visit_expr(pattern, run, names)?;
        }
        Expr::Function { args, .. } => args.iter_mut().try_for_each(|e| visit_expr(e, run, names))?,
        Expr::Case {
            operand,
            whens,
            otherwise,
        } => {
            operand
                .iter_mut()
                .chain(otherwise.iter_mut())
                .try_for_each(|e| visit_expr(e, run, names))?;
            for (w, t) in whens {
                visit_expr(w, run, names)?;
                visit_expr(t, run, names)?;
            }
        }
        Expr::Subquery(q) => {
            visit_select(q, run, names)?;
            let rows = run(&with_names(q, names))?;
            *e = match rows.as_slice() {
                [] => Expr::Literal(Literal::Null),
                [row] => value_expr(row.first().cloned().unwrap_or(Value::Null)),
                _ => {
                    return Err(SqlError::Invalid(
                        "a subquery used as a value returned more than one row".into(),
                    ));
                }
            };
        }
        Expr::Exists(q) => {
            visit_select(q, run, names)?;
            *e = Expr::Literal(Literal::Bool(has_rows(&with_names(q, names), run)?));
        }
        Expr::InSubquery { expr, query, negated } => {
            visit_expr(expr, run, names)?;
            visit_select(query, run, names)?;
            let list = run(&with_names(query, names))?
                .into_iter()
                .map(|row| value_expr(row.into_iter().next().unwrap_or(Value::Null)))
                .collect();
            *e = Expr::InList {
                expr: expr.clone(),
                list,
                negated: *negated,
            };
        }
    }
    Ok(())
}

/// EXISTS: whether the query returns a row. It is wrapped as
/// `SELECT 1 FROM (query) LIMIT 1`, so any query shape works and reading
/// stops at the first row.
fn has_rows(q: &Select, run: &mut Runner) -> Result<bool> {
    let wrapper = Select {
        distinct: false,
        items: vec![SelectItem::Expr {
            expr: Expr::Literal(Literal::Int(1)),
            alias: None,
        }],
        from: Some(From {
            table: TableRef {
                name: "subquery".into(),
                alias: None,
                subquery: Some(Box::new(q.clone())),
            },
            joins: Vec::new(),
        }),
        filter: None,
        group_by: Vec::new(),
        having: None,
        order_by: Vec::new(),
        limit: Some(Expr::Literal(Literal::Int(1))),
        offset: None,
        compound: Vec::new(),
        with: Vec::new(),
    };
    Ok(!run(&wrapper)?.is_empty())
}

/// The subquery with the WITH entries around it, so its FROM can use them.
fn with_names(q: &Select, names: &Names) -> Select {
    let mut q = q.clone();
    let own = std::mem::take(&mut q.with);
    q.with = names
        .iter()
        .filter(|(n, _)| !own.iter().any(|(m, _)| m == n))
        .cloned()
        .collect();
    q.with.extend(own);
    q
}

/// A result value as an expression of the same type.
fn value_expr(v: Value) -> Expr {
    match v {
        Value::Null => Expr::Literal(Literal::Null),
        Value::Bool(b) => Expr::Literal(Literal::Bool(b)),
        Value::Int(i) => Expr::Literal(Literal::Int(i)),
        Value::Float(f) => Expr::Literal(Literal::Float(f)),
        Value::Text(s) => Expr::Literal(Literal::String(s)),
        Value::Timestamp(ms) => Expr::Cast {
            expr: Box::new(Expr::Literal(Literal::Int(ms))),
            type_name: "TIMESTAMP".into(),
            type_length: None,
        },
    }
}
