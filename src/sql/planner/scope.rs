//! Name resolution: which column of the input row a name refers to.

use super::correlate::{Correlation, QueryContext};
use crate::sql::error::{Result, SqlError};
use crate::sql::types::{DataType, Expr};
use crate::storage::{Table, Transaction};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct ScopeColumn {
    /// The table name or alias the column is reachable through.
    pub table: Option<String>,
    pub name: String,
    pub data_type: Option<DataType>,
    /// The right-hand copy of a `JOIN ... USING` column: reachable only by
    /// its qualified name, and left out of an unqualified `*`.
    pub hidden: bool,
}

/// The columns of an input row, in order, and where the query stands:
/// without a context, subqueries cannot be planned (DEFAULT, LIMIT).
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub columns: Vec<ScopeColumn>,
    pub context: Option<Arc<QueryContext>>,
}

impl Scope {
    pub fn of_table(table: &Table, alias: &str) -> Scope {
        Scope {
            columns: table
                .columns
                .iter()
                .map(|c| ScopeColumn {
                    table: Some(alias.to_string()),
                    name: c.name.clone(),
                    data_type: Some(c.data_type),
                    hidden: false,
                })
                .collect(),
            context: None,
        }
    }

    /// The scope placed in a query planned on `txn`; `outer` is set when
    /// the query is a subquery.
    pub fn in_context(mut self, txn: &Transaction, outer: Option<Arc<Correlation>>) -> Scope {
        self.context = Some(Arc::new(QueryContext {
            txn: txn.snapshot(),
            outer,
        }));
        self
    }

    /// A name this scope does not have, looked up in the queries around it:
    /// a parameter of this subquery's plan, or None when no query has it.
    pub fn resolve_outer(&self, table: Option<&str>, name: &str) -> Result<Option<Expr>> {
        match self.context.as_ref().and_then(|c| c.outer.as_ref()) {
            Some(outer) => outer.capture(table, name),
            None => Ok(None),
        }
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    pub fn join(&mut self, other: Scope) {
        self.columns.extend(other.columns);
    }

    pub fn has_table(&self, table: &str) -> bool {
        self.columns.iter().any(|c| c.table.as_deref() == Some(table))
    }

    /// The position of `table.name` (or of `name` alone) in the row.
    pub fn resolve(&self, table: Option<&str>, name: &str) -> Result<usize> {
        let mut found = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name == name && (c.table.as_deref() == table || (table.is_none() && !c.hidden)));
        match (found.next(), found.next()) {
            (Some((i, _)), None) => Ok(i),
            (Some(_), Some(_)) => Err(SqlError::AmbiguousColumn(name.to_string())),
            (None, _) => Err(self.unknown(table, name)),
        }
    }

    fn unknown(&self, table: Option<&str>, name: &str) -> SqlError {
        if let Some(t) = table {
            if !self.has_table(t) {
                return SqlError::UnknownColumn(format!(
                    "column '{t}.{name}' does not exist: no table or alias '{t}' in FROM"
                ));
            }
            return SqlError::UnknownColumn(format!("column '{name}' does not exist in table '{t}'"));
        }
        let mut tables: Vec<&str> = self.columns.iter().filter_map(|c| c.table.as_deref()).collect();
        tables.dedup();
        match tables.as_slice() {
            [] => SqlError::UnknownColumn(format!("column '{name}' does not exist (no FROM clause)")),
            [t] => SqlError::UnknownColumn(format!("column '{name}' does not exist in table '{t}'")),
            _ => SqlError::UnknownColumn(format!(
                "column '{name}' does not exist in any of {}",
                tables.join(", ")
            )),
        }
    }
}
