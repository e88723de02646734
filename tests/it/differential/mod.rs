//! Differential testing against SQLite: random data and random queries run
//! on both engines, and their results must agree (as multisets, floats to a
//! tolerance). `CHRONOS_DIFF_QUERIES=N CHRONOS_DIFF_SEED=S` runs more.
//!
//! The generator keeps to SQL whose meaning both engines share. Deliberate
//! differences it avoids (listed in docs/sql.md): division and `%` (SQLite
//! answers NULL for a zero divisor, ChronosDB an error), comparisons across
//! types, `||` on numbers, LIKE (case-insensitive in SQLite), and ORDER BY
//! over NULLs without NULLS FIRST/LAST (results are compared unordered).
//!
//! Besides queries (window functions in windows.rs), writes into t3
//! (writes.rs: UPSERT, RETURNING, INSERT ... SELECT) run on both engines;
//! their answers and then t3's rows must agree.

mod windows;
mod writes;

use chronos::client::bench::Rng;
use chronos::sql::types::Value;
use chronos::sql::{ApplyContext, Database, StatementOutput};
use chronos::storage::RowVersion;

/// Picks one of the items.
trait Pick {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str;
}

impl Pick for Rng {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const SCHEMA: &str = "CREATE TABLE t1 (a INT, b INT, c TEXT, d DOUBLE); CREATE TABLE t2 (a INT, e INT, f TEXT);";

fn data(rng: &mut Rng) -> Vec<String> {
    let mut out = tables_1_and_2(rng);
    out.extend(writes::data(rng));
    out
}

fn tables_1_and_2(rng: &mut Rng) -> Vec<String> {
    let int = |rng: &mut Rng, span: i64| match rng.chance(12) {
        true => "NULL".to_string(),
        false => (rng.below(span as usize) as i64 - span / 3).to_string(),
    };
    let text = |rng: &mut Rng| match rng.chance(12) {
        true => "NULL".to_string(),
        false => format!("'{}'", rng.pick(&["x", "y", "z", "w", "xy", ""])),
    };
    let mut out = Vec::new();
    for _ in 0..24 {
        let real = match rng.chance(12) {
            true => "NULL".to_string(),
            false => format!("{}.5", rng.below(20) as i64 - 5),
        };
        out.push(format!(
            "INSERT INTO t1 VALUES ({}, {}, {}, {real})",
            int(rng, 10),
            int(rng, 12),
            text(rng)
        ));
    }
    for _ in 0..14 {
        out.push(format!(
            "INSERT INTO t2 VALUES ({}, {}, {})",
            int(rng, 10),
            int(rng, 30),
            text(rng)
        ));
    }
    out
}

/// Columns in scope, by type.
struct Scope {
    ints: Vec<&'static str>,
    texts: Vec<&'static str>,
    reals: Vec<&'static str>,
}

fn int_expr(rng: &mut Rng, s: &Scope, depth: u32) -> String {
    if depth == 0 || rng.chance(40) {
        return match rng.chance(75) {
            true => s.ints[rng.below(s.ints.len())].to_string(),
            false => (rng.below(9) as i64 - 3).to_string(),
        };
    }
    let d = depth - 1;
    match rng.below(6) {
        0 => format!("{} + {}", int_expr(rng, s, d), int_expr(rng, s, d)),
        1 => format!("{} - {}", int_expr(rng, s, d), int_expr(rng, s, d)),
        2 => format!("({}) * {}", int_expr(rng, s, d), rng.below(4)),
        3 => format!("abs({})", int_expr(rng, s, d)),
        4 => format!(
            "CASE WHEN {} THEN {} ELSE {} END",
            bool_expr(rng, s, d),
            int_expr(rng, s, d),
            int_expr(rng, s, d)
        ),
        _ => match rng.below(3) {
            0 => format!("coalesce({}, {})", int_expr(rng, s, d), int_expr(rng, s, d)),
            1 => format!("nullif({}, {})", int_expr(rng, s, d), rng.below(4)),
            _ => format!(
                "CASE {} WHEN {} THEN {} ELSE {} END",
                int_expr(rng, s, d),
                rng.below(4),
                int_expr(rng, s, d),
                int_expr(rng, s, d)
            ),
        },
    }
}

fn text_expr(rng: &mut Rng, s: &Scope, depth: u32) -> String {
    if depth == 0 || rng.chance(50) {
        return match rng.chance(80) {
            true => s.texts[rng.below(s.texts.len())].to_string(),
            false => format!("'{}'", rng.pick(&["x", "y", "zz"])),
        };
    }
    let d = depth - 1;
    match rng.below(6) {
        0 => format!("{} || {}", text_expr(rng, s, d), text_expr(rng, s, d)),
        1 => format!("upper({})", text_expr(rng, s, d)),
        2 => format!(
            "substr({}, {}, {})",
            text_expr(rng, s, d),
            rng.below(4) as i64 - 1,
            rng.below(3) + 1
        ),
        3 => format!("replace({}, 'x', 'q')", text_expr(rng, s, d)),
        4 => format!("trim({}, 'x')", text_expr(rng, s, d)),
        _ => format!("coalesce({}, 'none')", text_expr(rng, s, d)),
    }
}

fn bool_expr(rng: &mut Rng, s: &Scope, depth: u32) -> String {
    let op = rng.pick(&["=", "<>", "<", "<=", ">", ">="]);
    let d = depth.saturating_sub(1);
    match rng.below(if depth == 0 { 5 } else { 8 }) {
        0 => format!("{} {op} {}", int_expr(rng, s, d), int_expr(rng, s, d)),
        1 => format!("{} {op} {}", text_expr(rng, s, d), text_expr(rng, s, d)),
        2 => format!(
            "{} IS {}NULL",
            int_expr(rng, s, d),
            if rng.chance(50) { "NOT " } else { "" }
        ),
        3 => format!(
            "{} {}IN ({}, {}, {})",
            int_expr(rng, s, d),
            if rng.chance(40) { "NOT " } else { "" },
            rng.below(6),
            if rng.chance(20) {
                "NULL".to_string()
            } else {
                rng.below(6).to_string()
            },
            rng.below(6)
        ),
        4 => format!(
            "{} BETWEEN {} AND {}",
            int_expr(rng, s, d),
            rng.below(5) as i64 - 2,
            rng.below(6)
        ),
        5 => format!("NOT ({})", bool_expr(rng, s, d)),
        6 => format!("({}) AND ({})", bool_expr(rng, s, d), bool_expr(rng, s, d)),
        _ => format!("({}) OR ({})", bool_expr(rng, s, d), bool_expr(rng, s, d)),
    }
}

fn value_expr(rng: &mut Rng, s: &Scope) -> String {
    match rng.below(6) {
        0..=2 => int_expr(rng, s, 2),
        3 => text_expr(rng, s, 2),
        4 => s.reals[rng.below(s.reals.len())].to_string(),
        _ => format!("{} * 2 + {}", s.reals[rng.below(s.reals.len())], int_expr(rng, s, 1)),
    }
}

/// Inside a subquery over t2: its columns and the outer t1 row's.
fn inner_scope() -> Scope {
    Scope {
        ints: vec!["t2.e", "t2.a", "t1.a", "t1.b"],
        texts: vec!["t2.f", "t1.c"],
        reals: vec!["t1.d"],
    }
}

/// A subquery over t2 (or a second copy of t1) that reads columns of the
/// outer t1 row: an aggregate value, so it has exactly one row.
fn correlated_value(rng: &mut Rng) -> String {
    let inner = inner_scope();
    let link = rng.pick(&["t2.a = t1.a", "t2.a = t1.b", "t2.f = t1.c", "t2.e > t1.b"]);
    let extra = match rng.chance(50) {
        true => format!(" AND {}", bool_expr(rng, &inner, 1)),
        false => String::new(),
    };
    match rng.below(4) {
        0 => format!("(SELECT count(*) FROM t2 WHERE {link}{extra})"),
        1 => format!(
            "(SELECT {}(t2.e) FROM t2 WHERE {link}{extra})",
            rng.pick(&["max", "min", "sum"])
        ),
        2 => format!("(SELECT max(y.b) FROM t1 AS y WHERE y.a = t1.a AND y.c <> t1.c{extra})"),
        // Two levels: the innermost reads both the middle and the outer row.
        _ => format!(
            "(SELECT count(*) FROM t2 WHERE {link} AND {}EXISTS (SELECT 1 FROM t1 AS x WHERE x.b = t2.e AND x.a <> t1.b))",
            if rng.chance(50) { "NOT " } else { "" }
        ),
    }
}

/// A condition on the outer t1 row through a correlated subquery.
fn correlated_condition(rng: &mut Rng) -> String {
    let inner = inner_scope();
    let link = rng.pick(&["t2.a = t1.a", "t2.a = t1.b", "t2.f = t1.c", "t2.e < t1.a"]);
    let not = if rng.chance(40) { "NOT " } else { "" };
    match rng.below(4) {
        0 => format!(
            "{not}EXISTS (SELECT 1 FROM t2 WHERE {link} AND {})",
            bool_expr(rng, &inner, 1)
        ),
        1 => format!("t1.b {not}IN (SELECT t2.e FROM t2 WHERE {link})"),
        2 => format!(
            "{} {} {}",
            int_expr(
                rng,
                &Scope {
                    ints: vec!["t1.a", "t1.b"],
                    texts: vec!["t1.c"],
                    reals: vec!["t1.d"],
                },
                1
            ),
            rng.pick(&["=", "<", ">=", "<>"]),
            correlated_value(rng)
        ),
        _ => format!("{not}({} > {})", correlated_value(rng), rng.below(3)),
    }
}

fn query(rng: &mut Rng) -> String {
    let join = rng.below(4);
    let (from, scope) = match join {
        0 | 1 => (
            "t1".to_string(),
            Scope {
                ints: vec!["a", "b"],
                texts: vec!["c"],
                reals: vec!["d"],
            },
        ),
        _ => (
            format!("t1 {} t2 ON t1.a = t2.a", if join == 2 { "JOIN" } else { "LEFT JOIN" }),
            Scope {
                ints: vec!["t1.a", "t1.b", "t2.e"],
                texts: vec!["t1.c", "t2.f"],
                reals: vec!["t1.d"],
            },
        ),
    };
    let filter = match rng.chance(70) {
        true => format!(" WHERE {}", bool_expr(rng, &scope, 2)),
        false => String::new(),
    };
    match rng.below(15) {
        // Aggregates, grouped or not.
        0..=2 => {
            let group = scope.ints[rng.below(scope.ints.len())];
            let value = int_expr(rng, &scope, 1);
            let aggs = [
                "count(*)".to_string(),
                format!("count({value})"),
                format!("sum({value})"),
                format!("min({value})"),
                format!("max({value})"),
                format!("avg({value})"),
                format!("count(DISTINCT {value})"),
            ];
            let agg = &aggs[rng.below(aggs.len())];
            match rng.chance(60) {
                true => {
                    let having = match rng.chance(30) {
                        true => format!(" HAVING count(*) > {}", rng.below(3)),
                        false => String::new(),
                    };
                    format!("SELECT {group}, {agg} FROM {from}{filter} GROUP BY {group}{having}")
                }
                false => format!("SELECT {agg} FROM {from}{filter}"),
            }
        }
        // Compound selects.
        3 => {
            let op = rng.pick(&["UNION", "UNION ALL", "INTERSECT", "EXCEPT"]);
            format!(
                "SELECT a, c FROM t1{} {op} SELECT a, f FROM t2",
                match rng.chance(50) {
                    true => format!(" WHERE b > {}", rng.below(6) as i64 - 2),
                    false => String::new(),
                }
            )
        }
        // Uncorrelated subqueries.
        4 => {
            let sub = match rng.below(3) {
                0 => format!(
                    "a {}IN (SELECT a FROM t2 WHERE e > {})",
                    if rng.chance(40) { "NOT " } else { "" },
                    rng.below(10)
                ),
                1 => format!("b > (SELECT min(e) FROM t2 WHERE f = '{}')", rng.pick(&["x", "y", "q"])),
                _ => format!(
                    "{}EXISTS (SELECT 1 FROM t2 WHERE e < {})",
                    if rng.chance(50) { "NOT " } else { "" },
                    rng.below(8) as i64 - 4
                ),
            };
            format!("SELECT a, b, c FROM t1 WHERE {sub}")
        }
        // Correlated subqueries: as values, in WHERE, in a grouped query,
        // and in UPDATE-like shapes of a SELECT.
        12..=14 => match rng.below(5) {
            0 => format!("SELECT t1.a, {} FROM t1", correlated_value(rng)),
            1 | 2 => format!(
                "SELECT t1.a, t1.b, t1.c FROM t1 WHERE {}{}",
                correlated_condition(rng),
                match rng.chance(30) {
                    true => format!(" AND {}", bool_expr(rng, &scope, 1)),
                    false => String::new(),
                }
            ),
            3 => "SELECT t1.a, count(*), (SELECT count(*) FROM t2 WHERE t2.a = t1.a) FROM t1 GROUP BY t1.a".to_string(),
            _ => format!(
                "SELECT CASE WHEN {} THEN 'yes' ELSE 'no' END, t1.d FROM t1",
                correlated_condition(rng)
            ),
        },
        // Subqueries in FROM and WITH, over an aggregate.
        5 => {
            let value = int_expr(rng, &scope, 1);
            let inner = format!(
                "SELECT {}, sum({value}) AS total, count(*) AS n FROM {from}{filter} GROUP BY {}",
                scope.ints[0], scope.ints[0]
            );
            let outer_filter = format!("n > {} OR total IS NULL", rng.below(3));
            match rng.chance(50) {
                true => format!("SELECT * FROM ({inner}) AS g WHERE {outer_filter}"),
                false => format!("WITH g AS ({inner}) SELECT g.n, g.total FROM g WHERE {outer_filter}"),
            }
        }
        // Three-table comma joins linked in WHERE: once in a good order, and
        // once written in an order the planner changes.
        6 | 7 => {
            let scope = Scope {
                ints: vec!["t1.b", "t2.e", "x.a"],
                texts: vec!["t1.c", "x.c", "t2.f"],
                reals: vec!["x.d"],
            };
            let extra = bool_expr(rng, &scope, 1);
            match rng.chance(50) {
                true => {
                    format!("SELECT t1.a, t2.e, x.c FROM t1, t2, t1 AS x WHERE t1.a = t2.a AND x.b = t2.a AND {extra}")
                }
                false => {
                    format!("SELECT x.a, t1.b, t2.f FROM t1 AS x, t1, t2 WHERE t1.a = t2.a AND x.b = t2.e AND {extra}")
                }
            }
        }
        // Plain selects, sometimes DISTINCT, sometimes ordered and limited.
        _ => {
            let n = rng.below(3) + 1;
            let items: Vec<String> = (0..n).map(|_| value_expr(rng, &scope)).collect();
            let distinct = if rng.chance(20) { "DISTINCT " } else { "" };
            let mut sql = format!("SELECT {distinct}{} FROM {from}{filter}", items.join(", "));
            if rng.chance(25) {
                // Every output column, NULL placement explicit: a total order.
                let keys: Vec<String> = (1..=n).map(|i| format!("{i} NULLS FIRST")).collect();
                sql += &format!(" ORDER BY {} LIMIT {}", keys.join(", "), rng.below(8) + 1);
            }
            sql
        }
    }
}

/// A result cell both engines can be compared on.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
enum Cell {
    Null,
    Num(f64),
    Text(String),
}

fn from_chronos(v: &Value) -> Cell {
    match v {
        Value::Null => Cell::Null,
        Value::Int(i) => Cell::Num(*i as f64),
        Value::Float(f) => Cell::Num(*f),
        Value::Bool(b) => Cell::Num(f64::from(u8::from(*b))),
        Value::Text(s) => Cell::Text(s.clone()),
        Value::Timestamp(ms) => Cell::Num(*ms as f64),
    }
}

fn from_sqlite(v: rusqlite::types::ValueRef) -> Cell {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Num(i as f64),
        ValueRef::Real(f) => Cell::Num(f),
        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(_) => Cell::Text("<blob>".into()),
    }
}

