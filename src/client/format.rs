//! Printing results: MySQL-style tables, CSV, or JSON.

use crate::sql::types::Value;
use std::time::Duration;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Bordered tables with a row count and timing, like the mysql client.
    #[default]
    Table,
    /// A header line, then one line per row; NULL is an empty field.
    Csv,
    /// One JSON array of row objects per query, one object per write.
    Json,
}

/// A query's rows as text in the chosen format.
pub fn rows(format: Format, columns: &[String], rows: &[Vec<Value>], elapsed: Duration) -> String {
    match format {
        Format::Table => table(columns, rows, elapsed),
        Format::Csv => csv(columns, rows),
        Format::Json => json_rows(columns, rows),
    }
}

/// A write's outcome as text; empty for CSV, whose output stays parseable.
pub fn affected(format: Format, kind: &str, count: u64, elapsed: Duration) -> String {
    match format {
        Format::Table => format!("Query OK, {} affected ({})\n", plural(count, "row"), seconds(elapsed)),
        Format::Csv => String::new(),
        Format::Json => format!("{}\n", serde_json::json!({ "statement": kind, "rows_affected": count })),
    }
}

fn plural(n: u64, word: &str) -> String {
    match n {
        1 => format!("1 {word}"),
        _ => format!("{n} {word}s"),
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.2} sec", d.as_secs_f64())
}

fn table(columns: &[String], rows: &[Vec<Value>], elapsed: Duration) -> String {
    if rows.is_empty() {
        return format!("Empty set ({})\n", seconds(elapsed));
    }
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(Value::to_string).collect()).collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let border: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let mut out = border.clone();
    for (c, w) in columns.iter().zip(&widths) {
        out += &format!("| {} ", pad(c, *w, false));
    }
    out += "|\n";
    out += &border;
    for (row, values) in cells.iter().zip(rows) {
        for ((cell, w), v) in row.iter().zip(&widths).zip(values) {
            let numeric = matches!(v, Value::Int(_) | Value::Float(_));
            out += &format!("| {} ", pad(cell, *w, numeric));
        }
        out += "|\n";
    }
    out += &border;
    out += &format!("{} in set ({})\n", plural(rows.len() as u64, "row"), seconds(elapsed));
    out
}

/// Pads to a width in characters; numbers align right, as in mysql.
fn pad(s: &str, width: usize, right: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(s.chars().count()));
    match right {
        true => fill + s,
        false => s.to_string() + &fill,
    }
}

fn csv(columns: &[String], rows: &[Vec<Value>]) -> String {
    let mut out = columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",") + "\n";
    for row in rows {
        let fields: Vec<String> = row
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                v => csv_field(&v.to_string()),
            })
            .collect();
        out += &(fields.join(",") + "\n");
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn json_rows(columns: &[String], rows: &[Vec<Value>]) -> String {
    let objects: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let fields = columns.iter().zip(row).map(|(c, v)| (c.clone(), v.to_json()));
            serde_json::Value::Object(fields.collect())
        })
        .collect();
    format!("{}\n", serde_json::Value::Array(objects))
}

/// `chronos cluster status`: one line with the leader and term, then a table
/// of the members.
pub fn cluster_status(status: &crate::proto::v1::ClusterStatusResponse) -> String {
    let leader = match status.leader.as_str() {
        "" => "none",
        l => l,
    };
    let columns: Vec<String> = [
        "id",
        "address",
        "role",
        "voter",
        "term",
        "last_log_index",
        "applied_index",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect();
    let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let rows: Vec<Vec<Value>> = status
        .members
        .iter()
        .map(|m| {
            vec![
                Value::Text(m.id.clone()),
                Value::Text(m.address.clone()),
                Value::Text(m.role.clone()),
                Value::Bool(m.voter),
                int(m.term),
                int(m.last_log_index),
                int(m.applied_index),
            ]
        })
        .collect();
    let mut out = format!("leader: {leader}, term {}\n", status.term);
    out += &untimed_table(&columns, &rows);
    out
}

/// A table without the timing line.
fn untimed_table(columns: &[String], rows: &[Vec<Value>]) -> String {
    let mut body = table(columns, rows, Duration::ZERO);
    if let Some(cut) = body.rfind(" in set (") {
        let line_start = body[..cut].rfind('\n').map_or(0, |i| i + 1);
        body.truncate(line_start);
    }
    body
}

/// `chronos sync status`: the node's role and link, then one line per
/// synced table.
pub fn sync_status(s: &crate::proto::sync::SyncStatusResponse) -> String {
    let mut out = format!("role: {}", s.role);
    if !s.site_id.is_empty() {
        out += &format!(", site {}", s.site_id);
    }
    out.push('\n');
    if !s.upstream.is_empty() {
        let reach = match (s.active, s.upstream_reachable) {
            (false, _) => "not known here: this member does not lead its cluster; ask the leader",
            (true, true) => "reachable",
            (true, false) => "unreachable",
        };
        out += &format!("upstream: {} ({reach})\n", s.upstream);
        let last = match s.last_success_ms {
            0 => "never".to_string(),
            ms => crate::sql::types::Value::Timestamp(ms).to_string(),
        };
        out += &format!("last successful sync: {last}\n");
    }
    if !s.last_error.is_empty() {
        out += &format!("last error: {}\n", s.last_error);
    }
    out += &format!(
        "conflicts resolved: {}, rows merged here: {}\n",
        s.conflicts_resolved, s.rows_merged
    );
    if s.tables.is_empty() {
        return out;
    }
    // The per-table columns of SHOW SYNC STATUS.
    const SHOWN: [&str; 8] = [
        "table",
        "direction",
        "rows_waiting",
        "bytes_waiting",
        "rows_pushed",
        "rows_pulled",
        "push_cursor",
        "pull_cursor",
    ];
    let (names, all_rows) = crate::sync::service::status_table(Some(s.clone()));
    let picked: Vec<usize> = SHOWN
        .iter()
        .filter_map(|c| names.iter().position(|(n, _)| n == c))
        .collect();
    let columns: Vec<String> = picked.iter().map(|&i| names[i].0.to_string()).collect();
    let rows: Vec<Vec<Value>> = all_rows
        .iter()
        .map(|row| picked.iter().map(|&i| row[i].clone()).collect())
        .collect();
    out += &untimed_table(&columns, &rows);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_style_table() {
        let columns = vec!["id".to_string(), "name".to_string()];
        let rows = vec![
            vec![Value::Int(1), Value::Text("alice".into())],
            vec![Value::Int(22), Value::Null],
        ];
        let text = table(&columns, &rows, Duration::from_millis(3));
        assert_eq!(
            text,
            "+----+-------+\n| id | name  |\n+----+-------+\n|  1 | alice |\n| 22 | NULL  |\n+----+-------+\n2 rows in set (0.00 sec)\n"
        );
        assert_eq!(table(&columns, &[], Duration::ZERO), "Empty set (0.00 sec)\n");
    }

    #[test]
    fn csv_and_json() {
        let columns = vec!["a".to_string(), "b".to_string()];
        let rows = vec![vec![Value::Text("x,\"y\"".into()), Value::Null]];
        assert_eq!(csv(&columns, &rows), "a,b\n\"x,\"\"y\"\"\",\n");
        assert_eq!(json_rows(&columns, &rows), "[{\"a\":\"x,\\\"y\\\"\",\"b\":null}]\n");
        assert_eq!(
            affected(Format::Table, "INSERT", 1, Duration::ZERO),
            "Query OK, 1 row affected (0.00 sec)\n"
        );
    }
}
