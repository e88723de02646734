//! Translation of expressions from pest's parse tree into the AST, with
//! the nesting bound that keeps every later walk of them shallow.

use super::Rule;
use super::ast::*;
use super::build::{ident, invalid, next, select};
use super::build_window;
use crate::sql::error::{Result, SqlError};
use pest::iterators::Pair;

type P<'a> = Pair<'a, Rule>;

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
pub(super) fn data_type(pair: P) -> Result<(String, Option<u32>)> {
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
