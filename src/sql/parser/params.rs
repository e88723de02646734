//! Statement parameters: the values sent beside the SQL text for its `?`,
//! `?N` and `:name` placeholders. They replace the placeholders in the
//! parsed statement, as values, so no value is ever read as SQL.

use super::ParsedStatement;
use super::ast::{Expr, Literal, ParameterName, Select, Statement};
use crate::sql::error::SqlError;
use crate::sql::types::Value;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The values of a request's parameters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Params {
    /// For `?` and `?N`: the Nth value (numbered from 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub positional: Vec<Value>,
    /// For `:name`, keyed without the colon.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub named: BTreeMap<String, Value>,
}

impl Params {
    pub fn is_empty(&self) -> bool {
        self.positional.is_empty() && self.named.is_empty()
    }

    /// Named values; a leading `:` on a name is dropped, so both `"id"` and
    /// `":id"` name `:id`.
    pub fn named(values: impl IntoIterator<Item = (String, Value)>) -> BTreeMap<String, Value> {
        values
            .into_iter()
            .map(|(k, v)| (k.strip_prefix(':').map_or_else(|| k.clone(), str::to_string), v))
            .collect()
    }
}

/// Replaces every placeholder in the statements with its value. `?`
/// numbers run on across the statements, as in one script. Every
/// placeholder needs a value and every value a placeholder; an error names
/// the statement (by position) and the parameter.
pub fn bind(statements: &mut [ParsedStatement], params: &Params) -> Result<(), (usize, SqlError)> {
    let mut highest = 0u32;
    let mut used_names = BTreeSet::new();
    let mut values = Vec::with_capacity(statements.len());
    for (i, s) in statements.iter().enumerate() {
        let mut found = BTreeMap::new();
        if !s.parameters.is_empty() && !takes_parameters(&s.statement) {
            return Err((
                i,
                SqlError::Parameter(format!(
                    "parameters are allowed in SELECT, INSERT, UPDATE and DELETE, not in {}",
                    s.statement.kind()
                )),
            ));
        }
        for p in &s.parameters {
            let value = match &p.name {
                ParameterName::Named(name) => {
                    used_names.insert(name.as_str());
                    params.named.get(name).ok_or_else(|| {
                        let given = match params.named.is_empty() {
                            true => "none".to_string(),
                            false => params
                                .named
                                .keys()
                                .map(|k| format!(":{k}"))
                                .collect::<Vec<_>>()
                                .join(", "),
                        };
                        (
                            i,
                            SqlError::Parameter(format!(
                                "no value for parameter :{name} (named values given: {given})"
                            )),
                        )
                    })?
                }
                ParameterName::Next | ParameterName::Numbered(_) => {
                    let n = match p.name {
                        ParameterName::Numbered(n) => n,
                        _ => highest + 1,
                    };
                    highest = highest.max(n);
                    params.positional.get(n as usize - 1).ok_or_else(|| {
                        (
                            i,
                            SqlError::Parameter(format!(
                                "no value for parameter ?{n}: {} positional values given",
                                params.positional.len()
                            )),
                        )
                    })?
                }
            };
            found.insert(p.at, value.clone());
        }
        values.push(found);
    }
    let last = statements.len().saturating_sub(1);
    if params.positional.len() > highest as usize {
        return Err((
            last,
            SqlError::Parameter(format!(
                "{} positional values given, but the SQL has {highest} positional parameters",
                params.positional.len()
            )),
        ));
    }
    if let Some(name) = params.named.keys().find(|k| !used_names.contains(k.as_str())) {
        return Err((
            last,
            SqlError::Parameter(format!("a value is given for :{name}, which the SQL does not use")),
        ));
    }
    for (i, (s, found)) in statements.iter_mut().zip(values).enumerate() {
        if !found.is_empty() {
            statement(&mut s.statement, &found).map_err(|e| (i, e))?;
        }
    }
    Ok(())
}

fn takes_parameters(s: &Statement) -> bool {
    match s {
        Statement::Explain(inner) => takes_parameters(inner),
        Statement::Select(_) | Statement::Insert { .. } | Statement::Update { .. } | Statement::Delete { .. } => true,
        _ => false,
    }
}

/// The values by placeholder position.
type Found = BTreeMap<usize, Value>;

fn statement(s: &mut Statement, found: &Found) -> Result<(), SqlError> {
    match s {
        Statement::Explain(inner) => statement(inner, found),
        Statement::Select(q) => select(q, found),
        Statement::Insert { query, .. } => {
            query.iter_mut().try_for_each(|q| select(q, found))?;
            s.write_exprs_mut().into_iter().try_for_each(|e| expr(e, found))
        }
        Statement::Update { .. } | Statement::Delete { .. } => {
            s.write_exprs_mut().into_iter().try_for_each(|e| expr(e, found))
        }
        _ => Ok(()),
    }
}

fn select(s: &mut Select, found: &Found) -> Result<(), SqlError> {
    for (_, q) in &mut s.with {
        select(q, found)?;
    }
    for e in s.exprs_mut() {
        expr(e, found)?;
    }
    for q in s.from_subqueries_mut() {
        select(q, found)?;
    }
    for (_, q) in &mut s.compound {
        select(q, found)?;
    }
    Ok(())
}

