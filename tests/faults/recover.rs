//! Losing the majority: two of three members are gone for good. `chronos
//! recover` on the stopped survivor makes it the only voter; it starts,
//! keeps every row, takes writes, and new members join it again.

use crate::common;

use common::BIN;
use common::cluster::{Cluster, connect, converged, leader};
use std::process::Command;
use std::time::{Duration, Instant};

fn recover(cluster: &Cluster, i: usize) -> std::process::Output {
    Command::new(BIN)
        .args([
            "recover",
            "--id",
            &cluster.members[i].name,
            "--address",
            &cluster.members[i].address,
        ])
        .arg("--data-dir")
        .arg(cluster.data_dir())
        .output()
        .unwrap()
}

#[test]
fn a_survivor_is_recovered_into_a_new_majority() {
    let mut cluster = Cluster::start(3, &[0, 1, 2], 100_000);
    let address = cluster.members[0].address.clone();
    common::block_on(async {
        let mut c = connect(&address).await;
        c.execute("CREATE TABLE t (id INT PRIMARY KEY)").await.unwrap();
        for i in 0..50 {
            let r = c.execute(&format!("INSERT INTO t VALUES ({i})")).await.unwrap();
            assert!(r.error.is_none(), "{r:?}");
        }
        converged(&cluster, &[0, 1, 2], "SELECT count(*) FROM t").await;
    });
    let out = recover(&cluster, 0);
    assert!(!out.status.success(), "refused while the node runs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop the node first"));

    // node2 and node3 are lost for good; node1 alone cannot commit.
    cluster.kill(1);
    cluster.kill(2);
    cluster.kill(0);
    std::fs::remove_dir_all(cluster.data_dir().join("node2")).unwrap();
    std::fs::remove_dir_all(cluster.data_dir().join("node3")).unwrap();
    let out = recover(&cluster, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("node1 is now the only voter"), "{text}");

    // It starts (with its old --peers, which the stored membership
    // overrides), elects itself and keeps every row.
    cluster.spawn(0, &[]);
    common::block_on(async {
        assert_eq!(leader(&cluster, &[0]).await, 0);
        let mut c = connect(&address).await;
        let r = c.execute("INSERT INTO t VALUES (50)").await.unwrap();
        assert!(r.error.is_none(), "{r:?}");
        let rows = converged(&cluster, &[0], "SELECT count(*) FROM t").await;
        assert!(rows[0].contains("51"), "{rows:?}");
    });

    // New members join it with empty directories.
    for i in [1, 2] {
        cluster.spawn(i, &["--join", &address]);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = common::block_on(async { connect(&address).await.cluster_status().await.unwrap() });
        if status.members.iter().filter(|m| m.voter).count() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "members did not join: {status:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    common::block_on(async {
        let rows = converged(&cluster, &[0, 1, 2], "SELECT count(*) FROM t").await;
        assert!(rows.iter().all(|r| r.contains("51")), "{rows:?}");
    });
}
