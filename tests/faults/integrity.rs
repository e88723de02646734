//! Damaged data files: a node whose sled file was truncated or corrupted
//! refuses to start with an error naming the file (it never serves the
//! shortened data), and rebuilds from its peers once its directory is
//! cleared.

use crate::common;

use common::cluster::{Cluster, connect, converged};
use std::time::{Duration, Instant};

/// Waits for member `i`'s process to exit; its status.
fn exit_of(cluster: &mut Cluster, i: usize) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let child = cluster.members[i].child.as_mut().expect("running");
        if let Some(status) = child.try_wait().expect("wait") {
            cluster.members[i].child = None;
            return status;
        }
        assert!(Instant::now() < deadline, "a damaged node must stop, not serve");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn damage(path: &std::path::Path, how: &str) {
    let bytes = std::fs::read(path).expect("read db");
    let damaged = match how {
        "truncate" => bytes[..bytes.len() / 2].to_vec(),
        _ => {
            let mut b = bytes.clone();
            let at = b.len() / 2;
            for x in &mut b[at..at + 64] {
                *x ^= 0x5a;
            }
            b
        }
    };
    std::fs::write(path, damaged).expect("write db");
}

#[test]
fn a_damaged_member_refuses_to_start_and_rebuilds_from_its_peers() {
    let mut cluster = Cluster::start(3, &[0, 1, 2], 100_000);
    let addresses: Vec<String> = cluster.members.iter().map(|m| m.address.clone()).collect();
    common::block_on(async {
        let mut c = connect(&addresses[0]).await;
        c.execute("CREATE TABLE t (id INT PRIMARY KEY, v STRING)")
            .await
            .unwrap();
        for batch in 0..30 {
            let rows: Vec<String> = (0..50)
                .map(|i| format!("({}, 'row {} padded to make the log long enough')", batch * 50 + i, i))
                .collect();
            let r = c
                .execute(&format!("INSERT INTO t VALUES {}", rows.join(",")))
                .await
                .unwrap();
            assert!(r.error.is_none(), "{r:?}");
        }
        converged(&cluster, &[0, 1, 2], "SELECT count(*) FROM t").await;
    });
    let db = cluster.data_dir().join("node3").join("db");
    for how in ["truncate", "corrupt"] {
        // The durable watermark is brought up to date every 2 s.
        std::thread::sleep(Duration::from_secs(3));
        cluster.kill(2);
        let saved = std::fs::read(&db).expect("db");
        damage(&db, how);
        cluster.spawn(2, &[]);
        let status = exit_of(&mut cluster, 2);
        assert!(!status.success(), "{how}: the node must refuse to start");
        let log = cluster.log_of(2);
        assert!(
            log.contains(&format!("{} is damaged", db.display())),
            "{how}: the error names the file: {log}"
        );
        assert!(!log.contains("panicked"), "{how}: a clear error, not a panic: {log}");
        std::fs::write(&db, saved).expect("undamage");
    }
    // The documented recovery, both ways: clear the member's directory and
    // start it again, or start it with --rebuild-from-peers, which sets the
    // damaged files aside itself. The leader sends a snapshot each time.
    std::fs::remove_dir_all(cluster.data_dir().join("node3")).expect("clear node3");
    cluster.spawn(2, &[]);
    let mut expected = 1500;
    let mut rebuilt = |cluster: &Cluster| {
        expected += 1;
        common::block_on(async {
            let mut c = connect(&addresses[0]).await;
            let sql = format!("INSERT INTO t VALUES ({}, 'after a rebuild')", 100_000 + expected);
            let r = c.execute(&sql).await.unwrap();
            assert!(r.error.is_none(), "{r:?}");
            let counts = converged(cluster, &[0, 1, 2], "SELECT count(*) FROM t").await;
            assert!(counts.iter().all(|c| c.contains(&expected.to_string())), "{counts:?}");
        });
    };
    rebuilt(&cluster);
    std::thread::sleep(Duration::from_secs(3));
    cluster.kill(2);
    damage(&db, "truncate");
    cluster.spawn_with_peers(2, &["--rebuild-from-peers"]);
    rebuilt(&cluster);
    let log = cluster.log_of(2);
    assert!(log.contains("damaged data set aside"), "{log}");
    let aside = std::fs::read_dir(cluster.data_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("node3.damaged-"));
    assert!(aside, "the damaged files are kept for inspection");
}
