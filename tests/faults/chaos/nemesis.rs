//! The fault schedule: every few seconds one fault, on a cluster of real
//! processes: kill -9 (a random node or the leader) and restart,
//! SIGSTOP/SIGCONT, partitions made by the test's proxies between members
//! (a minority, the leader alone, a bridge), a member removed, wiped and
//! joined again, and a member restarted with its clock off (within
//! max_clock_offset). Every kind comes once per round, in an order and
//! with durations drawn from the seed. Each fault is healed before the
//! next.

use crate::common::cluster::{Cluster, connect, leader};
use std::process::Command;
use std::time::{Duration, Instant};

pub use crate::common::Rng;

#[derive(Clone, Copy, Debug)]
enum Fault {
    KillRandom,
    KillLeader,
    Pause,
    PartitionMinority,
    IsolateLeader,
    Bridge,
    Membership,
    ClockSkew,
}

const FAULTS: [Fault; 8] = [
    Fault::KillRandom,
    Fault::KillLeader,
    Fault::Pause,
    Fault::PartitionMinority,
    Fault::IsolateLeader,
    Fault::Bridge,
    Fault::Membership,
    Fault::ClockSkew,
];

/// The kinds in a seeded order.
fn round(rng: &mut Rng) -> Vec<Fault> {
    let mut kinds = FAULTS.to_vec();
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i as u64 + 1) as usize);
    }
    kinds
}

/// Removes member `i`, wipes it and has it join again through the leader;
/// waits until it is a voter once more.
async fn rejoin(cluster: &mut Cluster, i: usize) -> String {
    let all: Vec<usize> = (0..cluster.members.len()).collect();
    let l = leader(cluster, &all).await;
    let i = if i == l { (i + 1) % all.len() } else { i };
    let name = cluster.members[i].name.clone();
    let via = cluster.members[l].address.clone();
    let removed = connect(&via).await.remove_member(&name).await;
    cluster.kill(i);
    let _ = std::fs::remove_dir_all(cluster.data_dir().join(&name));
    cluster.spawn(i, &["--join", &via]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = connect(&via).await.cluster_status().await;
        if let Ok(s) = status
            && s.members.iter().any(|m| m.id == name && m.voter)
        {
            break;
        }
        if Instant::now() > deadline {
            return format!(
                "{name} removed ({:?}) but not back as a voter within 60 s",
                removed.err()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    format!(
        "{name} removed ({}), wiped and joined again as a voter",
        match removed {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{e}"),
        }
    )
}

fn signal(cluster: &Cluster, i: usize, sig: &str) {
    if let Some(child) = &cluster.members[i].child {
        let _ = Command::new("kill").args([sig, &child.id().to_string()]).status();
    }
}

/// Runs faults until `until`, then heals everything; returns the schedule
/// as (seconds since `start`, what was done).
pub async fn run(cluster: &mut Cluster, rng: &mut Rng, start: Instant, until: Instant) -> Vec<(f64, String)> {
    let n = cluster.members.len();
    let mut schedule = Vec::new();
    let all: Vec<usize> = (0..n).collect();
    let mut queue = Vec::new();
    while Instant::now() + Duration::from_secs(4) < until {
        tokio::time::sleep(Duration::from_millis(1_000 + rng.below(1_500))).await;
        if queue.is_empty() {
            queue = round(rng);
        }
        let fault = queue.remove(0);
        let hold = Duration::from_millis(1_500 + rng.below(2_000));
        let victim = rng.below(n as u64) as usize;
        let at = start.elapsed().as_secs_f64();
        let what = match fault {
            Fault::KillRandom | Fault::KillLeader => {
                let i = match fault {
                    Fault::KillLeader => leader(cluster, &all).await,
                    _ => victim,
                };
                cluster.kill(i);
                tokio::time::sleep(hold).await;
                cluster.spawn(i, &[]);
                format!(
                    "kill -9 {} ({fault:?}), restarted after {hold:?}",
                    cluster.members[i].name
                )
            }
            Fault::Pause => {
                signal(cluster, victim, "-STOP");
                tokio::time::sleep(hold).await;
                signal(cluster, victim, "-CONT");
                format!("SIGSTOP {} for {hold:?}", cluster.members[victim].name)
            }
            Fault::PartitionMinority | Fault::IsolateLeader => {
                let i = match fault {
                    Fault::IsolateLeader => leader(cluster, &all).await,
                    _ => victim,
                };
                let rest: Vec<usize> = all.iter().copied().filter(|&j| j != i).collect();
                cluster.partition(&[i], &rest);
                tokio::time::sleep(hold).await;
                cluster.heal();
                format!(
                    "partition {} from the rest ({fault:?}) for {hold:?}",
                    cluster.members[i].name
                )
            }
            Fault::Membership => rejoin(cluster, victim).await,
            Fault::ClockSkew => {
                let offset = rng.below(8_000) as i64 - 4_000;
                cluster.kill(victim);
                let shifted = offset.to_string();
                cluster.spawn_with_env(victim, &[], &[("CHRONOS_FAULT_CLOCK_OFFSET_MS", &shifted)]);
                tokio::time::sleep(hold).await;
                format!(
                    "{} restarted with its clock {offset:+} ms off",
                    cluster.members[victim].name
                )
            }
            Fault::Bridge => {
                // Two sides that both still reach the node in the middle.
                let middle = victim;
                let others: Vec<usize> = all.iter().copied().filter(|&j| j != middle).collect();
                let (a, b) = others.split_at(others.len() / 2);
                cluster.partition(a, b);
                tokio::time::sleep(hold).await;
                cluster.heal();
                format!(
                    "bridge through {}: {:?} | {:?} for {hold:?}",
                    cluster.members[middle].name,
                    a.iter().map(|&i| &cluster.members[i].name).collect::<Vec<_>>(),
                    b.iter().map(|&i| &cluster.members[i].name).collect::<Vec<_>>()
                )
            }
        };
        schedule.push((at, what));
    }
    cluster.heal();
    for i in 0..n {
        signal(cluster, i, "-CONT");
    }
    schedule
}
