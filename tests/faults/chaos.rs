//! A Jepsen-style run: a real cluster (3 and 5 `chronos node` processes),
//! concurrent clients running three workloads while a seeded schedule of
//! faults (kill -9, SIGSTOP, partitions) plays, and checkers over what the
//! clients saw. docs/testing.md says how to read a report and how to run
//! longer: CHRONOS_CHAOS_SECONDS (32), CHRONOS_CHAOS_SEED (fixed).

mod checker;
mod nemesis;
mod workloads;
use crate::common;

use common::cluster::{Cluster, connect, converged, leader};
use nemesis::Rng;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use workloads::{ACCOUNTS, BALANCE};

static SERIAL: Mutex<()> = Mutex::new(());
const KEYS: i64 = 4;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn run(nodes: usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let seconds = setting("CHRONOS_CHAOS_SECONDS", 32);
    let seed = setting("CHRONOS_CHAOS_SEED", 20261126) + nodes as u64;
    let all: Vec<usize> = (0..nodes).collect();
    // Snapshots every 1,000 entries: installs happen during a run.
    let mut cluster = Cluster::start(nodes, &all, 1_000);
    let addresses: Vec<String> = cluster.members.iter().map(|m| m.address.clone()).collect();
    common::block_on(async {
        let l = leader(&cluster, &all).await;
        let mut c = connect(&addresses[l]).await;
        for sql in [workloads::SCHEMA.to_string(), workloads::setup_sql(KEYS)] {
            let r = c.execute(&sql).await.unwrap();
            assert!(r.error.is_none(), "{r:?}");
        }
        converged(&cluster, &all, "SELECT count(*) FROM acct").await;

        let start = Instant::now();
        let until = start + Duration::from_secs(seconds);
        let at = |i: usize| addresses[i % nodes].clone();
        let registers: Vec<_> = (0..4)
            .map(|i| {
                tokio::spawn(workloads::register_client(
                    at(i),
                    i,
                    KEYS,
                    seed * 31 + i as u64,
                    start,
                    until,
                ))
            })
            .collect();
        let sets: Vec<_> = (0..2)
            .map(|i| tokio::spawn(workloads::set_client(at(i + 1), i, until)))
            .collect();
        let transfers: Vec<_> = (0..2)
            .map(|i| tokio::spawn(workloads::bank_transfers(at(i + 2), seed * 7 + i as u64, until)))
            .collect();
        let reader = tokio::spawn(workloads::bank_reader(at(0), start, until));
        let mut rng = Rng::new(seed);
        let schedule = nemesis::run(&mut cluster, &mut rng, start, until).await;

        let mut history = Vec::new();
        for r in registers {
            history.extend(r.await.unwrap());
        }
        let (mut acked, mut unknown) = (Vec::new(), Vec::new());
        for s in sets {
            let (a, u) = s.await.unwrap();
            acked.extend(a);
            unknown.extend(u);
        }
        let mut transferred = 0;
        for t in transfers {
            transferred += t.await.unwrap();
        }
        let (reads, wrong_totals) = reader.await.unwrap();

        // Everything healed: the members converge.
        converged(&cluster, &all, "SELECT count(*) FROM s").await;
        let l = leader(&cluster, &all).await;
        let mut c = connect(&addresses[l]).await;
        let mut present: BTreeMap<i64, usize> = BTreeMap::new();
        let mut stream = c.query("SELECT id FROM s").await.unwrap();
        loop {
            let rows = stream.next_batch().await.unwrap();
            if rows.is_empty() {
                break;
            }
            for row in rows {
                if let Some(chronos::sql::types::Value::Int(id)) = row.first() {
                    *present.entry(*id).or_default() += 1;
                }
            }
        }
        let totals = converged(&cluster, &all, "SELECT sum(bal) FROM acct").await;

        let faults: Vec<String> = schedule.iter().map(|(t, f)| format!("{t:.1}s {f}")).collect();
        let ops = history.len();
        let unknown_ops = history.iter().filter(|o| o.completed.is_none()).count();
        let mut anomalies = Vec::new();
        match checker::check(&history, 0) {
            Ok(_) => {}
            Err(v) => {
                let file = std::env::temp_dir().join(format!("chronos-chaos-{nodes}-{seed}.history"));
                let text: Vec<String> = history.iter().map(|o| o.to_string()).collect();
                let _ = std::fs::write(&file, text.join("\n"));
                anomalies.push(format!("registers: {v}(history kept in {})", file.display()));
            }
        }
        let lost: Vec<&i64> = acked.iter().filter(|id| !present.contains_key(id)).collect();
        let twice: Vec<(&i64, &usize)> = present.iter().filter(|(_, n)| **n > 1).collect();
        let invented: Vec<&i64> = present
            .keys()
            .filter(|id| !acked.contains(id) && !unknown.contains(id))
            .collect();
        if !lost.is_empty() || !twice.is_empty() || !invented.is_empty() {
            anomalies.push(format!(
                "set: lost {lost:?}, duplicated {twice:?}, invented {invented:?}"
            ));
        }
        let expected = (ACCOUNTS * BALANCE).to_string();
        if !wrong_totals.is_empty() || !totals.iter().all(|t| t.contains(&expected)) {
            anomalies.push(format!("bank: totals read {wrong_totals:?}, final {totals:?}"));
        }
        let summary = format!(
            "{nodes} nodes, seed {seed}, {seconds} s: registers {ops} ops ({unknown_ops} unknown) on {KEYS} keys; \
             set {} acknowledged, {} unknown, {} present; bank {transferred} transfers, {reads} total reads; {} faults",
            acked.len(),
            unknown.len(),
            present.len(),
            schedule.len()
        );
        println!("fault schedule:\n  {}", faults.join("\n  "));
        match anomalies.is_empty() {
            true => println!("chaos: ok ({summary})"),
            false => panic!("chaos: FAILED ({summary})\n{}", anomalies.join("\n")),
        }
        assert!(
            schedule.len() >= 8 || seconds < 45,
            "every kind of fault was injected: {faults:?}"
        );
        assert!(
            ops > 0 && !acked.is_empty() && transferred > 0,
            "the workloads made progress"
        );
    });
}

#[test]
fn three_nodes_under_faults() {
    run(3);
}

#[test]
fn five_nodes_under_faults() {
    run(5);
}

/// Regression: the test's proxies kept every connection they had ever
/// carried, and a 300 s run ran out of file descriptors.
#[test]
fn proxies_forget_closed_connections() {
    use std::io::{Read, Write};
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = target.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in target.incoming().flatten() {
            let mut conn = conn;
            let mut buf = [0u8; 8];
            if let Ok(n) = conn.read(&mut buf) {
                let _ = conn.write_all(&buf[..n]);
            }
        }
    });
    let proxy = common::cluster::Proxy::start(address);
    for _ in 0..200 {
        let mut c = std::net::TcpStream::connect(&proxy.address).unwrap();
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }
    std::thread::sleep(Duration::from_millis(200));
    let _last = std::net::TcpStream::connect(&proxy.address).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(proxy.held() <= 4, "{} connections held", proxy.held());
}
