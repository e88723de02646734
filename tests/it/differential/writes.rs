//! Writes for the differential test: UPSERT in every form, RETURNING, and
//! INSERT ... SELECT (with a window function now and then), into t3. The
//! statement's answer (RETURNING rows, or the count of rows changed) and
//! then the whole of t3 are compared.
//!
//! Values match their column types (SQLite would store a string in an INT
//! column; ChronosDB refuses it), keys are never NULL, and UPDATE never
//! changes a key (SQLite checks constraints row by row during an UPDATE,
//! ChronosDB once all rows have changed).

use super::{Pick, Scope, bool_expr, int_expr};
use chronos::client::bench::Rng;

pub const SCHEMA: &str = "CREATE TABLE t3 (k INT PRIMARY KEY, u TEXT UNIQUE, n INT, d DOUBLE);";

const TEXTS: &[&str] = &["'x'", "'y'", "'z'", "'w'", "'xy'", "''", "NULL"];

/// t3's first rows: distinct keys and distinct (or NULL) unique values.
pub fn data(rng: &mut Rng) -> Vec<String> {
    let mut keys: Vec<i64> = (0..12).collect();
    let mut texts: Vec<&str> = TEXTS.to_vec();
    let mut out = Vec::new();
    for _ in 0..6 {
        let k = keys.remove(rng.below(keys.len()));
        let u = match texts.len() > 1 && rng.chance(80) {
            true => texts.remove(rng.below(texts.len() - 1)),
            false => "NULL",
        };
        out.push(format!("INSERT INTO t3 VALUES ({k}, {u}, {}, {})", int(rng), real(rng)));
    }
    out
}

fn int(rng: &mut Rng) -> String {
    match rng.chance(10) {
        true => "NULL".into(),
        false => (rng.below(12) as i64 - 3).to_string(),
    }
}

fn real(rng: &mut Rng) -> String {
    match rng.chance(10) {
        true => "NULL".into(),
        false => format!("{}.5", rng.below(10) as i64 - 3),
    }
}

fn row(rng: &mut Rng) -> String {
    format!("({}, {}, {}, {})", rng.below(14), rng.pick(TEXTS), int(rng), real(rng))
}

/// An INSERT, UPDATE or DELETE of t3.
pub fn statement(rng: &mut Rng) -> String {
    let returning = rng.pick(&["", "", " RETURNING *", " RETURNING k, n + 1, u", " RETURNING d"]);
    let t3 = Scope {
        ints: vec!["k", "n"],
        texts: vec!["u"],
        reals: vec!["d"],
    };
    match rng.below(8) {
        0..=3 => {
            let rows: Vec<String> = (0..rng.below(4) + 1).map(|_| row(rng)).collect();
            let (verb, conflict) = conflict(rng);
            format!("{verb} INTO t3 VALUES {}{conflict}{returning}", rows.join(", "))
        }
        4 | 5 => {
            let (verb, conflict) = conflict(rng);
            let t1 = Scope {
                ints: vec!["a", "b"],
                texts: vec!["c"],
                reals: vec!["d"],
            };
            // SQLite reads `FROM t1 ON CONFLICT` as a join without WHERE.
            let filter = match rng.chance(60) {
                true => bool_expr(rng, &t1, 1),
                false => "1 = 1".into(),
            };
            let select = match rng.chance(25) {
                true => format!(
                    "SELECT row_number() OVER (ORDER BY a, b, c, d) + {}, NULL, sum(b) OVER (ORDER BY a, b, c, d ROWS 1 PRECEDING), d FROM t1 WHERE {filter}",
                    rng.below(8)
                ),
                false => format!(
                    "SELECT coalesce(a, 0) + {}, c, b, d FROM t1 WHERE {filter}",
                    rng.below(6)
                ),
            };
            format!("{verb} INTO t3 (k, u, n, d) {select}{conflict}{returning}")
        }
        6 => format!(
            "UPDATE t3 SET n = {}, d = d + 1 WHERE {}{returning}",
            int_expr(rng, &t3, 1),
            bool_expr(rng, &t3, 1)
        ),
        _ => format!("DELETE FROM t3 WHERE {}{returning}", bool_expr(rng, &t3, 1)),
    }
}

/// The INSERT verb and the ON CONFLICT clause (one of them plain).
fn conflict(rng: &mut Rng) -> (&'static str, String) {
    let update = || {
        [
            "n = coalesce(t3.n, 0) + coalesce(excluded.n, 1)",
            "n = excluded.n, d = excluded.d",
            "d = t3.d * 2, n = t3.k",
        ]
    };
    match rng.below(10) {
        0 => ("INSERT OR REPLACE", String::new()),
        1 => ("INSERT OR IGNORE", String::new()),
        2 => ("REPLACE", String::new()),
        3 => ("INSERT", String::new()),
        4 => (
            "INSERT",
            format!(" ON CONFLICT{} DO NOTHING", rng.pick(&["", " (k)", " (u)"])),
        ),
        _ => {
            // Without a target DO UPDATE is refused here (t3 has two unique
            // constraints); SQLite updates the row of the first constraint
            // it checks.
            let target = rng.pick(&[" (k)", " (u)", " (u, u)"]);
            let set = rng.pick(&update());
            let filter = rng.pick(&[
                "",
                " WHERE excluded.n > t3.n",
                " WHERE t3.u IS NOT NULL",
                " WHERE excluded.k <> 3",
            ]);
            ("INSERT", format!(" ON CONFLICT{target} DO UPDATE SET {set}{filter}"))
        }
    }
}
