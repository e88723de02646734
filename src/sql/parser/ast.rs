//! The abstract syntax tree: what the parser produces and the planner
//! consumes. Names are already case-folded (bare identifiers to lower case).

pub use super::ast_window::{Frame, FrameBound, FrameUnits, WindowSpec};
pub use super::ast_write::{ConflictAction, OnConflict};
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    CreateTable(CreateTable),
    DropTable {
        name: String,
        if_exists: bool,
    },
    CreateIndex {
        name: String,
        table: String,
        columns: Vec<String>,
        unique: bool,
        if_not_exists: bool,
    },
    DropIndex {
        name: String,
        if_exists: bool,
    },
    /// ALTER TABLE t ADD [COLUMN] ...
    AddColumn {
        table: String,
        column: ColumnDef,
    },
    CreateView {
        name: String,
        query: Box<Select>,
        /// The SELECT's text, as stored in the catalog.
        sql: String,
        if_not_exists: bool,
    },
    DropView {
        name: String,
        if_exists: bool,
    },
    Insert {
        table: String,
        columns: Option<Vec<String>>,
        /// The VALUES rows; empty when the rows come from `query`.
        rows: Vec<Vec<Expr>>,
        /// `INSERT INTO t [(columns)] SELECT ...`.
        query: Option<Box<Select>>,
        /// What a row whose key or unique values are taken does instead of
        /// failing: `ON CONFLICT ...`, `INSERT OR REPLACE`, `INSERT OR IGNORE`.
        conflict: Option<OnConflict>,
        /// `RETURNING ...`: empty when absent.
        returning: Vec<SelectItem>,
    },
    Update {
        table: String,
        set: Vec<(String, Expr)>,
        filter: Option<Expr>,
        returning: Vec<SelectItem>,
    },
    Delete {
        table: String,
        filter: Option<Expr>,
        returning: Vec<SelectItem>,
    },
    Select(Box<Select>),
    Explain(Box<Statement>),
    Begin,
    Commit,
    Rollback,
    /// Answered by the node from its sync agent, not by the SQL engine.
    ShowSyncStatus,
    /// Rows and bytes on disk per table, from this node's storage.
    ShowTableStats,
}

