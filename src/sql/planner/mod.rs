//! The planner: turns a statement's AST into a plan, checking every name
//! against the catalog, binding expressions, and choosing access paths (the
//! primary key or an index) for WHERE predicates.

mod access;
mod bind;
mod correlate;
mod ddl;
mod explain;
mod from;
pub mod plan;
mod prune;
mod scope;
mod select;
mod window;
mod write;

pub use correlate::{fill_params, per_run_access};
pub use select::plan_select;

pub use plan::{
    Access, Aggregate, AggregateFunction, Conflict, ConflictAction, ConflictTarget, InsertSource, Node, OutputColumn,
    Plan, QueryPlan, Returning, SetOperator, SortKey, ValueRange,
};
pub use window::{Frame, FrameBound, FrameUnits, WindowCall, WindowFunction};

use crate::sql::error::{Result, SqlError};
use crate::sql::parser::ast::Statement;
use crate::storage::{Transaction, View};

/// Plans one statement. BEGIN, COMMIT and ROLLBACK are not planned: the
/// session handles them.
pub fn plan(statement: &Statement, txn: &Transaction) -> Result<Plan> {
    match statement {
        Statement::Select(s) => {
            let mut query = select::plan_select(s, txn)?;
            prune::prune_columns(&mut query.root);
            Ok(Plan::Query(query))
        }
        Statement::Explain(inner) => Ok(Plan::Explain(Box::new(plan(inner, txn)?))),
        Statement::Insert { .. } => write::plan_insert(statement, txn),
        Statement::Update {
            table,
            set,
            filter,
            returning,
        } => write::plan_update(txn, table, set, filter.as_ref(), returning),
        Statement::Delete {
            table,
            filter,
            returning,
        } => write::plan_delete(txn, table, filter.as_ref(), returning),
        Statement::CreateTable(create) => ddl::create_table(create),
        Statement::DropTable { name, if_exists } => Ok(Plan::DropTable {
            name: name.clone(),
            if_exists: *if_exists,
        }),
        Statement::CreateIndex {
            name,
            table,
            columns,
            unique,
            if_not_exists,
        } => ddl::create_index(txn, name, table, columns, *unique, *if_not_exists),
        Statement::DropIndex { name, if_exists } => Ok(Plan::DropIndex {
            name: name.clone(),
            if_exists: *if_exists,
        }),
        Statement::AddColumn { table, column } => ddl::add_column(txn, table, column),
        Statement::CreateView {
            name,
            query,
            sql,
            if_not_exists,
        } => {
            // Planned now so that a broken view is refused when created.
            select::plan_select(query, txn)?;
            Ok(Plan::CreateView {
                view: View {
                    name: name.clone(),
                    sql: sql.clone(),
                },
                if_not_exists: *if_not_exists,
            })
        }
        Statement::DropView { name, if_exists } => Ok(Plan::DropView {
            name: name.clone(),
            if_exists: *if_exists,
        }),
        Statement::ShowSyncStatus => Err(SqlError::Invalid(
            "SHOW SYNC STATUS is answered by a node (send it to a running node), not by the SQL engine".into(),
        )),
        Statement::ShowTableStats => Ok(Plan::TableStats),
        Statement::Begin | Statement::Commit | Statement::Rollback => Err(SqlError::Invalid(format!(
            "{} is handled by the session, not planned",
            statement.kind()
        ))),
    }
}
