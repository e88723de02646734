//! Window-function queries for the differential test. Position-dependent
//! functions (row_number, lag, first_value, ROWS frames...) order by every
//! column of t1, so only identical rows tie, and identical rows are
//! interchangeable: both engines give the same multiset of result rows.
//! Value-dependent ones (rank, RANGE frames) may order by any column.

use super::{Pick, Scope, bool_expr, int_expr};
use chronos::client::bench::Rng;

const TOTAL: &str = "a, b, c, d";

const ROWS_FRAMES: &[&str] = &[
    "",
    " ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING",
    " ROWS 2 PRECEDING",
    " ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING",
    " ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING",
    " ROWS BETWEEN 1 FOLLOWING AND 3 FOLLOWING",
    " ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING",
];

const RANGE_FRAMES: &[&str] = &[
    " RANGE BETWEEN 2 PRECEDING AND 1 FOLLOWING",
    " RANGE 3 PRECEDING",
    " RANGE BETWEEN CURRENT ROW AND 2 FOLLOWING",
    " RANGE BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING",
    " RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW",
];

/// A SELECT over t1 with one or two window functions, sometimes through a
/// named window, sometimes over a GROUP BY.
pub fn query(rng: &mut Rng) -> String {
    let scope = Scope {
        ints: vec!["a", "b"],
        texts: vec!["c"],
        reals: vec!["d"],
    };
    let filter = match rng.chance(50) {
        true => format!(" WHERE {}", bool_expr(rng, &scope, 1)),
        false => String::new(),
    };
    if rng.chance(15) {
        return grouped(rng, &filter);
    }
    let partition = rng.pick(&["", "PARTITION BY c ", "PARTITION BY b > 2 ", "PARTITION BY a, c "]);
    let calls: Vec<String> = (0..rng.below(2) + 1)
        .map(|_| {
            let (f, w) = call(rng, &scope);
            format!("{f} OVER ({partition}{w})")
        })
        .collect();
    // OVER w with the window in a WINDOW clause, now and then.
    if rng.chance(20) && calls.len() == 1 {
        let (f, w) = calls[0].split_once(" OVER (").unwrap_or((&calls[0], ")"));
        let w = w.trim_end_matches(')');
        return format!("SELECT a, b, c, {f} OVER w FROM t1{filter} WINDOW w AS ({w})");
    }
    format!("SELECT a, b, c, {} FROM t1{filter}", calls.join(", "))
}

/// A window function call and its ORDER BY and frame.
fn call(rng: &mut Rng, scope: &Scope) -> (String, String) {
    let value = int_expr(rng, scope, 1);
    let ordered = |frame: &str| format!("ORDER BY {TOTAL}{frame}");
    match rng.below(9) {
        0 => ("row_number()".into(), ordered("")),
        1 => {
            let f = rng.pick(&["rank", "dense_rank", "percent_rank", "cume_dist"]);
            let key = rng.pick(&["b", "a DESC", "c, b", "d DESC NULLS FIRST"]);
            (format!("{f}()"), format!("ORDER BY {key}"))
        }
        2 => (format!("ntile({})", rng.below(4) + 1), ordered("")),
        3 => {
            let f = rng.pick(&["lag", "lead"]);
            let extra = rng.pick(&["", ", 2", ", 1, -1", ", 0", ", 3, 100"]);
            (format!("{f}({value}{extra})"), ordered(""))
        }
        4 => {
            let f = match rng.below(3) {
                0 => format!("first_value({value})"),
                1 => format!("last_value({value})"),
                _ => format!("nth_value({value}, {})", rng.below(3) + 1),
            };
            (f, ordered(rng.pick(ROWS_FRAMES)))
        }
        5 | 6 => (aggregate(rng, &value), ordered(rng.pick(ROWS_FRAMES))),
        7 => {
            let key = rng.pick(&["b", "a DESC", "d", "b DESC NULLS FIRST"]);
            (
                aggregate(rng, &value),
                format!("ORDER BY {key}{}", rng.pick(RANGE_FRAMES)),
            )
        }
        _ => {
            let w = rng.pick(&["", "ORDER BY b", "ORDER BY c DESC"]);
            (aggregate(rng, &value), w.to_string())
        }
    }
}

fn aggregate(rng: &mut Rng, value: &str) -> String {
    match rng.below(6) {
        0 => "count(*)".into(),
        1 => format!("count({value})"),
        2 => format!("sum({value})"),
        3 => format!("min({value})"),
        4 => format!("max({value})"),
        _ => format!("avg({value})"),
    }
}

/// Window functions over groups: each group has its own b, so ORDER BY b
/// is a total order.
fn grouped(rng: &mut Rng, filter: &str) -> String {
    let over = rng.pick(&[
        "rank() OVER (ORDER BY count(*) DESC)",
        "sum(sum(a)) OVER (ORDER BY b ROWS 1 PRECEDING)",
        "row_number() OVER (ORDER BY b DESC)",
        "lag(max(a)) OVER (ORDER BY b)",
        "avg(count(*)) OVER ()",
    ]);
    format!("SELECT b, count(*), {over} FROM t1{filter} GROUP BY b")
}
