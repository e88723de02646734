//! EXPLAIN: plans as text, one node per line, children indented, with
//! expressions shown by the column names they read.

use super::plan::*;
use crate::sql::types::{Expr, Value};
use crate::storage::Table;
use std::fmt::Write as _;
use std::ops::Bound;

impl Plan {
    /// The EXPLAIN text: one node per line, children indented.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        match self {
            Plan::Query(q) => q.root.explain(&mut out, 0),
            Plan::Explain(p) => return p.explain(),
            Plan::Insert {
                table,
                source,
                conflict,
                returning,
                ..
            } => {
                match source {
                    InsertSource::Values(rows) => {
                        let _ = writeln!(out, "Insert {} ({} rows)", table.name, rows.len());
                    }
                    InsertSource::Query(_) => {
                        let _ = writeln!(out, "Insert {}", table.name);
                    }
                }
                if let Some(conflict) = conflict {
                    let _ = writeln!(out, "  {}", describe_conflict(table, conflict));
                }
                if let Some(returning) = returning {
                    let _ = writeln!(out, "  {}", describe_returning(table, returning));
                }
                if let InsertSource::Query(query) = source {
                    query.root.explain(&mut out, 1);
                }
            }
            Plan::Update {
                table,
                access,
                filter,
                returning,
                ..
            }
            | Plan::Delete {
                table,
                access,
                filter,
                returning,
            } => {
                let verb = if matches!(self, Plan::Update { .. }) {
                    "Update"
                } else {
                    "Delete"
                };
                let _ = writeln!(out, "{verb} {}", table.name);
                if let Some(returning) = returning {
                    let _ = writeln!(out, "  {}", describe_returning(table, returning));
                }
                let labels = column_labels(table, &table.name);
                let mut depth = 1;
                if let Some(f) = filter {
                    let _ = writeln!(out, "  Filter {}", f.format(&labels));
                    depth = 2;
                }
                let _ = writeln!(
                    out,
                    "{}{}",
                    "  ".repeat(depth),
                    describe_access(table, &table.name, access)
                );
            }
            other => {
                let _ = writeln!(out, "{other:?}");
            }
        }
        out.trim_end().to_string()
    }
}

fn describe_conflict(table: &Table, conflict: &Conflict) -> String {
    let target = match &conflict.target {
        ConflictTarget::Any => "any key".to_string(),
        ConflictTarget::PrimaryKey => "primary key".to_string(),
        ConflictTarget::Index(name) => format!("index {name}"),
    };
    let action = match &conflict.action {
        ConflictAction::Nothing => "DO NOTHING".to_string(),
        ConflictAction::Replace => "REPLACE".to_string(),
        ConflictAction::Update { set, filter } => {
            let mut labels = column_labels(table, &table.name);
            labels.extend(column_labels(table, "excluded"));
            let set: Vec<String> = set
                .iter()
                .map(|(i, e)| format!("{} = {}", table.columns[*i].name, e.format(&labels)))
                .collect();
            let filter = filter
                .as_ref()
                .map_or(String::new(), |f| format!(" WHERE {}", f.format(&labels)));
            format!("DO UPDATE SET {}{filter}", set.join(", "))
        }
    };
    format!("OnConflict {target} {action}")
}

fn describe_returning(table: &Table, returning: &Returning) -> String {
    let labels = column_labels(table, &table.name);
    let items: Vec<String> = returning.exprs.iter().map(|e| e.format(&labels)).collect();
    format!("Returning {}", items.join(", "))
}

fn column_labels(table: &Table, alias: &str) -> Vec<String> {
    table.columns.iter().map(|c| format!("{alias}.{}", c.name)).collect()
}

fn format_value(v: &Value) -> String {
    Expr::Constant(v.clone()).format(&[])
}

fn format_range(column: &str, range: &ValueRange) -> String {
    let mut parts = Vec::new();
    match &range.start {
        Bound::Included(v) => parts.push(format!("{column} >= {}", format_value(v))),
        Bound::Excluded(v) => parts.push(format!("{column} > {}", format_value(v))),
        Bound::Unbounded => {}
    }
    match &range.end {
        Bound::Included(v) => parts.push(format!("{column} <= {}", format_value(v))),
        Bound::Excluded(v) => parts.push(format!("{column} < {}", format_value(v))),
        Bound::Unbounded => {}
    }
    parts.join(" AND ")
}

