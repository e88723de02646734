//! Translation of pest's parse tree into the AST.

use super::Rule;
use super::ast::*;
pub(super) use super::build_expr::{data_type, expr};
use super::build_window;
use super::build_write;
use crate::sql::error::{Result, SqlError};
use pest::iterators::Pair;

type P<'a> = Pair<'a, Rule>;

pub(super) fn invalid(pair: &P, message: String) -> SqlError {
    let (line, column) = pair.line_col();
    SqlError::Syntax { line, column, message }
}

/// The next child, which the grammar guarantees is there.
pub(super) fn next<'a>(pairs: &mut impl Iterator<Item = P<'a>>, parent: &str) -> Result<P<'a>> {
    pairs
        .next()
        .ok_or_else(|| SqlError::Invalid(format!("malformed {parent}")))
}

pub fn statement(pair: P) -> Result<Statement> {
    let inner = next(&mut pair.into_inner(), "statement")?;
    Ok(match inner.as_rule() {
        Rule::explain => {
            let target = next(&mut inner.into_inner().skip(1), "EXPLAIN")?;
            Statement::Explain(Box::new(statement_of(target)?))
        }
        _ => statement_of(inner)?,
    })
}

fn statement_of(pair: P) -> Result<Statement> {
    match pair.as_rule() {
        Rule::select => Ok(Statement::Select(Box::new(select(pair)?))),
        Rule::insert => build_write::insert(pair),
        Rule::update => build_write::update(pair),
        Rule::delete => build_write::delete(pair),
        Rule::create_table => create_table(pair),
        Rule::create_index => create_index(pair),
        Rule::alter_table => {
            let (mut table, mut column) = (String::new(), None);
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::ident => table = ident(p),
                    Rule::column_def => column = Some(column_def(p)?),
                    _ => {}
                }
            }
            let column = column.ok_or_else(|| SqlError::Invalid("ALTER TABLE ADD needs a column".into()))?;
            Ok(Statement::AddColumn { table, column })
        }
        Rule::create_view => {
            let (mut name, mut if_not_exists, mut query) = (String::new(), false, None);
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::if_not_exists => if_not_exists = true,
                    Rule::ident => name = ident(p),
                    Rule::select => query = Some((p.as_str().trim().to_string(), select(p)?)),
                    _ => {}
                }
            }
            let (sql, query) = query.ok_or_else(|| SqlError::Invalid("CREATE VIEW needs a SELECT".into()))?;
            Ok(Statement::CreateView {
                name,
                query: Box::new(query),
                sql,
                if_not_exists,
            })
        }
        Rule::drop_table | Rule::drop_index | Rule::drop_view => {
            let rule = pair.as_rule();
            let mut if_exists = false;
            let mut name = String::new();
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::if_exists => if_exists = true,
                    Rule::ident => name = ident(p),
                    _ => {}
                }
            }
            Ok(match rule {
                Rule::drop_table => Statement::DropTable { name, if_exists },
                Rule::drop_view => Statement::DropView { name, if_exists },
                _ => Statement::DropIndex { name, if_exists },
            })
        }
        Rule::begin => Ok(Statement::Begin),
        Rule::show_sync_status => Ok(Statement::ShowSyncStatus),
        Rule::show_table_stats => Ok(Statement::ShowTableStats),
        Rule::commit => Ok(Statement::Commit),
        Rule::rollback => Ok(Statement::Rollback),
        r => Err(SqlError::Invalid(format!("unexpected {r:?}"))),
    }
}

/// An identifier: bare ones fold to lower case, quoted ones keep their case.
pub(super) fn ident(pair: P) -> String {
    let s = pair.as_str();
    if let Some(q) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        q.replace("\"\"", "\"")
    } else {
        s.to_ascii_lowercase()
    }
}

pub(super) fn ident_list(pair: P) -> Vec<String> {
    pair.into_inner().map(ident).collect()
}

