//! Correlated subqueries. A name that a subquery's own FROM does not have is
//! looked up in the query around it (and then in the one around that). Each
//! outer value found becomes a parameter of the subquery's plan
//! ([`Expr::Param`]); the subquery expression evaluates the values against
//! the outer row and runs the plan with them.

use super::access;
use super::plan::{Access, Node};
use super::scope::Scope;
use crate::sql::error::{Result, SqlError};
use crate::sql::types::{DataType, Expr, Value, coerce};
use crate::storage::Transaction;
use std::sync::{Arc, Mutex};

/// Where a query is planned: the data its subqueries read (a snapshot taken
/// when planning starts, so they see the data as the statement began) and,
/// for a subquery, the query around it.
pub struct QueryContext {
    pub txn: Transaction,
    pub outer: Option<Arc<Correlation>>,
}

impl std::fmt::Debug for QueryContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryContext")
            .field("correlated", &self.outer.is_some())
            .finish()
    }
}

/// The link from a subquery being planned to the expression it stands in.
pub struct Correlation {
    /// The names of the row the enclosing expression is evaluated against.
    scope: Scope,
    /// When the enclosing expression stands above an aggregation (SELECT
    /// items or HAVING of a grouped query), its GROUP BY expressions over
    /// `scope`: only those can be read, from their group slots.
    groups: Option<Vec<Expr>>,
    /// The outer values captured so far, as expressions over that row.
    args: Mutex<Vec<Expr>>,
}

impl Correlation {
    pub fn new(scope: Scope, groups: Option<Vec<Expr>>) -> Correlation {
        Correlation {
            scope,
            groups,
            args: Mutex::new(Vec::new()),
        }
    }

    /// `table.name` from the enclosing query (or further out), as a
    /// parameter of the subquery; None when no enclosing query has it.
    pub fn capture(&self, table: Option<&str>, name: &str) -> Result<Option<Expr>> {
        let arg = match self.scope.resolve(table, name) {
            Ok(i) => match &self.groups {
                None => Expr::Column(i),
                Some(groups) => match groups.iter().position(|g| *g == Expr::Column(i)) {
                    Some(slot) => Expr::Column(slot),
                    None => {
                        let shown = table.map_or(name.to_string(), |t| format!("{t}.{name}"));
                        return Err(SqlError::Invalid(format!(
                            "column '{shown}' is used in a subquery of a grouped query, so it must appear in \
                             the GROUP BY clause"
                        )));
                    }
                },
            },
            // `t.x` where this query has a `t` without an `x`: say so, rather
            // than that the subquery has no `t`.
            Err(e @ SqlError::UnknownColumn(_)) if table.is_some_and(|t| self.scope.has_table(t)) => return Err(e),
            Err(SqlError::UnknownColumn(_)) => match self.scope.resolve_outer(table, name)? {
                Some(param) => param,
                None => return Ok(None),
            },
            Err(e) => return Err(e),
        };
        let mut args = self.args.lock().unwrap_or_else(|e| e.into_inner());
        let k = match args.iter().position(|a| *a == arg) {
            Some(k) => k,
            None => {
                args.push(arg);
                args.len() - 1
            }
        };
        Ok(Some(Expr::Param(k)))
    }

    /// The captured outer values, in parameter order.
    pub fn into_args(self: Arc<Self>) -> Vec<Expr> {
        let args = &self.args;
        std::mem::take(&mut *args.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Fills a subquery plan's parameters with the outer values of one run, and
/// lets each table read use them: a scan under `col = $1` becomes a key or
/// index lookup once `$1` is known.
pub fn fill_params(root: &mut Node, params: &[Value]) {
    root.walk_mut(&mut |node| {
        let mut filled = false;
        node.exprs_mut(&mut |e| {
            e.walk_mut(&mut |x| {
                if let Expr::Param(k) = x
                    && let Some(v) = params.get(*k)
                {
                    *x = Expr::Constant(v.clone());
                    filled = true;
                }
            })
        });
        if filled
            && let Node::Filter { source, predicate } = node
            && let Node::Scan { table, access, .. } = source.as_mut()
        {
            *access = access::choose(table, &access::conjuncts(predicate));
        }
    });
}

/// For EXPLAIN: how each table read under a parameter is made once the
/// parameters are known, e.g. `readings AS r by IndexLookup USING
/// readings_sensor`. The path's kind does not depend on the values, so it
/// is found with stand-in values of the compared columns' types.
pub fn per_run_access(root: &Node) -> Vec<String> {
    let mut root = root.clone();
    let mut out = Vec::new();
    root.walk_mut(&mut |node| {
        let Node::Filter { source, predicate } = node else {
            return;
        };
        let Node::Scan { table, alias, .. } = source.as_ref() else {
            return;
        };
        let mut has_params = false;
        predicate.walk(&mut |e| has_params |= matches!(e, Expr::Param(_)));
        if !has_params {
            return;
        }
        let mut sampled = predicate.clone();
        sampled.walk_mut(&mut |e| {
            if let Expr::Binary(op, l, r) = e
                && op.is_comparison()
            {
                match (l.as_mut(), r.as_mut()) {
                    (Expr::Column(c), p @ Expr::Param(_)) | (p @ Expr::Param(_), Expr::Column(c)) => {
                        if let Some(v) = table.columns.get(*c).and_then(|col| stand_in(col.data_type)) {
                            *p = Expr::Constant(v);
                        }
                    }
                    _ => {}
                }
            }
        });
        let access = access::choose(table, &access::conjuncts(&sampled));
        let how = match &access {
            Access::Full => return,
            Access::KeyLookup(_) => "PrimaryKeyLookup".to_string(),
            Access::KeyRange(_) => "PrimaryKeyRange".to_string(),
            Access::IndexLookup { index, .. } => format!("IndexLookup USING {}", index.name),
            Access::IndexRange { index, .. } => format!("IndexRange USING {}", index.name),
        };
        let name = if *alias == table.name {
            table.name.clone()
        } else {
            format!("{} AS {alias}", table.name)
        };
        out.push(format!("{name} by {how}"));
    });
    out
}

/// A value of the given type, standing in for a parameter.
fn stand_in(ty: DataType) -> Option<Value> {
    [
        Value::Int(0),
        Value::Float(0.0),
        Value::Text(String::new()),
        Value::Bool(false),
    ]
    .into_iter()
    .find_map(|v| coerce(v, ty, "").ok())
}
