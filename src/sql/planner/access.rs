//! Access-path selection: use the primary key or an index for equality and
//! range predicates instead of a full scan.
//!
//! The chosen path only narrows which rows are read; the full WHERE
//! predicate is still applied to every row read, so a path may return a
//! superset and stay correct.

use super::plan::{Access, ValueRange};
use crate::sql::types::{BinaryOp, DataType, Expr, Value, coerce};
use crate::storage::Table;
use std::cmp::Ordering;
use std::ops::Bound;

/// Splits a predicate into its AND-ed parts.
pub fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::And(l, r) => {
            let mut v = conjuncts(l);
            v.extend(conjuncts(r));
            v
        }
        e => vec![e],
    }
}

/// What the conjuncts say about one column.
#[derive(Default)]
struct ColumnFacts {
    /// `col = c` or `col IN (c1, c2)`: the values the column may take.
    equal: Option<Vec<Value>>,
    start: Option<Bound<Value>>,
    end: Option<Bound<Value>>,
}

/// Picks the cheapest access path for `table` given predicates over its
/// columns (column i of the row is column i of the table).
pub fn choose(table: &Table, predicates: &[&Expr]) -> Access {
    let facts = |column: usize| column_facts(table, column, predicates);

    // Whole primary key by equality: point lookups.
    if !table.primary_key.is_empty() {
        let per_column: Vec<Option<Vec<Value>>> = table.primary_key.iter().map(|&c| facts(c).equal).collect();
        if per_column.iter().all(Option::is_some) {
            let lists: Vec<Vec<Value>> = per_column.into_iter().flatten().collect();
            if let Some(keys) = cartesian(&lists) {
                return Access::KeyLookup(keys);
            }
        }
    }
    // Index equality, unique indexes and longer prefixes first.
    let mut best: Option<(usize, bool, Access)> = None;
    for index in &table.indexes {
        let mut lists = Vec::new();
        for &c in &index.columns {
            match facts(c).equal {
                Some(values) => lists.push(values),
                None => break,
            }
        }
        if lists.is_empty() {
            continue;
        }
        let whole_unique = index.unique && lists.len() == index.columns.len();
        let score = (lists.len(), whole_unique);
        if let Some(keys) = cartesian(&lists)
            && best.as_ref().is_none_or(|(n, u, _)| score > (*n, *u))
        {
            best = Some((
                score.0,
                score.1,
                Access::IndexLookup {
                    index: index.clone(),
                    keys,
                },
            ));
        }
    }
    if let Some((_, _, access)) = best {
        return access;
    }
    // A range on the first primary-key column, then on an index's first column.
    if let Some(&first) = table.primary_key.first()
        && let Some(range) = range_of(facts(first))
    {
        return Access::KeyRange(range);
    }
    for index in &table.indexes {
        if let Some(range) = range_of(facts(index.columns[0])) {
            return Access::IndexRange {
                index: index.clone(),
                range,
            };
        }
    }
    Access::Full
}

fn range_of(f: ColumnFacts) -> Option<ValueRange> {
    // Equality on the first of several key columns: every key with that
    // prefix (e.g. all readings of one sensor under PRIMARY KEY (sensor, ts)).
    if let Some([v]) = f.equal.as_deref() {
        return Some(ValueRange {
            start: Bound::Included(v.clone()),
            end: Bound::Included(v.clone()),
        });
    }
    if f.start.is_none() && f.end.is_none() {
        return None;
    }
    Some(ValueRange {
        start: f.start.unwrap_or(Bound::Unbounded),
        end: f.end.unwrap_or(Bound::Unbounded),
    })
}

/// Every combination of one value per column; None if there are too many.
fn cartesian(lists: &[Vec<Value>]) -> Option<Vec<Vec<Value>>> {
    let mut keys: Vec<Vec<Value>> = vec![Vec::new()];
    for list in lists {
        if keys.len() * list.len() > 1000 {
            return None;
        }
        keys = keys
            .into_iter()
            .flat_map(|k| {
                list.iter().map(move |v| {
                    let mut k = k.clone();
                    k.push(v.clone());
                    k
                })
            })
            .collect();
    }
    keys.sort();
    keys.dedup();
    Some(keys)
}

