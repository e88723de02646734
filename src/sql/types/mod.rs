//! Bound expressions, functions and coercion over the values of
//! src/types (re-exported here, so the SQL engine names them one way).
//!
//! Everything here is pure: no storage, no I/O, no clock. Evaluating an
//! expression reads `now()` from the [`EvalContext`] it is handed, so a write
//! applied on several nodes gives the same result on each.

mod coerce;
mod expr;
mod functions;
mod operators;

pub use crate::types::{DataType, Row, Value, time};
pub use coerce::coerce;
pub use expr::{BinaryOp, EvalContext, Expr, RunSubquery, Subquery, SubqueryKind};
pub use functions::ScalarFunction;
