//! A full disk: on a small file system the test makes, a node under write
//! load refuses writes with a clear error before the disk is full, keeps
//! serving reads, loses nothing it acknowledged, reports the state in
//! /metrics, and takes writes again by itself once space is freed.
//!
//! The file system is a 96 MiB tmpfs, mounted in a user and mount
//! namespace of the test's own, so no root is needed: the test runs itself
//! again inside `unshare --user --map-root-user --mount`, and the node it
//! starts there sees the small disk. Where the kernel forbids such
//! namespaces to normal users, the test says so and passes without
//! running (root can always make them, as CI does).

use crate::common;
use common::Node;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set, to the small disk's mount point, in the copy of the test that runs
/// inside the namespace.
const INSIDE: &str = "CHRONOS_TEST_SMALL_DISK";
const DISK_MIB: u64 = 96;

/// Runs test `name` of this binary again, inside a new user and mount
/// namespace with a `mib` MiB tmpfs mounted at a fresh directory; says so
/// and returns when such a namespace cannot be made here.
fn rerun_on_small_disk(name: &str, mib: u64) {
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .stderr(Stdio::piped())
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "SKIPPED {name}: cannot make a user and mount namespace ({}). \
                 Allow them (sysctl kernel.unprivileged_userns_clone=1, or \
                 kernel.apparmor_restrict_unprivileged_userns=0) or run as root.",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED {name}: cannot run `unshare` (util-linux): {e}");
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("disk");
    std::fs::create_dir(&mount).unwrap();
    // The test's name as libtest knows it: its module path less the crate.
    let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
    let status = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o "size=$1m" chronos-test "$2" && shift 2 && exec "$@""#)
        .args(["sh", &mib.to_string()])
        .arg(&mount)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &format!("{module}::{name}"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE, &mount)
        .status()
        .expect("run unshare");
    assert!(status.success(), "{name} failed inside its namespace ({status})");
}

fn metrics(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn free_mib(path: &Path) -> u64 {
    chronos::storage::space::free_bytes(path).unwrap() >> 20
}

#[test]
fn a_full_disk_refuses_writes_cleanly_and_recovers_by_itself() {
    let Some(mount) = std::env::var_os(INSIDE) else {
        rerun_on_small_disk("a_full_disk_refuses_writes_cleanly_and_recovers_by_itself", DISK_MIB);
        return;
    };
    let mount = Path::new(&mount);
    assert!(
        free_mib(mount) <= DISK_MIB,
        "{} is not the small disk ({} MiB free)",
        mount.display(),
        free_mib(mount)
    );
    let data = mount.join("data");
    // Most of the disk goes to a filler file, so the node reaches the mark
    // after a few MiB of writes.
    let filler = mount.join("filler");
    let fill = free_mib(mount).saturating_sub(40);
    std::fs::write(&filler, vec![7u8; (fill << 20) as usize]).unwrap();
    let http_port = common::free_port();
    let http = format!("127.0.0.1:{http_port}");
    let env = [
        ("CHRONOS_STORAGE_RESERVED_BYTES", "8388608"),
        ("CHRONOS_STORAGE_LOW_SPACE_BYTES", "16777216"),
        ("CHRONOS_HTTP_ADDRESS", http.as_str()),
    ];
    let mut node = Node::start_with_env(&data, common::free_port(), &env);
    assert!(mount.join("data/node1/reserve").exists(), "the reserve is taken");
    let payload = "x".repeat(1000);
    let mut acknowledged = 0u64;
    let refusal = common::block_on(async {
        let mut c = common::cluster::connect(&node.address).await;
        c.execute("CREATE TABLE t (id INT PRIMARY KEY, v STRING)")
            .await
            .unwrap();
        for batch in 0..5_000u64 {
            let rows: Vec<String> = (0..50).map(|i| format!("({}, '{payload}')", batch * 50 + i)).collect();
            match c.execute(&format!("INSERT INTO t VALUES {}", rows.join(","))).await {
                Ok(r) if r.error.is_none() => acknowledged += 50,
                Ok(r) => panic!("unexpected SQL error: {r:?}"),
                Err(e) => return e.to_string(),
            }
        }
        panic!("the disk never filled");
    });
    assert!(refusal.contains("disk almost full ("), "{refusal}");
    assert!(acknowledged > 0);
    assert!(node.child.try_wait().unwrap().is_none(), "the node is still up");
    let m = metrics(http_port);
    assert!(m.contains("chronos_disk_low 1"), "{m}");
    // Reads go on, and every acknowledged row is there.
    let count = node.ok("SELECT count(*) FROM t");
    assert!(
        count.contains(&format!(" {acknowledged} |")),
        "{count} vs {acknowledged}"
    );
    let e = node.fails("INSERT INTO t VALUES (-1, 'refused')");
    assert!(e.contains("disk almost full"), "{e}");

    // Something else fills the disk further: the node releases its reserve
    // (8 MiB back) rather than run out.
    let more = mount.join("more");
    let squeeze = free_mib(mount).saturating_sub(5);
    std::fs::write(&more, vec![9u8; (squeeze << 20) as usize]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics(http_port).contains("chronos_disk_reserve_held 0") {
        assert!(Instant::now() < deadline, "the reserve was not released");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!mount.join("data/node1/reserve").exists());
    let count = node.ok("SELECT count(*) FROM t");
    assert!(count.contains(&format!(" {acknowledged} |")), "{count}");

    // Space comes back: writes resume by themselves.
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_file(&more).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = node.sql("INSERT INTO t VALUES (-1, 'after the disk was freed')");
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let m = metrics(http_port);
    assert!(m.contains("chronos_disk_low 0"), "{m}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics(http_port).contains("chronos_disk_reserve_held 1") {
        assert!(Instant::now() < deadline, "the reserve was not taken again");
        std::thread::sleep(Duration::from_millis(200));
    }
    // And a restart keeps everything.
    let status = node.terminate();
    assert!(status.success());
    node = Node::start_with_env(&data, common::free_port(), &env);
    let count = node.ok("SELECT count(*) FROM t");
    assert!(count.contains(&format!(" {} |", acknowledged + 1)), "{count}");
    drop(node);
}
