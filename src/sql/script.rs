//! Splits a script into units of work: a statement on its own commits by
//! itself, BEGIN ... COMMIT commits as one, and BEGIN ... ROLLBACK does
//! nothing at all.

use crate::sql::error::SqlError;
use crate::sql::parser::ParsedStatement;
use crate::sql::parser::ast::Statement;

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
