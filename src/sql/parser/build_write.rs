//! Translation of INSERT, UPDATE and DELETE (with UPSERT and RETURNING)
//! into the AST.

use super::Rule;
use super::ast::*;
use super::build::{expr, ident, ident_list, invalid, next, select, select_item, where_clause};
use crate::sql::error::Result;
use pest::iterators::Pair;

type P<'a> = Pair<'a, Rule>;

pub(super) fn insert(pair: P) -> Result<Statement> {
    let mut table = String::new();
    let mut columns = None;
    let mut rows = Vec::new();
    let mut query = None;
    let mut conflict = None;
    let mut returning = Vec::new();
    let any = |action| Some(OnConflict { target: None, action });
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::ident => table = ident(p),
            Rule::ident_list => columns = Some(ident_list(p)),
            Rule::values_row => rows.push(p.into_inner().map(expr).collect::<Result<Vec<_>>>()?),
            Rule::select => query = Some(Box::new(select(p)?)),
            Rule::or_replace => conflict = any(ConflictAction::Replace),
            Rule::or_ignore => conflict = any(ConflictAction::Nothing),
            Rule::on_conflict if conflict.is_some() => {
                return Err(invalid(
                    &p,
                    "INSERT OR REPLACE / OR IGNORE cannot be combined with ON CONFLICT; use one of them".into(),
                ));
            }
            Rule::on_conflict => conflict = Some(on_conflict(p)?),
            Rule::returning => returning = returning_items(p)?,
            _ => {}
        }
    }
    Ok(Statement::Insert {
        table,
        columns,
        rows,
        query,
        conflict,
        returning,
    })
}

fn on_conflict(pair: P) -> Result<OnConflict> {
    let mut target = None;
    let mut action = ConflictAction::Nothing;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::ident_list => target = Some(ident_list(p)),
            Rule::do_update => {
                let mut set = Vec::new();
                let mut filter = None;
                for q in p.into_inner() {
                    match q.as_rule() {
                        Rule::assignment => set.push(assignment(q)?),
                        Rule::where_clause => filter = Some(where_clause(q)?),
                        _ => {}
                    }
                }
                action = ConflictAction::Update { set, filter };
            }
            _ => {}
        }
    }
    Ok(OnConflict { target, action })
}

fn returning_items(pair: P) -> Result<Vec<SelectItem>> {
    pair.into_inner()
        .filter(|p| p.as_rule() == Rule::select_item)
        .map(select_item)
        .collect()
}

fn assignment(pair: P) -> Result<(String, Expr)> {
    let mut inner = pair.into_inner();
    let column = ident(next(&mut inner, "SET")?);
    Ok((column, expr(next(&mut inner, "SET")?)?))
}

pub(super) fn update(pair: P) -> Result<Statement> {
    let mut table = String::new();
    let mut set = Vec::new();
    let mut filter = None;
    let mut returning = Vec::new();
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::ident => table = ident(p),
            Rule::assignment => set.push(assignment(p)?),
            Rule::where_clause => filter = Some(where_clause(p)?),
            Rule::returning => returning = returning_items(p)?,
            _ => {}
        }
    }
    Ok(Statement::Update {
        table,
        set,
        filter,
        returning,
    })
}

pub(super) fn delete(pair: P) -> Result<Statement> {
    let mut table = String::new();
    let mut filter = None;
    let mut returning = Vec::new();
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::ident => table = ident(p),
            Rule::where_clause => filter = Some(where_clause(p)?),
            Rule::returning => returning = returning_items(p)?,
            _ => {}
        }
    }
    Ok(Statement::Delete {
        table,
        filter,
        returning,
    })
}
