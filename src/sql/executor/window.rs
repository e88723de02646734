//! Window functions: the input is read whole, each call sorts it by its
//! PARTITION BY and ORDER BY (stably, so ties keep input order) and gives a
//! value per row. Ranking functions, lag and lead look at the partition;
//! first_value, last_value, nth_value and aggregates at the row's frame.
//! Frames only move forward as the row does, so an aggregate adds the rows
//! entering its frame and takes back those leaving it (MIN and MAX, which
//! cannot take back, recompute when the frame's start moves).

use super::Rows;
use super::aggregate::Accumulator;
use super::query::compare_keys;
use crate::sql::error::{Result, SqlError};
use crate::sql::planner::{AggregateFunction, FrameBound, FrameUnits, SortKey, WindowCall, WindowFunction};
use crate::sql::types::{EvalContext, Expr, Row, Value};
use std::cmp::Ordering;

/// The input rows, each followed by the value of every call, in the order
/// of the first call's window.
pub fn window(source: Rows, calls: &[WindowCall], ctx: &EvalContext) -> Result<Vec<Row>> {
    let rows: Vec<Row> = source.collect::<Result<_>>()?;
    let mut columns = Vec::with_capacity(calls.len());
    let mut output_order = None;
    for call in calls {
        let (order, values) = compute(&rows, call, ctx)?;
        output_order.get_or_insert(order);
        columns.push(values);
    }
    let order = output_order.unwrap_or_else(|| (0..rows.len()).collect());
    let mut rows: Vec<Option<Row>> = rows.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(rows.len());
    for i in order {
        let mut row = rows[i].take().unwrap_or_default();
        for column in &mut columns {
            row.push(std::mem::replace(&mut column[i], Value::Null));
        }
        out.push(row);
    }
    Ok(out)
}

/// The values of one call by input row, and the window's row order.
fn compute(rows: &[Row], call: &WindowCall, ctx: &EvalContext) -> Result<(Vec<usize>, Vec<Value>)> {
    let eval = |exprs: &[Expr]| -> Result<Vec<Vec<Value>>> {
        rows.iter()
            .map(|row| exprs.iter().map(|e| e.evaluate(row, ctx)).collect())
            .collect()
    };
    let order_exprs: Vec<Expr> = call.order_by.iter().map(|k| k.expr.clone()).collect();
    let input = Input {
        partition: eval(&call.partition_by)?,
        keys: eval(&order_exprs)?,
        args: eval(&call.args)?,
    };
    // Partitions are grouped in ascending order; only equality matters.
    let by_partition: Vec<SortKey> = call
        .partition_by
        .iter()
        .map(|_| SortKey {
            expr: Expr::Constant(Value::Null),
            descending: false,
            nulls_first: true,
        })
        .collect();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        compare_keys(&input.partition[a], &input.partition[b], &by_partition)
            .then_with(|| compare_keys(&input.keys[a], &input.keys[b], &call.order_by))
    });
    let mut values = vec![Value::Null; rows.len()];
    let mut start = 0;
    while start < order.len() {
        let first = &input.partition[order[start]];
        let len = order[start..]
            .iter()
            .take_while(|&&r| compare_keys(first, &input.partition[r], &by_partition) == Ordering::Equal)
            .count();
        Partition::new(&order[start..start + len], call, &input).fill(&mut values)?;
        start += len;
    }
    Ok((order, values))
}

/// The values a call reads, by input row.
struct Input {
    partition: Vec<Vec<Value>>,
    keys: Vec<Vec<Value>>,
    args: Vec<Vec<Value>>,
}

/// One partition, in window order: `rows[i]` is the input row at position i.
struct Partition<'a> {
    rows: &'a [usize],
    call: &'a WindowCall,
    input: &'a Input,
    /// The positions [peer_start, peer_end) of the rows with the same ORDER
    /// BY values as position i.
    peer_start: Vec<usize>,
    peer_end: Vec<usize>,
}

