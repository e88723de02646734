//! Grouping and aggregate functions, with SQL's NULL rules: aggregates skip
//! NULLs, count(*) counts rows, and SUM/AVG/MIN/MAX of no values are NULL.

use super::Rows;
use crate::sql::error::{Result, SqlError};
use crate::sql::planner::{Aggregate, AggregateFunction};
use crate::sql::types::{EvalContext, Expr, Row, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Groups come out in group-value order (a BTreeMap), so the result is
/// deterministic without an ORDER BY.
pub fn aggregate(source: Rows, group_by: &[Expr], aggregates: &[Aggregate], ctx: &EvalContext) -> Result<Vec<Row>> {
    let mut groups = Groups::new(group_by, aggregates, ctx);
    for r in source {
        groups.add(&r?)?;
    }
    groups.finish()
}

/// Rows folded into groups one at a time; [`aggregate`] over rows that are
/// lent rather than handed over (see `query::aggregate_scan`).
pub struct Groups<'a> {
    group_by: &'a [Expr],
    aggregates: &'a [Aggregate],
    ctx: &'a EvalContext,
    groups: BTreeMap<Vec<Value>, Vec<Accumulator>>,
}

impl<'a> Groups<'a> {
    pub fn new(group_by: &'a [Expr], aggregates: &'a [Aggregate], ctx: &'a EvalContext) -> Groups<'a> {
        let mut groups = BTreeMap::new();
        // Without GROUP BY there is one group, even over no rows (count = 0).
        if group_by.is_empty() {
            groups.insert(Vec::new(), aggregates.iter().map(Accumulator::new).collect());
        }
        Groups {
            group_by,
            aggregates,
            ctx,
            groups,
        }
    }

    pub fn add(&mut self, row: &Row) -> Result<()> {
        let accs = match self.group_by.is_empty() {
            // The one group: no key to build or look up per row.
            true => self
                .groups
                .values_mut()
                .next()
                .ok_or_else(|| SqlError::Invalid("no group".into()))?,
            false => {
                let key = self
                    .group_by
                    .iter()
                    .map(|g| g.evaluate(row, self.ctx))
                    .collect::<Result<Vec<_>>>()?;
                let aggregates = self.aggregates;
                self.groups
                    .entry(key)
                    .or_insert_with(|| aggregates.iter().map(Accumulator::new).collect())
            }
        };
        for (acc, a) in accs.iter_mut().zip(self.aggregates) {
            let v = match &a.arg {
                Some(e) => e.evaluate(row, self.ctx)?,
                None => Value::Null,
            };
            acc.add(v)?;
        }
        Ok(())
    }

    pub fn finish(self) -> Result<Vec<Row>> {
        self.groups
            .into_iter()
            .map(|(mut key, accs)| {
                for acc in accs {
                    key.push(acc.finish()?);
                }
                Ok(key)
            })
            .collect()
    }
}

pub(super) struct Accumulator {
    function: AggregateFunction,
    /// Values seen so far, for DISTINCT.
    seen: Option<BTreeSet<Value>>,
    count: i64,
    int_sum: Option<i64>,
    float_sum: Option<f64>,
    best: Option<Value>,
}

impl Accumulator {
    fn new(a: &Aggregate) -> Accumulator {
        Accumulator {
            seen: a.distinct.then(BTreeSet::new),
            ..Accumulator::for_window(a.function)
        }
    }

    /// One for a window function's frame (no DISTINCT there).
    pub(super) fn for_window(function: AggregateFunction) -> Accumulator {
        Accumulator {
            function,
            seen: None,
            count: 0,
            int_sum: None,
            float_sum: None,
            best: None,
        }
    }

    /// Whether [`Accumulator::remove`] works for it: not for MIN and MAX,
    /// whose frames are computed again when their start moves.
    pub(super) fn can_remove(&self) -> bool {
        !matches!(self.function, AggregateFunction::Min | AggregateFunction::Max) && self.seen.is_none()
    }

