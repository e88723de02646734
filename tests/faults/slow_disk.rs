//! Slow storage: a three-node cluster whose every Raft log flush stalls
//! 300-800 ms (the fault hook CHRONOS_FAULT_FSYNC_DELAY_MS, like a worn SD
//! card) keeps one leader under a steady write load with the sd-card
//! profile's election timeout, and loses no acknowledged write.

use crate::common;

use common::cluster::{Cluster, connect, converged, leader};
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_secs(20);

#[test]
fn stalled_fsyncs_do_not_cost_the_leader() {
    let env = [
        ("CHRONOS_FAULT_FSYNC_DELAY_MS", "300-800"),
        // The sd-card profile (config/chronos.toml).
        ("CHRONOS_ELECTION_TIMEOUT_MS", "3000"),
    ];
    let cluster = Cluster::start_with_env(3, &[0, 1, 2], 100_000, &env);
    common::block_on(async {
        let first = leader(&cluster, &[0, 1, 2]).await;
        let address = cluster.members[first].address.clone();
        let mut c = connect(&address).await;
        c.execute("CREATE TABLE t (id INT PRIMARY KEY, writer INT)")
            .await
            .unwrap();
        let term_before = c.cluster_status().await.unwrap().term;
        let began = Instant::now();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let address = address.clone();
                tokio::spawn(async move {
                    let mut c = connect(&address).await;
                    let mut acknowledged = 0u64;
                    let mut i = 0;
                    while began.elapsed() < RUN {
                        let id = w * 1_000_000 + i;
                        i += 1;
                        if let Ok(r) = c.execute(&format!("INSERT INTO t VALUES ({id}, {w})")).await
                            && r.error.is_none()
                        {
                            acknowledged += 1;
                        }
                    }
                    acknowledged
                })
            })
            .collect();
        let mut acknowledged = 0;
        for w in writers {
            acknowledged += w.await.unwrap();
        }
        let status = c.cluster_status().await.unwrap();
        let elections = status.term - term_before;
        println!(
            "{acknowledged} writes acknowledged in {:?} under 300-800 ms fsync stalls; elections during the load: {elections}; leader {} (was {})",
            RUN, status.leader, cluster.members[first].name
        );
        assert!(acknowledged > 10, "the cluster kept committing: {acknowledged}");
        assert_eq!(elections, 0, "no leader change under stalls");
        assert_eq!(status.leader, cluster.members[first].name);
        let counts = converged(&cluster, &[0, 1, 2], "SELECT count(*) FROM t").await;
        assert!(
            counts.iter().all(|c| c.contains(&acknowledged.to_string())),
            "{counts:?} vs {acknowledged}"
        );
    });
    let log = cluster.log_of(0);
    assert!(
        log.contains("fault injection: every Raft log flush stalls 300-800 ms"),
        "the hook was on"
    );
}