fn format_keys(columns: &[String], keys: &[Vec<Value>]) -> String {
    let one = |key: &Vec<Value>| {
        columns
            .iter()
            .zip(key)
            .map(|(c, v)| format!("{c} = {}", format_value(v)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    keys.iter().map(one).collect::<Vec<_>>().join(" OR ")
}

pub fn describe_access(table: &Table, alias: &str, access: &Access) -> String {
    let name = if alias == table.name {
        table.name.clone()
    } else {
        format!("{} AS {alias}", table.name)
    };
    let col = |i: usize| table.columns.get(i).map_or("?".to_string(), |c| c.name.clone());
    match access {
        Access::Full => format!("FullScan {name}"),
        Access::KeyLookup(keys) => {
            let cols: Vec<String> = table.primary_key.iter().map(|&i| col(i)).collect();
            format!("PrimaryKeyLookup {name} ({})", format_keys(&cols, keys))
        }
        Access::KeyRange(range) => {
            let first = table.primary_key.first().map_or("?".to_string(), |&i| col(i));
            format!("PrimaryKeyRange {name} ({})", format_range(&first, range))
        }
        Access::IndexLookup { index, keys } => {
            let cols: Vec<String> = index.columns.iter().map(|&i| col(i)).collect();
            format!("IndexLookup {name} USING {} ({})", index.name, format_keys(&cols, keys))
        }
        Access::IndexRange { index, range } => {
            let first = index.columns.first().map_or("?".to_string(), |&i| col(i));
            format!(
                "IndexRange {name} USING {} ({})",
                index.name,
                format_range(&first, range)
            )
        }
    }
}

impl Node {
    /// The EXPLAIN text of this subtree on one line, steps separated by `;`.
    pub fn explain_line(&self) -> String {
        let mut out = String::new();
        self.explain(&mut out, 0);
        out.lines().map(str::trim).collect::<Vec<_>>().join("; ")
    }

    /// The column labels of this node's output rows, for EXPLAIN.
    fn labels(&self) -> Vec<String> {
        match self {
            Node::Scan { table, alias, .. } => column_labels(table, alias),
            Node::SingleRow => Vec::new(),
            Node::Filter { source, .. }
            | Node::Sort { source, .. }
            | Node::Distinct { source }
            | Node::Offset { source, .. }
            | Node::Limit { source, .. } => source.labels(),
            Node::SetOp { left, .. } => left.labels(),
            Node::NestedLoopJoin { left, right, .. } | Node::HashJoin { left, right, .. } => {
                let mut l = left.labels();
                l.extend(right.labels());
                l
            }
            Node::Aggregate {
                source,
                group_by,
                aggregates,
            } => {
                let input = source.labels();
                let mut l: Vec<String> = group_by.iter().map(|e| e.format(&input)).collect();
                l.extend(aggregates.iter().map(|a| describe_aggregate(a, &input)));
                l
            }
            Node::Project { source, exprs } => {
                let input = source.labels();
                exprs.iter().map(|e| e.format(&input)).collect()
            }
            Node::Window { source, calls } => {
                let mut l = source.labels();
                let described: Vec<String> = calls.iter().map(|c| c.describe(&l)).collect();
                l.extend(described);
                l
            }
        }
    }

    fn explain(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        let child = |out: &mut String, n: &Node| n.explain(out, depth + 1);
        match self {
            Node::Scan {
                table, alias, access, ..
            } => {
                let _ = writeln!(out, "{pad}{}", describe_access(table, alias, access));
            }
            Node::SingleRow => {
                let _ = writeln!(out, "{pad}SingleRow");
            }
            Node::Filter { source, predicate } => {
                let _ = writeln!(out, "{pad}Filter {}", predicate.format(&source.labels()));
                child(out, source);
            }
            Node::NestedLoopJoin {
                left,
                right,
                predicate,
                outer,
                ..
            } => {
                let mut labels = left.labels();
                labels.extend(right.labels());
                let on = predicate
                    .as_ref()
                    .map_or(String::new(), |p| format!(" ON {}", p.format(&labels)));
                let kind = if *outer { " Left" } else { "" };
                let _ = writeln!(out, "{pad}NestedLoop{kind}Join{on}");
                child(out, left);
                child(out, right);
            }
            Node::HashJoin {
                left,
                right,
                left_key,
                right_key,
                residual,
                outer,
                ..
            } => {
                let l = left.labels();
                let r = right.labels();
                let mut all = l.clone();
                all.extend(r.clone());
                let extra = residual
                    .as_ref()
                    .map_or(String::new(), |e| format!(" AND {}", e.format(&all)));
                let kind = if *outer { "HashLeftJoin" } else { "HashJoin" };
                let _ = writeln!(
                    out,
                    "{pad}{kind} ON {} = {}{extra}",
                    left_key.format(&l),
                    right_key.format(&r)
                );
                child(out, left);
                child(out, right);
            }
            Node::Aggregate {
                source,
                group_by,
                aggregates,
            } => {
                let input = source.labels();
                let aggs: Vec<String> = aggregates.iter().map(|a| describe_aggregate(a, &input)).collect();
                let groups: Vec<String> = group_by.iter().map(|e| e.format(&input)).collect();
                if groups.is_empty() {
                    let _ = writeln!(out, "{pad}Aggregate {}", aggs.join(", "));
                } else {
                    let _ = writeln!(out, "{pad}Aggregate {} GROUP BY {}", aggs.join(", "), groups.join(", "));
                }
                child(out, source);
            }
            Node::Project { source, exprs } => {
                let input = source.labels();
                let items: Vec<String> = exprs.iter().map(|e| e.format(&input)).collect();
                let _ = writeln!(out, "{pad}Project {}", items.join(", "));
                child(out, source);
            }
            Node::Window { source, calls } => {
                let input = source.labels();
                let items: Vec<String> = calls.iter().map(|c| c.describe(&input)).collect();
                let _ = writeln!(out, "{pad}Window {}", items.join(", "));
                child(out, source);
            }
            Node::Sort { source, keys } => {
                let input = source.labels();
                let items: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{}{}", k.expr.format(&input), if k.descending { " DESC" } else { "" }))
                    .collect();
                let _ = writeln!(out, "{pad}Sort {}", items.join(", "));
                child(out, source);
            }
            Node::Distinct { source } => {
                let _ = writeln!(out, "{pad}Distinct");
                child(out, source);
            }
            Node::SetOp { op, left, right } => {
                let _ = writeln!(out, "{pad}{}", op.keyword());
                child(out, left);
                child(out, right);
            }
            Node::Offset { source, count } => {
                let _ = writeln!(out, "{pad}Offset {count}");
                child(out, source);
            }
            Node::Limit { source, count } => {
                let _ = writeln!(out, "{pad}Limit {count}");
                child(out, source);
            }
        }
    }
}

fn describe_aggregate(a: &Aggregate, input: &[String]) -> String {
    let arg = match &a.arg {
        None => "*".to_string(),
        Some(e) => e.format(input),
    };
    format!(
        "{}({}{arg})",
        a.function.name(),
        if a.distinct { "DISTINCT " } else { "" }
    )
}