impl Statement {
    /// The statement kind as reported to clients, e.g. "INSERT".
    pub fn kind(&self) -> &'static str {
        match self {
            Statement::CreateTable(_) => "CREATE TABLE",
            Statement::DropTable { .. } => "DROP TABLE",
            Statement::CreateIndex { .. } => "CREATE INDEX",
            Statement::DropIndex { .. } => "DROP INDEX",
            Statement::CreateView { .. } => "CREATE VIEW",
            Statement::AddColumn { .. } => "ALTER TABLE",
            Statement::DropView { .. } => "DROP VIEW",
            Statement::Insert { .. } => "INSERT",
            Statement::Update { .. } => "UPDATE",
            Statement::Delete { .. } => "DELETE",
            Statement::Select(_) => "SELECT",
            Statement::Explain(_) => "EXPLAIN",
            Statement::Begin => "BEGIN",
            Statement::Commit => "COMMIT",
            Statement::Rollback => "ROLLBACK",
            Statement::ShowSyncStatus => "SHOW SYNC STATUS",
            Statement::ShowTableStats => "SHOW TABLE STATS",
        }
    }

    /// True for statements that return rows (and change nothing).
    pub fn is_query(&self) -> bool {
        matches!(
            self,
            Statement::Select(_) | Statement::Explain(_) | Statement::ShowSyncStatus | Statement::ShowTableStats
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CreateTable {
    pub name: String,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnDef>,
    /// From a table-level `PRIMARY KEY (a, b)`.
    pub primary_key: Vec<String>,
    /// Table-level `UNIQUE (a, b)` constraints.
    pub unique: Vec<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub type_name: String,
    pub type_length: Option<u32>,
    pub primary_key: bool,
    /// Some(false) for NOT NULL, Some(true) for an explicit NULL.
    pub nullable: Option<bool>,
    pub default: Option<Expr>,
    pub unique: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Select {
    pub distinct: bool,
    pub items: Vec<SelectItem>,
    pub from: Option<From>,
    pub filter: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub having: Option<Expr>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<Expr>,
    pub offset: Option<Expr>,
    /// Further SELECTs combined with this one, left to right. Their own
    /// `order_by`, `limit` and `offset` are empty: this Select's apply to the
    /// combined result.
    pub compound: Vec<(SetOperator, Select)>,
    /// `WITH name AS (SELECT ...)`, visible to the FROM clauses of this
    /// statement (and to later WITH entries).
    pub with: Vec<(String, Select)>,
    /// `WINDOW name AS (...)`: windows that OVER clauses name.
    pub windows: Vec<(String, WindowSpec)>,
}

impl Select {
    /// The expressions of this SELECT itself, not of its WITH entries,
    /// FROM subqueries or compound parts: output items, join conditions,
    /// WHERE, HAVING, GROUP BY, ORDER BY, LIMIT and OFFSET.
    pub fn exprs_mut(&mut self) -> Vec<&mut Expr> {
        let items = self.items.iter_mut().filter_map(|item| match item {
            SelectItem::Expr { expr, .. } => Some(expr),
            _ => None,
        });
        let joins = self
            .from
            .iter_mut()
            .flat_map(|f| f.joins.iter_mut().filter_map(|j| j.on.as_mut()));
        items
            .chain(joins)
            .chain(self.filter.iter_mut())
            .chain(self.having.iter_mut())
            .chain(self.group_by.iter_mut())
            .chain(self.order_by.iter_mut().map(|o| &mut o.expr))
            .chain(self.limit.iter_mut())
            .chain(self.offset.iter_mut())
            .collect()
    }

    /// The subqueries of its FROM clause.
    pub fn from_subqueries_mut(&mut self) -> Vec<&mut Select> {
        let Some(from) = self.from.as_mut() else {
            return Vec::new();
        };
        std::iter::once(&mut from.table)
            .chain(from.joins.iter_mut().map(|j| &mut j.table))
            .filter_map(|t| t.subquery.as_deref_mut())
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOperator {
    Union,
    UnionAll,
    Intersect,
    Except,
}

impl SetOperator {
    pub fn keyword(self) -> &'static str {
        match self {
            SetOperator::Union => "UNION",
            SetOperator::UnionAll => "UNION ALL",
            SetOperator::Intersect => "INTERSECT",
            SetOperator::Except => "EXCEPT",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum SelectItem {
    Wildcard,
    QualifiedWildcard(String),
    Expr { expr: Expr, alias: Option<String> },
}

#[derive(Clone, Debug, PartialEq)]
pub struct From {
    pub table: TableRef,
    pub joins: Vec<Join>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableRef {
    /// The table, view or WITH name; for a subquery, "subquery".
    pub name: String,
    pub alias: Option<String>,
    /// `(SELECT ...) [AS] alias` in FROM.
    pub subquery: Option<Box<Select>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Join {
    pub kind: JoinKind,
    pub table: TableRef,
    pub on: Option<Expr>,
    /// `USING (a, b)`: equal columns of both sides, shown once.
    pub using: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OrderItem {
    pub expr: Expr,
    pub descending: bool,
    /// Some(true) for NULLS FIRST, Some(false) for NULLS LAST; by default
    /// NULLs sort first ascending and last descending (as in SQLite).
    pub nulls_first: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Literal(Literal),
    Column {
        table: Option<String>,
        name: String,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
    },
    Function {
        name: String,
        args: Vec<Expr>,
        /// `count(*)`
        star: bool,
        distinct: bool,
        /// `OVER (...)`: a window function.
        over: Option<Box<WindowSpec>>,
    },
    /// `CASE [operand] WHEN a THEN b ... [ELSE c] END`
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    /// `(SELECT ...)` giving one value.
    Subquery(Box<Select>),
    /// `EXISTS (SELECT ...)`
    Exists(Box<Select>),
    /// `expr [NOT] IN (SELECT ...)`
    InSubquery {
        expr: Box<Expr>,
        query: Box<Select>,
        negated: bool,
    },
    /// `CAST(expr AS type)`
    Cast {
        expr: Box<Expr>,
        type_name: String,
        type_length: Option<u32>,
    },
    /// `?`, `?3` or `:name`: replaced by the value sent with the statement
    /// before planning (see `parser::params`).
    Parameter(Placeholder),
}

/// Where a parameter stands and how it is named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placeholder {
    /// Byte offset in the script: tells placeholders apart, in text order.
    pub at: usize,
    pub name: ParameterName,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParameterName {
    /// `?`: one more than the highest number used before it.
    Next,
    /// `?3` (numbered from 1).
    Numbered(u32),
    /// `:name`, without the colon.
    Named(String),
}

impl fmt::Display for ParameterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParameterName::Next => write!(f, "?"),
            ParameterName::Numbered(n) => write!(f, "?{n}"),
            ParameterName::Named(name) => write!(f, ":{name}"),
        }
    }
}

impl Expr {
    /// Levels of nesting (a literal or column is 1). The parser keeps this
    /// at most MAX_EXPR_DEPTH, so the recursion here is bounded.
    pub fn depth(&self) -> usize {
        1 + self.children().into_iter().map(Expr::depth).max().unwrap_or(0)
    }

    /// The expressions directly inside this one (not those of subqueries).
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Literal(_) | Expr::Column { .. } | Expr::Parameter(_) => Vec::new(),
            Expr::Unary { expr, .. } | Expr::IsNull { expr, .. } => vec![expr],
            Expr::Binary { left, right, .. } => vec![left, right],
            Expr::InList { expr, list, .. } => std::iter::once(&**expr).chain(list).collect(),
            Expr::Between { expr, low, high, .. } => vec![expr, low, high],
            Expr::Like { expr, pattern, .. } => vec![expr, pattern],
            Expr::Function { args, over, .. } => args.iter().chain(over.iter().flat_map(|w| w.exprs())).collect(),
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => operand
                .iter()
                .chain(otherwise)
                .map(|e| &**e)
                .chain(whens.iter().flat_map(|(w, t)| [w, t]))
                .collect(),
            Expr::Cast { expr, .. } | Expr::InSubquery { expr, .. } => vec![expr],
            Expr::Subquery(_) | Expr::Exists(_) => Vec::new(),
        }
    }

    /// [`Expr::children`], to change in place.
    pub fn children_mut(&mut self) -> Vec<&mut Expr> {
        match self {
            Expr::Literal(_) | Expr::Column { .. } | Expr::Parameter(_) => Vec::new(),
            Expr::Unary { expr, .. } | Expr::IsNull { expr, .. } => vec![expr],
            Expr::Binary { left, right, .. } => vec![left, right],
            Expr::InList { expr, list, .. } => std::iter::once(&mut **expr).chain(list).collect(),
            Expr::Between { expr, low, high, .. } => vec![expr, low, high],
            Expr::Like { expr, pattern, .. } => vec![expr, pattern],
            Expr::Function { args, over, .. } => args
                .iter_mut()
                .chain(over.iter_mut().flat_map(|w| w.exprs_mut()))
                .collect(),
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => operand
                .iter_mut()
                .chain(otherwise)
                .map(|e| &mut **e)
                .chain(whens.iter_mut().flat_map(|(w, t)| [w, t]))
                .collect(),
            Expr::Cast { expr, .. } | Expr::InSubquery { expr, .. } => vec![expr],
            Expr::Subquery(_) | Expr::Exists(_) => Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Minus,
    Plus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Concat,
}

impl BinaryOp {
    fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "OR",
            BinaryOp::And => "AND",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Concat => "||",
        }
    }
}

/// Renders an expression back to SQL; used to name result columns that
/// have no alias, e.g. `count(*)` or `avg(balance)`.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Literal(Literal::Null) => write!(f, "NULL"),
            Expr::Literal(Literal::Bool(b)) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Expr::Literal(Literal::Int(i)) => write!(f, "{i}"),
            // Debug keeps the point: 1.0, not 1.
            Expr::Literal(Literal::Float(x)) => write!(f, "{x:?}"),
            Expr::Literal(Literal::String(s)) => write!(f, "'{}'", s.replace('\'', "''")),
            Expr::Column { table: Some(t), name } => write!(f, "{t}.{name}"),
            Expr::Column { table: None, name } => write!(f, "{name}"),
            Expr::Unary { op: UnaryOp::Not, expr } => match expr.as_ref() {
                Expr::Binary { .. } => write!(f, "NOT ({expr})"),
                _ => write!(f, "NOT {expr}"),
            },
            Expr::Unary { op, expr } => {
                let sign = if *op == UnaryOp::Minus { "-" } else { "+" };
                match expr.as_ref() {
                    Expr::Column { .. } | Expr::Literal(Literal::Int(0..) | Literal::Float(0.0..)) => {
                        write!(f, "{sign}{expr}")
                    }
                    // Never `--3`, which would read as a comment.
                    _ => write!(f, "{sign}({expr})"),
                }
            }
            Expr::Binary { op, left, right } => {
                let side = |e: &Expr| match e {
                    Expr::Binary { .. } => format!("({e})"),
                    _ => e.to_string(),
                };
                write!(f, "{} {} {}", side(left), op.symbol(), side(right))
            }
            Expr::IsNull { expr, negated } => {
                write!(f, "{expr} IS {}NULL", if *negated { "NOT " } else { "" })
            }
            Expr::InList { expr, list, negated } => {
                let items: Vec<String> = list.iter().map(|e| e.to_string()).collect();
                write!(
                    f,
                    "{expr} {}IN ({})",
                    if *negated { "NOT " } else { "" },
                    items.join(", ")
                )
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => write!(
                f,
                "{expr} {}BETWEEN {low} AND {high}",
                if *negated { "NOT " } else { "" }
            ),
            Expr::Like { expr, pattern, negated } => {
                write!(f, "{expr} {}LIKE {pattern}", if *negated { "NOT " } else { "" })
            }
            Expr::Function {
                name,
                args,
                star,
                distinct,
                over,
            } => {
                let args: Vec<String> = args.iter().map(|e| e.to_string()).collect();
                let inner = if *star { "*".to_string() } else { args.join(", ") };
                write!(f, "{name}({}{inner})", if *distinct { "DISTINCT " } else { "" })?;
                match over {
                    Some(w) => write!(f, " OVER ({w})"),
                    None => Ok(()),
                }
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                write!(f, "CASE")?;
                if let Some(o) = operand {
                    write!(f, " {o}")?;
                }
                for (w, t) in whens {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                if let Some(e) = otherwise {
                    write!(f, " ELSE {e}")?;
                }
                write!(f, " END")
            }
            Expr::Subquery(_) => write!(f, "(subquery)"),
            Expr::Exists(_) => write!(f, "EXISTS (subquery)"),
            Expr::InSubquery { expr, negated, .. } => {
                write!(f, "{expr} {}IN (subquery)", if *negated { "NOT " } else { "" })
            }
            Expr::Cast {
                expr,
                type_name,
                type_length,
            } => match type_length {
                Some(n) => write!(f, "CAST({expr} AS {type_name}({n}))"),
                None => write!(f, "CAST({expr} AS {type_name})"),
            },
            Expr::Parameter(p) => write!(f, "{}", p.name),
        }
    }
}
