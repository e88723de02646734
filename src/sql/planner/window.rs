//! Planning window functions: `f(...) OVER (...)` in a SELECT list or ORDER
//! BY. The binder hands each call here with its parts bound; named windows
//! (`WINDOW w AS (...)`) are resolved before binding, and frames are checked
//! and their offsets computed at plan time.
//!
//! A Window node sits between the aggregation (if any) and the projection:
//! its rows are its input rows followed by one value per call. While the
//! select list is bound, a call is a column at [`WINDOW_SLOT`] + its number;
//! [`place_calls`] moves those columns behind the input once its width is
//! known.

use super::bind::infer_type;
use super::plan::{AggregateFunction, SortKey};
use crate::sql::error::{Result, SqlError};
pub use crate::sql::parser::ast::FrameUnits;
use crate::sql::parser::ast::{self, WindowSpec};
use crate::sql::types::{DataType, Expr, Value};

/// Where the columns of window calls start while the select list is bound.
pub const WINDOW_SLOT: usize = usize::MAX / 2;

#[derive(Clone, Debug)]
pub struct WindowCall {
    pub function: WindowFunction,
    /// The function's arguments (lag's offset and default too), bound over
    /// the Window node's input.
    pub args: Vec<Expr>,
    pub partition_by: Vec<Expr>,
    pub order_by: Vec<SortKey>,
    pub frame: Frame,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WindowFunction {
    RowNumber,
    Rank,
    DenseRank,
    PercentRank,
    CumeDist,
    Ntile,
    Lag,
    Lead,
    FirstValue,
    LastValue,
    NthValue,
    Aggregate(AggregateFunction),
}

/// A frame with its offsets evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub units: FrameUnits,
    pub start: FrameBound,
    pub end: FrameBound,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FrameBound {
    UnboundedPreceding,
    Preceding(Value),
    CurrentRow,
    Following(Value),
    UnboundedFollowing,
}

impl WindowFunction {
    fn lookup(name: &str) -> Option<WindowFunction> {
        use WindowFunction::*;
        Some(match name.to_ascii_lowercase().as_str() {
            "row_number" => RowNumber,
            "rank" => Rank,
            "dense_rank" => DenseRank,
            "percent_rank" => PercentRank,
            "cume_dist" => CumeDist,
            "ntile" => Ntile,
            "lag" => Lag,
            "lead" => Lead,
            "first_value" => FirstValue,
            "last_value" => LastValue,
            "nth_value" => NthValue,
            other => Aggregate(AggregateFunction::lookup(other)?),
        })
    }

    pub fn name(self) -> &'static str {
        use WindowFunction::*;
        match self {
            RowNumber => "row_number",
            Rank => "rank",
            DenseRank => "dense_rank",
            PercentRank => "percent_rank",
            CumeDist => "cume_dist",
            Ntile => "ntile",
            Lag => "lag",
            Lead => "lead",
            FirstValue => "first_value",
            LastValue => "last_value",
            NthValue => "nth_value",
            Aggregate(a) => a.name(),
        }
    }

    /// The numbers of arguments it takes.
    fn arity(self) -> (usize, usize) {
        use WindowFunction::*;
        match self {
            RowNumber | Rank | DenseRank | PercentRank | CumeDist => (0, 0),
            Ntile | FirstValue | LastValue | Aggregate(_) => (1, 1),
            Lag | Lead => (1, 3),
            NthValue => (2, 2),
        }
    }

    /// Whether its value depends on the frame (the others look at the whole
    /// partition, as in SQLite).
    pub fn uses_frame(self) -> bool {
        matches!(
            self,
            WindowFunction::FirstValue
                | WindowFunction::LastValue
                | WindowFunction::NthValue
                | WindowFunction::Aggregate(_)
        )
    }
}

impl WindowCall {
    /// The type of its values, given the types of its input row.
    pub fn data_type(&self, input: &[Option<DataType>]) -> Option<DataType> {
        use WindowFunction::*;
        let arg = || self.args.first().and_then(|a| infer_type(a, input));
        match self.function {
            RowNumber | Rank | DenseRank | Ntile => Some(DataType::Int),
            Aggregate(AggregateFunction::Count | AggregateFunction::CountStar) => Some(DataType::Int),
            PercentRank | CumeDist | Aggregate(AggregateFunction::Avg) => Some(DataType::Float),
            Aggregate(AggregateFunction::Sum) => match arg() {
                Some(DataType::Int) => Some(DataType::Int),
                _ => Some(DataType::Float),
            },
            _ => arg(),
        }
    }

