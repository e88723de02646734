//! Translation of pest's parse tree into the AST.

use super::Rule;
use super::ast::*;
use super::build_window;
use super::build_write;
use crate::sql::error::{Result, SqlError};
use pest::iterators::Pair;

type P<'a> = Pair<'a, Rule>;

pub(super) fn invalid(pair: &P, message: String) -> SqlError {
    let (line, column) = pair.line_col();
    SqlError::Syntax { line, column, message }
}

/// The deepest expression accepted. Expressions are walked recursively when
/// they are planned, evaluated and dropped; this bound keeps every such walk
/// far from the end of a thread's stack whatever the input.
pub const MAX_EXPR_DEPTH: usize = 64;

fn check_depth(depth: usize, at: &P) -> Result<()> {
    match depth > MAX_EXPR_DEPTH {
        true => Err(invalid(
            at,
            format!(
                "expression is nested too deeply (more than {MAX_EXPR_DEPTH} levels); \
                 use IN (...) for a long list of alternatives"
            ),
        )),
        false => Ok(()),
    }
}

/// The depth of a binary node over a child of depth `child`.
fn deeper(child: usize, at: &P) -> Result<usize> {
    check_depth(child + 1, at)?;
    Ok(child + 1)
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

/// Joins operands with `op` into a balanced tree, keeping their order.
fn balanced(op: BinaryOp, mut operands: Vec<Expr>) -> Option<Expr> {
    if operands.len() <= 1 {
        return operands.pop();
    }
    let right = operands.split_off(operands.len() / 2);
    Some(binary(op, balanced(op, operands)?, balanced(op, right)?))
}

fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}

/// Builds an expression. Parentheses nest the builder once per grammar level,
/// so its recursion is bounded too.
pub fn expr(pair: P) -> Result<Expr> {
    thread_local!(static NESTING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) });
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            NESTING.with(|n| n.set(n.get().saturating_sub(1)));
        }
    }
    let level = NESTING.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    let _leave = Leave;
    // Nine grammar levels per pair of parentheses.
    check_depth(level / 9, &pair)?;
    build_expr(pair)
}

