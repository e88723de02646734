//! The planner: turns a statement's AST into a plan, checking every name
//! against the catalog, binding expressions, and choosing access paths (the
//! primary key or an index) for WHERE predicates.

mod access;
mod bind;
mod correlate;
mod ddl;
pub mod plan;
mod scope;
mod select;

pub use correlate::{fill_params, per_run_access};
pub use select::plan_select;

pub use plan::{
    Access, Aggregate, AggregateFunction, InsertSource, Node, OutputColumn, Plan, QueryPlan, SetOperator, SortKey,
    ValueRange,
};

use crate::sql::error::{Result, SqlError};
use crate::sql::parser::ast::Statement;
use crate::storage::{Table, Transaction, View};
use bind::bind;
use scope::Scope;

/// Plans one statement. BEGIN, COMMIT and ROLLBACK are not planned: the
/// session handles them.
pub fn plan(statement: &Statement, txn: &Transaction) -> Result<Plan> {
    match statement {
        Statement::Select(s) => Ok(Plan::Query(select::plan_select(s, txn)?)),
        Statement::Explain(inner) => Ok(Plan::Explain(Box::new(plan(inner, txn)?))),
        Statement::Insert {
            table,
            columns,
            rows,
            query,
        } => {
            let table = table_of(txn, table)?;
            let targets: Vec<usize> = match columns {
                None => (0..table.columns.len()).collect(),
                Some(names) => {
                    let mut targets = Vec::new();
                    for n in names {
                        let i = column_of(&table, n)?;
                        if targets.contains(&i) {
                            return Err(SqlError::Invalid(format!("column '{n}' is listed twice in INSERT")));
                        }
                        targets.push(i);
                    }
                    targets
                }
            };
            if let Some(query) = query {
                let query = select::plan_select(query, txn)?;
                if query.columns.len() != targets.len() {
                    return Err(SqlError::Invalid(format!(
                        "INSERT ... SELECT gives {} values per row but {} columns are being set",
                        query.columns.len(),
                        targets.len()
                    )));
                }
                return Ok(Plan::Insert {
                    table,
                    columns: targets,
                    source: InsertSource::Query(Box::new(query)),
                });
            }
            let empty = Scope::default().in_context(txn, None);
            let mut bound = Vec::with_capacity(rows.len());
            for (n, row) in rows.iter().enumerate() {
                if row.len() != targets.len() {
                    return Err(SqlError::Invalid(format!(
                        "INSERT row {} has {} values but {} columns are being set",
                        n + 1,
                        row.len(),
                        targets.len()
                    )));
                }
                bound.push(
                    row.iter()
                        .map(|e| bind(e, &empty, "VALUES"))
                        .collect::<Result<Vec<_>>>()?,
                );
            }
            Ok(Plan::Insert {
                table,
                columns: targets,
                source: InsertSource::Values(bound),
            })
        }
        Statement::Update { table, set, filter } => {
            let table = table_of(txn, table)?;
            let scope = Scope::of_table(&table, &table.name).in_context(txn, None);
            let mut assignments = Vec::new();
            for (column, e) in set {
                let i = column_of(&table, column)?;
                if assignments.iter().any(|(j, _)| *j == i) {
                    return Err(SqlError::Invalid(format!("column '{column}' is set twice in UPDATE")));
                }
                assignments.push((i, bind(e, &scope, "UPDATE SET")?));
            }
            let (access, filter) = filtered_access(&table, &scope, filter.as_ref())?;
            Ok(Plan::Update {
                table,
                access,
                filter,
                set: assignments,
            })
        }
        Statement::Delete { table, filter } => {
            let table = table_of(txn, table)?;
            let scope = Scope::of_table(&table, &table.name).in_context(txn, None);
            let (access, filter) = filtered_access(&table, &scope, filter.as_ref())?;
            Ok(Plan::Delete { table, access, filter })
        }
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
        Statement::Begin | Statement::Commit | Statement::Rollback => Err(SqlError::Invalid(format!(
            "{} is handled by the session, not planned",
            statement.kind()
        ))),
    }
}

fn table_of(txn: &Transaction, name: &str) -> Result<Table> {
    if let Some(table) = txn.table(name)? {
        return Ok(table);
    }
    match txn.view(name)? {
        Some(_) => Err(SqlError::Invalid(format!(
            "'{name}' is a view; only tables can be changed"
        ))),
        None => Err(SqlError::UnknownTable(name.to_string())),
    }
}

fn column_of(table: &Table, name: &str) -> Result<usize> {
    table
        .column_index(name)
        .ok_or_else(|| SqlError::UnknownColumn(format!("column '{name}' does not exist in table '{}'", table.name)))
}

fn filtered_access(
    table: &Table,
    scope: &Scope,
    filter: Option<&crate::sql::parser::ast::Expr>,
) -> Result<(Access, Option<crate::sql::types::Expr>)> {
    let filter = filter.map(|f| bind(f, scope, "WHERE")).transpose()?;
    let conjuncts = filter.as_ref().map(access::conjuncts).unwrap_or_default();
    Ok((access::choose(table, &conjuncts), filter))
}
