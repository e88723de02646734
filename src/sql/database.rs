//! The SQL engine's front door: runs scripts and queries against storage.
//!
//! Writes are serialized (one writing transaction at a time) and each unit
//! of work (one statement, or BEGIN ... COMMIT) commits atomically and
//! durably before its result is returned. Reads run concurrently with each
//! other and never see half of a commit.

use super::error::{Result, SqlError};
use super::executor::{self, Outcome, QueryResult};
use super::parser::ParsedStatement;
use super::parser::ast::Statement;
use super::parser::params::Params;
use super::planner::{OutputColumn, plan};
use super::script::{Unit, prepare};
use super::subquery;
use super::types::{EvalContext, Row};
use crate::storage::is_data_space;
use crate::storage::{Engine, RowVersion, StorageError, Transaction};
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// What a write is stamped with. In a cluster these come from the Raft log
/// entry, so every replica applies the same values.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApplyContext {
    /// The value of `now()` (milliseconds since the Unix epoch).
    pub now_ms: i64,
    /// The version stored with every row written.
    pub version: RowVersion,
    /// The change position recorded with every row written (the Raft log
    /// index of the entry; orders the change feed of synced tables).
    pub change: u64,
}

/// The result of one statement of a script.
#[derive(Clone, Debug, PartialEq)]
pub enum StatementOutput {
    /// A write or DDL statement (or BEGIN/COMMIT/ROLLBACK): rows affected.
    Affected { kind: &'static str, count: u64 },
    /// A query, materialized (queries inside a script are read in the
    /// script's own transaction, so they see its earlier writes).
    Rows {
        kind: &'static str,
        columns: Vec<String>,
        rows: Vec<Row>,
    },
}

/// A script's outcome: the outputs of the statements that took effect and,
/// if one failed, its position and error. Statements after a failure do not
/// run; a failure inside BEGIN ... COMMIT undoes the whole transaction.
#[derive(Debug)]
pub struct ScriptOutcome {
    pub outputs: Vec<StatementOutput>,
    pub error: Option<(usize, SqlError)>,
}

pub struct Database {
    engine: Arc<dyn Engine>,
    /// Held shared by readers and exclusively by the writer.
    lock: RwLock<()>,
}

impl Database {
    /// Opens the database over an engine, removing keyspaces left behind by
    /// a crash between a DROP's commit and the removal of its data.
    pub fn open(engine: Arc<dyn Engine>) -> Result<Database> {
        let db = Database {
            engine,
            lock: RwLock::new(()),
        };
        let txn = db.read_txn();
        let mut live = BTreeSet::new();
        for table in txn.tables()? {
            live.insert(table.space());
            live.insert(table.feed_space());
            live.insert(table.tomb_space());
            live.extend(table.indexes.iter().map(|i| i.space()));
        }
        for space in db.engine.spaces()? {
            if is_data_space(&space) && !live.contains(&space) {
                tracing::info!(space, "removing orphaned keyspace");
                db.engine.drop_space(&space)?;
            }
        }
        Ok(db)
    }

    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    fn read_txn(&self) -> Transaction {
        Transaction::new(self.engine.clone(), RowVersion::default())
    }

