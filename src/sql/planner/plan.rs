//! Plan nodes: what the planner produces and the executor runs.

pub use super::window::WindowCall;
pub use crate::sql::parser::ast::SetOperator;
use crate::sql::types::{DataType, Expr, Value};
use crate::storage::{Column, Index, Table, View};
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::Arc;

/// A planned statement.
/// Where an INSERT's rows come from.
#[derive(Clone, Debug)]
pub enum InsertSource {
    Values(Vec<Vec<Expr>>),
    /// Run to the end before the first row is written, so the rows a query
    /// reads are those from before the INSERT (`INSERT INTO t SELECT * FROM
    /// t` doubles t once).
    Query(Box<QueryPlan>),
}

/// What an INSERT does with a row whose primary key or UNIQUE values are
/// already taken.
#[derive(Clone, Debug)]
pub struct Conflict {
    pub target: ConflictTarget,
    pub action: ConflictAction,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ConflictTarget {
    /// A conflict on the primary key or any UNIQUE index.
    Any,
    PrimaryKey,
    /// The UNIQUE index of this name.
    Index(String),
}

#[derive(Clone, Debug)]
pub enum ConflictAction {
    Nothing,
    /// Expressions over the stored row followed by the proposed row
    /// (`excluded.*`): the columns to set, and a filter that, when false,
    /// leaves the stored row as it is.
    Update {
        set: Vec<(usize, Expr)>,
        filter: Option<Expr>,
    },
    Replace,
}

/// `RETURNING ...`: expressions over a written row (the new row of an
/// INSERT or UPDATE, the old row of a DELETE), and their result columns.
#[derive(Clone, Debug)]
pub struct Returning {
    pub exprs: Vec<Expr>,
    pub columns: Vec<OutputColumn>,
}

#[derive(Clone, Debug)]
pub enum Plan {
    Query(QueryPlan),
    Explain(Box<Plan>),
    Insert {
        table: Table,
        /// For each value of a row, the table column it goes to.
        columns: Vec<usize>,
        source: InsertSource,
        conflict: Option<Conflict>,
        returning: Option<Returning>,
    },
    Update {
        table: Table,
        access: Access,
        filter: Option<Expr>,
        set: Vec<(usize, Expr)>,
        returning: Option<Returning>,
    },
    Delete {
        table: Table,
        access: Access,
        filter: Option<Expr>,
        returning: Option<Returning>,
    },
    CreateTable {
        table: Table,
        if_not_exists: bool,
    },
    DropTable {
        name: String,
        if_exists: bool,
    },
    CreateIndex {
        table: String,
        index: Index,
        if_not_exists: bool,
    },
    DropIndex {
        name: String,
        if_exists: bool,
    },
    AddColumn {
        table: String,
        column: Column,
        /// Also create a UNIQUE index on it.
        unique: bool,
    },
    CreateView {
        view: View,
        if_not_exists: bool,
    },
    DropView {
        name: String,
        if_exists: bool,
    },
}

/// A query: a tree of nodes and the names and types of its result columns.
#[derive(Clone, Debug)]
pub struct QueryPlan {
    pub root: Node,
    pub columns: Vec<OutputColumn>,
}

#[derive(Clone, Debug)]
pub struct OutputColumn {
    pub name: String,
    /// None when it cannot be known before running (e.g. a NULL literal).
    pub data_type: Option<DataType>,
}

#[derive(Clone, Debug)]
pub enum Node {
    /// Reads a table's rows through an access path.
    Scan {
        /// Shared: a correlated subquery's plan is copied for every run.
        table: Arc<Table>,
        alias: String,
        access: Access,
    },
    /// One empty row: the source of a SELECT without FROM.
    SingleRow,
    Filter {
        source: Box<Node>,
        predicate: Expr,
    },
    /// For each left row, the right rows for which `predicate` holds; with
    /// `outer`, a left row without a match is kept with NULLs on the right.
    NestedLoopJoin {
        left: Box<Node>,
        right: Box<Node>,
        predicate: Option<Expr>,
        outer: bool,
        right_width: usize,
    },
    /// An equi-join: rows whose `left_key` equals `right_key` (NULL matches
    /// nothing), then `residual` on the joined row.
    HashJoin {
        left: Box<Node>,
        right: Box<Node>,
        left_key: Expr,
        right_key: Expr,
        residual: Option<Expr>,
        outer: bool,
        right_width: usize,
    },
    /// Groups by `group_by` and computes `aggregates` per group. Output rows
    /// are the group values followed by the aggregate values.
    Aggregate {
        source: Box<Node>,
        group_by: Vec<Expr>,
        aggregates: Vec<Aggregate>,
    },
    /// Window functions: each input row followed by one value per call.
    Window {
        source: Box<Node>,
        calls: Vec<WindowCall>,
    },
    Project {
        source: Box<Node>,
        exprs: Vec<Expr>,
    },
    Sort {
        source: Box<Node>,
        keys: Vec<SortKey>,
    },
    Distinct {
        source: Box<Node>,
    },
    /// UNION [ALL], INTERSECT or EXCEPT of two inputs of equal width. All
    /// but UNION ALL return distinct rows (NULLs count as equal).
    SetOp {
        op: SetOperator,
        left: Box<Node>,
        right: Box<Node>,
    },
    Offset {
        source: Box<Node>,
        count: u64,
    },
    Limit {
        source: Box<Node>,
        count: u64,
    },
}

#[derive(Clone, Debug)]
pub struct SortKey {
    pub expr: Expr,
    pub descending: bool,
    pub nulls_first: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateFunction {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggregateFunction {
    pub fn lookup(name: &str) -> Option<AggregateFunction> {
        Some(match name.to_ascii_lowercase().as_str() {
            "count" => AggregateFunction::Count,
            "sum" => AggregateFunction::Sum,
            "avg" => AggregateFunction::Avg,
            "min" => AggregateFunction::Min,
            "max" => AggregateFunction::Max,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AggregateFunction::CountStar | AggregateFunction::Count => "count",
            AggregateFunction::Sum => "sum",
            AggregateFunction::Avg => "avg",
            AggregateFunction::Min => "min",
            AggregateFunction::Max => "max",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    pub function: AggregateFunction,
    /// None for count(*).
    pub arg: Option<Expr>,
    pub distinct: bool,
}

/// How a scan reaches its rows.
#[derive(Clone, Debug)]
pub enum Access {
    Full,
    /// Point lookups of whole primary keys.
    KeyLookup(Vec<Vec<Value>>),
    /// A range of the first primary-key column.
    KeyRange(ValueRange),
    /// Rows whose leading index columns equal one of these value lists.
    IndexLookup {
        index: Index,
        keys: Vec<Vec<Value>>,
    },
    /// A range of the first index column.
    IndexRange {
        index: Index,
        range: ValueRange,
    },
}

#[derive(Clone, Debug)]
pub struct ValueRange {
    pub start: Bound<Value>,
    pub end: Bound<Value>,
}

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
    /// Calls `f` on every node of the tree, parents before children.
    pub fn walk_mut(&mut self, f: &mut impl FnMut(&mut Node)) {
        f(self);
        match self {
            Node::Scan { .. } | Node::SingleRow => {}
            Node::Filter { source, .. }
            | Node::Aggregate { source, .. }
            | Node::Project { source, .. }
            | Node::Window { source, .. }
            | Node::Sort { source, .. }
            | Node::Distinct { source }
            | Node::Offset { source, .. }
            | Node::Limit { source, .. } => source.walk_mut(f),
            Node::NestedLoopJoin { left, right, .. }
            | Node::HashJoin { left, right, .. }
            | Node::SetOp { left, right, .. } => {
                left.walk_mut(f);
                right.walk_mut(f);
            }
        }
    }

    /// Calls `f` on every expression that this node (not its children) holds.
    pub fn exprs_mut(&mut self, f: &mut impl FnMut(&mut Expr)) {
        match self {
            Node::Scan { .. }
            | Node::SingleRow
            | Node::Distinct { .. }
            | Node::SetOp { .. }
            | Node::Offset { .. }
            | Node::Limit { .. } => {}
            Node::Filter { predicate, .. } => f(predicate),
            Node::NestedLoopJoin { predicate, .. } => predicate.iter_mut().for_each(f),
            Node::HashJoin {
                left_key,
                right_key,
                residual,
                ..
            } => {
                f(left_key);
                f(right_key);
                residual.iter_mut().for_each(f);
            }
            Node::Aggregate {
                group_by, aggregates, ..
            } => {
                group_by.iter_mut().for_each(&mut *f);
                aggregates.iter_mut().filter_map(|a| a.arg.as_mut()).for_each(f);
            }
            Node::Project { exprs, .. } => exprs.iter_mut().for_each(f),
            Node::Window { calls, .. } => {
                for call in calls {
                    call.args.iter_mut().for_each(&mut *f);
                    call.partition_by.iter_mut().for_each(&mut *f);
                    call.order_by.iter_mut().for_each(|k| f(&mut k.expr));
                }
            }
            Node::Sort { keys, .. } => keys.iter_mut().for_each(|k| f(&mut k.expr)),
        }
    }

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
            Node::Scan { table, alias, access } => {
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
                let kind = if *outer { "LEFT " } else { "" };
                let _ = writeln!(
                    out,
                    "{pad}NestedLoop{}Join{on}",
                    if kind.is_empty() { "" } else { " Left" }
                );
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
