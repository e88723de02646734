//! Site-to-upstream sync between real nodes: a site (one node) reaches its
//! upstream (one node) through a proxy the test can cut. Checks that a
//! backlog written offline arrives once each, also when the site is killed
//! mid-push; that a conflicting update resolves the same on both sides;
//! that pull brings upstream rows down; and that a bad peer or batch (an
//! unknown site, a damaged or truncated batch, a stamp from the future, a
//! different schema) is refused with a clear error and changes nothing.

use crate::common;

use chronos::proto::sync::sync_client::SyncClient;
use chronos::proto::sync::{Batch, PushRequest};
use chronos::storage::RowVersion;
use chronos::storage::sync::Change;
use chronos::sync::Timestamp;
use chronos::sync::batch::{checksum, encode_changes};
use common::cluster::{Proxy, rows_at};
use common::{Node, free_port};
use std::path::Path;
use std::time::{Duration, Instant};

const SCHEMA: &str = "CREATE TABLE readings (sensor STRING, seq INT, v FLOAT); \
     CREATE TABLE assets (id INT PRIMARY KEY, name STRING, loc STRING); \
     CREATE TABLE odd (id INT PRIMARY KEY, x INT)";

fn write_config(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, body).expect("write config");
    path.display().to_string()
}

struct Pair {
    _dir: tempfile::TempDir,
    upstream: Node,
    site: Option<Node>,
    proxy: Proxy,
    site_port: u16,
    site_config: String,
    dir: std::path::PathBuf,
}

impl Pair {
    fn start() -> Pair {
        let dir = tempfile::tempdir().expect("temp dir");
        let up_config = write_config(dir.path(), "hq", "[sync]\nsite_id = \"hq\"\nsites = [\"plant\"]\n");
        let upstream = Node::start_named(
            &dir.path().join("hq"),
            free_port(),
            "hq",
            &[("CHRONOS_CONFIG", &up_config)],
        );
        let proxy = Proxy::start(upstream.address.clone());
        let site_config = write_config(
            dir.path(),
            "plant",
            &format!(
                "[sync]\nsite_id = \"plant\"\nupstream = \"{}\"\ninterval_ms = 100\n\
                 tables = {{ readings = \"push\", assets = \"both\", odd = \"both\" }}\n",
                proxy.address
            ),
        );
        let site_port = free_port();
        let mut pair = Pair {
            dir: dir.path().to_path_buf(),
            _dir: dir,
            upstream,
            site: None,
            proxy,
            site_port,
            site_config,
        };
        pair.start_site();
        pair.upstream.ok(SCHEMA);
        pair.upstream
            .ok("DROP TABLE odd; CREATE TABLE odd (id INT PRIMARY KEY, x STRING)");
        pair.site().ok(SCHEMA);
        pair
    }

    fn start_site(&mut self) {
        let config = self.site_config.clone();
        self.site = Some(Node::start_named(
            &self.dir.join("plant"),
            self.site_port,
            "plant",
            &[("CHRONOS_CONFIG", &config)],
        ));
    }

    fn site(&self) -> &Node {
        self.site.as_ref().expect("site running")
    }
}

