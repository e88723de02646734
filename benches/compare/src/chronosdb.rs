//! ChronosDB through its client library: INSERTs of one row or many, and
//! point SELECTs by primary key at a consistency level.

use crate::load::{OpFuture, Rng, Worker, read_key, write_key};
pub use chronos::client::Consistency;
use chronos::client::{Access, Client};
use std::time::{Duration, Instant};

pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS kv (k STRING PRIMARY KEY, v STRING)";

pub async fn connect(address: &str) -> Result<Client, String> {
    Client::connect_with(address, &Access::none())
        .await
        .map_err(|e| format!("chronos {address}: {e}"))
}

/// Runs a statement, turning an SQL error into Err.
pub async fn execute(client: &mut Client, sql: &str) -> Result<(), String> {
    let reply = client.execute(sql).await.map_err(|e| e.to_string())?;
    match reply.error {
        None => Ok(()),
        Some(e) => Err(e.message),
    }
}

/// Waits until every node answers and the cluster has a leader, and makes
/// the table.
pub async fn wait_until_ready(addresses: &[String]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut ready = true;
        for address in addresses {
            let Ok(mut client) = connect(address).await else {
                ready = false;
                continue;
            };
            match client.cluster_status().await {
                Ok(status) if !status.leader.is_empty() && status.members.len() == addresses.len() => {}
                _ => ready = false,
            }
        }
        if ready {
            let mut client = connect(&addresses[0]).await?;
            return execute(&mut client, CREATE).await;
        }
        if Instant::now() > deadline {
            return Err("the ChronosDB cluster was not ready within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An INSERT of `batch` new rows per operation.
pub struct Insert {
    pub client: Client,
    pub run: String,
    pub worker: usize,
    pub batch: usize,
    pub value: String,
    sql: String,
}

impl Insert {
    pub fn new(client: Client, run: &str, worker: usize, batch: usize, value: &str) -> Insert {
        Insert {
            client,
            run: run.to_string(),
            worker,
            batch,
            value: value.to_string(),
            sql: String::new(),
        }
    }
}

/// Appends `INSERT INTO kv VALUES ('k', 'v'), ...` for the given keys.
fn insert_sql(sql: &mut String, keys: impl Iterator<Item = String>, value: &str) {
    sql.clear();
    sql.push_str("INSERT INTO kv VALUES ");
    for (i, key) in keys.enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("('");
        sql.push_str(&key);
        sql.push_str("','");
        sql.push_str(value);
        sql.push_str("')");
    }
}

impl Worker for Insert {
    fn once(&mut self, seq: u64) -> OpFuture<'_> {
        Box::pin(async move {
            let first = seq * self.batch as u64;
            let (run, worker) = (&self.run, self.worker);
            let keys = (first..first + self.batch as u64).map(|n| write_key(run, worker, n));
            insert_sql(&mut self.sql, keys, &self.value);
            execute(&mut self.client, &self.sql).await?;
            Ok(self.batch as u64)
        })
    }
}

/// A SELECT of one of the `keys` pre-written rows.
pub struct Select {
    pub client: Client,
    pub keys: u64,
    pub rng: Rng,
}

impl Select {
    pub fn new(mut client: Client, consistency: Consistency, keys: u64, seed: u64) -> Select {
        client.consistency = consistency;
        Select {
            client,
            keys,
            rng: Rng::new(seed),
        }
    }
}

impl Worker for Select {
    fn once(&mut self, _seq: u64) -> OpFuture<'_> {
        Box::pin(async move {
            let key = read_key(self.rng.below(self.keys));
            let sql = format!("SELECT v FROM kv WHERE k = '{key}'");
            let mut rows = self.client.query(&sql).await.map_err(|e| e.to_string())?;
            let batch = rows.next_batch().await.map_err(|e| e.to_string())?;
            match batch.len() {
                1 => Ok(1),
                n => Err(format!("{key}: {n} rows")),
            }
        })
    }
}

/// Writes the rows that the read workloads read.
pub async fn prefill(client: &mut Client, keys: u64, value: &str) -> Result<(), String> {
    let mut sql = String::new();
    for start in (0..keys).step_by(1000) {
        insert_sql(&mut sql, (start..(start + 1000).min(keys)).map(read_key), value);
        execute(client, &sql)
            .await
            .map_err(|e| format!("chronos prefill: {e}"))?;
    }
    Ok(())
}
