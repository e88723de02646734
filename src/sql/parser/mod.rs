//! The SQL parser: a pest grammar (grammar.pest) and the translation of its
//! parse tree into the AST. It knows no tables or types; the planner checks
//! names and meaning.

pub mod ast;
mod ast_window;
mod ast_write;
mod build;
mod build_expr;
mod build_window;
mod build_write;
mod fast_insert;
pub mod params;

use crate::sql::error::{Result, SqlError};
use pest::Parser as _;
use pest_derive::Parser;

#[derive(Parser)]
#[grammar = "sql/parser/grammar.pest"]
struct SqlParser;

/// One statement of a script and the text it was parsed from.
#[derive(Clone, Debug)]
pub struct ParsedStatement {
    pub statement: ast::Statement,
    pub text: String,
    /// The statement's parameter placeholders, in text order.
    pub parameters: Vec<ast::Placeholder>,
}

/// Parses a script of statements separated by `;`.
pub fn parse(sql: &str) -> Result<Vec<ast::Statement>> {
    Ok(parse_script(sql)?.into_iter().map(|p| p.statement).collect())
}

/// Parses a script, keeping each statement's source text.
pub fn parse_script(sql: &str) -> Result<Vec<ParsedStatement>> {
    if let Some(statements) = fast_insert::parse(sql) {
        return Ok(statements);
    }
    // A script of many statements (a file piped through the client): each
    // is parsed on its own, so that its bulk INSERTs take the fast path
    // instead of the grammar. Any failure parses the whole script with the
    // grammar, so errors and their positions are the grammar's.
    if let Some(pieces) = split_statements(sql).filter(|p| p.len() > 1) {
        let mut out = Vec::with_capacity(pieces.len());
        for piece in pieces {
            match fast_insert::parse(piece) {
                Some(statements) => out.extend(statements),
                None => match parse_with_grammar(piece) {
                    Ok(statements) => out.extend(statements),
                    Err(_) => return parse_with_grammar(sql),
                },
            }
        }
        return Ok(out);
    }
    parse_with_grammar(sql)
}

/// `sql` cut at each `;` outside quotes, blank pieces left out; None when it
/// holds a comment (where a statement with comments ends is left to the
/// grammar).
fn split_statements(sql: &str) -> Option<Vec<&str>> {
    let bytes = sql.as_bytes();
    let mut pieces = Vec::new();
    let (mut start, mut i) = (0, 0);
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            // A doubled quote inside quotes is the quote itself.
            Some(q) if b == q && bytes.get(i + 1) == Some(&q) => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'\'' | b'"' => quote = Some(b),
                b'-' if bytes.get(i + 1) == Some(&b'-') => return None,
                b'/' if bytes.get(i + 1) == Some(&b'*') => return None,
                b';' => {
                    pieces.push(&sql[start..i]);
                    start = i + 1;
                }
                _ => {}
            },
        }
        i += 1;
    }
    pieces.push(&sql[start..]);
    pieces.retain(|p| !p.trim().is_empty());
    Some(pieces)
}

fn parse_with_grammar(sql: &str) -> Result<Vec<ParsedStatement>> {
    // pest recurses several frames per level of parentheses or CASE, and
    // unoptimized builds use large frames: deep input is parsed on a helper
    // thread with a roomy stack, so the caller's stack size never matters.
    if check_nesting(sql)? > SHALLOW {
        return std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("sql-parse".into())
                .stack_size(DEEP_PARSE_STACK)
                .spawn_scoped(scope, || grammar(sql))
                .map_err(|e| SqlError::Invalid(format!("cannot start the parser thread: {e}")))?
                .join()
                .map_err(|_| SqlError::Invalid("the parser failed on this input".into()))?
        });
    }
    grammar(sql)
}

/// Nesting that any thread stack parses comfortably.
const SHALLOW: usize = 8;
const DEEP_PARSE_STACK: usize = 64 * 1024 * 1024;

fn grammar(sql: &str) -> Result<Vec<ParsedStatement>> {
    let mut pairs = SqlParser::parse(Rule::script, sql).map_err(syntax_error)?;
    let script = pairs.next().ok_or_else(|| SqlError::Syntax {
        line: 1,
        column: 1,
        message: "empty input".into(),
    })?;
    script
        .into_inner()
        .filter(|p| p.as_rule() == Rule::statement)
        .map(|p| {
            let text = p.as_str().trim().to_string();
            let parameters = p
                .clone()
                .into_inner()
                .flatten()
                .filter(|q| q.as_rule() == Rule::parameter)
                .map(|q| build_expr::placeholder(&q))
                .collect::<Result<Vec<_>>>()?;
            Ok(ParsedStatement {
                statement: build::statement(p)?,
                text,
                parameters,
            })
        })
        .collect()
}