impl<'a> Partition<'a> {
    fn new(rows: &'a [usize], call: &'a WindowCall, input: &'a Input) -> Partition<'a> {
        let m = rows.len();
        let (mut peer_start, mut peer_end) = (vec![0; m], vec![0; m]);
        let mut g = 0;
        while g < m {
            let mut h = g + 1;
            while h < m && compare_keys(&input.keys[rows[g]], &input.keys[rows[h]], &call.order_by) == Ordering::Equal {
                h += 1;
            }
            peer_start[g..h].fill(g);
            peer_end[g..h].fill(h);
            g = h;
        }
        Partition {
            rows,
            call,
            input,
            peer_start,
            peer_end,
        }
    }

    fn arg(&self, i: usize, n: usize) -> &Value {
        self.input.args[self.rows[i]].get(n).unwrap_or(&Value::Null)
    }

    fn fill(&self, values: &mut [Value]) -> Result<()> {
        use WindowFunction::*;
        let m = self.rows.len();
        let mut dense = 0;
        let mut acc: Option<Sliding> = None;
        for i in 0..m {
            let value = match self.call.function {
                RowNumber => Value::Int(i as i64 + 1),
                Rank => Value::Int(self.peer_start[i] as i64 + 1),
                DenseRank => {
                    if self.peer_start[i] == i {
                        dense += 1;
                    }
                    Value::Int(dense)
                }
                PercentRank if m > 1 => Value::Float(self.peer_start[i] as f64 / (m - 1) as f64),
                PercentRank => Value::Float(0.0),
                CumeDist => Value::Float(self.peer_end[i] as f64 / m as f64),
                Ntile => Value::Int(ntile(positive(self.arg(i, 0), "ntile", "argument")?, i, m)),
                Lag | Lead => self.shifted(i)?,
                FirstValue | LastValue | NthValue => {
                    let (lo, hi) = self.frame(i)?;
                    let at = match self.call.function {
                        FirstValue => Some(lo),
                        LastValue => hi.checked_sub(1),
                        _ => {
                            let n = positive(self.arg(i, 1), "nth_value", "second argument")?;
                            usize::try_from(n - 1).ok().and_then(|n| lo.checked_add(n))
                        }
                    };
                    match at {
                        Some(p) if p >= lo && p < hi => self.arg(p, 0).clone(),
                        _ => Value::Null,
                    }
                }
                Aggregate(function) => {
                    let (lo, hi) = self.frame(i)?;
                    let sliding = acc.get_or_insert_with(|| Sliding::new(function));
                    sliding.move_to(lo, hi, |p| self.arg(p, 0))?;
                    sliding.acc.value()?
                }
            };
            values[self.rows[i]] = value;
        }
        Ok(())
    }

    /// lag(x, offset, default) and lead(...); a negative offset looks the
    /// other way, as in SQLite.
    fn shifted(&self, i: usize) -> Result<Value> {
        let offset = match self.input.args[self.rows[i]].get(1) {
            None => 1,
            Some(Value::Null) => return Ok(Value::Null),
            Some(Value::Int(n)) => *n,
            Some(v) => {
                return Err(SqlError::Invalid(format!(
                    "the offset of {}() must be an integer, got {v}",
                    self.call.function.name()
                )));
            }
        };
        let offset = match self.call.function {
            WindowFunction::Lag => offset.checked_neg(),
            _ => Some(offset),
        };
        let target = offset
            .and_then(|o| (i as i64).checked_add(o))
            .and_then(|t| usize::try_from(t).ok())
            .filter(|&t| t < self.rows.len());
        Ok(match target {
            Some(t) => self.arg(t, 0).clone(),
            None => self.arg(i, 2).clone(),
        })
    }

    /// The frame of position i: positions [lo, hi), empty when lo >= hi.
    fn frame(&self, i: usize) -> Result<(usize, usize)> {
        let m = self.rows.len();
        let frame = &self.call.frame;
        let rows = |v: &Value| match v {
            Value::Int(n) => usize::try_from(*n).unwrap_or(usize::MAX),
            _ => 0,
        };
        let (lo, hi) = match frame.units {
            FrameUnits::Rows => {
                let lo = match &frame.start {
                    FrameBound::UnboundedPreceding => 0,
                    FrameBound::Preceding(k) => i.saturating_sub(rows(k)),
                    FrameBound::CurrentRow => i,
                    FrameBound::Following(k) => i.saturating_add(rows(k)),
                    FrameBound::UnboundedFollowing => m,
                };
                let hi = match &frame.end {
                    FrameBound::UnboundedPreceding => 0,
                    FrameBound::Preceding(k) => (i + 1).saturating_sub(rows(k)),
                    FrameBound::CurrentRow => i + 1,
                    FrameBound::Following(k) => i.saturating_add(rows(k)).saturating_add(1),
                    FrameBound::UnboundedFollowing => m,
                };
                (lo, hi)
            }
            FrameUnits::Range => {
                let lo = match &frame.start {
                    FrameBound::UnboundedPreceding => 0,
                    FrameBound::CurrentRow => self.peer_start[i],
                    FrameBound::Preceding(k) => self.range_edge(i, k, -1.0, true)?,
                    FrameBound::Following(k) => self.range_edge(i, k, 1.0, true)?,
                    FrameBound::UnboundedFollowing => m,
                };
                let hi = match &frame.end {
                    FrameBound::UnboundedPreceding => 0,
                    FrameBound::CurrentRow => self.peer_end[i],
                    FrameBound::Preceding(k) => self.range_edge(i, k, -1.0, false)?,
                    FrameBound::Following(k) => self.range_edge(i, k, 1.0, false)?,
                    FrameBound::UnboundedFollowing => m,
                };
                (lo, hi)
            }
        };
        let lo = lo.min(m);
        Ok((lo, hi.clamp(lo, m)))
    }

    /// For `RANGE k PRECEDING/FOLLOWING` (sign -1 or 1): the first position
    /// whose ORDER BY value is not before value(i) ± k in window order
    /// (`start`), or the first one past it (an end). A row whose value is
    /// NULL has its NULL peers as such a frame.
    fn range_edge(&self, i: usize, offset: &Value, sign: f64, start: bool) -> Result<usize> {
        let Some(key) = self.call.order_by.first() else {
            return Ok(if start { 0 } else { self.rows.len() });
        };
        let value_at = |p: usize| self.input.keys[self.rows[p]].first().unwrap_or(&Value::Null);
        let current = value_at(i);
        if current.is_null() {
            return Ok(if start { self.peer_start[i] } else { self.peer_end[i] });
        }
        let k = number(offset)?;
        // In window order, "preceding" means smaller values ascending and
        // larger ones descending.
        let target = match key.descending {
            false => number(current)? + sign * k,
            true => number(current)? - sign * k,
        };
        let mut error = None;
        let mut before_edge = |p: usize| -> bool {
            let v = value_at(p);
            if v.is_null() {
                return key.nulls_first;
            }
            let x = match number(v) {
                Ok(x) => x,
                Err(e) => {
                    error = Some(e);
                    return false;
                }
            };
            match (key.descending, start) {
                (false, true) => x < target,
                (false, false) => x <= target,
                (true, true) => x > target,
                (true, false) => x >= target,
            }
        };
        let edge = partition_point(self.rows.len(), &mut before_edge);
        match error {
            Some(e) => Err(e),
            None => Ok(edge),
        }
    }
}

/// The first of 0..n for which `before` is false (it is true, then false).
fn partition_point(n: usize, before: &mut impl FnMut(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

fn number(v: &Value) -> Result<f64> {
    match v {
        Value::Int(i) | Value::Timestamp(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        other => Err(SqlError::TypeMismatch(format!(
            "RANGE with an offset needs numbers to order by, got {} {other}",
            other.type_name()
        ))),
    }
}

fn positive(v: &Value, function: &str, which: &str) -> Result<i64> {
    match v {
        Value::Int(n) if *n > 0 => Ok(*n),
        other => Err(SqlError::Invalid(format!(
            "the {which} of {function}() must be a positive integer, got {other}"
        ))),
    }
}

/// The bucket (1-based) of position i of m rows split into n buckets whose
/// sizes differ by at most one, larger ones first.
fn ntile(n: i64, i: usize, m: usize) -> i64 {
    let n = usize::try_from(n).unwrap_or(usize::MAX).min(m.max(1));
    let size = m / n;
    let larger = m % n;
    let boundary = larger * (size + 1);
    let bucket = match i < boundary {
        true => i / (size + 1),
        false => larger + (i - boundary) / size.max(1),
    };
    bucket as i64 + 1
}

/// An aggregate over a frame that moves forward.
struct Sliding {
    function: AggregateFunction,
    acc: Accumulator,
    lo: usize,
    hi: usize,
}

impl Sliding {
    fn new(function: AggregateFunction) -> Sliding {
        Sliding {
            function,
            acc: Accumulator::for_window(function),
            lo: 0,
            hi: 0,
        }
    }

    fn move_to<'v>(&mut self, lo: usize, hi: usize, value: impl Fn(usize) -> &'v Value) -> Result<()> {
        let forward = lo >= self.lo && hi >= self.hi;
        if forward && (lo == self.lo || self.acc.can_remove()) {
            for p in self.hi..hi {
                self.acc.add(value(p).clone())?;
            }
            for p in self.lo..lo {
                self.acc.remove(value(p))?;
            }
        } else {
            self.acc = Accumulator::for_window(self.function);
            for p in lo..hi {
                self.acc.add(value(p).clone())?;
            }
        }
        self.lo = lo;
        self.hi = hi;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ntile;

    #[test]
    fn ntile_splits_like_sqlite() {
        let buckets = |n, m| (0..m).map(|i| ntile(n, i, m)).collect::<Vec<_>>();
        assert_eq!(buckets(3, 7), vec![1, 1, 1, 2, 2, 3, 3]);
        assert_eq!(buckets(4, 2), vec![1, 2]);
        assert_eq!(buckets(1, 3), vec![1, 1, 1]);
        assert_eq!(buckets(2, 4), vec![1, 1, 2, 2]);
    }
}
