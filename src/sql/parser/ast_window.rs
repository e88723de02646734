//! The window part of the AST: `OVER (...)`, `WINDOW name AS (...)` and
//! frames.

use super::ast::{Expr, OrderItem};
use std::fmt;

/// `OVER name`, or `OVER ([base] [PARTITION BY ...] [ORDER BY ...] [frame])`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct WindowSpec {
    /// A window named in the WINDOW clause that this one extends.
    pub base: Option<String>,
    pub partition_by: Vec<Expr>,
    pub order_by: Vec<OrderItem>,
    pub frame: Option<Frame>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub units: FrameUnits,
    pub start: FrameBound,
    pub end: FrameBound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameUnits {
    Rows,
    Range,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FrameBound {
    UnboundedPreceding,
    Preceding(Box<Expr>),
    CurrentRow,
    Following(Box<Expr>),
    UnboundedFollowing,
}

impl WindowSpec {
    /// The expressions of the window: PARTITION BY, ORDER BY and the frame's
    /// offsets.
    pub fn exprs(&self) -> Vec<&Expr> {
        let mut out: Vec<&Expr> = self.partition_by.iter().collect();
        out.extend(self.order_by.iter().map(|o| &o.expr));
        if let Some(frame) = &self.frame {
            for bound in [&frame.start, &frame.end] {
                if let FrameBound::Preceding(e) | FrameBound::Following(e) = bound {
                    out.push(e);
                }
            }
        }
        out
    }

    pub fn exprs_mut(&mut self) -> Vec<&mut Expr> {
        let mut out: Vec<&mut Expr> = self.partition_by.iter_mut().collect();
        out.extend(self.order_by.iter_mut().map(|o| &mut o.expr));
        if let Some(frame) = &mut self.frame {
            for bound in [&mut frame.start, &mut frame.end] {
                if let FrameBound::Preceding(e) | FrameBound::Following(e) = bound {
                    out.push(e);
                }
            }
        }
        out
    }
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(base) = &self.base {
            parts.push(base.clone());
        }
        if !self.partition_by.is_empty() {
            let p: Vec<String> = self.partition_by.iter().map(|e| e.to_string()).collect();
            parts.push(format!("PARTITION BY {}", p.join(", ")));
        }
        if !self.order_by.is_empty() {
            let o: Vec<String> = self
                .order_by
                .iter()
                .map(|o| format!("{}{}", o.expr, if o.descending { " DESC" } else { "" }))
                .collect();
            parts.push(format!("ORDER BY {}", o.join(", ")));
        }
        if let Some(frame) = &self.frame {
            let units = match frame.units {
                FrameUnits::Rows => "ROWS",
                FrameUnits::Range => "RANGE",
            };
            parts.push(format!("{units} BETWEEN {} AND {}", frame.start, frame.end));
        }
        write!(f, "{}", parts.join(" "))
    }
}

impl fmt::Display for FrameBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameBound::UnboundedPreceding => write!(f, "UNBOUNDED PRECEDING"),
            FrameBound::Preceding(e) => write!(f, "{e} PRECEDING"),
            FrameBound::CurrentRow => write!(f, "CURRENT ROW"),
            FrameBound::Following(e) => write!(f, "{e} FOLLOWING"),
            FrameBound::UnboundedFollowing => write!(f, "UNBOUNDED FOLLOWING"),
        }
    }
}