fn sorted(mut rows: Vec<Vec<Cell>>) -> Vec<Vec<Cell>> {
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    rows
}

fn same(a: &[Vec<Cell>], b: &[Vec<Cell>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.len() == y.len()
                && x.iter().zip(y).all(|(p, q)| match (p, q) {
                    (Cell::Num(m), Cell::Num(n)) => (m - n).abs() <= 1e-9 * m.abs().max(n.abs()).max(1.0),
                    _ => p == q,
                })
        })
}

fn chronos_rows(db: &Database, sql: &str) -> Result<Vec<Vec<Cell>>, String> {
    match chronos_answer(db, sql)? {
        Answer::Rows(rows) => Ok(rows),
        Answer::Count(_) => Err("not a query result".into()),
    }
}

/// A write's answer: its RETURNING rows, or one row holding the count of
/// rows it changed.
fn chronos_write(db: &Database, sql: &str) -> Result<Vec<Vec<Cell>>, String> {
    Ok(match chronos_answer(db, sql)? {
        Answer::Rows(rows) => rows,
        Answer::Count(count) => vec![vec![Cell::Num(count as f64)]],
    })
}

enum Answer {
    Rows(Vec<Vec<Cell>>),
    Count(u64),
}

/// The last statement's answer.
fn chronos_answer(db: &Database, sql: &str) -> Result<Answer, String> {
    let outcome = db.execute_script(sql, ApplyContext::default());
    if let Some((_, e)) = outcome.error {
        return Err(e.to_string());
    }
    match outcome.outputs.into_iter().last() {
        Some(StatementOutput::Rows { rows, .. }) => Ok(Answer::Rows(
            rows.iter().map(|r| r.iter().map(from_chronos).collect()).collect(),
        )),
        Some(StatementOutput::Affected { count, .. }) => Ok(Answer::Count(count)),
        None => Err("no result".into()),
    }
}

