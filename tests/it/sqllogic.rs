//! Runs every tests/slt/*.slt file against a fresh database on real sled
//! files. Each record goes through `Database::execute_script`, the same path
//! the server's Execute call takes.

use crate::common;

use chronos::sql::{ApplyContext, Database, SqlError, StatementOutput};
use chronos::storage::{RowVersion, SledEngine};
use sqllogictest::{DBOutput, DefaultColumnType};
use std::path::Path;
use std::sync::Arc;

struct SltDb {
    db: Database,
    clock: i64,
    _dir: tempfile::TempDir,
}

impl sqllogictest::DB for SltDb {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        // A fixed, advancing clock keeps now() deterministic in the tests.
        self.clock += 1000;
        let ctx = ApplyContext {
            now_ms: 1_700_000_000_000 + self.clock,
            version: RowVersion::default(),
            change: 0,
        };
        let outcome = self.db.execute_script(sql, ctx);
        if let Some((_, e)) = outcome.error {
            return Err(e);
        }
        Ok(match outcome.outputs.into_iter().last() {
            Some(StatementOutput::Rows { columns, rows, .. }) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; columns.len()],
                rows: rows
                    .into_iter()
                    .map(|r| r.iter().map(|v| v.to_string()).collect())
                    .collect(),
            },
            Some(StatementOutput::Affected { count, .. }) => DBOutput::StatementComplete(count),
            None => DBOutput::StatementComplete(0),
        })
    }
}

fn run_file(path: &Path) -> Result<(), String> {
    let mut runner = sqllogictest::Runner::new(|| async {
        let dir = tempfile::tempdir().map_err(|e| SqlError::Invalid(e.to_string()))?;
        let engine = SledEngine::open(dir.path())?;
        let db = Database::open(Arc::new(engine))?;
        Ok(SltDb {
            db,
            clock: 0,
            _dir: dir,
        })
    });
    runner
        .run_file(path)
        .map_err(|e| format!("{}: {}", path.display(), e.display(true)))
}

#[test]
fn sql_logic_tests() {
    let files = common::slt_files();
    let failures: Vec<String> = files.iter().filter_map(|f| run_file(f).err()).collect();
    assert!(
        failures.is_empty(),
        "{} file(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
