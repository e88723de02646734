//! Runs every tests/slt/*.slt file again, this time against a real node
//! process over gRPC: single queries through the streaming Query call,
//! everything else through Execute, as `chronos client` sends them.

use crate::common;

use chronos::client::Client;
use chronos::proto::row_from_proto;
use chronos::sql::parser::parse_script;
use common::{Node, free_port, slt_files};
use sqllogictest::{DBOutput, DefaultColumnType};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failed(String);

struct GrpcDb {
    runtime: tokio::runtime::Runtime,
    client: Client,
    _node: Node,
    _dir: tempfile::TempDir,
}

fn text_rows(rows: Vec<Vec<chronos::sql::types::Value>>) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|r| r.iter().map(|v| v.to_string()).collect())
        .collect()
}

impl sqllogictest::DB for GrpcDb {
    type Error = Failed;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Failed> {
        let single_query = matches!(parse_script(sql).as_deref(), Ok([s]) if s.statement.is_query());
        let client = &mut self.client;
        self.runtime.block_on(async {
            if single_query {
                let mut stream = client.query(sql).await.map_err(|e| Failed(e.to_string()))?;
                let mut rows = Vec::new();
                loop {
                    let batch = stream.next_batch().await.map_err(|e| Failed(e.to_string()))?;
                    if batch.is_empty() {
                        break;
                    }
                    rows.extend(batch);
                }
                return Ok(DBOutput::Rows {
                    types: vec![DefaultColumnType::Any; stream.columns.len()],
                    rows: text_rows(rows),
                });
            }
            let reply = client.execute(sql).await.map_err(|e| Failed(e.to_string()))?;
            if let Some(e) = reply.error {
                return Err(Failed(e.message));
            }
            Ok(match reply.results.into_iter().last() {
                Some(r) if !r.columns.is_empty() => DBOutput::Rows {
                    types: vec![DefaultColumnType::Any; r.columns.len()],
                    rows: text_rows(r.rows.into_iter().map(row_from_proto).collect()),
                },
                Some(r) => DBOutput::StatementComplete(r.rows_affected),
                None => DBOutput::StatementComplete(0),
            })
        })
    }
}

fn run_file(path: &Path) -> Result<(), String> {
    let mut runner = sqllogictest::Runner::new(|| async {
        let dir = tempfile::tempdir().map_err(|e| Failed(e.to_string()))?;
        let node = Node::start(dir.path(), free_port());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failed(e.to_string()))?;
        let client = runtime
            .block_on(Client::connect(&node.address))
            .map_err(|e| Failed(e.to_string()))?;
        Ok(GrpcDb {
            runtime,
            client,
            _node: node,
            _dir: dir,
        })
    });
    runner
        .run_file(path)
        .map_err(|e| format!("{}: {}", path.display(), e.display(true)))
}

#[test]
fn sql_logic_tests_over_grpc() {
    let failures: Vec<String> = slt_files().iter().filter_map(|f| run_file(f).err()).collect();
    assert!(
        failures.is_empty(),
        "{} file(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
