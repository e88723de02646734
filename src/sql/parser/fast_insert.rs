//! A hand-written parser for the most common statements on a gateway: a
//! bulk `INSERT INTO t [(cols)] VALUES (...), ...` whose values are all
//! plain literals, and the "latest value per sensor" UPSERT: the same with
//! `INSERT OR REPLACE | OR IGNORE`, `REPLACE INTO`, or `ON CONFLICT [(cols)]
//! DO NOTHING | DO UPDATE SET c = excluded.c, ...`. pest spends most of such
//! a statement descending its expression rules for every value (a
//! single-row UPSERT took 94 µs to parse, the scanner takes a few); this
//! scanner does the same job in one pass.
//!
//! It either produces exactly the AST the grammar would, or returns None and
//! the grammar parses the text (so every error still comes from one place).

use super::ast::{ConflictAction, Expr, Literal, OnConflict, Statement};
use super::{ParsedStatement, Rule, SqlParser};
use pest::Parser as _;

/// Parses a script made only of such INSERTs, separated by `;` (a file of
/// bulk INSERTs piped through the client is sent several at a time).
pub fn parse(sql: &str) -> Option<Vec<ParsedStatement>> {
    let mut s = Scanner { text: sql, at: 0 };
    let mut statements = Vec::new();
    loop {
        while s.punct(b';') {}
        let start = s.skip_space()?;
        if start == sql.len() {
            break;
        }
        statements.push(statement(&mut s, sql, start)?);
        if !s.punct(b';') {
            (s.skip_space()? == sql.len()).then_some(())?;
            break;
        }
    }
    (!statements.is_empty()).then_some(statements)
}

