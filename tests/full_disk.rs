//! A full disk: on a small ext4 file system the test makes (a loop-mounted
//! image; needs root, as CI has), a node under write load refuses writes
//! with a clear error before the disk is full, keeps serving reads, loses
//! nothing it acknowledged, reports the state in /metrics, and takes writes
//! again by itself once space is freed.

mod common;

use common::Node;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A loop-mounted ext4 image, unmounted when dropped.
struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(mib: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        std::fs::File::create(&image).unwrap().set_len(mib << 20).unwrap();
        let run = |cmd: &mut Command| {
            let out = cmd.output().expect("run");
            assert!(
                out.status.success(),
                "{cmd:?}: {} (this test needs root and loop devices)",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        run(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mount));
        SmallDisk { mount, _dir: dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
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
    let disk = SmallDisk::new(96);
    let data = disk.mount.join("data");
    // Most of the disk goes to a filler file, so the node reaches the mark
    // after a few MiB of writes.
    let filler = disk.mount.join("filler");
    let fill = free_mib(&disk.mount).saturating_sub(40);
    std::fs::write(&filler, vec![7u8; (fill << 20) as usize]).unwrap();
    let http_port = common::free_port();
    let http = format!("127.0.0.1:{http_port}");
    let env = [
        ("CHRONOS_STORAGE_RESERVED_BYTES", "8388608"),
        ("CHRONOS_STORAGE_LOW_SPACE_BYTES", "16777216"),
        ("CHRONOS_HTTP_ADDRESS", http.as_str()),
    ];
    let mut node = Node::start_with_env(&data, common::free_port(), &env);
    assert!(disk.mount.join("data/node1/reserve").exists(), "the reserve is taken");
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
    let more = disk.mount.join("more");
    let squeeze = free_mib(&disk.mount).saturating_sub(5);
    std::fs::write(&more, vec![9u8; (squeeze << 20) as usize]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics(http_port).contains("chronos_disk_reserve_held 0") {
        assert!(Instant::now() < deadline, "the reserve was not released");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!disk.mount.join("data/node1/reserve").exists());
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
