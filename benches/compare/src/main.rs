//! The side-by-side comparison behind benches/compare/run.sh: the same
//! workloads against a 3-member etcd, a 3-node and a 1-node ChronosDB and
//! local SQLite, one system at a time, then one markdown table with the
//! ratios that issue #11 sets as targets; and the storage issue's sensor
//! workload (sensors.rs): ingest, a filtered scan, bytes on disk and peak
//! memory of one node against SQLite.
//!
//!     chronos-compare --chronos BIN --etcd BIN --dir DIR [--seconds 10] [--out FILE]
//!                     [--packaged BIN]
//!
//! `--packaged` names the binary as packaged (the `dist` profile), whose
//! stripped size is reported beside the release build's.

mod chronosdb;
mod etcd;
mod load;
mod procs;
mod report;
mod sensors;
mod sqlite;

use load::{Outcome, Worker, drive, value_of};
use procs::Cluster;
use report::Results;
use std::path::PathBuf;
use std::time::Duration;

/// Bytes of every value written (keys are about 20 bytes).
const VALUE_SIZE: usize = 100;
/// Rows written before the read workloads, read back at random.
const READ_KEYS: u64 = 10_000;
const WRITE_CLIENTS: [usize; 3] = [16, 64, 256];
const BATCH_ROWS: usize = 1000;
const BATCH_CLIENTS: usize = 4;
const READ_CLIENTS: usize = 32;
/// The page cache of the run that shows memory under load follows the
/// setting (32 MiB, as in the sd-card profile).
const SMALL_CACHE: u64 = 32 << 20;

struct Args {
    chronos: PathBuf,
    etcd: PathBuf,
    dir: PathBuf,
    seconds: u64,
    out: Option<PathBuf>,
    packaged: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut chronos, mut etcd, mut dir, mut seconds, mut out) = (None, None, None, 10, None);
    let mut packaged = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--chronos" => chronos = Some(PathBuf::from(value()?)),
            "--etcd" => etcd = Some(PathBuf::from(value()?)),
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--seconds" => {
                let v = value()?;
                seconds = v
                    .parse()
                    .map_err(|_| format!("--seconds: '{v}' is not a whole number"))?;
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "--packaged" => packaged = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(Args {
        chronos: chronos.ok_or("--chronos BIN is required")?,
        etcd: etcd.ok_or("--etcd BIN is required")?,
        dir: dir.ok_or("--dir DIR is required")?,
        seconds,
        out,
        packaged,
    })
}

