//! A data directory written by 0.1.0 (one sled entry per row; the fixture
//! tests/fixtures/data-0.1.0.tar.gz was made by that code through a real
//! node, from the SQL in its comment below) opens under the block layout:
//! converted at start, every row and index entry found, and writable.
//!
//! The fixture holds: `readings` (id INTEGER PRIMARY KEY, sensor TEXT,
//! ts TIMESTAMP, value REAL) with an index on sensor, 3,000 rows inserted,
//! every tenth deleted and value = -1 set on ids ending in 1; `devices`
//! (name TEXT PRIMARY KEY, ...) with 200 rows, 50 deleted.

use crate::common::{Node, free_port};
use std::process::Command;

#[test]
fn a_data_directory_from_0_1_0_is_converted_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/data-0.1.0.tar.gz");
    let untar = Command::new("tar")
        .arg("xzf")
        .arg(fixture)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(untar.success());
    let node = Node::start(dir.path(), free_port());
    let out = node.ok("SELECT count(*), sum(value), min(id), max(id) FROM readings");
    assert!(
        out.contains("2700") && out.contains("1798950") && out.contains("2998"),
        "{out}"
    );
    // Through the index on sensor: 3,000 / 17 rows per sensor, less the deleted.
    let out = node.ok("SELECT count(*) FROM readings WHERE sensor = 'sensor-3'");
    assert!(out.contains("160"), "{out}");
    let out = node.ok("SELECT count(*) FROM readings WHERE value = -1");
    assert!(out.contains("300"), "{out}");
    let out = node.ok("SELECT name, site FROM devices WHERE name = 'dev-042'");
    assert!(out.contains("site-2"), "{out}");
    assert!(node.ok("SELECT count(*) FROM devices").contains("150"));
    node.ok("INSERT INTO readings VALUES (5000, 'sensor-3', '2026-12-01 00:00:00', 1.5)");
    assert!(
        node.ok("SELECT count(*) FROM readings WHERE sensor = 'sensor-3'")
            .contains("161")
    );
    assert!(node.terminate().success());
    // Converted once: a second start finds blocks and the same rows.
    let node = Node::start(dir.path(), free_port());
    assert!(node.ok("SELECT count(*) FROM readings").contains("2701"));
}
