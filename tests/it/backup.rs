//! `chronos backup` from a live node and `chronos restore` into an empty
//! data directory give a node with the same rows; bad restores are refused.

use crate::common;

use std::process::Command;

fn chronos(args: &[&str]) -> std::process::Output {
    Command::new(common::BIN).args(args).output().expect("run chronos")
}

#[test]
fn a_live_backup_restores_into_a_node_with_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let live = common::Node::start(&dir.path().join("live"), common::free_port());
    live.ok(
        "CREATE TABLE readings (sensor STRING, ts TIMESTAMP, value FLOAT, PRIMARY KEY (sensor, ts));
         CREATE INDEX by_value ON readings (value);
         CREATE TABLE notes (body TEXT)",
    );
    let values: Vec<String> = (0..500)
        .map(|i| format!("('s{}', {}, {}.5)", i % 5, 1_700_000_000_000i64 + i, i))
        .collect();
    live.ok(&format!("INSERT INTO readings VALUES {}", values.join(",")));
    live.ok("INSERT INTO notes VALUES ('no primary key'), (NULL)");
    let query = "SELECT * FROM readings ORDER BY sensor, ts; SELECT * FROM notes ORDER BY body; SELECT count(*) FROM readings WHERE value > 400";
    let before = live.ok(query);

    let backup = dir.path().join("chronos.backup");
    let out = chronos(&["backup", "--leader", &live.address, backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("bytes written"));
    // The live node keeps serving writes after the backup.
    live.ok("INSERT INTO notes VALUES ('after the backup')");

    let restored_dir = dir.path().join("restored");
    let out = chronos(&[
        "restore",
        backup.to_str().unwrap(),
        "--data-dir",
        restored_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let restored = common::Node::start(&restored_dir, common::free_port());
    let mut after = String::new();
    for _ in 0..50 {
        let out = restored.sql(query);
        if out.status.success() {
            after = String::from_utf8_lossy(&out.stdout).into_owned();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.contains(" sec)"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&after), strip(&before));
    // The restored node takes writes: it formed a cluster of its own.
    restored.ok("INSERT INTO notes VALUES ('restored node writes')");

    // A non-empty directory is refused, and so is a damaged backup (which
    // leaves nothing behind).
    let out = chronos(&[
        "restore",
        backup.to_str().unwrap(),
        "--data-dir",
        restored_dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    let bytes = std::fs::read(&backup).unwrap();
    let damaged = dir.path().join("damaged.backup");
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let target = dir.path().join("other");
    let out = chronos(&[
        "restore",
        damaged.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("truncated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!target.join("node1").exists());
}
