//! Planning SELECT: FROM and joins, WHERE, aggregation, projection, ORDER
//! BY, DISTINCT, LIMIT and OFFSET.

use super::bind::{
    Aggregation, aggregate_type, bind, bind_aggregated, bind_windowed, contains_aggregate, evaluate_constant,
    infer_type,
};
use super::correlate::Correlation;
use super::from::plan_from;
use super::plan::{Node, OutputColumn, QueryPlan, SortKey};
use super::scope::Scope;
use super::window;
use crate::sql::error::{Result, SqlError};
use crate::sql::parser::ast;
use crate::sql::types::{DataType, Expr, Value};
use crate::storage::Transaction;
use std::sync::Arc;

pub fn plan_select(select: &ast::Select, txn: &Transaction) -> Result<QueryPlan> {
    plan_select_within(select, txn, None)
}

/// Plans a SELECT; `outer` links a subquery to the query around it, whose
/// columns it may read.
pub fn plan_select_within(
    select: &ast::Select,
    txn: &Transaction,
    outer: Option<Arc<Correlation>>,
) -> Result<QueryPlan> {
    if !select.with.is_empty() {
        return plan_select_within(&inline_with(select), txn, outer);
    }
    if !select.compound.is_empty() {
        return plan_compound(select, txn, outer);
    }
    if let Some(resolved) = window::with_named_windows(select)? {
        return plan_select_within(&resolved, txn, outer);
    }
    let (mut node, scope) = plan_from(select, txn, outer)?;

    let items = expand_items(&select.items, &scope, "SELECT")?;

    let aggregated = !select.group_by.is_empty()
        || select.having.is_some()
        || items.iter().any(|(e, _)| contains_aggregate(e))
        || select.order_by.iter().any(|o| contains_aggregate(&o.expr));

    let input_types: Vec<Option<DataType>> = scope.columns.iter().map(|c| c.data_type).collect();
    let mut exprs: Vec<Expr> = Vec::new();
    let mut hidden_order: Vec<(usize, &ast::OrderItem)> = Vec::new();
    let mut windows = Vec::new();
    let mut row_types: Vec<Option<DataType>>;

    // For each ORDER BY item, the output column it names, if any.
    let targets = select
        .order_by
        .iter()
        .map(|o| order_by_output(&o.expr, &items))
        .collect::<Result<Vec<_>>>()?;

    if aggregated {
        let groups = group_by_exprs(select, &items, &scope)?;
        let mut aggregates = Vec::new();
        let having = match &select.having {
            Some(h) => Some(bind_aggregated(
                h,
                Aggregation {
                    source: &scope,
                    groups: &groups,
                    aggregates: &mut aggregates,
                },
                "HAVING",
            )?),
            None => None,
        };
        for (e, _) in &items {
            exprs.push(bind_windowed(
                e,
                &scope,
                Some(Aggregation {
                    source: &scope,
                    groups: &groups,
                    aggregates: &mut aggregates,
                }),
                &mut windows,
                "SELECT",
            )?);
        }
        for (i, o) in select.order_by.iter().enumerate() {
            if targets[i].is_none() {
                hidden_order.push((exprs.len(), o));
                exprs.push(bind_windowed(
                    &with_aliases(&o.expr, &items, &scope),
                    &scope,
                    Some(Aggregation {
                        source: &scope,
                        groups: &groups,
                        aggregates: &mut aggregates,
                    }),
                    &mut windows,
                    "ORDER BY",
                )?);
            }
        }
        row_types = groups.iter().map(|g| infer_type(g, &input_types)).collect();
        row_types.extend(aggregates.iter().map(|a| aggregate_type(a, &input_types)));
        node = Node::Aggregate {
            source: Box::new(node),
            group_by: groups,
            aggregates,
        };
        if let Some(predicate) = having {
            node = Node::Filter {
                source: Box::new(node),
                predicate,
            };
        }
    } else {
        for (e, _) in &items {
            exprs.push(bind_windowed(e, &scope, None, &mut windows, "SELECT")?);
        }
        for (i, o) in select.order_by.iter().enumerate() {
            if targets[i].is_none() {
                hidden_order.push((exprs.len(), o));
                let e = with_aliases(&o.expr, &items, &scope);
                exprs.push(bind_windowed(&e, &scope, None, &mut windows, "ORDER BY")?);
            }
        }
        row_types = input_types;
    }
    if !windows.is_empty() {
        let width = row_types.len();
        exprs.iter_mut().for_each(|e| window::place_calls(e, width));
        let types: Vec<Option<DataType>> = windows.iter().map(|w| w.data_type(&row_types)).collect();
        row_types.extend(types);
        node = Node::Window {
            source: Box::new(node),
            calls: windows,
        };
    }

    let columns: Vec<OutputColumn> = items
        .iter()
        .zip(&exprs)
        .map(|((_, name), e)| OutputColumn {
            name: name.clone(),
            data_type: infer_type(e, &row_types),
        })
        .collect();
    let visible = items.len();
    node = Node::Project {
        source: Box::new(node),
        exprs,
    };

    if select.distinct {
        if !hidden_order.is_empty() {
            return Err(SqlError::Invalid(
                "for SELECT DISTINCT, ORDER BY expressions must appear in the select list".into(),
            ));
        }
        node = Node::Distinct { source: Box::new(node) };
    }
    if !select.order_by.is_empty() {
        let mut hidden = hidden_order.iter();
        let keys = select
            .order_by
            .iter()
            .zip(&targets)
            .map(|(o, target)| {
                let position = match target {
                    Some(p) => *p,
                    None => hidden.next().map(|(p, _)| *p).unwrap_or(0),
                };
                SortKey {
                    expr: Expr::Column(position),
                    descending: o.descending,
                    nulls_first: o.nulls_first.unwrap_or(!o.descending),
                }
            })
            .collect();
        node = Node::Sort {
            source: Box::new(node),
            keys,
        };
    }
    if !hidden_order.is_empty() {
        node = Node::Project {
            source: Box::new(node),
            exprs: (0..visible).map(Expr::Column).collect(),
        };
    }
    Ok(QueryPlan {
        root: limited(node, select)?,
        columns,
    })
}