fn build_expr(pair: P) -> Result<Expr> {
    let rule = pair.as_rule();
    match rule {
        Rule::expr => expr(next(&mut pair.into_inner(), "expression")?),
        Rule::or_expr | Rule::and_expr => {
            let pair_at = pair.clone();
            let op = if rule == Rule::or_expr {
                BinaryOp::Or
            } else {
                BinaryOp::And
            };
            let operands = pair
                .into_inner()
                .filter(|p| !matches!(p.as_rule(), Rule::kw_or | Rule::kw_and))
                .map(expr)
                .collect::<Result<Vec<_>>>()?;
            // AND and OR are associative (in three-valued logic too), so a
            // long chain becomes a balanced tree: `a = 1 OR ... OR a = 500`
            // is 9 levels deep, not 500.
            let depth = operands.iter().map(Expr::depth).max().unwrap_or(0);
            check_depth(
                depth + operands.len().next_power_of_two().trailing_zeros() as usize,
                &pair_at,
            )?;
            balanced(op, operands).ok_or_else(|| SqlError::Invalid("malformed expression".into()))
        }
        Rule::not_expr => {
            let pair_at = pair.clone();
            let mut nots = 0;
            let mut operand = None;
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::not_op => nots += 1,
                    _ => operand = Some(expr(p)?),
                }
            }
            let mut e = operand.ok_or_else(|| SqlError::Invalid("malformed NOT".into()))?;
            check_depth(e.depth() + nots, &pair_at)?;
            for _ in 0..nots {
                e = Expr::Unary {
                    op: UnaryOp::Not,
                    expr: Box::new(e),
                };
            }
            Ok(e)
        }
        Rule::cmp_expr => {
            let pair_at = pair.clone();
            let mut inner = pair.into_inner();
            let mut acc = expr(next(&mut inner, "comparison")?)?;
            for suffix in inner {
                acc = comparison_suffix(acc, suffix)?;
                check_depth(acc.depth(), &pair_at)?;
            }
            Ok(acc)
        }
        Rule::add_expr | Rule::mul_expr | Rule::concat_expr => {
            let pair_at = pair.clone();
            let mut inner = pair.into_inner();
            let mut acc = expr(next(&mut inner, "operand")?)?;
            let mut depth = acc.depth();
            while let Some(op) = inner.next() {
                let right = expr(next(&mut inner, "operand")?)?;
                depth = deeper(depth.max(right.depth()), &pair_at)?;
                let op = match op.as_str() {
                    "+" => BinaryOp::Add,
                    "-" => BinaryOp::Sub,
                    "*" => BinaryOp::Mul,
                    "/" => BinaryOp::Div,
                    "%" => BinaryOp::Mod,
                    _ => BinaryOp::Concat,
                };
                acc = binary(op, acc, right);
            }
            Ok(acc)
        }
        Rule::unary_expr => {
            let parts: Vec<P> = pair.into_inner().collect();
            let (ops, operand) = parts.split_at(parts.len().saturating_sub(1));
            let operand = operand
                .first()
                .cloned()
                .ok_or_else(|| SqlError::Invalid("malformed unary expression".into()))?;
            // `-9223372036854775808` is a literal, not the negation of a
            // number too large for BIGINT.
            let mut e = match (ops.last(), operand.as_rule()) {
                (Some(op), Rule::number) if op.as_str() == "-" => {
                    let negated = format!("-{}", operand.as_str());
                    let e = number_literal(&operand, &negated)?;
                    return wrap_unary(&ops[..ops.len() - 1], e);
                }
                _ => expr(operand)?,
            };
            e = wrap_unary(ops, e)?;
            Ok(e)
        }
        Rule::plain_value => expr(next(&mut pair.into_inner(), "value")?),
        Rule::number | Rule::negative_number => number_literal(&pair, pair.as_str()),
        Rule::string => {
            let s = pair.as_str();
            let inner = &s[1..s.len() - 1];
            Ok(Expr::Literal(Literal::String(inner.replace("''", "'"))))
        }
        Rule::null => Ok(Expr::Literal(Literal::Null)),
        Rule::parameter => Ok(Expr::Parameter(placeholder(&pair)?)),
        Rule::boolean => Ok(Expr::Literal(Literal::Bool(pair.as_str().eq_ignore_ascii_case("true")))),
        Rule::column_ref => {
            let mut parts: Vec<String> = pair.into_inner().map(ident).collect();
            let name = parts.pop().unwrap_or_default();
            Ok(Expr::Column {
                table: parts.pop(),
                name,
            })
        }
        Rule::function_call => {
            let mut inner = pair.into_inner();
            let name = ident(next(&mut inner, "function")?);
            let mut args = Vec::new();
            let mut star = false;
            let mut distinct = false;
            let mut over = None;
            for p in inner {
                match p.as_rule() {
                    Rule::star => star = true,
                    Rule::distinct => distinct = true,
                    Rule::over_clause => over = Some(Box::new(build_window::over_clause(p)?)),
                    _ => args.push(expr(p)?),
                }
            }
            Ok(Expr::Function {
                name,
                args,
                star,
                distinct,
                over,
            })
        }
        Rule::case_expr => {
            let pair_at = pair.clone();
            let (mut operand, mut whens, mut otherwise) = (None, Vec::new(), None);
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::case_operand => operand = Some(Box::new(expr(next(&mut p.into_inner(), "CASE")?)?)),
                    Rule::when_clause => {
                        let mut parts = p.into_inner().filter(|q| q.as_rule() == Rule::expr);
                        let when = expr(next(&mut parts, "WHEN")?)?;
                        let then = expr(next(&mut parts, "THEN")?)?;
                        whens.push((when, then));
                    }
                    Rule::else_clause => {
                        let e = next(&mut p.into_inner().filter(|q| q.as_rule() == Rule::expr), "ELSE")?;
                        otherwise = Some(Box::new(expr(e)?));
                    }
                    _ => {}
                }
            }
            let case = Expr::Case {
                operand,
                whens,
                otherwise,
            };
            check_depth(case.depth(), &pair_at)?;
            Ok(case)
        }
        Rule::subquery | Rule::exists => {
            let is_exists = rule == Rule::exists;
            let query = pair
                .into_inner()
                .find(|q| q.as_rule() == Rule::select)
                .ok_or_else(|| SqlError::Invalid("subquery needs a SELECT".into()))?;
            let query = Box::new(select(query)?);
            Ok(if is_exists {
                Expr::Exists(query)
            } else {
                Expr::Subquery(query)
            })
        }
        Rule::cast_expr => {
            let pair_at = pair.clone();
            let mut inner = pair
                .into_inner()
                .filter(|q| matches!(q.as_rule(), Rule::expr | Rule::data_type));
            let operand = expr(next(&mut inner, "CAST")?)?;
            let (type_name, type_length) = data_type(next(&mut inner, "CAST type")?)?;
            check_depth(operand.depth() + 1, &pair_at)?;
            Ok(Expr::Cast {
                expr: Box::new(operand),
                type_name,
                type_length,
            })
        }
        _ => Err(invalid(&pair, format!("unexpected {:?} in expression", pair.as_rule()))),
    }
}

