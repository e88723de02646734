//! SQL values, data types, time handling and bound expressions.
//!
//! Everything here is pure: no storage, no I/O, no clock. Evaluating an
//! expression reads `now()` from the [`EvalContext`] it is handed, so a write
//! applied on several nodes gives the same result on each.

mod coerce;
mod datatype;
mod expr;
mod functions;
pub mod time;
mod value;

pub use coerce::coerce;
pub use datatype::DataType;
pub use expr::{BinaryOp, EvalContext, Expr, RunSubquery, Subquery, SubqueryKind};
pub use functions::ScalarFunction;
pub use value::{Row, Value};