/// Select items (or RETURNING items) as AST expressions, wildcards
/// expanded over `scope`, each with its output column name.
pub(super) fn expand_items(
    select_items: &[ast::SelectItem],
    scope: &Scope,
    clause: &str,
) -> Result<Vec<(ast::Expr, String)>> {
    let mut items: Vec<(ast::Expr, String)> = Vec::new();
    for item in select_items {
        match item {
            ast::SelectItem::Wildcard | ast::SelectItem::QualifiedWildcard(_) => {
                let only = match item {
                    ast::SelectItem::QualifiedWildcard(t) => {
                        if !scope.has_table(t) {
                            return Err(SqlError::UnknownTable(format!("{t} (in {t}.*)")));
                        }
                        Some(t.as_str())
                    }
                    _ => None,
                };
                if scope.is_empty() {
                    return Err(SqlError::Invalid(format!("{clause} * needs a FROM clause")));
                }
                for c in &scope.columns {
                    let shown = match only {
                        None => !c.hidden,
                        Some(t) => c.table.as_deref() == Some(t),
                    };
                    if shown {
                        let e = ast::Expr::Column {
                            table: c.table.clone(),
                            name: c.name.clone(),
                        };
                        items.push((e, c.name.clone()));
                    }
                }
            }
            ast::SelectItem::Expr { expr, alias } => {
                let name = match (alias, expr) {
                    (Some(a), _) => a.clone(),
                    (None, ast::Expr::Column { name, .. }) => name.clone(),
                    (None, e) => e.to_string(),
                };
                items.push((expr.clone(), name));
            }
        }
    }
    Ok(items)
}