/// A constant converted exactly to the column's type, or None (then the
/// predicate is not used for access; the filter still applies).
fn key_value(e: &Expr, ty: DataType) -> Option<Value> {
    let Expr::Constant(v) = e else { return None };
    if v.is_null() {
        return None;
    }
    let converted = coerce(v.clone(), ty, "").ok()?;
    // Text keys must not be narrowed by a VARCHAR length check's absence;
    // integers must convert without loss (coerce checks both).
    Some(converted)
}

fn column_facts(table: &Table, column: usize, predicates: &[&Expr]) -> ColumnFacts {
    let ty = table.columns[column].data_type;
    // Integer columns compared with a fractional constant, and similar
    // inexact cases, are skipped by key_value returning None.
    let mut facts = ColumnFacts::default();
    let is_col = |e: &Expr| matches!(e, Expr::Column(c) if *c == column);
    for p in predicates {
        match p {
            Expr::Binary(op, l, r) if op.is_comparison() && *op != BinaryOp::NotEq => {
                let (op, value) = if is_col(l) {
                    (*op, key_value(r, ty))
                } else if is_col(r) {
                    (op.flip(), key_value(l, ty))
                } else {
                    continue;
                };
                let Some(v) = value else { continue };
                match op {
                    BinaryOp::Eq => facts.equal = Some(vec![v]),
                    BinaryOp::Gt => tighten_start(&mut facts.start, Bound::Excluded(v)),
                    BinaryOp::GtEq => tighten_start(&mut facts.start, Bound::Included(v)),
                    BinaryOp::Lt => tighten_end(&mut facts.end, Bound::Excluded(v)),
                    BinaryOp::LtEq => tighten_end(&mut facts.end, Bound::Included(v)),
                    _ => {}
                }
            }
            Expr::InList {
                expr,
                list,
                negated: false,
            } if is_col(expr) => {
                let values: Option<Vec<Value>> = list.iter().map(|e| key_value(e, ty)).collect();
                if let Some(values) = values
                    && facts.equal.is_none()
                {
                    facts.equal = Some(values);
                }
            }
            Expr::Between {
                expr,
                low,
                high,
                negated: false,
            } if is_col(expr) => {
                if let (Some(lo), Some(hi)) = (key_value(low, ty), key_value(high, ty)) {
                    tighten_start(&mut facts.start, Bound::Included(lo));
                    tighten_end(&mut facts.end, Bound::Included(hi));
                }
            }
            _ => {}
        }
    }
    facts
}

fn bound_value(b: &Bound<Value>) -> Option<&Value> {
    match b {
        Bound::Included(v) | Bound::Excluded(v) => Some(v),
        Bound::Unbounded => None,
    }
}

/// Keeps the larger of two lower bounds.
fn tighten_start(current: &mut Option<Bound<Value>>, new: Bound<Value>) {
    let replace = match current.as_ref().and_then(bound_value) {
        None => true,
        Some(old) => match bound_value(&new).map(|n| n.sort_cmp(old)) {
            Some(Ordering::Greater) => true,
            Some(Ordering::Equal) => matches!(new, Bound::Excluded(_)),
            _ => false,
        },
    };
    if replace {
        *current = Some(new);
    }
}

/// Keeps the smaller of two upper bounds.
fn tighten_end(current: &mut Option<Bound<Value>>, new: Bound<Value>) {
    let replace = match current.as_ref().and_then(bound_value) {
        None => true,
        Some(old) => match bound_value(&new).map(|n| n.sort_cmp(old)) {
            Some(Ordering::Less) => true,
            Some(Ordering::Equal) => matches!(new, Bound::Excluded(_)),
            _ => false,
        },
    };
    if replace {
        *current = Some(new);
    }
}