    // A panic while holding the lock leaves no partial state behind (nothing
    // is written before commit), so a poisoned lock is safe to reuse.
    fn read_lock(&self) -> RwLockReadGuard<'_, ()> {
        self.lock.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, ()> {
        self.lock.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Parses and runs a script, unit by unit, stopping at the first error.
    pub fn execute_script(&self, sql: &str, ctx: ApplyContext) -> ScriptOutcome {
        let mut outcome = ScriptOutcome {
            outputs: Vec::new(),
            error: None,
        };
        let units = match prepare(sql, &Params::default()) {
            Ok(u) => u,
            Err(e) => {
                outcome.error = Some(e);
                return outcome;
            }
        };
        for unit in units {
            match self.execute_unit(&unit, ctx) {
                Ok(outputs) => outcome.outputs.extend(outputs),
                Err(e) => {
                    outcome.error = Some(e);
                    break;
                }
            }
        }
        outcome
    }

    /// Runs one unit in one transaction and commits it, or nothing of it.
    /// Errors carry the failing statement's position in the script.
    pub fn execute_unit(
        &self,
        unit: &Unit,
        ctx: ApplyContext,
    ) -> std::result::Result<Vec<StatementOutput>, (usize, SqlError)> {
        let _guard = match unit.is_read_only() {
            true => Guard::Read(self.read_lock()),
            false => Guard::Write(self.write_lock()),
        };
        let mut txn = Transaction::new(self.engine.clone(), ctx.version).at_change(ctx.change);
        let outputs = run_unit(unit, &mut txn, ctx)?;
        if !txn.is_read_only() {
            let end = unit.start + usize::from(unit.explicit) + unit.statements.len();
            txn.commit().map_err(|e| (end, SqlError::from(e)))?;
        }
        Ok(outputs)
    }

    /// Runs a prepared script ([`crate::sql::script::prepare`]; an error
    /// there becomes the outcome's) as one replicated log entry: units run in order and
    /// stop at the first failure (a failing unit leaves nothing, earlier ones
    /// stay), exactly as [`Database::execute_script`]. Unlike it, all the
    /// effects, plus what `finish` writes (the applied log position, the
    /// idempotency record), are committed in one atomic batch, so a crash
    /// never leaves an entry half applied. The batch is not flushed: the
    /// entry is already durable in the Raft log, which replays it after a
    /// crash. Only a storage failure is an error; SQL errors are part of the
    /// outcome.
    pub fn apply_script(
        &self,
        units: std::result::Result<Vec<Unit>, (usize, SqlError)>,
        ctx: ApplyContext,
        finish: impl FnOnce(&ScriptOutcome, &mut Transaction) -> std::result::Result<(), StorageError>,
    ) -> std::result::Result<ScriptOutcome, StorageError> {
        let mut outcomes = self.apply_each(vec![units], ctx, |outcomes, txn| finish(&outcomes[0], txn))?;
        Ok(outcomes.remove(0))
    }

    /// Like [`Database::apply_script`] for several scripts in one entry:
    /// each runs as if sent alone (its failure leaves the others), and all
    /// of their effects commit in one atomic batch.
    pub fn apply_each(
        &self,
        scripts: Vec<std::result::Result<Vec<Unit>, (usize, SqlError)>>,
        ctx: ApplyContext,
        finish: impl FnOnce(&[ScriptOutcome], &mut Transaction) -> std::result::Result<(), StorageError>,
    ) -> std::result::Result<Vec<ScriptOutcome>, StorageError> {
        let _guard = self.write_lock();
        let mut txn = Transaction::new(self.engine.clone(), ctx.version).at_change(ctx.change);
        let mut outcomes = Vec::with_capacity(scripts.len());
        for units in scripts {
            let outcome = run_script(units, &mut txn, ctx);
            if let Some((_, SqlError::Storage(e))) = &outcome.error {
                return Err(e.clone());
            }
            outcomes.push(outcome);
        }
        finish(&outcomes, &mut txn)?;
        txn.apply()?;
        Ok(outcomes)
    }

    /// Runs storage-level changes (sync merges, maintenance) as one atomic,
    /// unflushed batch, like [`Database::apply_script`]: `f` fills the
    /// transaction; nothing is written when it fails.
    pub fn apply_with<R, E: From<StorageError>>(
        &self,
        ctx: ApplyContext,
        f: impl FnOnce(&mut Transaction) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        let _guard = self.write_lock();
        let mut txn = Transaction::new(self.engine.clone(), ctx.version).at_change(ctx.change);
        let result = f(&mut txn)?;
        txn.apply()?;
        Ok(result)
    }

    /// Reads through a transaction that sees one committed state.
    pub fn read_with<R>(&self, f: impl FnOnce(&Transaction) -> R) -> R {
        let _guard = self.read_lock();
        f(&self.read_txn())
    }

    /// Runs `f` while no write can happen (reads may): for a consistent copy
    /// of the whole database.
    pub fn while_writes_paused<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.read_lock();
        f()
    }

    /// Runs `f` while nothing else reads or writes: for replacing the whole
    /// database (installing a snapshot).
    pub fn exclusively<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.write_lock();
        f()
    }

    /// Runs a query and hands its streaming result to `consume`, holding a
    /// read lock meanwhile so no commit lands halfway through the rows.
    pub fn query<R>(&self, statement: &Statement, now_ms: i64, consume: impl FnOnce(QueryResult) -> R) -> Result<R> {
        self.query_until(statement, EvalContext::at(now_ms), consume)
    }