fn create_table(pair: P) -> Result<Statement> {
    let mut t = CreateTable {
        name: String::new(),
        if_not_exists: false,
        columns: Vec::new(),
        primary_key: Vec::new(),
        unique: Vec::new(),
    };
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::if_not_exists => t.if_not_exists = true,
            Rule::ident => t.name = ident(p),
            Rule::table_primary_key => {
                if !t.primary_key.is_empty() {
                    return Err(invalid(&p, "more than one PRIMARY KEY clause".into()));
                }
                for q in p.into_inner() {
                    if q.as_rule() == Rule::ident_list {
                        t.primary_key = ident_list(q);
                    }
                }
            }
            Rule::table_unique => {
                for q in p.into_inner() {
                    if q.as_rule() == Rule::ident_list {
                        t.unique.push(ident_list(q));
                    }
                }
            }
            Rule::column_def => t.columns.push(column_def(p)?),
            _ => {}
        }
    }
    Ok(Statement::CreateTable(t))
}

fn column_def(pair: P) -> Result<ColumnDef> {
    let mut c = ColumnDef {
        name: String::new(),
        type_name: String::new(),
        type_length: None,
        primary_key: false,
        nullable: None,
        default: None,
        unique: false,
    };
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::ident => c.name = ident(p),
            Rule::data_type => (c.type_name, c.type_length) = data_type(p)?,
            Rule::primary_key => c.primary_key = true,
            Rule::not_null => c.nullable = Some(false),
            Rule::nullable => c.nullable = Some(true),
            Rule::unique => c.unique = true,
            Rule::default_value => {
                let e = next(&mut p.into_inner().skip(1), "DEFAULT")?;
                c.default = Some(expr(e)?);
            }
            _ => {}
        }
    }
    Ok(c)
}

fn create_index(pair: P) -> Result<Statement> {
    let mut unique = false;
    let mut if_not_exists = false;
    let mut names = Vec::new();
    let mut columns = Vec::new();
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::unique => unique = true,
            Rule::if_not_exists => if_not_exists = true,
            Rule::ident => names.push(ident(p)),
            Rule::index_columns => {
                columns = p
                    .into_inner()
                    .filter_map(|c| c.into_inner().find(|q| q.as_rule() == Rule::ident).map(ident))
                    .collect()
            }
            _ => {}
        }
    }
    let mut names = names.into_iter();
    Ok(Statement::CreateIndex {
        name: names.next().unwrap_or_default(),
        table: names.next().unwrap_or_default(),
        columns,
        unique,
        if_not_exists,
    })
}

pub(super) fn where_clause(pair: P) -> Result<Expr> {
    expr(next(&mut pair.into_inner().skip(1), "WHERE")?)
}