/// A type as written: its name in upper case and its length, if any.
fn data_type(pair: P) -> Result<(String, Option<u32>)> {
    let (mut name, mut length) = (String::new(), None);
    for q in pair.into_inner() {
        match q.as_rule() {
            Rule::type_name => name = q.as_str().to_ascii_uppercase(),
            Rule::integer if length.is_none() => {
                length = Some(
                    q.as_str()
                        .parse()
                        .map_err(|_| invalid(&q, format!("type length {} is too large", q.as_str())))?,
                )
            }
            _ => {}
        }
    }
    Ok((name, length))
}

fn wrap_unary(ops: &[P], mut e: Expr) -> Result<Expr> {
    if let Some(first) = ops.first() {
        check_depth(e.depth() + ops.len(), first)?;
    }
    for op in ops.iter().rev() {
        let op = if op.as_str() == "-" {
            UnaryOp::Minus
        } else {
            UnaryOp::Plus
        };
        e = Expr::Unary { op, expr: Box::new(e) };
    }
    Ok(e)
}

fn number_literal(pair: &P, text: &str) -> Result<Expr> {
    let is_float = text.contains(['.', 'e', 'E']);
    if !is_float && let Ok(i) = text.parse::<i64>() {
        return Ok(Expr::Literal(Literal::Int(i)));
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && is_float => Ok(Expr::Literal(Literal::Float(f))),
        _ if !is_float => Err(invalid(pair, format!("integer {text} is out of range for BIGINT"))),
        _ => Err(invalid(pair, format!("number {text} is out of range"))),
    }
}

/// Applies one comparison suffix (`= x`, `IS NULL`, `IN (...)`, `BETWEEN`,
/// `LIKE`) to its left operand.
fn comparison_suffix(left: Expr, suffix: P) -> Result<Expr> {
    let rule = suffix.as_rule();
    if rule == Rule::in_subquery {
        let mut negated = false;
        let mut query = None;
        for p in suffix.into_inner() {
            match p.as_rule() {
                Rule::not_op => negated = true,
                Rule::select => query = Some(select(p)?),
                _ => {}
            }
        }
        let query = query.ok_or_else(|| SqlError::Invalid("IN needs a SELECT".into()))?;
        return Ok(Expr::InSubquery {
            expr: Box::new(left),
            query: Box::new(query),
            negated,
        });
    }
    let mut negated = false;
    let mut operands = Vec::new();
    let mut op_text = "";
    for p in suffix.into_inner() {
        match p.as_rule() {
            Rule::not_op => negated = true,
            Rule::cmp_op => op_text = p.as_str(),
            r if format!("{r:?}").starts_with("kw_") => {}
            _ => operands.push(expr(p)?),
        }
    }
    let left = Box::new(left);
    let mut operands = operands.into_iter();
    let mut operand = || {
        operands
            .next()
            .map(Box::new)
            .ok_or_else(|| SqlError::Invalid("malformed comparison".into()))
    };
    Ok(match rule {
        Rule::is_null => Expr::IsNull { expr: left, negated },
        Rule::between => Expr::Between {
            expr: left,
            low: operand()?,
            high: operand()?,
            negated,
        },
        Rule::like => Expr::Like {
            expr: left,
            pattern: operand()?,
            negated,
        },
        Rule::in_list => {
            let mut list = Vec::new();
            while let Ok(e) = operand() {
                list.push(*e);
            }
            Expr::InList {
                expr: left,
                list,
                negated,
            }
        }
        _ => {
            let op = match op_text {
                "=" | "==" => BinaryOp::Eq,
                "<>" | "!=" => BinaryOp::NotEq,
                "<" => BinaryOp::Lt,
                "<=" => BinaryOp::LtEq,
                ">" => BinaryOp::Gt,
                _ => BinaryOp::GtEq,
            };
            Expr::Binary {
                op,
                left,
                right: operand()?,
            }
        }
    })
}

/// `?`, `?N` or `:name`.
pub(super) fn placeholder(pair: &P) -> Result<Placeholder> {
    let text = pair.as_str();
    let name = match text.strip_prefix('?') {
        Some("") => ParameterName::Next,
        Some(digits) => match digits.parse::<u32>() {
            Ok(n @ 1..=MAX_PARAMETER) => ParameterName::Numbered(n),
            _ => {
                return Err(invalid(
                    pair,
                    format!("parameter number {digits} is out of range (1 to {MAX_PARAMETER})"),
                ));
            }
        },
        None => ParameterName::Named(text.trim_start_matches(':').to_string()),
    };
    Ok(Placeholder {
        at: pair.as_span().start(),
        name,
    })
}

/// The highest `?N` accepted (as in SQLite).
pub const MAX_PARAMETER: u32 = 32766;
