//! The workloads: concurrent clients through the real client library, each
//! operation recorded with its invocation and completion (or as unknown
//! when it timed out or its connection failed).
//!
//! - registers: reads, writes and compare-and-set on a few keys, checked
//!   for linearizability;
//! - set: unique inserts; at the end every acknowledged one is present
//!   exactly once and nothing is invented;
//! - bank: transfers inside BEGIN..COMMIT; every read of the total sees
//!   the same total.

use super::checker::{Call, Op, Outcome};
use super::nemesis::Rng;
use crate::common::cluster::connect;
use chronos::client::{Client, ClientError};
use chronos::sql::types::Value;
use std::time::{Duration, Instant};

/// A single call may take this long before its outcome counts as unknown.
const CALL_LIMIT: Duration = Duration::from_secs(5);
pub const ACCOUNTS: i64 = 5;
pub const BALANCE: i64 = 100;

pub const SCHEMA: &str = "CREATE TABLE reg (k INT PRIMARY KEY, v INT); \
     CREATE TABLE s (id INT); \
     CREATE TABLE acct (id INT PRIMARY KEY, bal INT)";

pub fn setup_sql(keys: i64) -> String {
    let regs: Vec<String> = (0..keys).map(|k| format!("({k}, 0)")).collect();
    let accounts: Vec<String> = (0..ACCOUNTS).map(|a| format!("({a}, {BALANCE})")).collect();
    format!(
        "INSERT INTO reg VALUES {}; INSERT INTO acct VALUES {}",
        regs.join(","),
        accounts.join(",")
    )
}

async fn client(address: &str) -> Client {
    let mut c = connect(address).await;
    // Retried with the same idempotency key for this long, then unknown.
    c.retry_for = Duration::from_secs(2);
    c
}

fn nanos(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// A write's outcome: rows affected, or None when unknown.
async fn write(c: &mut Client, sql: &str) -> Option<u64> {
    match tokio::time::timeout(CALL_LIMIT, c.execute(sql)).await {
        Ok(Ok(r)) if r.error.is_none() => Some(r.results.last().map_or(0, |s| s.rows_affected)),
        // A refused statement did not apply; none here should be refused,
        // so treat it as unknown rather than guess.
        _ => None,
    }
}

/// The first column of the first row, as an integer (strong read).
async fn read_int(c: &mut Client, sql: &str) -> Option<i64> {
    let read = async {
        let mut stream = c.query(sql).await?;
        let rows = stream.next_batch().await?;
        Ok::<_, ClientError>(rows)
    };
    match tokio::time::timeout(CALL_LIMIT, read).await {
        Ok(Ok(rows)) => match rows.first().and_then(|r| r.first()) {
            Some(Value::Int(v)) => Some(*v),
            _ => None,
        },
        _ => None,
    }
}

/// One register client's history.
pub async fn register_client(
    address: String,
    client_no: usize,
    keys: i64,
    seed: u64,
    start: Instant,
    until: Instant,
) -> Vec<Op> {
    let mut c = client(&address).await;
    let mut rng = Rng::new(seed);
    let mut history = Vec::new();
    let mut counter = 0i64;
    let mut last_seen = 0i64;
    while Instant::now() < until {
        let key = rng.below(keys as u64) as i64;
        counter += 1;
        let fresh = (client_no as i64 + 1) * 1_000_000 + counter;
        let roll = rng.below(10);
        let invoked = nanos(start);
        let (call, outcome) = if roll < 5 {
            let v = read_int(&mut c, &format!("SELECT v FROM reg WHERE k = {key}")).await;
            if let Some(v) = v {
                last_seen = v;
            }
            (Call::Read, v.map_or(Outcome::Unknown, Outcome::Read))
        } else if roll < 8 {
            let done = write(&mut c, &format!("UPDATE reg SET v = {fresh} WHERE k = {key}")).await;
            (Call::Write(fresh), done.map_or(Outcome::Unknown, |_| Outcome::Written))
        } else {
            let old = if rng.below(2) == 0 { last_seen } else { 0 };
            let sql = format!("UPDATE reg SET v = {fresh} WHERE k = {key} AND v = {old}");
            let done = write(&mut c, &sql).await;
            (
                Call::Cas(old, fresh),
                done.map_or(Outcome::Unknown, |n| Outcome::Cas(n == 1)),
            )
        };
        let completed = (outcome != Outcome::Unknown).then(|| nanos(start));
        history.push(Op {
            client: client_no,
            key,
            call,
            outcome,
            invoked,
            completed,
        });
    }
    history
}

/// Inserts unique ids into `s`: (acknowledged, unknown).
pub async fn set_client(address: String, client_no: usize, until: Instant) -> (Vec<i64>, Vec<i64>) {
    let mut c = client(&address).await;
    let (mut acked, mut unknown) = (Vec::new(), Vec::new());
    let mut id = (client_no as i64 + 1) * 10_000_000;
    while Instant::now() < until {
        id += 1;
        match write(&mut c, &format!("INSERT INTO s VALUES ({id})")).await {
            Some(_) => acked.push(id),
            None => unknown.push(id),
        }
    }
    (acked, unknown)
}

/// Moves money between accounts in transactions.
pub async fn bank_transfers(address: String, seed: u64, until: Instant) -> usize {
    let mut c = client(&address).await;
    let mut rng = Rng::new(seed);
    let mut done = 0;
    while Instant::now() < until {
        let from = rng.below(ACCOUNTS as u64) as i64;
        let to = (from + 1 + rng.below(ACCOUNTS as u64 - 1) as i64) % ACCOUNTS;
        let amount = 1 + rng.below(20) as i64;
        let sql = format!(
            "BEGIN; UPDATE acct SET bal = bal - {amount} WHERE id = {from}; \
             UPDATE acct SET bal = bal + {amount} WHERE id = {to}; COMMIT"
        );
        if write(&mut c, &sql).await.is_some() {
            done += 1;
        }
    }
    done
}

/// Reads the total again and again: (reads, totals that were wrong).
pub async fn bank_reader(address: String, start: Instant, until: Instant) -> (usize, Vec<(f64, i64)>) {
    let mut c = client(&address).await;
    let (mut reads, mut wrong) = (0, Vec::new());
    while Instant::now() < until {
        if let Some(total) = read_int(&mut c, "SELECT sum(bal) FROM acct").await {
            reads += 1;
            if total != ACCOUNTS * BALANCE {
                wrong.push((start.elapsed().as_secs_f64(), total));
            }
        }
    }
    (reads, wrong)
}