pub(super) fn select(pair: P) -> Result<Select> {
    let mut s = empty_select();
    let mut op = None;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::select_core => match op.take() {
                None => select_core(p, &mut s)?,
                Some(op) => {
                    let mut core = empty_select();
                    select_core(p, &mut core)?;
                    s.compound.push((op, core));
                }
            },
            Rule::with_clause => {
                for cte in p.into_inner().filter(|q| q.as_rule() == Rule::cte) {
                    let mut parts = cte
                        .into_inner()
                        .filter(|q| matches!(q.as_rule(), Rule::ident | Rule::select));
                    let name = ident(next(&mut parts, "WITH")?);
                    let query = select(next(&mut parts, "WITH")?)?;
                    if s.with.iter().any(|(n, _)| *n == name) {
                        return Err(SqlError::Invalid(format!("WITH name '{name}' is defined twice")));
                    }
                    s.with.push((name, query));
                }
            }
            Rule::set_op => {
                op = Some(match p.into_inner().next().map(|q| q.as_rule()) {
                    Some(Rule::union_all) => SetOperator::UnionAll,
                    Some(Rule::intersect_op) => SetOperator::Intersect,
                    Some(Rule::except_op) => SetOperator::Except,
                    _ => SetOperator::Union,
                })
            }
            Rule::order_by => {
                for q in p.into_inner().filter(|q| q.as_rule() == Rule::order_item) {
                    s.order_by.push(order_item(q)?);
                }
            }
            Rule::limit_clause => {
                let mut pending: Option<Rule> = None;
                for q in p.into_inner() {
                    match q.as_rule() {
                        Rule::kw_limit | Rule::kw_offset => pending = Some(q.as_rule()),
                        Rule::expr if pending == Some(Rule::kw_limit) => s.limit = Some(expr(q)?),
                        Rule::expr => s.offset = Some(expr(q)?),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

fn empty_select() -> Select {
    Select {
        distinct: false,
        items: Vec::new(),
        from: None,
        filter: None,
        group_by: Vec::new(),
        having: None,
        order_by: Vec::new(),
        limit: None,
        offset: None,
        compound: Vec::new(),
        with: Vec::new(),
        windows: Vec::new(),
    }
}

/// SELECT ... FROM ... WHERE ... GROUP BY ... HAVING ...
fn select_core(pair: P, s: &mut Select) -> Result<()> {
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::distinct => s.distinct = true,
            Rule::select_item => s.items.push(select_item(p)?),
            Rule::from_clause => s.from = Some(from_clause(p)?),
            Rule::where_clause => s.filter = Some(where_clause(p)?),
            Rule::group_by => {
                s.group_by = p
                    .into_inner()
                    .filter(|q| q.as_rule() == Rule::expr)
                    .map(expr)
                    .collect::<Result<_>>()?
            }
            Rule::having => s.having = Some(expr(next(&mut p.into_inner().skip(1), "HAVING")?)?),
            Rule::window_clause => s.windows = build_window::window_clause(p)?,
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn select_item(pair: P) -> Result<SelectItem> {
    let mut inner = pair.into_inner();
    let first = next(&mut inner, "select item")?;
    Ok(match first.as_rule() {
        Rule::wildcard => SelectItem::Wildcard,
        Rule::qualified_wildcard => SelectItem::QualifiedWildcard(ident(next(&mut first.into_inner(), "table.*")?)),
        _ => SelectItem::Expr {
            expr: expr(first)?,
            alias: inner.next().map(alias).transpose()?,
        },
    })
}

fn alias(pair: P) -> Result<String> {
    let name = pair
        .into_inner()
        .find(|p| matches!(p.as_rule(), Rule::ident | Rule::string))
        .ok_or_else(|| SqlError::Invalid("malformed alias".into()))?;
    Ok(match name.as_rule() {
        Rule::string => {
            let quoted = name.as_str();
            quoted[1..quoted.len() - 1].replace("''", "'")
        }
        _ => ident(name),
    })
}

fn table_ref(pair: P) -> Result<TableRef> {
    let mut inner = pair.into_inner();
    let first = next(&mut inner, "table")?;
    let alias = inner.next().map(alias).transpose()?;
    Ok(match first.as_rule() {
        Rule::select => TableRef {
            name: "subquery".into(),
            alias,
            subquery: Some(Box::new(select(first)?)),
        },
        _ => TableRef {
            name: ident(first),
            alias,
            subquery: None,
        },
    })
}

fn from_clause(pair: P) -> Result<From> {
    let mut inner = pair.into_inner().skip(1);
    let table = table_ref(next(&mut inner, "FROM")?)?;
    let mut joins = Vec::new();
    for p in inner {
        match p.as_rule() {
            Rule::comma_join => joins.push(Join {
                kind: JoinKind::Inner,
                table: table_ref(next(&mut p.into_inner(), "join")?)?,
                on: None,
                using: Vec::new(),
            }),
            Rule::join => {
                let mut j = p.into_inner();
                let kind_pair = next(&mut j, "join")?;
                let kind_rule = next(&mut kind_pair.into_inner(), "join")?.as_rule();
                let table = table_ref(next(&mut j, "join")?)?;
                let (mut on, mut using) = (None, Vec::new());
                for q in j {
                    match q.as_rule() {
                        Rule::expr => on = Some(expr(q)?),
                        Rule::using => {
                            using = next(&mut q.into_inner().filter(|r| r.as_rule() == Rule::ident_list), "USING")
                                .map(ident_list)?
                        }
                        _ => {}
                    }
                }
                let kind = match kind_rule {
                    Rule::left_join => JoinKind::Left,
                    _ => JoinKind::Inner,
                };
                if kind == JoinKind::Left && on.is_none() && using.is_empty() {
                    return Err(SqlError::Invalid(format!(
                        "LEFT JOIN {} needs an ON or USING condition",
                        table.name
                    )));
                }
                joins.push(Join { kind, table, on, using });
            }
            _ => {}
        }
    }
    Ok(From { table, joins })
}

pub(super) fn order_item(pair: P) -> Result<OrderItem> {
    let mut item = OrderItem {
        expr: Expr::Literal(Literal::Null),
        descending: false,
        nulls_first: None,
    };
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::expr => item.expr = expr(p)?,
            Rule::desc => item.descending = true,
            Rule::nulls_first => item.nulls_first = Some(true),
            Rule::nulls_last => item.nulls_first = Some(false),
            _ => {}
        }
    }
    Ok(item)
}