fn sqlite_write(conn: &rusqlite::Connection, sql: &str) -> Result<Vec<Vec<Cell>>, String> {
    if sql.contains("RETURNING") {
        return sqlite_rows(conn, sql);
    }
    let changed = conn.execute(sql, []).map_err(|e| e.to_string())?;
    Ok(vec![vec![Cell::Num(changed as f64)]])
}

fn sqlite_rows(conn: &rusqlite::Connection, sql: &str) -> Result<Vec<Vec<Cell>>, String> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    let width = stmt.column_count();
    let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let cells = (0..width)
            .map(|i| row.get_ref(i).map(from_sqlite).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(cells);
    }
    Ok(out)
}

#[test]
fn agrees_with_sqlite() {
    let queries: usize = std::env::var("CHRONOS_DIFF_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("CHRONOS_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261125);
    let mut rng = Rng::new(seed | 1);
    let mut failures = Vec::new();
    let mut datasets = 0;
    let mut compared = 0;
    let (mut both_ok, mut both_err, mut rows_seen) = (0, 0, 0);
    while compared < queries && failures.len() < 5 {
        // A fresh dataset every 200 queries.
        let setup = data(&mut rng);
        // Real sled files in the block layout, with small blocks.
        let (engine, _dir) = crate::common::block_engine();
        let db = Database::open(engine).expect("open");
        let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
        let script = format!("{SCHEMA}{}{};", writes::SCHEMA, setup.join("; "));
        let outcome = db.execute_script(
            &script,
            ApplyContext {
                now_ms: 0,
                version: RowVersion::default(),
                change: 0,
            },
        );
        assert!(outcome.error.is_none(), "setup failed: {:?}", outcome.error);
        conn.execute_batch(&script).expect("sqlite setup");
        datasets += 1;
        for _ in 0..200 {
            if compared >= queries {
                break;
            }
            let kind = rng.below(100);
            let write = kind < 15;
            let sql = match kind {
                0..=14 => writes::statement(&mut rng),
                15..=29 => windows::query(&mut rng),
                _ => query(&mut rng),
            };
            compared += 1;
            let (ours, theirs) = match write {
                true => (chronos_write(&db, &sql), sqlite_write(&conn, &sql)),
                false => (chronos_rows(&db, &sql), sqlite_rows(&conn, &sql)),
            };
            let ordered = sql.contains("ORDER BY") && !sql.contains(" OVER ") && !write;
            match (&ours, &theirs) {
                (Ok(a), Ok(_)) => {
                    both_ok += 1;
                    rows_seen += a.len();
                }
                (Err(_), Err(_)) => both_err += 1,
                _ => {}
            }
            let mut agree = match (&ours, &theirs) {
                (Ok(a), Ok(b)) if ordered => same(a, b),
                (Ok(a), Ok(b)) => same(&sorted(a.clone()), &sorted(b.clone())),
                (Err(_), Err(_)) => true,
                _ => false,
            };
            // After a write, the table it wrote must match too.
            if write && agree {
                let state = "SELECT * FROM t3";
                let (a, b) = (chronos_rows(&db, state), sqlite_rows(&conn, state));
                agree = matches!((&a, &b), (Ok(a), Ok(b)) if same(&sorted(a.clone()), &sorted(b.clone())));
                if !agree {
                    failures.push(format!(
                        "-- reproduce (seed {seed}):\n{script}\n{sql};\n{state};\n-- chronos: {a:?}\n-- sqlite:  {b:?}"
                    ));
                    break;
                }
            }
            if !agree {
                failures.push(format!(
                    "-- reproduce (seed {seed}):\n{script}\n{sql};\n-- chronos: {ours:?}\n-- sqlite:  {theirs:?}"
                ));
            }
        }
    }
    eprintln!(
        "compared {compared} queries over {datasets} datasets (seed {seed}): {both_ok} answered by both \
         ({rows_seen} rows), {both_err} refused by both"
    );
    // Refusals by both engines prove nothing; most queries must have answers.
    assert!(
        both_ok * 10 >= compared * 9,
        "too few queries answered: {both_ok} of {compared}"
    );
    assert!(
        failures.is_empty(),
        "{} mismatch(es):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
