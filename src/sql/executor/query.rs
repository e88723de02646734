//! Query nodes as row iterators.

use super::Rows;
use super::aggregate;
use super::window;
use crate::sql::error::{Result, SqlError};
use crate::sql::planner::{Access, Node, SetOperator, SortKey, ValueRange};
use crate::sql::types::{EvalContext, Expr, Row, Value};
use crate::storage::keycode::{encode_values, prefix_end};
use crate::storage::{KeyRange, RowIter, Table, Transaction};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

pub fn execute_node(node: Node, txn: &Transaction, ctx: EvalContext) -> Result<Rows> {
    Ok(match node {
        Node::Scan {
            table, access, columns, ..
        } => {
            let rows =
                scan_reading(txn, &table, &access, columns)?.map(|r| r.map(|(_, row)| row).map_err(SqlError::from));
            match ctx.deadline {
                None => Box::new(rows),
                Some(deadline) => Box::new(until(rows, deadline)),
            }
        }
        Node::SingleRow => Box::new(std::iter::once(Ok(Vec::new()))),
        Node::Filter { source, predicate } => {
            let source = execute_node(*source, txn, ctx)?;
            Box::new(source.filter_map(move |r| match r {
                Ok(row) => match matches(&predicate, &row, &ctx) {
                    Ok(true) => Some(Ok(row)),
                    Ok(false) => None,
                    Err(e) => Some(Err(e)),
                },
                Err(e) => Some(Err(e)),
            }))
        }
        Node::NestedLoopJoin {
            left,
            right,
            predicate,
            outer,
            right_width,
        } => {
            let left = execute_node(*left, txn, ctx)?;
            let right: Vec<Row> = execute_node(*right, txn, ctx)?.collect::<Result<_>>()?;
            Box::new(flat_map_results(left, move |l| {
                join_rows(&l, right.iter().map(Ok), predicate.as_ref(), outer, right_width, &ctx)
            }))
        }
        Node::HashJoin {
            left,
            right,
            left_key,
            right_key,
            residual,
            outer,
            right_width,
        } => {
            let left = execute_node(*left, txn, ctx)?;
            let mut table: BTreeMap<Value, Vec<Row>> = BTreeMap::new();
            for r in execute_node(*right, txn, ctx)? {
                let r = r?;
                let key = right_key.evaluate(&r, &ctx)?;
                if !key.is_null() {
                    table.entry(key).or_default().push(r);
                }
            }
            Box::new(flat_map_results(left, move |l| {
                let key = left_key.evaluate(&l, &ctx)?;
                let bucket = match key.is_null() {
                    true => &[][..],
                    false => table.get(&key).map(Vec::as_slice).unwrap_or_default(),
                };
                // The map groups by total order; confirm SQL equality (which
                // errors on incomparable types).
                let matching =
                    bucket.iter().filter_map(
                        |r| match r_key(&right_key, r, &ctx).and_then(|v| Ok(key.compare(&v)?)) {
                            Ok(Some(Ordering::Equal)) => Some(Ok(r)),
                            Ok(_) => None,
                            Err(e) => Some(Err(e)),
                        },
                    );
                join_rows(&l, matching, residual.as_ref(), outer, right_width, &ctx)
            }))
        }
        Node::Aggregate {
            source,
            group_by,
            aggregates,
        } => {
            let rows = match *source {
                Node::Scan {
                    table,
                    access: Access::Full,
                    columns,
                    ..
                } => aggregate_scan(txn, &table, columns.as_deref(), None, &group_by, &aggregates, &ctx)?,
                Node::Filter { source, predicate } => match *source {
                    Node::Scan {
                        table,
                        access: Access::Full,
                        columns,
                        ..
                    } => aggregate_scan(
                        txn,
                        &table,
                        columns.as_deref(),
                        Some(&predicate),
                        &group_by,
                        &aggregates,
                        &ctx,
                    )?,
                    source => {
                        let filter = Node::Filter {
                            source: Box::new(source),
                            predicate,
                        };
                        aggregate::aggregate(execute_node(filter, txn, ctx)?, &group_by, &aggregates, &ctx)?
                    }
                },
                source => {
                    let source = execute_node(source, txn, ctx)?;
                    aggregate::aggregate(source, &group_by, &aggregates, &ctx)?
                }
            };
            Box::new(rows.into_iter().map(Ok))
        }
        Node::Window { source, calls } => {
            let source = execute_node(*source, txn, ctx)?;
            Box::new(window::window(source, &calls, &ctx)?.into_iter().map(Ok))
        }
        Node::Project { source, exprs } => {
            let source = execute_node(*source, txn, ctx)?;
            Box::new(source.map(move |r| {
                let row = r?;
                exprs.iter().map(|e| e.evaluate(&row, &ctx)).collect()
            }))
        }
        Node::Sort { source, keys } => {
            let source = execute_node(*source, txn, ctx)?;
            Box::new(sort(source, &keys, &ctx)?.into_iter().map(Ok))
        }
        Node::Distinct { source } => {
            let source = execute_node(*source, txn, ctx)?;
            let mut seen: BTreeSet<Row> = BTreeSet::new();
            Box::new(source.filter(move |r| match r {
                Ok(row) => seen.insert(row.clone()),
                Err(_) => true,
            }))
        }
        Node::SetOp { op, left, right } => {
            let left = execute_node(*left, txn, ctx)?;
            let right = execute_node(*right, txn, ctx)?;
            set_operation(op, left, right)?
        }
        Node::Offset { source, count } => {
            let source = execute_node(*source, txn, ctx)?;
            Box::new(source.skip(usize::try_from(count).unwrap_or(usize::MAX)))
        }
        Node::Limit { source, count } => {
            let source = execute_node(*source, txn, ctx)?;
            Box::new(source.take(usize::try_from(count).unwrap_or(usize::MAX)))
        }
    })
}

