//! The parts of the AST that only writes have: UPSERT's conflict clause,
//! and the expressions of INSERT, UPDATE and DELETE outside their SELECT.

use super::ast::{Expr, SelectItem, Statement};

impl Statement {
    /// The expressions an INSERT, UPDATE or DELETE holds outside of its
    /// SELECT: VALUES, SET, WHERE, the conflict action and RETURNING.
    pub fn write_exprs_mut(&mut self) -> Vec<&mut Expr> {
        fn returning(items: &mut [SelectItem]) -> impl Iterator<Item = &mut Expr> {
            items.iter_mut().filter_map(|item| match item {
                SelectItem::Expr { expr, .. } => Some(expr),
                _ => None,
            })
        }
        match self {
            Statement::Insert {
                rows,
                conflict,
                returning: items,
                ..
            } => {
                let mut out: Vec<&mut Expr> = rows.iter_mut().flatten().collect();
                if let Some(OnConflict {
                    action: ConflictAction::Update { set, filter },
                    ..
                }) = conflict
                {
                    out.extend(set.iter_mut().map(|(_, e)| e));
                    out.extend(filter.iter_mut());
                }
                out.extend(returning(items));
                out
            }
            Statement::Update {
                set,
                filter,
                returning: items,
                ..
            } => {
                let mut out: Vec<&mut Expr> = set.iter_mut().map(|(_, e)| e).collect();
                out.extend(filter.iter_mut());
                out.extend(returning(items));
                out
            }
            Statement::Delete {
                filter,
                returning: items,
                ..
            } => {
                let mut out: Vec<&mut Expr> = filter.iter_mut().collect();
                out.extend(returning(items));
                out
            }
            _ => Vec::new(),
        }
    }
}

/// `ON CONFLICT [(columns)] DO ...`, or the `OR ...` of `INSERT OR ...`.
#[derive(Clone, Debug, PartialEq)]
pub struct OnConflict {
    /// The columns of the primary key or UNIQUE index whose conflict this
    /// handles; None handles a conflict on any of them.
    pub target: Option<Vec<String>>,
    pub action: ConflictAction,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ConflictAction {
    /// Skip the row (`DO NOTHING`, `OR IGNORE`).
    Nothing,
    /// Change the row already there (`DO UPDATE SET ... [WHERE ...]`); its
    /// expressions see the stored row's columns and `excluded.column`, the
    /// row that was to be inserted.
    Update {
        set: Vec<(String, Expr)>,
        filter: Option<Expr>,
    },
    /// Delete every row in the way, then insert (`OR REPLACE`).
    Replace,
}
