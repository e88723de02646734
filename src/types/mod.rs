//! Values, rows, data types and time, shared by the SQL engine (src/sql)
//! and storage (src/storage), so that storage never imports sql.
//!
//! Pure data: no storage, no I/O, no clock. Expressions, functions and
//! coercion rules are SQL's (src/sql/types).

mod datatype;
mod error;
pub mod time;
mod value;

pub use datatype::DataType;
pub use error::TypeError;
pub use value::{Row, Value};