    /// Takes back a value added before, when a window frame's start moves
    /// past it. Once a sum has gone to floating point it stays there (as
    /// SQLite's does).
    pub(super) fn remove(&mut self, v: &Value) -> Result<()> {
        if self.function == AggregateFunction::CountStar {
            self.count -= 1;
            return Ok(());
        }
        if v.is_null() {
            return Ok(());
        }
        self.count -= 1;
        match (v, self.float_sum.as_mut()) {
            (Value::Int(i), Some(f)) => *f -= *i as f64,
            (Value::Float(x), Some(f)) => *f -= x,
            (Value::Int(i), None) => {
                let sum = self.int_sum.unwrap_or(0);
                match sum.checked_sub(*i) {
                    Some(s) => self.int_sum = Some(s),
                    None => {
                        self.float_sum = Some(sum as f64 - *i as f64);
                        self.int_sum = None;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn add(&mut self, v: Value) -> Result<()> {
        if self.function == AggregateFunction::CountStar {
            self.count += 1;
            return Ok(());
        }
        if v.is_null() {
            return Ok(());
        }
        if let Some(seen) = &mut self.seen
            && !seen.insert(v.clone())
        {
            return Ok(());
        }
        self.count += 1;
        match self.function {
            AggregateFunction::Sum | AggregateFunction::Avg => match v {
                Value::Int(i) if self.float_sum.is_none() => {
                    let sum = self
                        .int_sum
                        .unwrap_or(0)
                        .checked_add(i)
                        .ok_or_else(|| SqlError::Overflow(format!("{}() overflows BIGINT", self.function.name())));
                    match sum {
                        Ok(s) => self.int_sum = Some(s),
                        // AVG keeps going in floating point; SUM must not wrap.
                        Err(e) if self.function == AggregateFunction::Sum => return Err(e),
                        Err(_) => {
                            self.float_sum = Some(self.int_sum.unwrap_or(0) as f64 + i as f64);
                            self.int_sum = None;
                        }
                    }
                }
                Value::Int(i) => *self.float_sum.get_or_insert(0.0) += i as f64,
                Value::Float(f) => {
                    let carried = self.int_sum.take().unwrap_or(0) as f64;
                    *self.float_sum.get_or_insert(0.0) += carried + f;
                }
                v => {
                    return Err(SqlError::TypeMismatch(format!(
                        "{}() needs numbers, got {} {v}",
                        self.function.name(),
                        v.type_name()
                    )));
                }
            },
            AggregateFunction::Min | AggregateFunction::Max => {
                let better = match &self.best {
                    None => true,
                    Some(b) => {
                        let o = v.compare(b)?;
                        if self.function == AggregateFunction::Min {
                            o == Some(std::cmp::Ordering::Less)
                        } else {
                            o == Some(std::cmp::Ordering::Greater)
                        }
                    }
                };
                if better {
                    self.best = Some(v);
                }
            }
            AggregateFunction::Count | AggregateFunction::CountStar => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<Value> {
        self.value()
    }

    /// The aggregate of the values added so far.
    pub(super) fn value(&self) -> Result<Value> {
        Ok(match self.function {
            AggregateFunction::CountStar | AggregateFunction::Count => Value::Int(self.count),
            AggregateFunction::Sum if self.count == 0 => Value::Null,
            AggregateFunction::Sum => match (self.int_sum, self.float_sum) {
                (_, Some(f)) => Value::Float(f),
                (Some(i), None) => Value::Int(i),
                (None, None) => Value::Null,
            },
            AggregateFunction::Avg => {
                if self.count == 0 {
                    Value::Null
                } else {
                    let total = self.float_sum.unwrap_or(0.0) + self.int_sum.unwrap_or(0) as f64;
                    Value::Float(total / self.count as f64)
                }
            }
            AggregateFunction::Min | AggregateFunction::Max => self.best.clone().unwrap_or(Value::Null),
        })
    }
}
