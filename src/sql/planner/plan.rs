//! Plan nodes: what the planner produces and the executor runs.

pub use super::window::WindowCall;
pub use crate::sql::parser::ast::SetOperator;
use crate::sql::types::{DataType, Expr, Value};
use crate::storage::{Column, Index, Table, View};
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
    /// `SHOW TABLE STATS`.
    TableStats,
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
        /// The columns the query reads, set by [`super::prune`]; the others
        /// come back as NULL. None reads every column.
        columns: Option<Arc<[bool]>>,
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
}
