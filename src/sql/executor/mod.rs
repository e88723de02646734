//! The executor: runs plans. Queries become row iterators, pulled one row at
//! a time so large results stream; writes and DDL change a storage
//! transaction that the caller commits or drops. No parsing, no Raft.

mod aggregate;
mod ddl;
mod query;
mod upsert;
mod window;
mod write;

use crate::sql::error::Result;
use crate::sql::planner::{InsertSource, OutputColumn, Plan, Returning};
use crate::sql::types::{DataType, EvalContext, Row, Value};
use crate::storage::Transaction;

pub use query::execute_node;

/// Rows, produced lazily. An error ends the stream.
pub type Rows = Box<dyn Iterator<Item = Result<Row>> + Send>;

/// A query's result: its columns and a stream of rows.
pub struct QueryResult {
    pub columns: Vec<OutputColumn>,
    pub rows: Rows,
}

pub enum Outcome {
    Rows(QueryResult),
    /// Rows inserted, updated or deleted (0 for DDL).
    Affected(u64),
}

/// Runs a plan. Writes go into `txn`; nothing is durable until the caller
/// commits it.
pub fn execute(plan: Plan, txn: &mut Transaction, ctx: &EvalContext) -> Result<Outcome> {
    Ok(match plan {
        Plan::Query(q) => Outcome::Rows(QueryResult {
            columns: q.columns,
            rows: execute_node(q.root, txn, *ctx)?,
        }),
        Plan::Explain(inner) => {
            let text = inner.explain();
            let rows: Vec<Result<Row>> = text.lines().map(|l| Ok(vec![Value::Text(l.to_string())])).collect();
            Outcome::Rows(QueryResult {
                columns: vec![OutputColumn {
                    name: "plan".into(),
                    data_type: Some(DataType::String),
                }],
                rows: Box::new(rows.into_iter()),
            })
        }
        Plan::TableStats => Outcome::Rows(table_stats(txn)?),
        Plan::Insert {
            table,
            columns,
            source,
            conflict,
            returning,
        } => {
            let keep = returning.is_some();
            // VALUES are evaluated row by row as they are prepared, so a
            // bulk INSERT holds its values once; a query runs to the end
            // before the first row is written.
            let (count, values): (usize, Box<dyn Iterator<Item = Result<Row>> + '_>) = match source {
                InsertSource::Values(rows) => (
                    rows.len(),
                    Box::new(rows.into_iter().map(move |exprs| {
                        let empty: Row = Vec::new();
                        exprs.iter().map(|e| e.evaluate(&empty, ctx)).collect()
                    })),
                ),
                InsertSource::Query(query) => {
                    let rows: Vec<Row> = execute_node(query.root, txn, *ctx)?.collect::<Result<_>>()?;
                    (rows.len(), Box::new(rows.into_iter().map(Ok)))
                }
            };
            let written = match &conflict {
                None => write::insert(txn, &table, &columns, count, values, ctx, keep)?,
                Some(c) => upsert::upsert(txn, &table, &columns, values, c, ctx, keep)?,
            };
            finish(written, returning, ctx)?
        }
        Plan::Update {
            table,
            access,
            filter,
            set,
            returning,
        } => {
            let written = write::update(txn, &table, &access, filter.as_ref(), &set, ctx, returning.is_some())?;
            finish(written, returning, ctx)?
        }
        Plan::Delete {
            table,
            access,
            filter,
            returning,
        } => {
            let written = write::delete(txn, &table, &access, filter.as_ref(), ctx, returning.is_some())?;
            finish(written, returning, ctx)?
        }
        Plan::CreateTable { table, if_not_exists } => {
            ddl::create_table(txn, table, if_not_exists)?;
            Outcome::Affected(0)
        }
        Plan::DropTable { name, if_exists } => {
            ddl::drop_table(txn, &name, if_exists)?;
            Outcome::Affected(0)
        }
        Plan::CreateIndex {
            table,
            index,
            if_not_exists,
        } => {
            ddl::create_index(txn, &table, index, if_not_exists)?;
            Outcome::Affected(0)
        }
        Plan::DropIndex { name, if_exists } => {
            ddl::drop_index(txn, &name, if_exists)?;
            Outcome::Affected(0)
        }
        Plan::AddColumn { table, column, unique } => {
            ddl::add_column(txn, &table, column, unique)?;
            Outcome::Affected(0)
        }
        Plan::CreateView { view, if_not_exists } => {
            ddl::create_view(txn, view, if_not_exists)?;
            Outcome::Affected(0)
        }
        Plan::DropView { name, if_exists } => {
            ddl::drop_view(txn, &name, if_exists)?;
            Outcome::Affected(0)
        }
    })
}

/// The most rows a RETURNING may answer with. They travel in the write's
/// one reply (through Raft, not streamed), so a statement that would
/// return more fails whole, on every member alike, instead of filling a
/// gateway's memory.
pub const MAX_RETURNING_ROWS: usize = 100_000;

/// A write's outcome: the count, or the RETURNING rows.
fn finish(written: write::Written, returning: Option<Returning>, ctx: &EvalContext) -> Result<Outcome> {
    let Some(returning) = returning else {
        return Ok(Outcome::Affected(written.count));
    };
    if written.rows.len() > MAX_RETURNING_ROWS {
        return Err(crate::sql::error::SqlError::Invalid(format!(
            "RETURNING would answer with {} rows, more than {MAX_RETURNING_ROWS}; narrow the statement or drop RETURNING",
            written.rows.len()
        )));
    }
    let rows = written
        .rows
        .iter()
        .map(|row| {
            returning
                .exprs
                .iter()
                .map(|e| e.evaluate(row, ctx))
                .collect::<Result<Row>>()
        })
        .collect::<Result<Vec<Row>>>()?;
    Ok(Outcome::Rows(QueryResult {
        columns: returning.columns,
        rows: Box::new(rows.into_iter().map(Ok)),
    }))
}

/// `SHOW TABLE STATS`: one row per table. The cache counters are the
/// node's, the same on every row.
fn table_stats(txn: &Transaction) -> Result<QueryResult> {
    let cache = txn.engine().block_cache().unwrap_or_default();
    let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let rows: Vec<Result<Row>> = crate::sql::stats::table_stats(txn)?
        .into_iter()
        .map(|t| {
            Ok(vec![
                Value::Text(t.table.clone()),
                int(t.rows),
                int(t.stored.entries),
                int(t.stored.stored_bytes),
                int(t.stored.raw_bytes),
                Value::Float((t.compression() * 100.0).round() / 100.0),
                int(cache.hits),
                int(cache.misses),
            ])
        })
        .collect();
    let column = |name: &str, data_type| OutputColumn {
        name: name.into(),
        data_type: Some(data_type),
    };
    Ok(QueryResult {
        columns: vec![
            column("table", DataType::String),
            column("rows", DataType::BigInt),
            column("entries", DataType::BigInt),
            column("disk_bytes", DataType::BigInt),
            column("raw_bytes", DataType::BigInt),
            column("compression", DataType::Double),
            column("cache_hits", DataType::BigInt),
            column("cache_misses", DataType::BigInt),
        ],
        rows: Box::new(rows.into_iter()),
    })
}