/// Applies OFFSET and LIMIT.
fn limited(mut node: Node, select: &ast::Select) -> Result<Node> {
    if let Some(offset) = &select.offset {
        let count = count_of(offset, "OFFSET")?;
        if count > 0 {
            node = Node::Offset {
                source: Box::new(node),
                count,
            };
        }
    }
    if let Some(limit) = &select.limit {
        node = Node::Limit {
            source: Box::new(node),
            count: count_of(limit, "LIMIT")?,
        };
    }
    Ok(node)
}

/// SELECTs joined by UNION [ALL], INTERSECT or EXCEPT, left to right. The
/// result has the first SELECT's column names; ORDER BY may name those
/// columns or their positions.
fn plan_compound(select: &ast::Select, txn: &Transaction, outer: Option<Arc<Correlation>>) -> Result<QueryPlan> {
    let mut first = select.clone();
    first.order_by.clear();
    first.limit = None;
    first.offset = None;
    first.compound.clear();
    let QueryPlan { mut root, mut columns } = plan_select_within(&first, txn, outer.clone())?;
    for (op, other) in &select.compound {
        let plan = plan_select_within(other, txn, outer.clone())?;
        if plan.columns.len() != columns.len() {
            return Err(SqlError::Invalid(format!(
                "each SELECT of a {} must have the same number of columns: {} and {}",
                op.keyword(),
                columns.len(),
                plan.columns.len()
            )));
        }
        for (c, o) in columns.iter_mut().zip(&plan.columns) {
            c.data_type = c.data_type.or(o.data_type);
        }
        root = Node::SetOp {
            op: *op,
            left: Box::new(root),
            right: Box::new(plan.root),
        };
    }
    if !select.order_by.is_empty() {
        let items: Vec<(ast::Expr, String)> = columns
            .iter()
            .map(|c| {
                let e = ast::Expr::Column {
                    table: None,
                    name: c.name.clone(),
                };
                (e, c.name.clone())
            })
            .collect();
        let keys = select
            .order_by
            .iter()
            .map(|o| {
                let position = order_by_output(&o.expr, &items)?.ok_or_else(|| {
                    SqlError::Invalid(format!(
                        "ORDER BY {} must name a result column of the compound SELECT, by name or position",
                        o.expr
                    ))
                })?;
                Ok(SortKey {
                    expr: Expr::Column(position),
                    descending: o.descending,
                    nulls_first: o.nulls_first.unwrap_or(!o.descending),
                })
            })
            .collect::<Result<_>>()?;
        root = Node::Sort {
            source: Box::new(root),
            keys,
        };
    }
    Ok(QueryPlan {
        root: limited(root, select)?,
        columns,
    })
}

/// Which output column an ORDER BY item names: a 1-based position, or an
/// output column name. None means "an expression over the input".
fn order_by_output(e: &ast::Expr, items: &[(ast::Expr, String)]) -> Result<Option<usize>> {
    match e {
        ast::Expr::Literal(ast::Literal::Int(k)) => {
            if *k < 1 || *k as usize > items.len() {
                return Err(SqlError::Invalid(format!(
                    "ORDER BY position {k} is not in the select list (1 to {})",
                    items.len()
                )));
            }
            Ok(Some(*k as usize - 1))
        }
        ast::Expr::Column { table: None, name } => {
            // A name shared by several output columns is resolved against the
            // input instead, which reports the ambiguity.
            let mut matches = items.iter().enumerate().filter(|(_, (_, n))| n == name);
            match (matches.next(), matches.next()) {
                (Some((i, _)), None) => Ok(Some(i)),
                _ => Ok(None),
            }
        }
        // The same expression as a select item (`SELECT DISTINCT sum(x)
        // ... ORDER BY sum(x)`) sorts by that output column.
        _ => Ok(items.iter().position(|(item, _)| item == e)),
    }
}

