//! Sync between two three-node clusters: a site and an upstream. The site
//! reaches the upstream through one member (writes are forwarded to the
//! upstream's leader); the site's leader, which runs sync, is killed while
//! it pushes, and the new leader carries on from the cursor the upstream
//! holds. Every row written on the site arrives once; a row written
//! upstream reaches every site member.

use crate::common;

use common::cluster::{Cluster, connect, converged, leader, rows_at};
use std::time::{Duration, Instant};

const SCHEMA: &str = "CREATE TABLE readings (sensor STRING, seq INT, v FLOAT); \
     CREATE TABLE assets (id INT PRIMARY KEY, name STRING)";

async fn count(address: &str) -> usize {
    rows_at(address, "SELECT COUNT(*) FROM readings")
        .await
        .ok()
        .and_then(|r| r.first().cloned())
        .and_then(|r| r.trim_start_matches("[Int(").trim_end_matches(")]").parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_site_cluster_syncs_through_a_leader_change_on_both_sides() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(body());
}

async fn body() {
    let configs = tempfile::tempdir().expect("temp dir");
    let up_config = configs.path().join("hq.toml");
    std::fs::write(&up_config, "[sync]\nsite_id = \"hq\"\nsites = [\"plant\"]\n").expect("write");
    let up_config = up_config.display().to_string();
    let mut upstream = Cluster::start_with_env(3, &[0, 1, 2], 1000, &[("CHRONOS_CONFIG", &up_config)]);
    let up_leader = leader(&upstream, &[0, 1, 2]).await;
    // The site talks to a member that does not lead the upstream.
    let via = (up_leader + 1) % 3;
    let site_config = configs.path().join("plant.toml");
    std::fs::write(
        &site_config,
        format!(
            "[sync]\nsite_id = \"plant\"\nupstream = \"{}\"\ninterval_ms = 100\n\
             tables = {{ readings = \"push\", assets = \"both\" }}\n",
            upstream.members[via].address
        ),
    )
    .expect("write");
    let site_config = site_config.display().to_string();
    let mut site = Cluster::start_with_env(3, &[0, 1, 2], 1000, &[("CHRONOS_CONFIG", &site_config)]);
    let site_leader = leader(&site, &[0, 1, 2]).await;
    for (cluster, i) in [(&upstream, up_leader), (&site, site_leader)] {
        let mut c = connect(&cluster.members[i].address).await;
        let r = c.execute(SCHEMA).await.expect("schema");
        assert!(r.error.is_none(), "{r:?}");
    }
    let mut hq = connect(&upstream.members[up_leader].address).await;
    assert!(
        hq.execute("INSERT INTO assets VALUES (1, 'pump')")
            .await
            .expect("insert")
            .error
            .is_none()
    );

    // Write on the site; kill its leader once part has reached upstream.
    let writer_at = (site_leader + 1) % 3;
    let mut writer = connect(&site.members[writer_at].address).await;
    let mut written = 0;
    let mut killed = false;
    // At least 40 chunks, and on until the first rows reached the upstream
    // (its first sync round may come after a fast writer's 40 chunks).
    let mut chunk = 0;
    while chunk < 40 || (!killed && chunk < 400) {
        chunk += 1;
        let values: Vec<String> = (0..500).map(|i| format!("('s', {}, 1.5)", chunk * 500 + i)).collect();
        let r = writer
            .execute(&format!("INSERT INTO readings VALUES {}", values.join(", ")))
            .await
            .expect("write on the site");
        assert!(r.error.is_none(), "{r:?}");
        written += 500;
        if !killed && count(&upstream.members[up_leader].address).await > 0 {
            site.kill(site_leader);
            killed = true;
        }
    }
    assert!(killed, "nothing reached the upstream while writing");
    // The upstream's leader goes too; sync waits and resumes.
    upstream.kill(up_leader);
    tokio::time::sleep(Duration::from_secs(2)).await;
    upstream.spawn(up_leader, &[]);
    site.spawn(site_leader, &[]);

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let new_leader = leader(&upstream, &[0, 1, 2]).await;
        if count(&upstream.members[new_leader].address).await >= written {
            break;
        }
        assert!(Instant::now() < deadline, "the site's rows did not all arrive");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all = [0, 1, 2];
    let rows = converged(
        &upstream,
        &all,
        "SELECT seq, COUNT(*) FROM readings GROUP BY seq HAVING COUNT(*) > 1",
    )
    .await;
    assert!(rows.is_empty(), "rows arrived twice: {:?}", &rows[..rows.len().min(5)]);
    let counted = converged(&upstream, &all, "SELECT COUNT(*) FROM readings").await;
    assert_eq!(counted, vec![format!("[Int({written})]")]);
    let pulled = vec!["[Int(1), Text(\"pump\")]".to_string()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while converged(&site, &all, "SELECT id, name FROM assets").await != pulled {
        if Instant::now() > deadline {
            for (side, cluster) in [("site", &site), ("upstream", &upstream)] {
                for i in all {
                    let log = cluster.log_of(i);
                    let lines: Vec<&str> = log
                        .lines()
                        .filter(|l| l.contains("sync") || l.contains("WARN"))
                        .collect();
                    eprintln!("{side} member {i}:\n{}", lines.join("\n"));
                }
            }
            panic!("the upstream's row did not reach every site member");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