fn expr(e: &mut Expr, found: &Found) -> Result<(), SqlError> {
    match e {
        Expr::Parameter(p) => {
            let value = found
                .get(&p.at)
                .ok_or_else(|| SqlError::Parameter(format!("parameter {} has no value", p.name)))?;
            *e = value_expr(value.clone());
            Ok(())
        }
        Expr::Subquery(q) | Expr::Exists(q) => select(q, found),
        Expr::InSubquery { expr: left, query, .. } => {
            expr(left, found)?;
            select(query, found)
        }
        _ => e.children_mut().into_iter().try_for_each(|c| expr(c, found)),
    }
}

/// A value as an expression that evaluates to exactly it.
pub fn value_expr(v: Value) -> Expr {
    match v {
        Value::Null => Expr::Literal(Literal::Null),
        Value::Bool(b) => Expr::Literal(Literal::Bool(b)),
        Value::Int(i) => Expr::Literal(Literal::Int(i)),
        Value::Float(f) => Expr::Literal(Literal::Float(f)),
        Value::Text(s) => Expr::Literal(Literal::String(s)),
        Value::Timestamp(ms) => Expr::Cast {
            expr: Box::new(Expr::Literal(Literal::Int(ms))),
            type_name: "TIMESTAMP".into(),
            type_length: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parser::parse_script;

    fn bound(sql: &str, positional: Vec<Value>, named: Vec<(&str, Value)>) -> Result<Vec<String>, String> {
        let mut parsed = parse_script(sql).map_err(|e| e.to_string())?;
        let params = Params {
            positional,
            named: Params::named(named.into_iter().map(|(k, v)| (k.to_string(), v))),
        };
        bind(&mut parsed, &params).map_err(|(i, e)| format!("{i}: {e}"))?;
        Ok(parsed
            .into_iter()
            .map(|p| match p.statement {
                Statement::Insert { rows, .. } => format!("{:?}", rows),
                Statement::Select(s) => format!("{:?} {:?}", s.items, s.filter),
                other => format!("{other:?}"),
            })
            .collect())
    }

    #[test]
    fn positional_numbers_run_across_statements() {
        let out = bound(
            "INSERT INTO t VALUES (?, ?); INSERT INTO t VALUES (?3, ?)",
            vec![Value::Int(1), Value::Text("a".into()), Value::Null, Value::Bool(true)],
            vec![],
        )
        .unwrap();
        assert!(out[0].contains("Int(1)") && out[0].contains("String(\"a\")"), "{out:?}");
        assert!(out[1].contains("Null") && out[1].contains("Bool(true)"), "{out:?}");
    }

    #[test]
    fn values_stay_values() {
        let evil = "x'); DROP TABLE t; --";
        let out = bound(
            "SELECT * FROM t WHERE name = :name",
            vec![],
            vec![(":name", Value::Text(evil.into()))],
        )
        .unwrap();
        assert!(out[0].contains(&format!("{evil:?}")), "{out:?}");
    }

    #[test]
    fn counts_must_match() {
        let missing = bound("SELECT ?, ?", vec![Value::Int(1)], vec![]).unwrap_err();
        assert!(
            missing.contains("no value for parameter ?2: 1 positional values given"),
            "{missing}"
        );
        let extra = bound("SELECT ?", vec![Value::Int(1), Value::Int(2)], vec![]).unwrap_err();
        assert!(
            extra.contains("2 positional values given, but the SQL has 1"),
            "{extra}"
        );
        let unnamed = bound("SELECT :a", vec![], vec![]).unwrap_err();
        assert!(
            unnamed.contains("no value for parameter :a (named values given: none)"),
            "{unnamed}"
        );
        let unused = bound("SELECT :a", vec![], vec![("a", Value::Int(1)), ("b", Value::Int(2))]).unwrap_err();
        assert!(unused.contains("a value is given for :b"), "{unused}");
    }

    #[test]
    fn only_data_statements_take_parameters() {
        let e = bound("CREATE VIEW v AS SELECT ?", vec![Value::Int(1)], vec![]).unwrap_err();
        assert!(e.contains("not in CREATE VIEW"), "{e}");
        let e = bound("SELECT ?0", vec![], vec![]).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
    }

    #[test]
    fn placeholders_reach_every_clause() {
        let sql = "SELECT ? FROM t JOIN u ON t.a = ? WHERE t.b IN (SELECT c FROM u WHERE d = ?) \
                   GROUP BY ? HAVING count(*) > ? ORDER BY ? LIMIT ? OFFSET ?";
        let values: Vec<Value> = (1..=8).map(Value::Int).collect();
        let mut parsed = parse_script(sql).unwrap();
        bind(
            &mut parsed,
            &Params {
                positional: values,
                named: BTreeMap::new(),
            },
        )
        .unwrap();
        let text = format!("{:?}", parsed[0].statement);
        assert!(!text.contains("Parameter"), "{text}");
        for i in 1..=8 {
            assert!(text.contains(&format!("Int({i})")), "{i} missing in {text}");
        }
    }
}