#[tokio::main]
async fn main() {
    let result = match parse_args() {
        Ok(args) => run(args).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("chronos-compare: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let duration = Duration::from_secs(args.seconds);
    let value = value_of(VALUE_SIZE);
    let mut results = Results::new(args.seconds, VALUE_SIZE);

    eprintln!("== etcd, 3 members");
    let cluster = procs::start_etcd(&args.etcd, &procs::data_dir(&args.dir, "etcd")?, 3)?;
    bench_etcd(&cluster, &value, duration, &mut results).await?;
    cluster.stop();

    eprintln!("== ChronosDB, 3 nodes");
    let cluster = procs::start_chronos(&args.chronos, &procs::data_dir(&args.dir, "chronos3")?, 3, &[])?;
    bench_chronos3(&cluster, &value, duration, &mut results).await?;
    cluster.stop();

    eprintln!("== ChronosDB, 1 node");
    let cluster = procs::start_chronos(&args.chronos, &procs::data_dir(&args.dir, "chronos1")?, 1, &[])?;
    bench_chronos1(&cluster, &value, duration, &mut results).await?;
    cluster.stop();

    eprintln!("== ChronosDB, 1 node, storage.cache_bytes = {SMALL_CACHE}");
    let small = SMALL_CACHE.to_string();
    let env = [("CHRONOS_STORAGE_CACHE_BYTES", small.as_str())];
    let cluster = procs::start_chronos(&args.chronos, &procs::data_dir(&args.dir, "chronos1-small")?, 1, &env)?;
    chronosdb::wait_until_ready(&cluster.addresses).await?;
    let workers = chronos_writers(&cluster.addresses, BATCH_CLIENTS, BATCH_ROWS, "small", &value).await?;
    results.small_cache = note("1,000-row INSERT, 4 clients", drive(workers, duration).await);
    results.small_cache_peak_mib = cluster.memory_mib().1;
    cluster.stop();

    eprintln!("== ChronosDB, 1 node: {} sensor readings", sensors::ROWS);
    let dir = procs::data_dir(&args.dir, "chronos1-sensors")?;
    let cluster = procs::start_chronos(&args.chronos, &dir, 1, &[])?;
    chronosdb::wait_until_ready(&cluster.addresses).await?;
    results.chronos1_sensors = sensors::chronos(&cluster, &dir.join("node1"), sensors::ROWS).await?;
    eprintln!("   {:?}", results.chronos1_sensors);
    cluster.stop();
    eprintln!("== SQLite: {} sensor readings", sensors::ROWS);
    let d = procs::data_dir(&args.dir, "sqlite-sensors")?;
    results.sqlite_sensors = tokio::task::spawn_blocking(move || sensors::sqlite(&d, sensors::ROWS))
        .await
        .map_err(|e| e.to_string())??;
    eprintln!("   {:?}", results.sqlite_sensors);

    eprintln!("== SQLite, local");
    let dir = procs::data_dir(&args.dir, "sqlite")?;
    let (d, v) = (dir.clone(), value.clone());
    let batch = tokio::task::spawn_blocking(move || sqlite::ingest(&d, BATCH_ROWS, &v, duration));
    results.sqlite_batch = note(
        "1,000-row transactions, 1 writer",
        batch.await.map_err(|e| e.to_string())??,
    );
    let (d, v) = (dir.clone(), value.clone());
    let single = tokio::task::spawn_blocking(move || sqlite::ingest(&d, 1, &v, duration));
    results.sqlite_single = note(
        "single-row commits, 1 writer",
        single.await.map_err(|e| e.to_string())??,
    );

    results.binary_bytes = procs::stripped_size(&args.chronos, &args.dir).ok();
    results.packaged_bytes = args.packaged.and_then(|p| procs::stripped_size(&p, &args.dir).ok());
    let table = results.markdown();
    println!("{table}");
    if let Some(out) = &args.out {
        report::append(out, &table)?;
        eprintln!("appended to {}", out.display());
    }
    Ok(())
}

/// Prints a run's figures as it ends, and keeps them.
fn note(what: &str, outcome: Outcome) -> Outcome {
    eprintln!("  {what}: {}", outcome.summary());
    outcome
}

async fn bench_etcd(cluster: &Cluster, value: &str, duration: Duration, results: &mut Results) -> Result<(), String> {
    let leader = etcd::wait_for_leader(&cluster.addresses).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    results.etcd_idle_mib = cluster.memory_mib().0;
    let writers = |clients: usize, batch: usize, run: &'static str| {
        let (leader, value) = (leader.clone(), value.to_string());
        async move {
            let mut workers: Vec<Box<dyn Worker>> = Vec::new();
            for worker in 0..clients {
                let client = etcd::connect(&leader).await?;
                let (run, value) = (run.to_string(), value.clone());
                workers.push(Box::new(etcd::Put {
                    client,
                    run,
                    worker,
                    batch,
                    value,
                }));
            }
            Ok::<_, String>(drive(workers, duration).await)
        }
    };
    results.etcd_single = note("put, 1 client", writers(1, 1, "w1").await?);
    for (i, clients) in WRITE_CLIENTS.iter().enumerate() {
        let outcome = writers(*clients, 1, ["w16", "w64", "w256"][i]).await?;
        results.etcd_concurrent[i] = note(&format!("put, {clients} clients"), outcome);
    }
    let outcome = writers(BATCH_CLIENTS, BATCH_ROWS, "batch").await?;
    results.etcd_batch = note("txn of 1,000 puts, 4 clients", outcome);
    etcd::prefill(&mut etcd::connect(&leader).await?, READ_KEYS, value).await?;
    for serializable in [false, true] {
        let mut workers: Vec<Box<dyn Worker>> = Vec::new();
        for w in 0..READ_CLIENTS {
            let client = etcd::connect(&cluster.addresses[w % cluster.addresses.len()]).await?;
            workers.push(Box::new(etcd::Get {
                client,
                serializable,
                keys: READ_KEYS,
                rng: load::Rng::new(w as u64 + 1),
            }));
        }
        let outcome = drive(workers, duration).await;
        match serializable {
            false => results.etcd_strong_read = note("linearizable get, 32 clients", outcome),
            true => results.etcd_local_read = note("serializable get, 32 clients", outcome),
        }
    }
    results.etcd_peak_mib = cluster.memory_mib().1;
    Ok(())
}

/// `clients` ChronosDB writers of `batch` rows each, spread over the nodes
/// (each client sends its writes to the leader).
async fn chronos_writers(
    addresses: &[String],
    clients: usize,
    batch: usize,
    run: &str,
    value: &str,
) -> Result<Vec<Box<dyn Worker>>, String> {
    let mut workers: Vec<Box<dyn Worker>> = Vec::new();
    for worker in 0..clients {
        let client = chronosdb::connect(&addresses[worker % addresses.len()]).await?;
        workers.push(Box::new(chronosdb::Insert::new(client, run, worker, batch, value)));
    }
    Ok(workers)
}

/// Waits until the cluster serves, lets it settle for a second, and answers
/// its idle memory (the largest member's, MiB).
async fn ready_and_idle(cluster: &Cluster) -> Result<f64, String> {
    chronosdb::wait_until_ready(&cluster.addresses).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(cluster.memory_mib().0)
}

async fn bench_chronos3(
    cluster: &Cluster,
    value: &str,
    duration: Duration,
    results: &mut Results,
) -> Result<(), String> {
    let addresses = &cluster.addresses;
    results.chronos3_idle_mib = ready_and_idle(cluster).await?;
    let workers = chronos_writers(addresses, 1, 1, "w1", value).await?;
    results.chronos3_single = note("INSERT, 1 client", drive(workers, duration).await);
    for (i, clients) in WRITE_CLIENTS.iter().enumerate() {
        let workers = chronos_writers(addresses, *clients, 1, ["w16", "w64", "w256"][i], value).await?;
        let outcome = drive(workers, duration).await;
        results.chronos3_concurrent[i] = note(&format!("INSERT, {clients} clients"), outcome);
    }
    let workers = chronos_writers(addresses, BATCH_CLIENTS, BATCH_ROWS, "batch", value).await?;
    results.chronos3_batch = note("1,000-row INSERT, 4 clients", drive(workers, duration).await);
    chronosdb::prefill(&mut chronosdb::connect(&addresses[0]).await?, READ_KEYS, value).await?;
    for consistency in [chronosdb::Consistency::Strong, chronosdb::Consistency::Local] {
        let mut workers: Vec<Box<dyn Worker>> = Vec::new();
        for w in 0..READ_CLIENTS {
            let client = chronosdb::connect(&addresses[w % addresses.len()]).await?;
            workers.push(Box::new(chronosdb::Select::new(
                client,
                consistency,
                READ_KEYS,
                w as u64 + 1,
            )));
        }
        let outcome = drive(workers, duration).await;
        match consistency {
            chronosdb::Consistency::Strong => results.chronos3_strong_read = note("strong SELECT, 32 clients", outcome),
            chronosdb::Consistency::Local => results.chronos3_local_read = note("local SELECT, 32 clients", outcome),
        }
    }
    results.chronos3_peak_mib = cluster.memory_mib().1;
    Ok(())
}

async fn bench_chronos1(
    cluster: &Cluster,
    value: &str,
    duration: Duration,
    results: &mut Results,
) -> Result<(), String> {
    let addresses = &cluster.addresses;
    results.chronos1_idle_mib = ready_and_idle(cluster).await?;
    let workers = chronos_writers(addresses, 1, BATCH_ROWS, "one", value).await?;
    results.chronos1_batch_one = note("1,000-row INSERT, 1 client", drive(workers, duration).await);
    let workers = chronos_writers(addresses, BATCH_CLIENTS, BATCH_ROWS, "four", value).await?;
    results.chronos1_batch = note("1,000-row INSERT, 4 clients", drive(workers, duration).await);
    let workers = chronos_writers(addresses, 1, 1, "single", value).await?;
    results.chronos1_single = note("INSERT, 1 client", drive(workers, duration).await);
    results.chronos1_peak_mib = cluster.memory_mib().1;
    Ok(())
}