    /// `name(args) OVER (...)` for EXPLAIN.
    pub fn describe(&self, labels: &[String]) -> String {
        let args: Vec<String> = self.args.iter().map(|a| a.format(labels)).collect();
        let args = match self.function {
            WindowFunction::Aggregate(AggregateFunction::CountStar) => "*".to_string(),
            _ => args.join(", "),
        };
        let mut parts = Vec::new();
        if !self.partition_by.is_empty() {
            let p: Vec<String> = self.partition_by.iter().map(|e| e.format(labels)).collect();
            parts.push(format!("PARTITION BY {}", p.join(", ")));
        }
        if !self.order_by.is_empty() {
            let o: Vec<String> = self
                .order_by
                .iter()
                .map(|k| format!("{}{}", k.expr.format(labels), if k.descending { " DESC" } else { "" }))
                .collect();
            parts.push(format!("ORDER BY {}", o.join(", ")));
        }
        if self.function.uses_frame() {
            let units = match self.frame.units {
                FrameUnits::Rows => "ROWS",
                FrameUnits::Range => "RANGE",
            };
            parts.push(format!(
                "{units} BETWEEN {} AND {}",
                describe_bound(&self.frame.start),
                describe_bound(&self.frame.end)
            ));
        }
        format!("{}({args}) OVER ({})", self.function.name(), parts.join(" "))
    }
}

fn describe_bound(b: &FrameBound) -> String {
    match b {
        FrameBound::UnboundedPreceding => "UNBOUNDED PRECEDING".into(),
        FrameBound::Preceding(v) => format!("{v} PRECEDING"),
        FrameBound::CurrentRow => "CURRENT ROW".into(),
        FrameBound::Following(v) => format!("{v} FOLLOWING"),
        FrameBound::UnboundedFollowing => "UNBOUNDED FOLLOWING".into(),
    }
}

/// Checks a call and builds it from its bound parts. `frame` has constant
/// offsets, evaluated by the caller.
pub fn plan_call(
    name: &str,
    args: Vec<Expr>,
    star: bool,
    distinct: bool,
    partition_by: Vec<Expr>,
    order_by: Vec<SortKey>,
    frame: Option<Frame>,
) -> Result<WindowCall> {
    let function = WindowFunction::lookup(name).ok_or_else(|| {
        SqlError::Invalid(format!(
            "{name}() is not a window function (OVER takes row_number, rank, dense_rank, percent_rank, cume_dist, ntile, lag, lead, first_value, last_value, nth_value, count, sum, avg, min and max)"
        ))
    })?;
    if distinct {
        return Err(SqlError::Invalid(format!(
            "DISTINCT is not supported in the window function {name}()"
        )));
    }
    let function = match (function, star) {
        (WindowFunction::Aggregate(AggregateFunction::Count), true) => {
            WindowFunction::Aggregate(AggregateFunction::CountStar)
        }
        (_, true) => return Err(SqlError::Invalid(format!("{name}(*) is not valid; only count(*) is"))),
        (f, false) => {
            let (least, most) = f.arity();
            if args.len() < least || args.len() > most {
                let wanted = match least == most {
                    true => format!("{least}"),
                    false => format!("{least} to {most}"),
                };
                return Err(SqlError::Invalid(format!(
                    "{name}() takes {wanted} argument(s), got {}",
                    args.len()
                )));
            }
            f
        }
    };
    let frame = frame.unwrap_or(Frame {
        units: FrameUnits::Range,
        start: FrameBound::UnboundedPreceding,
        end: FrameBound::CurrentRow,
    });
    check_frame(&frame, &order_by)?;
    Ok(WindowCall {
        function,
        args,
        partition_by,
        order_by,
        frame,
    })
}

