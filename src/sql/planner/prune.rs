//! Column pruning: marks each table scan with the columns that the nodes
//! above it read, so that storage decodes only those (a filtered count
//! over one column of a wide table skips the text of the others).
//!
//! It must never change a result: a node it does not know how to see
//! through (joins, windows, DISTINCT, set operations) keeps every column
//! of its inputs, and a scan whose every column is read is left unmarked.

use super::plan::Node;
use crate::sql::types::Expr;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Marks the scans of a query's plan. `root`'s own output is all read.
pub fn prune_columns(root: &mut Node) {
    visit(root, None);
}

/// Column positions read by a set of expressions.
fn read_by<'a>(exprs: impl IntoIterator<Item = &'a Expr>) -> BTreeSet<usize> {
    let mut read = BTreeSet::new();
    for e in exprs {
        e.walk(&mut |e| {
            if let Expr::Column(i) = e {
                read.insert(*i);
            }
        });
    }
    read
}

/// `needed`: which of `node`'s output columns the node above reads; None
/// means all of them.
fn visit(node: &mut Node, needed: Option<BTreeSet<usize>>) {
    match node {
        Node::Scan { table, columns, .. } => {
            *columns = needed.and_then(|needed| {
                let read: Vec<bool> = (0..table.columns.len()).map(|i| needed.contains(&i)).collect();
                read.contains(&false).then(|| Arc::from(read))
            });
        }
        Node::Filter { source, predicate } => {
            let needed = needed.map(|mut n| {
                n.extend(read_by([&*predicate]));
                n
            });
            visit(source, needed);
        }
        Node::Project { source, exprs } => visit(source, Some(read_by(exprs.iter()))),
        Node::Aggregate {
            source,
            group_by,
            aggregates,
        } => {
            let args = aggregates.iter().filter_map(|a| a.arg.as_ref());
            visit(source, Some(read_by(group_by.iter().chain(args))));
        }
        Node::Sort { source, keys } => {
            let needed = needed.map(|mut n| {
                n.extend(read_by(keys.iter().map(|k| &k.expr)));
                n
            });
            visit(source, needed);
        }
        Node::Offset { source, .. } | Node::Limit { source, .. } => visit(source, needed),
        Node::SingleRow => {}
        Node::Window { source, .. } | Node::Distinct { source } => visit(source, None),
        Node::NestedLoopJoin { left, right, .. }
        | Node::HashJoin { left, right, .. }
        | Node::SetOp { left, right, .. } => {
            visit(left, None);
            visit(right, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sql::database::{ApplyContext, Database};
    use crate::sql::parser::parse;
    use crate::sql::planner::{Node, Plan, plan};
    use crate::storage::MemoryEngine;
    use std::sync::Arc;

    /// The read-masks of every scan in the plan of `sql`.
    fn masks(sql: &str) -> Vec<Option<Vec<bool>>> {
        let db = Database::open(Arc::new(MemoryEngine::default())).unwrap();
        let outcome = db.execute_script(
            "CREATE TABLE r (id INTEGER PRIMARY KEY, sensor TEXT, ts TIMESTAMP, value DOUBLE); \
             CREATE TABLE s (id INTEGER PRIMARY KEY, name TEXT)",
            ApplyContext::default(),
        );
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        let statement = parse(sql).unwrap().remove(0);
        let Plan::Query(mut q) = db.read_with(|txn| plan(&statement, txn)).unwrap() else {
            panic!("not a query")
        };
        let mut found = Vec::new();
        q.root.walk_mut(&mut |n| {
            if let Node::Scan { columns, .. } = n {
                found.push(columns.as_ref().map(|c| c.to_vec()));
            }
        });
        found
    }

    #[test]
    fn a_filtered_count_reads_only_the_filtered_column() {
        assert_eq!(
            masks("SELECT count(*) FROM r WHERE value > 25.0"),
            vec![Some(vec![false, false, false, true])]
        );
    }

    #[test]
    fn projections_sorts_and_groups_add_their_columns() {
        assert_eq!(
            masks("SELECT sensor FROM r WHERE value > 1 ORDER BY ts LIMIT 3"),
            vec![Some(vec![false, true, true, true])]
        );
        assert_eq!(
            masks("SELECT sensor, avg(value) FROM r GROUP BY sensor"),
            vec![Some(vec![false, true, false, true])]
        );
    }

    #[test]
    fn whole_rows_and_joins_are_left_alone() {
        assert_eq!(masks("SELECT * FROM r"), vec![None]);
        assert_eq!(masks("SELECT value, row_number() OVER () FROM r"), vec![None]);
        assert_eq!(masks("SELECT r.value FROM r JOIN s ON r.id = s.id"), vec![None, None]);
    }
}
