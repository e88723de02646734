//! Planning INSERT, UPDATE and DELETE: target columns, bound values and
//! assignments, the access path of a WHERE, the conflict action of an
//! UPSERT and the RETURNING list.

use super::access;
use super::bind::{bind, contains_aggregate, infer_type};
use super::plan::{Access, Conflict, ConflictAction, ConflictTarget, InsertSource, OutputColumn, Plan, Returning};
use super::scope::Scope;
use super::select::{expand_items, plan_select};
use crate::sql::error::{Result, SqlError};
use crate::sql::parser::ast::{self, OnConflict, SelectItem, Statement};
use crate::sql::types::Expr;
use crate::storage::{Table, Transaction};

/// The alias under which ON CONFLICT DO UPDATE reads the row that was to be
/// inserted.
const EXCLUDED: &str = "excluded";

pub fn plan_insert(statement: &Statement, txn: &Transaction) -> Result<Plan> {
    let Statement::Insert {
        table,
        columns,
        rows,
        query,
        conflict,
        returning,
    } = statement
    else {
        return Err(SqlError::Invalid("not an INSERT".into()));
    };
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
    let conflict = conflict.as_ref().map(|c| plan_conflict(&table, txn, c)).transpose()?;
    let returning = plan_returning(&table, txn, returning)?;
    let source = match query {
        Some(query) => {
            let query = plan_select(query, txn)?;
            if query.columns.len() != targets.len() {
                return Err(SqlError::Invalid(format!(
                    "INSERT ... SELECT gives {} values per row but {} columns are being set",
                    query.columns.len(),
                    targets.len()
                )));
            }
            InsertSource::Query(Box::new(query))
        }
        None => {
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
            InsertSource::Values(bound)
        }
    };
    Ok(Plan::Insert {
        table,
        columns: targets,
        source,
        conflict,
        returning,
    })
}

pub fn plan_update(
    txn: &Transaction,
    table: &str,
    set: &[(String, ast::Expr)],
    filter: Option<&ast::Expr>,
    returning: &[SelectItem],
) -> Result<Plan> {
    let table = table_of(txn, table)?;
    let scope = Scope::of_table(&table, &table.name).in_context(txn, None);
    let set = assignments(&table, &scope, set, "UPDATE SET")?;
    let (access, filter) = filtered_access(&table, &scope, filter)?;
    let returning = plan_returning(&table, txn, returning)?;
    Ok(Plan::Update {
        table,
        access,
        filter,
        set,
        returning,
    })
}

pub fn plan_delete(
    txn: &Transaction,
    table: &str,
    filter: Option<&ast::Expr>,
    returning: &[SelectItem],
) -> Result<Plan> {
    let table = table_of(txn, table)?;
    let scope = Scope::of_table(&table, &table.name).in_context(txn, None);
    let (access, filter) = filtered_access(&table, &scope, filter)?;
    let returning = plan_returning(&table, txn, returning)?;
    Ok(Plan::Delete {
        table,
        access,
        filter,
        returning,
    })
}

fn assignments(table: &Table, scope: &Scope, set: &[(String, ast::Expr)], clause: &str) -> Result<Vec<(usize, Expr)>> {
    let mut out: Vec<(usize, Expr)> = Vec::new();
    for (column, e) in set {
        let i = column_of(table, column)?;
        if out.iter().any(|(j, _)| *j == i) {
            return Err(SqlError::Invalid(format!("column '{column}' is set twice in {clause}")));
        }
        out.push((i, bind(e, scope, clause)?));
    }
    Ok(out)
}

