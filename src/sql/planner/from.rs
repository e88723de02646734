//! The FROM clause: scans with their access paths, joins (hash joins on
//! equalities, an order of its own for comma joins of three or more
//! tables), views and FROM subqueries, and WHERE pushed down to them.

use super::access;
use super::bind::bind;
use super::correlate::Correlation;
use super::plan::{Access, Node, QueryPlan};
use super::scope::{Scope, ScopeColumn};
use super::select::{plan_select, plan_select_within};
use crate::sql::error::{Result, SqlError};
use crate::sql::parser::ast;
use crate::sql::types::{BinaryOp, Expr};
use crate::storage::{Table, Transaction};
use std::sync::Arc;

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

/// Builds the scans and joins of the FROM clause and adds WHERE. Each table
/// gets an access path from the WHERE conjuncts that mention only it.
pub(super) fn plan_from(
    select: &ast::Select,
    txn: &Transaction,
    outer: Option<Arc<Correlation>>,
) -> Result<(Node, Scope)> {
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
            columns: None,
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