/// UNION ALL streams both inputs; the others keep a set of rows (the right
/// input's for INTERSECT and EXCEPT, the rows seen so far for UNION).
fn set_operation(op: SetOperator, left: Rows, right: Rows) -> Result<Rows> {
    Ok(match op {
        SetOperator::UnionAll => Box::new(left.chain(right)),
        SetOperator::Union => {
            let mut seen: BTreeSet<Row> = BTreeSet::new();
            Box::new(left.chain(right).filter(move |r| match r {
                Ok(row) => seen.insert(row.clone()),
                Err(_) => true,
            }))
        }
        SetOperator::Intersect | SetOperator::Except => {
            let other: BTreeSet<Row> = right.collect::<Result<_>>()?;
            let keep_present = op == SetOperator::Intersect;
            let mut seen: BTreeSet<Row> = BTreeSet::new();
            Box::new(left.filter(move |r| match r {
                Ok(row) => other.contains(row) == keep_present && seen.insert(row.clone()),
                Err(_) => true,
            }))
        }
    })
}

fn r_key(key: &Expr, row: &Row, ctx: &EvalContext) -> Result<Value> {
    key.evaluate(row, ctx)
}

/// One left row joined with its candidate right rows: those for which
/// `predicate` holds, or (for an outer join with none) the row padded with
/// NULLs.
fn join_rows<'a>(
    left: &Row,
    candidates: impl Iterator<Item = Result<&'a Row>>,
    predicate: Option<&Expr>,
    outer: bool,
    right_width: usize,
    ctx: &EvalContext,
) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for r in candidates {
        let joined = concat(left, r?);
        let keep = match predicate {
            Some(p) => matches(p, &joined, ctx)?,
            None => true,
        };
        if keep {
            out.push(joined);
        }
    }
    if outer && out.is_empty() {
        out.push(pad_nulls(left, right_width));
    }
    Ok(out)
}

/// WHERE semantics: only TRUE keeps a row; FALSE and NULL drop it.
pub fn matches(predicate: &Expr, row: &Row, ctx: &EvalContext) -> Result<bool> {
    Ok(predicate.evaluate(row, ctx)?.as_bool()? == Some(true))
}

fn concat(l: &Row, r: &Row) -> Row {
    let mut row = Vec::with_capacity(l.len() + r.len());
    row.extend_from_slice(l);
    row.extend_from_slice(r);
    row
}

fn pad_nulls(l: &Row, width: usize) -> Row {
    let mut row = l.clone();
    row.resize(l.len() + width, Value::Null);
    row
}