/// Refuses input nested deeper than the grammar may safely recurse. The
/// grammar recurses only through parentheses and CASE ... END, so counting
/// those (outside strings, quoted names and comments) before parsing keeps
/// the parser's own recursion bounded on any thread stack.
/// Returns the deepest nesting found.
fn check_nesting(sql: &str) -> Result<usize> {
    let bytes = sql.as_bytes();
    let (mut depth, mut cases, mut i, mut deepest) = (0usize, 0usize, 0usize, 0usize);
    let word_at = |i: usize, w: &str| {
        bytes.len() >= i + w.len()
            && bytes[i..i + w.len()].eq_ignore_ascii_case(w.as_bytes())
            && bytes
                .get(i + w.len())
                .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
    };
    while i < bytes.len() {
        let b = bytes[i];
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        match b {
            b'\'' | b'"' => {
                // Skip to the closing quote (a doubled quote stays inside).
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b && bytes.get(i + 1) == Some(&b) {
                        i += 2;
                    } else if bytes[i] == b {
                        break;
                    } else {
                        i += 1;
                    }
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b'c' | b'C' if starts_word && word_at(i, "case") => {
                depth += 1;
                cases += 1;
            }
            b'e' | b'E' if starts_word && cases > 0 && word_at(i, "end") => {
                depth = depth.saturating_sub(1);
                cases -= 1;
            }
            _ => {}
        }
        deepest = deepest.max(depth);
        if depth > build_expr::MAX_EXPR_DEPTH {
            let line = sql[..i].matches('\n').count() + 1;
            let column = sql[..i].rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            return Err(SqlError::Syntax {
                line,
                column,
                message: format!(
                    "nesting is too deep (more than {} levels of parentheses or CASE)",
                    build_expr::MAX_EXPR_DEPTH
                ),
            });
        }
        i += 1;
    }
    Ok(deepest)
}

/// Parses exactly one statement.
pub fn parse_one(sql: &str) -> Result<ast::Statement> {
    parse_one_with(sql, &params::Params::default())
}

/// Parses exactly one statement and binds its parameters.
pub fn parse_one_with(sql: &str, values: &params::Params) -> Result<ast::Statement> {
    let mut statements = parse_script(sql)?;
    match statements.len() {
        1 => {}
        0 => return Err(SqlError::Invalid("no statement given".into())),
        n => return Err(SqlError::Invalid(format!("expected one statement, got {n}"))),
    }
    params::bind(&mut statements, values).map_err(|(_, e)| e)?;
    Ok(statements.remove(0).statement)
}

/// Turns pest's error into "syntax error at line L, column C: expected X,
/// found Y", naming grammar rules the way a user writes them.
fn syntax_error(e: pest::error::Error<Rule>) -> SqlError {
    let (line, column) = match e.line_col {
        pest::error::LineColLocation::Pos(p) => p,
        pest::error::LineColLocation::Span(p, _) => p,
    };
    let found = {
        let rest = match e.location {
            pest::error::InputLocation::Pos(p) => p,
            pest::error::InputLocation::Span((p, _)) => p,
        };
        let line_text = e.line();
        // The offending token: the text at the error position up to a space.
        let at = line_text.chars().skip(column.saturating_sub(1)).collect::<String>();
        let token: String = at.split_whitespace().next().unwrap_or("").chars().take(20).collect();
        if token.is_empty() || rest == usize::MAX {
            "end of input".to_string()
        } else {
            format!("'{token}'")
        }
    };
    let message = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<String> = positives.iter().filter_map(|r| rule_name(*r)).collect();
            names.sort();
            names.dedup();
            // Too long a list of alternatives helps nobody.
            if names.is_empty() || names.len() > 8 {
                format!("unexpected {found}")
            } else {
                format!("expected {}, found {found}", names.join(", "))
            }
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    SqlError::Syntax { line, column, message }
}

/// A user-facing name for a grammar rule, or None to leave it out.
fn rule_name(rule: Rule) -> Option<String> {
    let name = format!("{rule:?}");
    if let Some(kw) = name.strip_prefix("kw_") {
        return Some(kw.to_uppercase());
    }
    Some(
        match rule {
            Rule::EOI => "end of input",
            Rule::ident | Rule::bare_ident | Rule::quoted_ident => "a name",
            Rule::expr
            | Rule::or_expr
            | Rule::and_expr
            | Rule::not_expr
            | Rule::cmp_expr
            | Rule::add_expr
            | Rule::mul_expr
            | Rule::concat_expr
            | Rule::unary_expr => "an expression",
            Rule::statement => "a statement",
            Rule::number | Rule::integer => "a number",
            Rule::string => "a string",
            Rule::data_type | Rule::type_name => "a type",
            Rule::cmp_op => "a comparison",
            Rule::add_op | Rule::mul_op | Rule::concat_op => "an operator",
            Rule::select_item | Rule::wildcard => "a select item",
            Rule::values_row => "'('",
            _ => return None,
        }
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ast::*;

    #[test]
    fn a_script_parsed_statement_by_statement_matches_the_grammar() {
        for sql in [
            "CREATE TABLE t (a INT PRIMARY KEY, b TEXT); INSERT INTO t VALUES (1, 'x;y'), (2, 'it''s'); INSERT INTO t VALUES (3, NULL);",
            "SELECT 'a;b' AS \"c;\"\"d\"; ;; UPDATE t SET b = ';' WHERE a = 1;\n\nDELETE FROM t",
            "BEGIN; INSERT INTO t VALUES (1 + 1, 'a'); COMMIT",
        ] {
            let pieces = split_statements(sql).unwrap();
            assert!(pieces.len() > 1, "{sql}");
            let split = parse_script(sql).unwrap();
            let whole = parse_with_grammar(sql).unwrap();
            assert_eq!(split.len(), whole.len(), "{sql}");
            for (a, b) in split.iter().zip(&whole) {
                assert_eq!(a.statement, b.statement, "{sql}");
                assert_eq!(a.text, b.text, "{sql}");
            }
        }
        // Errors come from the grammar over the whole script, positions and all.
        let bad = "INSERT INTO t VALUES (1);\nSELEC 2;\nINSERT INTO t VALUES (3)";
        assert_eq!(
            parse_script(bad).unwrap_err().to_string(),
            parse_with_grammar(bad).unwrap_err().to_string()
        );
        assert!(split_statements("INSERT INTO t VALUES (1); -- c").is_none());
    }

    #[test]
    fn parses_a_script_with_comments() {
        let s = parse_script(
            "-- make a table\nCREATE TABLE t (id INT PRIMARY KEY, name STRING NOT NULL);\n\
             insert into T values (1, 'a''b'); ; SELECT * FROM t",
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].text, "insert into T values (1, 'a''b')");
        match &s[1].statement {
            Statement::Insert { table, rows, .. } => {
                assert_eq!(table, "t");
                assert_eq!(rows[0][1], Expr::Literal(Literal::String("a'b".into())));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn precedence_of_and_or_not() {
        let s = parse_one("SELECT a FROM t WHERE NOT a = 1 OR b = 2 AND c = 3").unwrap();
        let Statement::Select(sel) = s else { panic!() };
        let filter = sel.filter.unwrap();
        assert_eq!(filter.to_string(), "NOT (a = 1) OR ((b = 2) AND (c = 3))");
        let Expr::Binary {
            op: BinaryOp::Or,
            left,
            right,
        } = filter
        else {
            panic!("{filter:?}")
        };
        assert!(matches!(*left, Expr::Unary { op: UnaryOp::Not, .. }));
        assert!(matches!(*right, Expr::Binary { op: BinaryOp::And, .. }));
    }

    #[test]
    fn arithmetic_binds_tighter_than_comparison() {
        let s = parse_one("SELECT 1 + 2 * 3 - 4 < 5").unwrap();
        let Statement::Select(sel) = s else { panic!() };
        let SelectItem::Expr { expr, .. } = &sel.items[0] else {
            panic!()
        };
        assert_eq!(expr.to_string(), "((1 + (2 * 3)) - 4) < 5");
        let Expr::Binary {
            op: BinaryOp::Lt, left, ..
        } = expr
        else {
            panic!()
        };
        assert!(matches!(**left, Expr::Binary { op: BinaryOp::Sub, .. }));
    }

    #[test]
    fn syntax_errors_name_line_column_and_expectation() {
        let err = parse("SELECT * FROM t;\nSELEC x").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 2, column 1"), "{msg}");
        let err = parse("SELECT * FORM t").unwrap_err().to_string();
        assert!(err.contains("line 1, column 10"), "{err}");
        assert!(err.contains("'FORM'"), "{err}");
        let err = parse("CREATE TABLE t (id INT,)").unwrap_err().to_string();
        assert!(err.contains("column 24"), "{err}");
    }

    #[test]
    fn keywords_are_case_insensitive_and_reserved() {
        assert!(parse("select * from t where x between 1 and 2 order by x desc limit 3").is_ok());
        assert!(parse("SELECT * FROM select").is_err());
        assert!(parse("SELECT * FROM \"select\"").is_ok());
    }

    #[test]
    fn min_integer_literal() {
        let s = parse_one("SELECT -9223372036854775808").unwrap();
        let Statement::Select(sel) = s else { panic!() };
        let SelectItem::Expr { expr, .. } = &sel.items[0] else {
            panic!()
        };
        assert_eq!(*expr, Expr::Literal(Literal::Int(i64::MIN)));
    }
}
