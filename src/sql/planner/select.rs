//! Planning SELECT: FROM and joins, WHERE, aggregation, projection, ORDER
//! BY, DISTINCT, LIMIT and OFFSET.

use super::access;
use super::bind::{
    Aggregation, aggregate_type, bind, bind_aggregated, bind_windowed, contains_aggregate, evaluate_constant,
    infer_type,
};
use super::correlate::Correlation;
use super::plan::{Access, Node, OutputColumn, QueryPlan, SortKey};
use super::scope::{Scope, ScopeColumn};
use super::window;
use crate::sql::error::{Result, SqlError};
use crate::sql::parser::ast;
use crate::sql::types::{BinaryOp, DataType, Expr, Value};
use crate::storage::{Table, Transaction};
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

/// One table of the FROM clause: its scan and where its columns start in
/// the joined row.
struct Source {
    kind: SourceKind,
    alias: String,
    offset: usize,
}

enum SourceKind {
    Table(Table),
    /// A subquery in FROM (or a WITH name or a view), already planned.
    Derived(QueryPlan),
}

impl Source {
    fn scope(&self) -> Scope {
        match &self.kind {
            SourceKind::Table(t) => Scope::of_table(t, &self.alias),
            SourceKind::Derived(plan) => Scope {
                columns: plan
                    .columns
                    .iter()
                    .map(|c| ScopeColumn {
                        table: Some(self.alias.clone()),
                        name: c.name.clone(),
                        data_type: c.data_type,
                        hidden: false,
                    })
                    .collect(),
                context: None,
            },
        }
    }

    fn width(&self) -> usize {
        match &self.kind {
            SourceKind::Table(t) => t.columns.len(),
            SourceKind::Derived(plan) => plan.columns.len(),
        }
    }
}

/// A table's own WHERE conjuncts, over its own columns.
fn own_conjuncts(s: &Source, conjuncts: &[&Expr]) -> Vec<Expr> {
    conjuncts
        .iter()
        .filter(|c| columns_within(c, s.offset, s.offset + s.width()))
        .map(|c| {
            let mut c = (*c).clone();
            c.walk_mut(&mut |e| {
                if let Expr::Column(i) = e {
                    *i -= s.offset;
                }
            });
            c
        })
        .collect()
}

/// A rough size for a FROM source after its own WHERE conditions: a key or
/// index lookup finds few rows, a range some, a filter fewer than none.
fn estimate(s: &Source, conjuncts: &[&Expr]) -> u64 {
    let SourceKind::Table(table) = &s.kind else {
        return 1000;
    };
    let mine = own_conjuncts(s, conjuncts);
    let refs: Vec<&Expr> = mine.iter().collect();
    match access::choose(table, &refs) {
        Access::KeyLookup(_) | Access::IndexLookup { .. } => 10,
        Access::KeyRange(_) | Access::IndexRange { .. } => 300,
        Access::Full if !mine.is_empty() => 500,
        Access::Full => 1000,
    }
}

/// The order to join a comma join of three or more sources: start with the
/// smallest estimate, then keep adding the smallest source that a WHERE
/// condition links to those already joined (so each step can be a hash join),
/// and only when none is linked, the smallest of the rest. None when that is
/// the order written.
fn join_order(sources: &[Source], conjuncts: &[&Expr]) -> Option<Vec<usize>> {
    if sources.len() < 3 {
        return None;
    }
    let estimates: Vec<u64> = sources.iter().map(|s| estimate(s, conjuncts)).collect();
    let owner = |column: usize| {
        sources
            .iter()
            .position(|s| (s.offset..s.offset + s.width()).contains(&column))
    };
    // For each conjunct, the sources it reads.
    let reads: Vec<Vec<usize>> = conjuncts
        .iter()
        .map(|c| {
            let mut found = Vec::new();
            c.walk(&mut |e| {
                if let Expr::Column(i) = e
                    && let Some(s) = owner(*i)
                    && !found.contains(&s)
                {
                    found.push(s);
                }
            });
            found
        })
        .collect();
    let smallest = |candidates: &mut dyn Iterator<Item = usize>| candidates.min_by_key(|&i| (estimates[i], i));
    let mut order = vec![smallest(&mut (0..sources.len()))?];
    while order.len() < sources.len() {
        let linked = (0..sources.len()).filter(|i| {
            !order.contains(i)
                && reads
                    .iter()
                    .any(|r| r.len() > 1 && r.contains(i) && r.iter().all(|s| s == i || order.contains(s)))
        });
        let next = match smallest(&mut linked.into_iter()) {
            Some(i) => i,
            None => smallest(&mut (0..sources.len()).filter(|i| !order.contains(i)))?,
        };
        order.push(next);
    }
    (order.iter().enumerate().any(|(k, &i)| k != i)).then_some(order)
}