fn count(address: &str, table: &str, rt: &tokio::runtime::Runtime) -> usize {
    let rows = rt.block_on(rows_at(address, &format!("SELECT COUNT(*) FROM {table}")));
    rows.ok()
        .and_then(|r| r.first().cloned())
        .and_then(|r| r.trim_start_matches("[Int(").trim_end_matches(")]").parse().ok())
        .unwrap_or(0)
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sync_status(address: &str) -> String {
    let out = std::process::Command::new(common::BIN)
        .args(["sync", "status", "--leader", address])
        .output()
        .expect("run chronos sync status");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn an_offline_backlog_arrives_once_each_even_when_the_site_is_killed_mid_push() {
    const ROWS: usize = 100_000;
    let rt = runtime();
    let mut pair = Pair::start();
    pair.proxy.cut();
    for chunk in 0..ROWS / 1000 {
        let values: Vec<String> = (0..1000)
            .map(|i| format!("('s{}', {}, {}.5)", i % 7, chunk * 1000 + i, i))
            .collect();
        pair.site()
            .ok(&format!("INSERT INTO readings VALUES {}", values.join(", ")));
    }
    wait_until("the site to count its backlog", Duration::from_secs(30), || {
        let s = sync_status(&pair.site().address);
        s.contains("unreachable") && s.contains("100000")
    });
    assert_eq!(count(&pair.upstream.address, "readings", &rt), 0);

    pair.proxy.heal();
    // Kill the site as soon as part of the backlog has arrived, then restart it.
    wait_until("the first batches upstream", Duration::from_secs(120), || {
        count(&pair.upstream.address, "readings", &rt) > 0
    });
    pair.site.take().expect("site").kill_hard();
    let partial = count(&pair.upstream.address, "readings", &rt);
    assert!(partial < ROWS, "the whole backlog arrived before the kill");
    pair.start_site();
    wait_until("the whole backlog upstream", Duration::from_secs(300), || {
        count(&pair.upstream.address, "readings", &rt) >= ROWS
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&pair.upstream.address, "readings", &rt), ROWS);
    let doubled = rt
        .block_on(rows_at(
            &pair.upstream.address,
            "SELECT seq, COUNT(*) FROM readings GROUP BY seq HAVING COUNT(*) > 1",
        ))
        .expect("query");
    assert!(
        doubled.is_empty(),
        "rows arrived twice: {:?}",
        &doubled[..doubled.len().min(5)]
    );
    let status = sync_status(&pair.site().address);
    assert!(status.contains("(reachable)"), "{status}");
}

#[test]
fn conflicts_resolve_alike_pull_brings_rows_down_and_bad_batches_are_refused() {
    let rt = runtime();
    let pair = Pair::start();
    pair.site().ok("INSERT INTO assets VALUES (1, 'pump', 'plant')");
    pair.upstream.ok("INSERT INTO assets VALUES (2, 'fan', 'hq')");
    let both = |sql: &str| {
        let a = rt.block_on(rows_at(&pair.site().address, sql)).expect("site");
        let b = rt.block_on(rows_at(&pair.upstream.address, sql)).expect("upstream");
        (a, b)
    };
    wait_until("both rows on both sides", Duration::from_secs(30), || {
        let (a, b) = both("SELECT id, name FROM assets ORDER BY id");
        a.len() == 2 && a == b
    });

    // A conflicting update while the link is down: the later write wins on
    // both sides once it is back.
    pair.proxy.cut();
    pair.upstream.ok("UPDATE assets SET loc = 'hq-store' WHERE id = 1");
    std::thread::sleep(Duration::from_millis(20));
    pair.site().ok("UPDATE assets SET loc = 'line-3' WHERE id = 1");
    pair.site().ok("DELETE FROM assets WHERE id = 2");
    pair.proxy.heal();
    wait_until("the conflict to resolve", Duration::from_secs(30), || {
        let (a, b) = both("SELECT id, name, loc FROM assets ORDER BY id");
        a == b && a.len() == 1 && a[0].contains("line-3")
    });
    let status = sync_status(&pair.upstream.address);
    assert!(!status.contains("conflicts resolved: 0,"), "{status}");

    // The table defined differently upstream is refused by name; the other
    // tables kept syncing meanwhile.
    let status = sync_status(&pair.site().address);
    assert!(status.contains("schema mismatch for table odd"), "{status}");
    let shown = pair.site().ok("SHOW SYNC STATUS");
    for wanted in ["| assets ", "| both ", "| plant ", "schema mismatch for table odd"] {
        assert!(shown.contains(wanted), "{wanted}: {shown}");
    }

    // Bad pushes straight to the upstream's Sync service.
    let before = count(&pair.upstream.address, "assets", &rt);
    let address = format!("http://{}", pair.upstream.address);
    let refused = |request: PushRequest| -> tonic::Status {
        rt.block_on(async {
            let mut client = SyncClient::connect(address.clone()).await.expect("connect");
            client.push(request).await.expect_err("push must be refused")
        })
    };
    let signature = "(id INT, name STRING, loc STRING; PRIMARY KEY (id))".to_string();
    let change = |hlc: u64| Change {
        key: chronos::storage::keycode::encode_values([&chronos::sql::types::Value::Int(9)]),
        version: RowVersion { hlc, site: 42 },
        row: Some(vec![
            chronos::sql::types::Value::Int(9),
            chronos::sql::types::Value::Text("bad".into()),
            chronos::sql::types::Value::Null,
        ]),
    };
    let now = Timestamp {
        physical_ms: chrono_now_ms(),
        logical: 0,
    }
    .to_u64();
    let batch = |changes: Vec<u8>, sum: u32| Batch {
        table: "assets".into(),
        signature: signature.clone(),
        checksum: sum,
        changes,
        count: 1,
        max_hlc: 0,
        cursor: vec![0, 0, 0, 0, 0, 0, 0, 1],
        complete: true,
    };
    let good = encode_changes(&[change(now)]);
    let push = |site: &str, b: Batch| PushRequest {
        site_id: site.into(),
        batch: Some(b),
        forwarded: false,
    };

    let s = refused(push("intruder", batch(good.clone(), checksum(&good))));
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("site 'intruder' is not allowed"), "{s:?}");

    let mut damaged = good.clone();
    damaged[3] ^= 0x40;
    let s = refused(push("plant", batch(damaged, checksum(&good))));
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("checksum mismatch"), "{s:?}");

    let truncated = good[..good.len() - 3].to_vec();
    let s = refused(push("plant", batch(truncated.clone(), checksum(&truncated))));
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("truncated"), "{s:?}");

    let hour_ahead = Timestamp {
        physical_ms: chrono_now_ms() + 3_600_000,
        logical: 0,
    }
    .to_u64();
    let future = encode_changes(&[change(hour_ahead)]);
    let s = refused(push("plant", batch(future.clone(), checksum(&future))));
    assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{s:?}");
    assert!(s.message().contains("ahead of this node's clock"), "{s:?}");

    let mut other_schema = batch(good.clone(), checksum(&good));
    other_schema.signature = "(id INT, name STRING; PRIMARY KEY (id))".into();
    let s = refused(push("plant", other_schema));
    assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{s:?}");
    assert!(s.message().contains("schema mismatch for table assets"), "{s:?}");

    assert_eq!(count(&pair.upstream.address, "assets", &rt), before);
    // And sync carries on after the refusals.
    pair.site().ok("INSERT INTO assets VALUES (5, 'valve', 'plant')");
    wait_until("sync to continue", Duration::from_secs(30), || {
        let (a, b) = both("SELECT id FROM assets ORDER BY id");
        a == b && a.len() == 2
    });
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
