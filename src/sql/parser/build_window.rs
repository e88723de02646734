//! Translation of window syntax (OVER, WINDOW, frames) into the AST.

use super::Rule;
use super::ast::{Frame, FrameBound, FrameUnits, WindowSpec};
use super::build::{expr, ident, next, order_item};
use crate::sql::error::{Result, SqlError};
use pest::iterators::Pair;

type P<'a> = Pair<'a, Rule>;

/// `OVER name` or `OVER (spec)`.
pub(super) fn over_clause(pair: P) -> Result<WindowSpec> {
    let inner = next(&mut pair.into_inner().skip(1), "OVER")?;
    match inner.as_rule() {
        Rule::window_spec => window_spec(inner),
        _ => Ok(WindowSpec {
            base: Some(ident(inner)),
            ..WindowSpec::default()
        }),
    }
}

/// `WINDOW a AS (...), b AS (...)`.
pub(super) fn window_clause(pair: P) -> Result<Vec<(String, WindowSpec)>> {
    let mut out: Vec<(String, WindowSpec)> = Vec::new();
    for def in pair.into_inner().filter(|p| p.as_rule() == Rule::window_def) {
        let mut parts = def
            .into_inner()
            .filter(|p| matches!(p.as_rule(), Rule::ident | Rule::window_spec));
        let name = ident(next(&mut parts, "WINDOW")?);
        let spec = window_spec(next(&mut parts, "WINDOW")?)?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(SqlError::Invalid(format!("window '{name}' is defined twice")));
        }
        out.push((name, spec));
    }
    Ok(out)
}

fn window_spec(pair: P) -> Result<WindowSpec> {
    let mut spec = WindowSpec::default();
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::window_base => spec.base = Some(ident(next(&mut p.into_inner(), "window")?)),
            Rule::partition_by => {
                spec.partition_by = p
                    .into_inner()
                    .filter(|q| q.as_rule() == Rule::expr)
                    .map(expr)
                    .collect::<Result<_>>()?
            }
            Rule::window_order => {
                spec.order_by = p
                    .into_inner()
                    .filter(|q| q.as_rule() == Rule::order_item)
                    .map(order_item)
                    .collect::<Result<_>>()?
            }
            Rule::frame => spec.frame = Some(frame(p)?),
            _ => {}
        }
    }
    Ok(spec)
}

/// A frame; a lone bound `ROWS n PRECEDING` ends at the current row.
fn frame(pair: P) -> Result<Frame> {
    let mut units = FrameUnits::Rows;
    let mut bounds = Vec::new();
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::frame_rows => units = FrameUnits::Rows,
            Rule::frame_range => units = FrameUnits::Range,
            Rule::frame_bound => bounds.push(frame_bound(p)?),
            _ => {}
        }
    }
    let mut bounds = bounds.into_iter();
    let start = bounds.next().unwrap_or(FrameBound::UnboundedPreceding);
    let end = bounds.next().unwrap_or(FrameBound::CurrentRow);
    Ok(Frame { units, start, end })
}

fn frame_bound(pair: P) -> Result<FrameBound> {
    let mut inner = pair.into_inner();
    let first = next(&mut inner, "frame bound")?;
    Ok(match first.as_rule() {
        Rule::unbounded_preceding => FrameBound::UnboundedPreceding,
        Rule::unbounded_following => FrameBound::UnboundedFollowing,
        Rule::current_row => FrameBound::CurrentRow,
        _ => {
            let offset = Box::new(expr(first)?);
            match next(&mut inner, "frame bound")?.as_rule() {
                Rule::following => FrameBound::Following(offset),
                _ => FrameBound::Preceding(offset),
            }
        }
    })
}