fn using_error(name: &str, side: &str, e: SqlError) -> SqlError {
    match e {
        SqlError::AmbiguousColumn(_) => SqlError::Invalid(format!(
            "USING column '{name}' appears more than once on the {side} side of the join"
        )),
        _ => SqlError::UnknownColumn(format!(
            "USING column '{name}' does not exist on the {side} side of the join"
        )),
    }
}

/// A view used in FROM: its SELECT, parsed and planned where it is used.
fn plan_view(txn: &Transaction, name: &str) -> Result<QueryPlan> {
    let view = txn
        .view(name)?
        .ok_or_else(|| SqlError::UnknownTable(name.to_string()))?;
    match crate::sql::parser::parse_one(&view.sql) {
        Ok(ast::Statement::Select(query)) => {
            plan_select(&query, txn).map_err(|e| SqlError::Invalid(format!("view '{name}' no longer works: {e}")))
        }
        Ok(_) | Err(_) => Err(SqlError::Storage(crate::storage::StorageError::Corrupt {
            space: "catalog".into(),
            detail: format!("view {name} does not hold a SELECT"),
        })),
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

/// Builds the scans and joins of the FROM clause and adds WHERE. Each table
/// gets an access path from the WHERE conjuncts that mention only it.
fn plan_from(select: &ast::Select, txn: &Transaction, outer: Option<Arc<Correlation>>) -> Result<(Node, Scope)> {
    let Some(from) = &select.from else {
        let scope = Scope::default().in_context(txn, outer);
        let mut node = Node::SingleRow;
        if let Some(f) = &select.filter {
            node = Node::Filter {
                source: Box::new(node),
                predicate: bind(f, &scope, "WHERE")?,
            };
        }
        return Ok((node, scope));
    };
    let refs = std::iter::once(&from.table).chain(from.joins.iter().map(|j| &j.table));
    let mut sources = Vec::new();
    let mut scope = Scope::default().in_context(txn, outer.clone());
    for r in refs {
        let kind = match &r.subquery {
            Some(query) => SourceKind::Derived(plan_select_within(query, txn, outer.clone())?),
            None => match txn.table(&r.name)? {
                Some(table) => SourceKind::Table(table),
                None => SourceKind::Derived(plan_view(txn, &r.name)?),
            },
        };
        let alias = r.alias.clone().unwrap_or_else(|| r.name.clone());
        if scope.has_table(&alias) {
            return Err(SqlError::Invalid(format!(
                "table name '{alias}' is used more than once in FROM: give it an alias"
            )));
        }
        let source = Source {
            kind,
            alias,
            offset: scope.len(),
        };
        scope.join(source.scope());
        sources.push(source);
    }

    // The right-hand copies of USING columns answer only to qualified names.
    for (join, source) in from.joins.iter().zip(&sources[1..]) {
        for name in &join.using {
            let r = source
                .scope()
                .resolve(None, name)
                .map_err(|e| using_error(name, "right", e))?;
            scope.columns[source.offset + r].hidden = true;
        }
    }

    let filter = match &select.filter {
        Some(f) => Some(bind(f, &scope, "WHERE")?),
        None => None,
    };
    let conjuncts: Vec<&Expr> = filter.as_ref().map(access::conjuncts).unwrap_or_default();

    // `filter_here`: apply the table's own WHERE conjuncts right above its
    // scan, so joins see fewer rows. Not for the right side of a LEFT JOIN,
    // where a filter such as `b.x IS NULL` must see the NULL-extended rows.
    let scan = |s: &Source, filter_here: bool| -> Node {
        let table = match &s.kind {
            SourceKind::Table(t) => t,
            // The whole WHERE clause is applied above the joins; a derived
            // table is read as planned.
            SourceKind::Derived(plan) => return plan.root.clone(),
        };
        let mine = own_conjuncts(s, &conjuncts);
        let refs: Vec<&Expr> = mine.iter().collect();
        let scan = Node::Scan {
            table: Arc::new(table.clone()),
            alias: s.alias.clone(),
            access: access::choose(table, &refs),
        };
        match mine.into_iter().reduce(|a, b| Expr::And(Box::new(a), Box::new(b))) {
            Some(predicate) if filter_here && !from.joins.is_empty() => Node::Filter {
                source: Box::new(scan),
                predicate,
            },
            _ => scan,
        }
    };

    // A comma join of three or more tables runs in an order chosen from the
    // WHERE clause (see `join_order`), then puts the columns back in place.
    let plain = from
        .joins
        .iter()
        .all(|j| j.on.is_none() && j.using.is_empty() && j.kind == ast::JoinKind::Inner);
    if plain && let Some(order) = join_order(&sources, &conjuncts) {
        let mut new_index = vec![0; scope.len()];
        let mut next = 0;
        for &i in &order {
            let (start, width) = (sources[i].offset, sources[i].width());
            for slot in &mut new_index[start..start + width] {
                *slot = next;
                next += 1;
            }
        }
        let remap = |e: &Expr| {
            let mut e = e.clone();
            e.walk_mut(&mut |x| {
                if let Expr::Column(i) = x {
                    *i = new_index[*i];
                }
            });
            e
        };
        let mut node = scan(&sources[order[0]], true);
        let mut width = sources[order[0]].width();
        for &i in &order[1..] {
            let right_width = sources[i].width();
            let total = width + right_width;
            let on = conjuncts
                .iter()
                .map(|c| remap(c))
                .filter(|c| {
                    columns_within(c, 0, total) && !columns_within(c, 0, width) && !columns_within(c, width, total)
                })
                .reduce(|a, b| Expr::And(Box::new(a), Box::new(b)));
            node = join_node(node, scan(&sources[i], true), on, false, width, right_width);
            width = total;
        }
        if let Some(predicate) = &filter {
            node = Node::Filter {
                source: Box::new(node),
                predicate: remap(predicate),
            };
        }
        node = Node::Project {
            source: Box::new(node),
            exprs: new_index.iter().map(|&i| Expr::Column(i)).collect(),
        };
        return Ok((node, scope));
    }

    let mut node = scan(&sources[0], true);
    let mut left_scope = sources[0].scope();
    left_scope.context = scope.context.clone();
    for (join, source) in from.joins.iter().zip(&sources[1..]) {
        let outer = join.kind == ast::JoinKind::Left;
        let right = scan(source, !outer);
        let right_width = source.width();
        let left_width = left_scope.len();
        let mut right_scope = source.scope();
        // USING (a): `left.a = right.a`, and the right copy of `a` is hidden.
        let mut equalities = Vec::new();
        for name in &join.using {
            let l = left_scope
                .resolve(None, name)
                .map_err(|e| using_error(name, "left", e))?;
            let r = right_scope
                .resolve(None, name)
                .map_err(|e| using_error(name, "right", e))?;
            right_scope.columns[r].hidden = true;
            equalities.push(Expr::Binary(
                BinaryOp::Eq,
                Box::new(Expr::Column(l)),
                Box::new(Expr::Column(left_width + r)),
            ));
        }
        left_scope.join(right_scope);
        let mut on = match &join.on {
            Some(e) => Some(bind(e, &left_scope, "ON")?),
            None => None,
        };
        // WHERE conjuncts linking this table to the ones before it join here
        // (as a hash join when one is an equality), instead of filtering a
        // cross product at the end. The whole WHERE still runs at the end.
        let total = left_width + right_width;
        let linking = conjuncts.iter().filter(|c| {
            !outer
                && columns_within(c, 0, total)
                && !columns_within(c, 0, left_width)
                && !columns_within(c, left_width, total)
        });
        for eq in equalities.into_iter().chain(linking.map(|c| (*c).clone())) {
            on = Some(match on {
                Some(prev) => Expr::And(Box::new(prev), Box::new(eq)),
                None => eq,
            });
        }
        node = join_node(node, right, on, outer, left_width, right_width);
    }
    if let Some(predicate) = filter {
        node = Node::Filter {
            source: Box::new(node),
            predicate,
        };
    }
    Ok((node, scope))
}

/// True if every column `e` reads lies in [start, end).
fn columns_within(e: &Expr, start: usize, end: usize) -> bool {
    let mut within = true;
    let mut any = false;
    e.walk(&mut |x| {
        if let Expr::Column(i) = x {
            any = true;
            within &= (start..end).contains(i);
        }
    });
    within && any
}

/// A hash join when ON has an equality between a left and a right
/// expression, a nested-loop join otherwise.
fn join_node(left: Node, right: Node, on: Option<Expr>, outer: bool, left_width: usize, right_width: usize) -> Node {
    if let Some(on) = &on {
        let parts = access::conjuncts(on);
        let total = left_width + right_width;
        let equi = parts.iter().position(|p| match p {
            Expr::Binary(BinaryOp::Eq, l, r) => {
                (columns_within(l, 0, left_width) && columns_within(r, left_width, total))
                    || (columns_within(r, 0, left_width) && columns_within(l, left_width, total))
            }
            _ => false,
        });
        if let Some(i) = equi
            && let Expr::Binary(_, l, r) = parts[i]
        {
            let (lk, mut rk) = if columns_within(l, 0, left_width) {
                ((**l).clone(), (**r).clone())
            } else {
                ((**r).clone(), (**l).clone())
            };
            rk.walk_mut(&mut |e| {
                if let Expr::Column(c) = e {
                    *c -= left_width;
                }
            });
            let rest: Vec<Expr> = parts
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| (*p).clone())
                .collect();
            let residual = rest.into_iter().reduce(|a, b| Expr::And(Box::new(a), Box::new(b)));
            return Node::HashJoin {
                left: Box::new(left),
                right: Box::new(right),
                left_key: lk,
                right_key: rk,
                residual,
                outer,
                right_width,
            };
        }
    }
    Node::NestedLoopJoin {
        left: Box::new(left),
        right: Box::new(right),
        predicate: on,
        outer,
        right_width,
    }
}