fn check_frame(frame: &Frame, order_by: &[SortKey]) -> Result<()> {
    use FrameBound::*;
    let rank = |b: &FrameBound| match b {
        UnboundedPreceding => 0,
        Preceding(_) => 1,
        CurrentRow => 2,
        Following(_) => 3,
        UnboundedFollowing => 4,
    };
    if frame.start == UnboundedFollowing || frame.end == UnboundedPreceding || rank(&frame.start) > rank(&frame.end) {
        return Err(SqlError::Invalid(format!(
            "a window frame cannot start at {} and end at {}",
            describe_bound(&frame.start),
            describe_bound(&frame.end)
        )));
    }
    for bound in [&frame.start, &frame.end] {
        if let Preceding(v) | Following(v) = bound {
            let ok = match (frame.units, v) {
                (FrameUnits::Rows, Value::Int(n)) => *n >= 0,
                (FrameUnits::Range, Value::Int(n)) => *n >= 0,
                (FrameUnits::Range, Value::Float(f)) => *f >= 0.0,
                _ => false,
            };
            if !ok {
                let what = match frame.units {
                    FrameUnits::Rows => "a non-negative integer",
                    FrameUnits::Range => "a non-negative number",
                };
                return Err(SqlError::Invalid(format!("a frame offset must be {what}, got {v}")));
            }
            if frame.units == FrameUnits::Range && order_by.len() != 1 {
                return Err(SqlError::Invalid(
                    "RANGE with an offset needs exactly one ORDER BY expression".into(),
                ));
            }
        }
    }
    Ok(())
}

/// The window an OVER clause means, with the WINDOW clause's named windows
/// resolved: `OVER w` is w; `OVER (w ORDER BY ...)` adds to w what it lacks.
pub fn resolve(spec: &WindowSpec, named: &[(String, WindowSpec)]) -> Result<WindowSpec> {
    let Some(base_name) = &spec.base else {
        return Ok(spec.clone());
    };
    let Some((_, base)) = named.iter().find(|(n, _)| n == base_name) else {
        return Err(SqlError::Invalid(format!("window '{base_name}' is not defined")));
    };
    let base = resolve(base, &[])?;
    if !spec.partition_by.is_empty() {
        return Err(SqlError::Invalid(format!(
            "cannot override PARTITION BY of window '{base_name}'"
        )));
    }
    if !spec.order_by.is_empty() && !base.order_by.is_empty() {
        return Err(SqlError::Invalid(format!(
            "cannot override ORDER BY of window '{base_name}'"
        )));
    }
    if base.frame.is_some() && spec.frame.is_some() {
        return Err(SqlError::Invalid(format!(
            "cannot override the frame of window '{base_name}'"
        )));
    }
    Ok(WindowSpec {
        base: None,
        partition_by: base.partition_by,
        order_by: if spec.order_by.is_empty() {
            base.order_by
        } else {
            spec.order_by.clone()
        },
        frame: spec.frame.clone().or(base.frame),
    })
}

/// A SELECT with every OVER name replaced by its window, or None when it
/// names none. Subqueries resolve their own.
pub fn with_named_windows(select: &ast::Select) -> Result<Option<ast::Select>> {
    let mut names = false;
    let mut exprs: Vec<&ast::Expr> = select
        .items
        .iter()
        .filter_map(|i| match i {
            ast::SelectItem::Expr { expr, .. } => Some(expr),
            _ => None,
        })
        .collect();
    exprs.extend(select.order_by.iter().map(|o| &o.expr));
    for e in exprs {
        visit(e, &mut |e| {
            if let ast::Expr::Function { over: Some(w), .. } = e {
                names |= w.base.is_some();
            }
        });
    }
    if !names {
        return Ok(None);
    }
    let mut out = select.clone();
    let windows = std::mem::take(&mut out.windows);
    let mut failed = None;
    let mut fix = |e: &mut ast::Expr| {
        if let ast::Expr::Function { over: Some(w), .. } = e {
            match resolve(w, &windows) {
                Ok(r) => **w = r,
                Err(err) => failed = Some(err),
            }
        }
    };
    for item in &mut out.items {
        if let ast::SelectItem::Expr { expr, .. } = item {
            visit_mut(expr, &mut fix);
        }
    }
    for o in &mut out.order_by {
        visit_mut(&mut o.expr, &mut fix);
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(Some(out)),
    }
}

fn visit(e: &ast::Expr, f: &mut impl FnMut(&ast::Expr)) {
    f(e);
    for c in e.children() {
        visit(c, f);
    }
}

fn visit_mut(e: &mut ast::Expr, f: &mut impl FnMut(&mut ast::Expr)) {
    f(e);
    for c in e.children_mut() {
        visit_mut(c, f);
    }
}

/// Moves the columns of window calls (bound at [`WINDOW_SLOT`]) to just
/// behind an input row of `width` columns.
pub fn place_calls(e: &mut Expr, width: usize) {
    e.walk_mut(&mut |e| {
        if let Expr::Column(i) = e
            && *i >= WINDOW_SLOT
        {
            *i = width + (*i - WINDOW_SLOT);
        }
    });
}
