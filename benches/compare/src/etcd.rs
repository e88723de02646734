//! etcd through the etcd-client crate: puts (one key, or a transaction of
//! many), and gets, linearizable or serializable.

use crate::load::{OpFuture, Worker, read_key, write_key};
use etcd_client::{Client, GetOptions, KvClient, TxnOp};
use std::time::{Duration, Instant};

/// Connects to one member.
pub async fn connect(address: &str) -> Result<KvClient, String> {
    Client::connect([format!("http://{address}")], None)
        .await
        .map(|c| c.kv_client())
        .map_err(|e| format!("etcd {address}: {e}"))
}

/// Waits until a member leads, and answers its address.
pub async fn wait_for_leader(addresses: &[String]) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for address in addresses {
            let Ok(mut client) = Client::connect([format!("http://{address}")], None).await else {
                continue;
            };
            if let Ok(status) = client.status().await
                && status.leader() != 0
                && status.header().map(|h| h.member_id()) == Some(status.leader())
            {
                return Ok(address.clone());
            }
        }
        if Instant::now() > deadline {
            return Err("etcd elected no leader within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes `batch` new keys per operation: a put, or a transaction of puts.
pub struct Put {
    pub client: KvClient,
    pub run: String,
    pub worker: usize,
    pub batch: usize,
    pub value: String,
}

impl Worker for Put {
    fn once(&mut self, seq: u64) -> OpFuture<'_> {
        Box::pin(async move {
            let first = seq * self.batch as u64;
            if self.batch == 1 {
                let key = write_key(&self.run, self.worker, first);
                self.client
                    .put(key, self.value.as_str(), None)
                    .await
                    .map_err(|e| e.to_string())?;
            } else {
                let ops: Vec<TxnOp> = (0..self.batch as u64)
                    .map(|i| TxnOp::put(write_key(&self.run, self.worker, first + i), self.value.as_str(), None))
                    .collect();
                self.client
                    .txn(etcd_client::Txn::new().and_then(ops))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(self.batch as u64)
        })
    }
}

/// Reads one of the `keys` pre-written keys.
pub struct Get {
    pub client: KvClient,
    pub serializable: bool,
    pub keys: u64,
    pub rng: crate::load::Rng,
}

impl Worker for Get {
    fn once(&mut self, _seq: u64) -> OpFuture<'_> {
        Box::pin(async move {
            let key = read_key(self.rng.below(self.keys));
            let options = match self.serializable {
                true => Some(GetOptions::new().with_serializable()),
                false => None,
            };
            let reply = self
                .client
                .get(key.as_str(), options)
                .await
                .map_err(|e| e.to_string())?;
            match reply.kvs().len() {
                1 => Ok(1),
                n => Err(format!("{key}: {n} values")),
            }
        })
    }
}

/// Writes the keys that the read workloads read.
pub async fn prefill(client: &mut KvClient, keys: u64, value: &str) -> Result<(), String> {
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let ops: Vec<TxnOp> = chunk.iter().map(|i| TxnOp::put(read_key(*i), value, None)).collect();
        client
            .txn(etcd_client::Txn::new().and_then(ops))
            .await
            .map_err(|e| format!("etcd prefill: {e}"))?;
    }
    Ok(())
}