    /// [`Database::query`] that fails once it reads past `eval.deadline`.
    pub fn query_until<R>(
        &self,
        statement: &Statement,
        eval: EvalContext,
        consume: impl FnOnce(QueryResult) -> R,
    ) -> Result<R> {
        if !statement.is_query() {
            return Err(SqlError::Invalid(format!(
                "{} is not a query; send it with Execute",
                statement.kind()
            )));
        }
        let _guard = self.read_lock();
        let mut txn = self.read_txn();
        let inlined = subquery::inline(statement, &txn, &eval)?;
        let plan = plan(inlined.as_ref().unwrap_or(statement), &txn)?;
        match executor::execute(plan, &mut txn, &eval)? {
            Outcome::Rows(result) => Ok(consume(result)),
            Outcome::Affected(_) => Err(SqlError::Invalid("query produced no rows".into())),
        }
    }

    /// Names of all tables, in order.
    pub fn table_names(&self) -> Result<Vec<String>> {
        let _guard = self.read_lock();
        Ok(self.read_txn().tables()?.into_iter().map(|t| t.name).collect())
    }

    /// Rows and bytes on disk per table (`SHOW TABLE STATS`, /metrics).
    pub fn table_stats(&self) -> Result<Vec<crate::sql::stats::TableStats>> {
        let _guard = self.read_lock();
        crate::sql::stats::table_stats(&self.read_txn())
    }
}

enum Guard<'a> {
    Read(#[allow(dead_code)] RwLockReadGuard<'a, ()>),
    Write(#[allow(dead_code)] RwLockWriteGuard<'a, ()>),
}

fn affected(kind: &'static str, count: u64) -> StatementOutput {
    StatementOutput::Affected { kind, count }
}

/// Runs a script's units in `txn`, stopping at the first failing one,
/// whose writes are undone.
fn run_script(
    units: std::result::Result<Vec<Unit>, (usize, SqlError)>,
    txn: &mut Transaction,
    ctx: ApplyContext,
) -> ScriptOutcome {
    let mut outcome = ScriptOutcome {
        outputs: Vec::new(),
        error: None,
    };
    match units {
        Err(e) => outcome.error = Some(e),
        Ok(units) => {
            for unit in units {
                let savepoint = txn.savepoint();
                match run_unit(&unit, txn, ctx) {
                    Ok(outputs) => outcome.outputs.extend(outputs),
                    Err(e) => {
                        txn.rollback_to(savepoint);
                        outcome.error = Some(e);
                        break;
                    }
                }
            }
        }
    }
    outcome
}

/// Runs a unit's statements in `txn`, without committing.
fn run_unit(
    unit: &Unit,
    txn: &mut Transaction,
    ctx: ApplyContext,
) -> std::result::Result<Vec<StatementOutput>, (usize, SqlError)> {
    let mut outputs = Vec::with_capacity(unit.len());
    if unit.explicit {
        outputs.push(affected("BEGIN", 0));
    }
    let first = unit.start + usize::from(unit.explicit);
    if unit.rolled_back {
        outputs.push(affected("ROLLBACK", 0));
        return Ok(outputs);
    }
    let eval = EvalContext::at(ctx.now_ms);
    for (i, s) in unit.statements.iter().enumerate() {
        let output = run_statement(s, txn, &eval).map_err(|e| (first + i, e))?;
        outputs.push(output);
    }
    if unit.explicit {
        outputs.push(affected("COMMIT", 0));
    }
    Ok(outputs)
}

fn run_statement(s: &ParsedStatement, txn: &mut Transaction, eval: &EvalContext) -> Result<StatementOutput> {
    let kind = s.statement.kind();
    let inlined = match subquery::may_contain(&s.text) {
        true => subquery::inline(&s.statement, txn, eval)?,
        false => None,
    };
    let plan = plan(inlined.as_ref().unwrap_or(&s.statement), txn)?;
    Ok(match executor::execute(plan, txn, eval)? {
        Outcome::Affected(count) => affected(kind, count),
        Outcome::Rows(result) => StatementOutput::Rows {
            kind,
            columns: result.columns.iter().map(|c: &OutputColumn| c.name.clone()).collect(),
            rows: result.rows.collect::<Result<_>>()?,
        },
    })
}
