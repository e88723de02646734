//! Splits a script into units of work: a statement on its own commits by
//! itself, BEGIN ... COMMIT commits as one, and BEGIN ... ROLLBACK does
//! nothing at all.

use crate::sql::error::SqlError;
use crate::sql::parser::ast::Statement;
use crate::sql::parser::params::{Params, bind};
use crate::sql::parser::{ParsedStatement, parse_script};
use serde::{Deserialize, Serialize};

/// One statement and the values of its parameters: an item of a batch.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Parameterized {
    pub sql: String,
    #[serde(default, skip_serializing_if = "Params::is_empty")]
    pub params: Params,
}

/// Parses a script, binds its parameters and groups it into units.
pub fn prepare(sql: &str, params: &Params) -> Result<Vec<Unit>, (usize, SqlError)> {
    let mut parsed = parse_script(sql).map_err(|e| (0, e))?;
    if parsed.is_empty() {
        return Err((0, SqlError::Invalid("no statement given".into())));
    }
    bind(&mut parsed, params)?;
    units(parsed)
}

/// A batch: one statement per item, all committed together or not at all.
/// Errors name the item by position.
pub fn prepare_batch(items: &[Parameterized]) -> Result<Vec<Unit>, (usize, SqlError)> {
    if items.is_empty() {
        return Err((0, SqlError::Invalid("the batch has no statements".into())));
    }
    let mut statements = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut parsed = parse_script(&item.sql).map_err(|e| (i, e))?;
        if parsed.len() != 1 {
            return Err((
                i,
                SqlError::Invalid(format!(
                    "each batch item holds one statement; item {i} holds {}",
                    parsed.len()
                )),
            ));
        }
        bind(&mut parsed, &item.params).map_err(|(_, e)| (i, e))?;
        let statement = parsed.remove(0);
        if matches!(
            statement.statement,
            Statement::Begin | Statement::Commit | Statement::Rollback
        ) {
            return Err((
                i,
                SqlError::Transaction(format!(
                    "a batch is one transaction already; {} is not allowed in it",
                    statement.statement.kind()
                )),
            ));
        }
        statements.push(statement);
    }
    Ok(vec![Unit {
        start: 0,
        statements,
        explicit: false,
        rolled_back: false,
    }])
}

/// Statements that commit together.
#[derive(Clone, Debug)]
pub struct Unit {
    /// Position in the script of the unit's first statement (its BEGIN, if
    /// it has one).
    pub start: usize,
    /// The statements to run, without BEGIN, COMMIT or ROLLBACK.
    pub statements: Vec<ParsedStatement>,
    /// Wrapped in BEGIN ... COMMIT (or ROLLBACK).
    pub explicit: bool,
    /// Ended with ROLLBACK: checked for syntax but never run.
    pub rolled_back: bool,
}

impl Unit {
    /// Number of script statements the unit covers, BEGIN and COMMIT included.
    pub fn len(&self) -> usize {
        self.statements.len() + if self.explicit { 2 } else { 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_read_only(&self) -> bool {
        self.statements.iter().all(|s| s.statement.is_query())
    }
}

/// Groups statements into units, or names the statement (by position) that
/// breaks the BEGIN/COMMIT structure.
pub fn units(statements: Vec<ParsedStatement>) -> Result<Vec<Unit>, (usize, SqlError)> {
    let mut units = Vec::new();
    let mut open: Option<Unit> = None;
    let total = statements.len();
    for (i, s) in statements.into_iter().enumerate() {
        match (&s.statement, open.as_mut()) {
            (Statement::Begin, None) => {
                open = Some(Unit {
                    start: i,
                    statements: Vec::new(),
                    explicit: true,
                    rolled_back: false,
                })
            }
            (Statement::Begin, Some(_)) => {
                return Err((
                    i,
                    SqlError::Transaction("BEGIN inside a transaction; nested transactions are not supported".into()),
                ));
            }
            (Statement::Commit | Statement::Rollback, None) => {
                return Err((
                    i,
                    SqlError::Transaction(format!("{} without BEGIN", s.statement.kind())),
                ));
            }
            (Statement::Commit | Statement::Rollback, Some(_)) => {
                let mut unit = open
                    .take()
                    .ok_or((i, SqlError::Transaction("no open transaction".into())))?;
                unit.rolled_back = matches!(s.statement, Statement::Rollback);
                units.push(unit);
            }
            (_, Some(unit)) => unit.statements.push(s),
            (_, None) => units.push(Unit {
                start: i,
                statements: vec![s],
                explicit: false,
                rolled_back: false,
            }),
        }
    }
    if let Some(unit) = open {
        return Err((
            total.saturating_sub(1).max(unit.start),
            SqlError::Transaction("BEGIN without COMMIT or ROLLBACK: the transaction was not applied".into()),
        ));
    }
    Ok(units)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parser::parse_script;

    fn shape(sql: &str) -> Result<Vec<(usize, usize, bool, bool)>, usize> {
        units(parse_script(sql).unwrap())
            .map(|us| {
                us.iter()
                    .map(|u| (u.start, u.statements.len(), u.explicit, u.rolled_back))
                    .collect()
            })
            .map_err(|(i, _)| i)
    }

    #[test]
    fn groups_transactions() {
        let sql = "CREATE TABLE t (a INT); BEGIN; INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); COMMIT; \
                   SELECT * FROM t; BEGIN; DELETE FROM t; ROLLBACK;";
        assert_eq!(
            shape(sql),
            Ok(vec![
                (0, 1, false, false),
                (1, 2, true, false),
                (5, 1, false, false),
                (6, 1, true, true)
            ])
        );
    }

    #[test]
    fn rejects_broken_structure() {
        assert_eq!(shape("COMMIT;"), Err(0));
        assert_eq!(shape("BEGIN; BEGIN;"), Err(1));
        assert_eq!(shape("SELECT 1; BEGIN; SELECT 1;"), Err(2));
    }
}