/// An ORDER BY expression with the output aliases it uses replaced by
/// their expressions (`SELECT v AS a ... ORDER BY -a`), as SQLite reads
/// it. A name that the FROM sources have means their column, as in
/// SQLite; PostgreSQL takes aliases only as a whole ORDER BY item.
fn with_aliases(e: &ast::Expr, items: &[(ast::Expr, String)], scope: &Scope) -> ast::Expr {
    fn substitute(e: &mut ast::Expr, items: &[(ast::Expr, String)], scope: &Scope) {
        if let ast::Expr::Column { table: None, name } = e {
            if scope.resolve(None, name).is_err() {
                let mut named = items.iter().filter(|(_, n)| n == name);
                if let (Some((item, _)), None) = (named.next(), named.next()) {
                    *e = item.clone();
                }
            }
            return;
        }
        for child in e.children_mut() {
            substitute(child, items, scope);
        }
    }
    let mut e = e.clone();
    substitute(&mut e, items, scope);
    e
}

/// GROUP BY expressions, bound against the input; a GROUP BY item may also
/// be a select-list position or alias.
fn group_by_exprs(select: &ast::Select, items: &[(ast::Expr, String)], scope: &Scope) -> Result<Vec<Expr>> {
    let mut groups = Vec::new();
    for g in &select.group_by {
        let target: &ast::Expr = match g {
            ast::Expr::Literal(ast::Literal::Int(k)) => {
                let item = usize::try_from(*k)
                    .ok()
                    .and_then(|k| k.checked_sub(1))
                    .and_then(|i| items.get(i))
                    .ok_or_else(|| {
                        SqlError::Invalid(format!(
                            "GROUP BY position {k} is not in the select list (1 to {})",
                            items.len()
                        ))
                    })?;
                &item.0
            }
            ast::Expr::Column { table: None, name } if scope.resolve(None, name).is_err() => {
                match items.iter().find(|(_, n)| n == name) {
                    Some((e, _)) => e,
                    None => g,
                }
            }
            _ => g,
        };
        if contains_aggregate(target) {
            return Err(SqlError::Invalid(format!(
                "aggregate functions are not allowed in GROUP BY: {target}"
            )));
        }
        groups.push(bind(target, scope, "GROUP BY")?);
    }
    Ok(groups)
}

fn count_of(e: &ast::Expr, clause: &str) -> Result<u64> {
    match evaluate_constant(e, clause)? {
        Value::Int(n) if n >= 0 => Ok(n as u64),
        v => Err(SqlError::InvalidValue(format!(
            "{clause} must be a non-negative integer, got {v}"
        ))),
    }
}

/// Replaces references to WITH names in FROM clauses by the named queries,
/// so the rest of planning sees ordinary subqueries. A later WITH entry may
/// use an earlier one; a WITH name hides a table of the same name.
fn inline_with(select: &ast::Select) -> ast::Select {
    let mut s = select.clone();
    let mut defined: Vec<(String, ast::Select)> = Vec::new();
    for (name, query) in std::mem::take(&mut s.with) {
        let query = substitute(query, &defined);
        defined.retain(|(n, _)| *n != name);
        defined.push((name, query));
    }
    substitute(s, &defined)
}

fn substitute(mut s: ast::Select, names: &[(String, ast::Select)]) -> ast::Select {
    // Names this select defines itself hide the outer ones.
    let visible: Vec<(String, ast::Select)> = names
        .iter()
        .filter(|(n, _)| !s.with.iter().any(|(m, _)| m == n))
        .cloned()
        .collect();
    if let Some(from) = &mut s.from {
        for r in std::iter::once(&mut from.table).chain(from.joins.iter_mut().map(|j| &mut j.table)) {
            if let Some(sub) = r.subquery.take() {
                r.subquery = Some(Box::new(substitute(*sub, &visible)));
            } else if let Some((_, query)) = visible.iter().find(|(n, _)| *n == r.name) {
                r.alias = Some(r.alias.clone().unwrap_or_else(|| r.name.clone()));
                r.subquery = Some(Box::new(query.clone()));
            }
        }
    }
    s.compound = s
        .compound
        .into_iter()
        .map(|(op, c)| (op, substitute(c, &visible)))
        .collect();
    s.with = s.with.into_iter().map(|(n, q)| (n, substitute(q, &visible))).collect();
    s
}