/// Maps each row to zero or more rows, passing errors through.
fn flat_map_results(
    source: Rows,
    mut f: impl FnMut(Row) -> Result<Vec<Row>> + Send + 'static,
) -> impl Iterator<Item = Result<Row>> + Send {
    source.flat_map(move |r| {
        let out: Vec<Result<Row>> = match r.and_then(&mut f) {
            Ok(rows) => rows.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        out
    })
}

/// The order of two rows' sort-key values under `keys` (NULLs placed as
/// each key says).
pub(super) fn compare_keys(a: &[Value], b: &[Value], keys: &[SortKey]) -> Ordering {
    for ((x, y), key) in a.iter().zip(b).zip(keys) {
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) if key.nulls_first => Ordering::Less,
            (true, false) => Ordering::Greater,
            (false, true) if key.nulls_first => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let o = x.sort_cmp(y);
                if key.descending { o.reverse() } else { o }
            }
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn sort(source: Rows, keys: &[SortKey], ctx: &EvalContext) -> Result<Vec<Row>> {
    let mut keyed: Vec<(Vec<Value>, Row)> = Vec::new();
    for r in source {
        let row = r?;
        let k = keys
            .iter()
            .map(|k| k.expr.evaluate(&row, ctx))
            .collect::<Result<Vec<_>>>()?;
        keyed.push((k, row));
    }
    keyed.sort_by(|(a, _), (b, _)| compare_keys(a, b, keys));
    Ok(keyed.into_iter().map(|(_, row)| row).collect())
}

/// Reads a table's (key, row) pairs through an access path.
/// Rows read until `deadline`, then one timeout error. The clock is read
/// every 16 rows.
fn until(rows: impl Iterator<Item = Result<Row>>, deadline: std::time::Instant) -> impl Iterator<Item = Result<Row>> {
    let mut read = 0u32;
    let mut expired = false;
    rows.map_while(move |row| {
        if expired {
            return None;
        }
        read = read.wrapping_add(1);
        if read.is_multiple_of(16) && std::time::Instant::now() > deadline {
            expired = true;
            return Some(Err(SqlError::QueryTimeout));
        }
        Some(row)
    })
}

/// An aggregate straight over a full scan (and its filter): each row is
/// decoded into one reused buffer, tested and folded into its group, with
/// no row allocated or passed between iterators. Same result as the
/// iterator path; it is only cheaper per row.
fn aggregate_scan(
    txn: &Transaction,
    table: &Table,
    columns: Option<&[bool]>,
    predicate: Option<&Expr>,
    group_by: &[Expr],
    aggregates: &[crate::sql::planner::Aggregate],
    ctx: &EvalContext,
) -> Result<Vec<Row>> {
    let mut groups = aggregate::Groups::new(group_by, aggregates, ctx);
    // The callback answers to storage, so a SQL error is kept here and the
    // scan is stopped.
    let mut failed: Option<SqlError> = None;
    let mut read = 0u32;
    let mut fold = |row: &Row| -> Result<bool> {
        read = read.wrapping_add(1);
        if read.is_multiple_of(1024) && ctx.deadline.is_some_and(|d| std::time::Instant::now() > d) {
            return Err(SqlError::QueryTimeout);
        }
        if let Some(p) = predicate
            && !matches(p, row, ctx)?
        {
            return Ok(true);
        }
        groups.add(row)?;
        Ok(true)
    };
    txn.visit_rows(
        table,
        (Bound::Unbounded, Bound::Unbounded),
        columns,
        &mut |row| match fold(row) {
            Ok(more) => Ok(more),
            Err(e) => {
                failed = Some(e);
                Ok(false)
            }
        },
    )?;
    match failed {
        Some(e) => Err(e),
        None => groups.finish(),
    }
}

pub fn scan(txn: &Transaction, table: &Table, access: &Access) -> Result<RowIter> {
    scan_reading(txn, table, access, None)
}

/// [`scan`], decoding only the columns marked in `columns` where the access
/// reads many rows (point and index lookups decode whole rows).
fn scan_reading(txn: &Transaction, table: &Table, access: &Access, columns: Option<Arc<[bool]>>) -> Result<RowIter> {
    Ok(match access {
        Access::Full => txn.scan_rows_reading(table, (Bound::Unbounded, Bound::Unbounded), columns)?,
        Access::KeyLookup(keys) => {
            let mut rows = Vec::new();
            for key in keys {
                let k = encode_values(key);
                if let Some(row) = txn.get_row(table, &k)? {
                    rows.push(Ok((k.into(), row)));
                }
            }
            Box::new(rows.into_iter())
        }
        Access::KeyRange(range) => txn.scan_rows_reading(table, byte_range(range), columns)?,
        Access::IndexLookup { index, keys } => {
            let mut rows = Vec::new();
            for key in keys {
                let prefix = encode_values(key);
                let end = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
                rows.extend(txn.scan_index(table, index, (Bound::Included(prefix), end))?);
            }
            Box::new(rows.into_iter())
        }
        Access::IndexRange { index, range } => txn.scan_index(table, index, byte_range(range))?,
    })
}

/// The key-byte range of a range over a key's first value.
fn byte_range(range: &ValueRange) -> KeyRange {
    let start = match &range.start {
        Bound::Included(v) => Bound::Included(encode_values([v])),
        // Past every key that starts with v.
        Bound::Excluded(v) => match prefix_end(&encode_values([v])) {
            Some(end) => Bound::Included(end),
            None => return (Bound::Excluded(Vec::new()), Bound::Excluded(Vec::new())),
        },
        Bound::Unbounded => Bound::Unbounded,
    };
    let end = match &range.end {
        Bound::Included(v) => prefix_end(&encode_values([v])).map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Excluded(v) => Bound::Excluded(encode_values([v])),
        Bound::Unbounded => Bound::Unbounded,
    };
    (start, end)
}

#[cfg(test)]
mod tests {
    use crate::sql::database::{ApplyContext, Database, StatementOutput};
    use crate::sql::types::Value;
    use crate::storage::SledEngine;
    use std::sync::Arc;

    fn rows(db: &Database, sql: &str) -> Vec<Vec<Value>> {
        let outcome = db.execute_script(sql, ApplyContext::default());
        assert!(outcome.error.is_none(), "{sql}: {:?}", outcome.error);
        match outcome
            .outputs
            .into_iter()
            .rev()
            .find(|o| matches!(o, StatementOutput::Rows { .. }))
        {
            Some(StatementOutput::Rows { rows, .. }) => rows,
            _ => panic!("{sql}: no rows"),
        }
    }

    /// The fused aggregate-over-scan path gives what the iterator path gives
    /// (a LIMIT in between keeps the iterator path), sees a transaction's own
    /// writes, and reports errors from the filter.
    #[test]
    fn aggregates_over_a_scan_match_the_iterator_path() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(Arc::new(SledEngine::open(dir.path()).unwrap())).unwrap();
        let values: Vec<String> = (0..3000)
            .map(|i| match i % 7 {
                0 => format!("({i}, NULL, NULL)"),
                _ => format!("({i}, 's{}', {}.5)", i % 13, i % 100),
            })
            .collect();
        rows(
            &db,
            &format!(
                "CREATE TABLE r (id INT PRIMARY KEY, sensor TEXT, value DOUBLE); INSERT INTO r VALUES {}; SELECT 1",
                values.join(",")
            ),
        );
        for (fused, iterated) in [
            (
                "SELECT count(*), count(value), sum(value), min(sensor), max(value) FROM r WHERE value > 25",
                "SELECT count(*), count(value), sum(value), min(sensor), max(value) FROM (SELECT * FROM r LIMIT 100000) t WHERE value > 25",
            ),
            (
                "SELECT sensor, avg(value), count(*) FROM r GROUP BY sensor",
                "SELECT sensor, avg(value), count(*) FROM (SELECT * FROM r LIMIT 100000) t GROUP BY sensor",
            ),
            (
                "SELECT count(*) FROM r WHERE id < 0",
                "SELECT count(*) FROM (SELECT * FROM r LIMIT 100000) t WHERE id < 0",
            ),
        ] {
            assert_eq!(rows(&db, fused), rows(&db, iterated), "{fused}");
        }
        assert_eq!(
            rows(&db, "SELECT count(*) FROM r WHERE id < 0"),
            vec![vec![Value::Int(0)]]
        );
        let before = rows(&db, "SELECT count(*) FROM r WHERE value > 1 AND id >= 1000");
        let Value::Int(n) = before[0][0] else { panic!("count") };
        let own = rows(
            &db,
            "BEGIN; DELETE FROM r WHERE id < 1000; INSERT INTO r VALUES (5000, 'new', 99.5); \
             SELECT count(*), max(value) FROM r WHERE value > 1; COMMIT",
        );
        assert_eq!(own, vec![vec![Value::Int(n + 1), Value::Float(99.5)]]);
        let outcome = db.execute_script("SELECT count(*) FROM r WHERE sensor + 1 > 0", ApplyContext::default());
        assert!(outcome.error.is_some(), "text + 1 must be an error, not skipped");
    }
}