/// The constraint an ON CONFLICT names (by its columns, in any order) and
/// the action, bound over the stored row followed by `excluded`.
fn plan_conflict(table: &Table, txn: &Transaction, conflict: &OnConflict) -> Result<Conflict> {
    let target = match &conflict.target {
        // Which row DO UPDATE changes must be clear: SQLite picks the first
        // constraint it happens to check; PostgreSQL requires a target.
        // Without one, it is allowed when the table has one constraint.
        None if matches!(conflict.action, ast::ConflictAction::Update { .. }) => {
            let mut only = table
                .indexes
                .iter()
                .filter(|i| i.unique)
                .map(|i| ConflictTarget::Index(i.name.clone()));
            let first = match table.has_rowid() {
                true => only.next(),
                false => Some(ConflictTarget::PrimaryKey),
            };
            match (first, only.next()) {
                (Some(target), None) => target,
                (None, _) => {
                    return Err(SqlError::Invalid(format!(
                        "ON CONFLICT DO UPDATE: table '{}' has no PRIMARY KEY or UNIQUE constraint to conflict on",
                        table.name
                    )));
                }
                (Some(_), Some(_)) => {
                    return Err(SqlError::Invalid(format!(
                        "ON CONFLICT DO UPDATE needs a conflict target, e.g. ON CONFLICT (column): table '{}' has more than one PRIMARY KEY or UNIQUE constraint",
                        table.name
                    )));
                }
            }
        }
        None => ConflictTarget::Any,
        Some(names) => {
            let mut wanted = names.iter().map(|n| column_of(table, n)).collect::<Result<Vec<_>>>()?;
            // Sorted, not deduplicated: (u, u) names no constraint (SQLite).
            wanted.sort_unstable();
            let same = |columns: &[usize]| {
                let mut columns = columns.to_vec();
                columns.sort_unstable();
                columns == wanted
            };
            if !table.has_rowid() && same(&table.primary_key) {
                ConflictTarget::PrimaryKey
            } else if let Some(index) = table.indexes.iter().find(|i| i.unique && same(&i.columns)) {
                ConflictTarget::Index(index.name.clone())
            } else {
                return Err(SqlError::Invalid(format!(
                    "ON CONFLICT ({}) matches no PRIMARY KEY or UNIQUE constraint of table '{}'",
                    names.join(", "),
                    table.name
                )));
            }
        }
    };
    let action = match &conflict.action {
        ast::ConflictAction::Nothing => ConflictAction::Nothing,
        ast::ConflictAction::Replace => ConflictAction::Replace,
        ast::ConflictAction::Update { set, filter } => {
            // `excluded.x` by its qualified name only: a bare name is the
            // stored row's column, as in SQLite and PostgreSQL.
            let mut scope = Scope::of_table(table, &table.name).in_context(txn, None);
            let mut excluded = Scope::of_table(table, EXCLUDED);
            excluded.columns.iter_mut().for_each(|c| c.hidden = true);
            scope.join(excluded);
            let set = assignments(table, &scope, set, "DO UPDATE SET")?;
            let filter = filter
                .as_ref()
                .map(|f| bind(f, &scope, "DO UPDATE WHERE"))
                .transpose()?;
            ConflictAction::Update { set, filter }
        }
    };
    Ok(Conflict { target, action })
}

fn plan_returning(table: &Table, txn: &Transaction, items: &[SelectItem]) -> Result<Option<Returning>> {
    if items.is_empty() {
        return Ok(None);
    }
    let scope = Scope::of_table(table, &table.name).in_context(txn, None);
    let items = expand_items(items, &scope, "RETURNING")?;
    let types: Vec<_> = scope.columns.iter().map(|c| c.data_type).collect();
    let mut exprs = Vec::with_capacity(items.len());
    let mut columns = Vec::with_capacity(items.len());
    for (e, name) in items {
        if contains_aggregate(&e) {
            return Err(SqlError::Invalid(format!(
                "RETURNING cannot use an aggregate function ({e})"
            )));
        }
        let bound = bind(&e, &scope, "RETURNING")?;
        columns.push(OutputColumn {
            name,
            data_type: infer_type(&bound, &types),
        });
        exprs.push(bound);
    }
    Ok(Some(Returning { exprs, columns }))
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

fn filtered_access(table: &Table, scope: &Scope, filter: Option<&ast::Expr>) -> Result<(Access, Option<Expr>)> {
    let filter = filter.map(|f| bind(f, scope, "WHERE")).transpose()?;
    let conjuncts = filter.as_ref().map(access::conjuncts).unwrap_or_default();
    Ok((access::choose(table, &conjuncts), filter))
}