/// One INSERT starting at `start`, up to (not including) its `;`.
fn statement(s: &mut Scanner<'_>, sql: &str, start: usize) -> Option<ParsedStatement> {
    let mut conflict = match s.word()?.to_ascii_lowercase().as_str() {
        "insert" => s.or_action()?,
        "replace" => Some(ConflictAction::Replace),
        _ => return None,
    }
    .map(|action| OnConflict { target: None, action });
    s.keyword("into")?;
    let table = s.identifier()?;
    let columns = match s.punct(b'(') {
        true => Some(s.names()?),
        false => None,
    };
    s.keyword("values")?;
    let mut rows = Vec::new();
    loop {
        s.punct(b'(').then_some(())?;
        let mut row = vec![s.value()?];
        while s.punct(b',') {
            row.push(s.value()?);
        }
        s.punct(b')').then_some(())?;
        rows.push(row);
        if !s.punct(b',') {
            break;
        }
    }
    if conflict.is_none() {
        conflict = s.on_conflict()?;
    }
    let end = s.skip_space()?;
    let text = sql[start..end].trim().to_string();
    Some(ParsedStatement {
        statement: Statement::Insert {
            table,
            columns,
            rows,
            query: None,
            conflict,
            returning: Vec::new(),
        },
        text,
        parameters: Vec::new(),
    })
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Scanner<'_> {
    fn bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// Skips whitespace; None at a comment (left to the grammar). Returns
    /// the position reached.
    fn skip_space(&mut self) -> Option<usize> {
        while let Some(&b) = self.bytes().get(self.at) {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.at += 1,
                b'-' | b'/' if matches!(self.bytes().get(self.at + 1), Some(b'-' | b'*')) => return None,
                _ => break,
            }
        }
        Some(self.at)
    }

    fn word(&mut self) -> Option<&str> {
        self.skip_space()?;
        let start = self.at;
        let first = *self.bytes().get(start)?;
        if !(first.is_ascii_alphabetic() || first == b'_') {
            return None;
        }
        while self.bytes().get(self.at).is_some_and(|&b| is_ident_byte(b)) {
            self.at += 1;
        }
        Some(&self.text[start..self.at])
    }

    fn keyword(&mut self, kw: &str) -> Option<()> {
        self.word()?.eq_ignore_ascii_case(kw).then_some(())
    }

    /// A bare identifier that is not a reserved word (checked by the
    /// grammar's own rule), folded to lower case as the grammar does.
    fn identifier(&mut self) -> Option<String> {
        let word = self.word()?;
        let parsed = SqlParser::parse(Rule::bare_ident, word).ok()?;
        (parsed.as_str().len() == word.len()).then(|| word.to_ascii_lowercase())
    }

    /// After INSERT: `OR REPLACE | OR IGNORE | OR ABORT`, or nothing. None
    /// declines the statement; Some(None) means no conflict action.
    fn or_action(&mut self) -> Option<Option<ConflictAction>> {
        let before = self.at;
        if !self.word()?.eq_ignore_ascii_case("or") {
            self.at = before;
            return Some(None);
        }
        match self.word()?.to_ascii_lowercase().as_str() {
            "replace" => Some(Some(ConflictAction::Replace)),
            "ignore" => Some(Some(ConflictAction::Nothing)),
            "abort" => Some(None),
            _ => None,
        }
    }

    /// `ON CONFLICT [(cols)] DO NOTHING | DO UPDATE SET c = excluded.c, ...`
    /// or nothing (Some(None)); None declines the statement.
    fn on_conflict(&mut self) -> Option<Option<OnConflict>> {
        let before = self.at;
        if !self.word().is_some_and(|w| w.eq_ignore_ascii_case("on")) {
            self.at = before;
            return Some(None);
        }
        self.keyword("conflict")?;
        let target = match self.punct(b'(') {
            true => Some(self.names()?),
            false => None,
        };
        self.keyword("do")?;
        let action = match self.word()?.to_ascii_lowercase().as_str() {
            "nothing" => ConflictAction::Nothing,
            "update" => {
                self.keyword("set")?;
                let mut set = Vec::new();
                loop {
                    let column = self.identifier()?;
                    self.punct(b'=').then_some(())?;
                    self.keyword("excluded")?;
                    self.punct(b'.').then_some(())?;
                    let name = self.identifier()?;
                    let value = Expr::Column {
                        table: Some("excluded".into()),
                        name,
                    };
                    set.push((column, value));
                    if !self.punct(b',') {
                        break;
                    }
                }
                ConflictAction::Update { set, filter: None }
            }
            _ => return None,
        };
        Some(Some(OnConflict { target, action }))
    }

    /// `a, b, c)`: identifiers up to a closing parenthesis.
    fn names(&mut self) -> Option<Vec<String>> {
        let mut names = vec![self.identifier()?];
        while self.punct(b',') {
            names.push(self.identifier()?);
        }
        self.punct(b')').then_some(names)
    }

    fn punct(&mut self, c: u8) -> bool {
        if self.skip_space().is_none() || self.bytes().get(self.at) != Some(&c) {
            return false;
        }
        self.at += 1;
        true
    }

    /// A literal followed by `,` or `)`.
    fn value(&mut self) -> Option<Expr> {
        self.skip_space()?;
        let b = *self.bytes().get(self.at)?;
        let literal = match b {
            b'\'' => self.string()?,
            b'-' | b'.' | b'0'..=b'9' => self.number()?,
            _ => match self.word()?.to_ascii_lowercase().as_str() {
                "null" => Literal::Null,
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                _ => return None,
            },
        };
        self.skip_space()?;
        matches!(self.bytes().get(self.at), Some(b',' | b')')).then_some(Expr::Literal(literal))
    }

    fn string(&mut self) -> Option<Literal> {
        let bytes = self.bytes();
        let start = self.at + 1;
        let mut i = start;
        let mut quoted = false;
        loop {
            match bytes.get(i)? {
                b'\'' if bytes.get(i + 1) == Some(&b'\'') => {
                    quoted = true;
                    i += 2;
                }
                b'\'' => break,
                _ => i += 1,
            }
        }
        let inner = &self.text[start..i];
        self.at = i + 1;
        Some(Literal::String(match quoted {
            true => inner.replace("''", "'"),
            false => inner.to_string(),
        }))
    }

    /// The grammar's number rule, with an optional leading minus.
    fn number(&mut self) -> Option<Literal> {
        let bytes = self.bytes();
        let start = self.at;
        let mut i = start + usize::from(bytes[start] == b'-');
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - from
        };
        let whole = digits(&mut i);
        let mut is_float = false;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            is_float = true;
            if digits(&mut i) == 0 && whole == 0 {
                return None;
            }
        } else if whole == 0 {
            return None;
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return None;
            }
            is_float = true;
        }
        if bytes.get(i).is_some_and(|&b| is_ident_byte(b)) {
            return None;
        }
        let text = &self.text[start..i];
        self.at = i;
        // Out-of-range numbers go to the grammar, which reports them.
        match is_float {
            false => text.parse().ok().map(Literal::Int),
            true => text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Literal::Float),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grammar(sql: &str) -> Vec<ParsedStatement> {
        super::super::parse_with_grammar(sql).unwrap()
    }

    #[test]
    fn matches_the_grammar() {
        for sql in [
            "INSERT INTO t VALUES (1, 'a', NULL, true, false, -2.5, .5, 1e3, -9223372036854775808)",
            "insert into Readings (Sensor, ts) values ('it''s', 1700000000000), ('b', 2);",
            "  INSERT INTO t VALUES (1) ,( 2 ) ;; ",
            "INSERT INTO t VALUES ('')",
            "INSERT INTO latest VALUES (1, 2.5) ON CONFLICT (sensor) DO UPDATE SET v = excluded.v",
            "insert into latest (a, b) values (1, 2) on conflict (a, b) do update set b = EXCLUDED.b, c = excluded . a;",
            "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING",
            "INSERT INTO t VALUES (1) ON CONFLICT (a) DO NOTHING",
            "INSERT OR REPLACE INTO t VALUES (1), (2)",
            "insert or ignore into t values (1)",
            "INSERT OR ABORT INTO t VALUES (1)",
            "REPLACE INTO t (a) VALUES (1)",
            "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)",
            ";; insert into a values (1) ;\n\n INSERT INTO b (x) VALUES ('x;y'), (2);;",
        ] {
            let fast = parse(sql).unwrap_or_else(|| panic!("fast path declined {sql}"));
            let slow = grammar(sql);
            assert_eq!(fast.len(), slow.len(), "{sql}");
            for (fast, slow) in fast.iter().zip(&slow) {
                assert_eq!(fast.statement, slow.statement, "{sql}");
                assert_eq!(fast.text, slow.text, "{sql}");
            }
        }
    }

    #[test]
    fn declines_what_it_does_not_handle() {
        for sql in [
            "INSERT INTO t VALUES (1 + 1)",
            "INSERT INTO t VALUES (now())",
            "INSERT INTO t VALUES (1); SELECT 1",
            "INSERT INTO t VALUES (1); INSERT INTO t VALUES (now())",
            "INSERT INTO t VALUES (1) INSERT INTO t VALUES (2)",
            ";;",
            "INSERT INTO t VALUES (1) -- comment",
            "INSERT INTO \"T\" VALUES (1)",
            "INSERT INTO order VALUES (1)",
            "INSERT INTO t VALUES (99999999999999999999)",
            "INSERT INTO t VALUES ('open",
            "INSERT INTO t VALUES (1",
            "INSERT INTO t VALUES (- 1)",
            "INSERT INTO t VALUES (1x)",
            "INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b + 1",
            "INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = b + 1",
            "INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b WHERE b > 1",
            "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING RETURNING *",
            "INSERT OR FAIL INTO t VALUES (1)",
            "INSERT OR REPLACE INTO t VALUES (1) ON CONFLICT DO NOTHING",
            "REPLACE t VALUES (1)",
        ] {
            assert!(parse(sql).is_none(), "fast path took {sql}");
        }
    }
}
