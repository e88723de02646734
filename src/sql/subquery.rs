//! Subqueries inside expressions: `(SELECT ...)`, `EXISTS (SELECT ...)` and
//! `x IN (SELECT ...)`.
//!
//! An uncorrelated subquery runs once, in the statement's transaction,
//! before the statement is planned, and its result takes its place: a value,
//! TRUE or FALSE, or a list of values (so the planner can use it to pick an
//! index). A correlated subquery, which reads columns of the query around
//! it, stays in the statement; the planner plans it once with those columns
//! as parameters, and [`PlannedSubquery`] runs it for each outer row.

use super::error::{Result, SqlError};
use super::executor::execute_node;
use super::parser::ast::{Expr, From, Literal, Select, SelectItem, Statement, TableRef};
use super::parser::params::value_expr;
use super::planner::{Node, fill_params, per_run_access, plan_select};
use super::types::{EvalContext, Row, RunSubquery, Value};
use crate::storage::Transaction;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The statement with every uncorrelated subquery replaced by its result,
/// or None when it has none.
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

/// Runs one subquery, whose own uncorrelated subqueries are already
/// replaced. None when it reads a column it does not have: a correlated
/// subquery (or a wrong name, which planning the statement reports).
fn run(query: &Select, txn: &Transaction, ctx: &EvalContext) -> Result<Option<Vec<Row>>> {
    let plan = match plan_select(query, txn) {
        Ok(plan) => plan,
        Err(SqlError::UnknownColumn(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    if plan.columns.len() != 1 {
        return Err(SqlError::Invalid(format!(
            "a subquery used as a value must return one column, this one returns {}",
            plan.columns.len()
        )));
    }
    Ok(Some(execute_node(plan.root, txn, *ctx)?.collect::<Result<_>>()?))
}

/// Results kept per set of outer values; past this many rows in all, the
/// memo starts afresh.
const MEMO_ROWS: usize = 100_000;

/// After this many runs, a memo that rarely answers (outer values that
/// seldom repeat, as with a key) is switched off, as it only costs.
const MEMO_TRIAL: u64 = 512;

/// A subquery planned once and run for each set of outer values (once in
/// all when it has none). It reads a snapshot of the statement's
/// transaction taken before the statement ran, and it remembers results by
/// outer values, so a value seen before does not run the query again.
pub struct PlannedSubquery {
    root: Node,
    txn: Transaction,
    memo: Mutex<Memo>,
}

struct Memo {
    results: BTreeMap<Vec<Value>, Arc<Vec<Row>>>,
    rows: usize,
    runs: u64,
    hits: u64,
    enabled: bool,
}

impl PlannedSubquery {
    pub fn new(root: Node, txn: Transaction) -> PlannedSubquery {
        PlannedSubquery {
            root,
            txn,
            memo: Mutex::new(Memo {
                results: BTreeMap::new(),
                rows: 0,
                runs: 0,
                hits: 0,
                enabled: true,
            }),
        }
    }
}

impl RunSubquery for PlannedSubquery {
    fn run(&self, params: &[Value], ctx: &EvalContext) -> Result<Arc<Vec<Row>>> {
        let lock = || self.memo.lock().unwrap_or_else(|e| e.into_inner());
        let remember = {
            let mut memo = lock();
            memo.runs += 1;
            if memo.enabled
                && let Some(rows) = memo.results.get(params).cloned()
            {
                memo.hits += 1;
                return Ok(rows);
            }
            if memo.enabled && memo.runs >= MEMO_TRIAL && memo.hits * 8 < memo.runs && !params.is_empty() {
                memo.enabled = false;
                memo.results.clear();
            }
            memo.enabled
        };
        let mut root = self.root.clone();
        fill_params(&mut root, params);
        let rows: Arc<Vec<Row>> = Arc::new(execute_node(root, &self.txn, *ctx)?.collect::<Result<_>>()?);
        if remember {
            let mut memo = lock();
            if memo.rows + rows.len() > MEMO_ROWS {
                memo.results.clear();
                memo.rows = 0;
            }
            memo.rows += rows.len().max(1);
            memo.results.insert(params.to_vec(), rows.clone());
        }
        Ok(rows)
    }

    fn describe(&self) -> String {
        let mut text = self.root.explain_line();
        for read in per_run_access(&self.root) {
            text += &format!("; each run reads {read}");
        }
        text
    }
}

type Runner<'a> = dyn FnMut(&Select) -> Result<Option<Vec<Row>>> + 'a;

/// WITH entries visible where a subquery stands.
type Names = [(String, Select)];

fn visit_statement(statement: &mut Statement, run: &mut Runner) -> Result<()> {
    match statement {
        Statement::Select(s) => visit_select(s, run, &[]),
        Statement::Explain(inner) => visit_statement(inner, run),
        Statement::Insert { query, .. } => {
            query.iter_mut().try_for_each(|q| visit_select(q, run, &[]))?;
            statement
                .write_exprs_mut()
                .into_iter()
                .try_for_each(|e| visit_expr(e, run, &[]))
        }
        Statement::Update { .. } | Statement::Delete { .. } => statement
            .write_exprs_mut()
            .into_iter()
            .try_for_each(|e| visit_expr(e, run, &[])),
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
    for e in s.exprs_mut() {
        visit_expr(e, run, names)?;
    }
    for q in s.from_subqueries_mut() {
        visit_select(q, run, names)?;
    }
    for (_, q) in &mut s.compound {
        visit_select(q, run, names)?;
    }
    Ok(())
}

fn visit_expr(e: &mut Expr, run: &mut Runner, names: &Names) -> Result<()> {
    match e {
        Expr::Subquery(q) => {
            visit_select(q, run, names)?;
            let q = with_names(q, names);
            *e = match run(&q)?.as_deref() {
                // Correlated: left for the planner, with the WITH names it sees.
                None => Expr::Subquery(Box::new(q)),
                Some([]) => Expr::Literal(Literal::Null),
                Some([row]) => value_expr(row.first().cloned().unwrap_or(Value::Null)),
                Some(_) => {
                    return Err(SqlError::Invalid(
                        "a subquery used as a value returned more than one row".into(),
                    ));
                }
            };
        }
        Expr::Exists(q) => {
            visit_select(q, run, names)?;
            let q = with_names(q, names);
            *e = match has_rows(&q, run)? {
                None => Expr::Exists(Box::new(q)),
                Some(found) => Expr::Literal(Literal::Bool(found)),
            };
        }
        Expr::InSubquery { expr, query, negated } => {
            visit_expr(expr, run, names)?;
            visit_select(query, run, names)?;
            let q = with_names(query, names);
            *e = match run(&q)? {
                None => Expr::InSubquery {
                    expr: expr.clone(),
                    query: Box::new(q),
                    negated: *negated,
                },
                Some(rows) => Expr::InList {
                    expr: expr.clone(),
                    list: rows
                        .into_iter()
                        .map(|row| value_expr(row.into_iter().next().unwrap_or(Value::Null)))
                        .collect(),
                    negated: *negated,
                },
            };
        }
        _ => e
            .children_mut()
            .into_iter()
            .try_for_each(|c| visit_expr(c, run, names))?,
    }
    Ok(())
}

/// EXISTS: whether the query returns a row. It is wrapped as
/// `SELECT 1 FROM (query) LIMIT 1`, so any query shape works and reading
/// stops at the first row.
fn has_rows(q: &Select, run: &mut Runner) -> Result<Option<bool>> {
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
        windows: Vec::new(),
    };
    Ok(run(&wrapper)?.map(|rows| !rows.is_empty()))
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
