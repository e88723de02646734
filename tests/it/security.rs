//! Security through real nodes: a TLS cluster made with `chronos certs`
//! refuses plain-text clients and peers without a CA-signed node
//! certificate; users with roles are checked against every kind of
//! statement and call, over gRPC and HTTPS.

use crate::common;

use chronos::client::Access;
use chronos::proto::raft::RaftMessage;
use chronos::proto::raft::raft_client::RaftClient;
use common::{BIN, Node, free_port};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(args: &[&str], dir: &Path) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run chronos");
    assert!(
        out.status.success(),
        "chronos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A CA in `dir/certs`, node certificates for `nodes`, client ones for
/// `clients`.
fn make_certs(dir: &Path, nodes: &[&str], clients: &[&str]) -> PathBuf {
    run(&["certs", "init", "--dir", "certs"], dir);
    for n in nodes {
        run(&["certs", "issue", "node", n, "--dir", "certs"], dir);
    }
    for c in clients {
        run(&["certs", "issue", "client", c, "--dir", "certs"], dir);
    }
    dir.join("certs")
}

/// Starts `chronos node -c` on a config file written from `toml`.
fn start(dir: &Path, id: &str, port: u16, toml: &str) -> Node {
    let address = format!("127.0.0.1:{port}");
    let file = dir.join(format!("{id}.toml"));
    let data = dir.join("data");
    let text = format!(
        "id = \"{id}\"\naddress = \"{address}\"\ndata_dir = \"{}\"\n{toml}",
        data.display()
    );
    std::fs::write(&file, text).expect("write config");
    let child = Command::new(BIN)
        .args(["node", "-c"])
        .arg(&file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node");
    let node = Node {
        child,
        address: address.clone(),
        data_dir: data,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(Instant::now() < deadline, "node {id} did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    node
}

fn tls_section(certs: &Path, name: &str) -> String {
    format!(
        "[tls]\ncert = \"{0}/{name}.pem\"\nkey = \"{0}/{name}.key\"\nca = \"{0}/ca.pem\"\n",
        certs.display()
    )
}

/// `chronos client -e sql` with extra arguments and environment.
fn client(address: &str, args: &[&str], env: &[(&str, &str)], sql: &str) -> Output {
    Command::new(BIN)
        .args(["client", "--leader", address])
        .args(args)
        .args(["-e", sql])
        .env_remove("CHRONOS_USER")
        .env_remove("CHRONOS_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .expect("run client")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn file(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read certificate file")
}

/// Calls Raft's Vote on `address` with `access`; the payload is garbage,
/// so a caller the gate lets through gets a decoding error instead.
async fn vote(address: &str, access: &Access) -> tonic::Status {
    let channel = access.endpoint(address).expect("endpoint").connect().await;
    let channel = match channel {
        Ok(c) => c,
        Err(e) => return tonic::Status::unavailable(format!("handshake refused: {e:?}")),
    };
    let message = RaftMessage {
        payload: b"{}".to_vec(),
        cluster: String::new(),
    };
    RaftClient::new(channel).vote(message).await.expect_err("garbage vote")
}

#[test]
fn tls_refuses_plain_text_and_peers_without_a_ca_signed_node_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path(), &["node1", "node2", "node3"], &["alice"]);
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let nodes: Vec<Node> = (0..3)
        .map(|i| {
            let peers: Vec<String> = (0..3)
                .filter(|j| *j != i)
                .map(|j| format!("\"node{}=127.0.0.1:{}\"", j + 1, ports[j]))
                .collect();
            let toml = format!(
                "peers = [{}]\n{}",
                peers.join(", "),
                tls_section(&certs, &format!("node{}", i + 1))
            );
            start(dir.path(), &format!("node{}", i + 1), ports[i], &toml)
        })
        .collect();
    let ca = certs.join("ca.pem");
    let ca_arg = ["--ca", ca.to_str().unwrap()];

    // Authorised clients work; the three members replicate over TLS.
    let out = client(
        &nodes[1].address,
        &ca_arg,
        &[],
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)",
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = client(&nodes[2].address, &ca_arg, &[], "SELECT count(*) FROM t");
    assert!(text(&out).contains(" 2 |"), "{}", text(&out));

    // A plain-text client is refused.
    let out = client(&nodes[0].address, &[], &[], "SELECT count(*) FROM t");
    assert!(!out.status.success(), "plain text must fail: {}", text(&out));
    assert!(!text(&out).contains(" 2 |"));

    // A foreign CA: a second CA's node certificate, shown to a node that
    // trusts only the cluster's.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    run(&["certs", "init", "--dir", "certs"], &other);
    run(&["certs", "issue", "node", "node4", "--dir", "certs"], &other);
    let foreign = Access::tls(
        &file(&ca),
        Some((
            &file(&other.join("certs/node4.pem")),
            &file(&other.join("certs/node4.key")),
        )),
    );
    let no_cert = Access::tls(&file(&ca), None);
    let user_cert = Access::tls(
        &file(&ca),
        Some((&file(&certs.join("alice.pem")), &file(&certs.join("alice.key")))),
    );
    let member = Access::tls(
        &file(&ca),
        Some((&file(&certs.join("node2.pem")), &file(&certs.join("node2.key")))),
    );
    let address = nodes[0].address.clone();
    common::block_on(async move {
        let s = vote(&address, &foreign).await;
        assert!(
            matches!(
                s.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
            ),
            "a foreign certificate fails the handshake: {s:?}"
        );
        for (who, access) in [("no certificate", &no_cert), ("a client certificate", &user_cert)] {
            let s = vote(&address, access).await;
            assert_eq!(s.code(), tonic::Code::PermissionDenied, "{who}: {s:?}");
            assert!(
                s.message().contains("node certificate signed by the cluster CA"),
                "{s:?}"
            );
        }
        // A member's certificate passes the gate (and the garbage vote is
        // then refused for what it is).
        let s = vote(&address, &member).await;
        assert_ne!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
    });

    // A node with a foreign certificate cannot join, and one without TLS
    // cannot either; the membership stays the three.
    let intruder_dir = dir.path().join("intruder");
    std::fs::create_dir_all(&intruder_dir).unwrap();
    let toml = format!(
        "join = \"{}\"\n[tls]\ncert = \"{1}/node4.pem\"\nkey = \"{1}/node4.key\"\nca = \"{2}\"\n",
        nodes[0].address,
        other.join("certs").display(),
        ca.display()
    );
    let intruder = start(&intruder_dir, "node4", free_port(), &toml);
    let plain_dir = dir.path().join("plain");
    std::fs::create_dir_all(&plain_dir).unwrap();
    let plain = start(
        &plain_dir,
        "node5",
        free_port(),
        &format!("join = \"{}\"\n", nodes[0].address),
    );
    std::thread::sleep(Duration::from_secs(4));
    let status = Command::new(BIN)
        .args([
            "cluster",
            "--leader",
            &nodes[0].address,
            "--ca",
            ca.to_str().unwrap(),
            "status",
        ])
        .output()
        .unwrap();
    let status = text(&status);
    assert!(status.contains("node3"), "{status}");
    assert!(!status.contains("node4") && !status.contains("node5"), "{status}");
    drop((intruder, plain));
}

fn hash(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn each_role_is_checked_against_each_kind_of_statement() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path(), &["node1"], &["carol", "mallory"]);
    let ca = certs.join("ca.pem");
    let mut toml = tls_section(&certs, "node1");
    for (name, role) in [("reader", "read"), ("writer", "write"), ("boss", "admin")] {
        toml += &format!(
            "[[users]]\nname = \"{name}\"\nrole = \"{role}\"\npassword_hash = \"{}\"\n",
            hash(&format!("{name}-pw"))
        );
    }
    // carol logs in with her client certificate only.
    toml += "[[users]]\nname = \"carol\"\nrole = \"write\"\n";
    let http_port = free_port();
    toml = format!("http_address = \"127.0.0.1:{http_port}\"\n{toml}");
    let node = start(dir.path(), "node1", free_port(), &toml);
    let ca_arg = ["--ca", ca.to_str().unwrap()];
    let as_user = |user: &str, sql: &str| {
        let password = format!("{user}-pw");
        client(
            &node.address,
            &ca_arg,
            &[("CHRONOS_USER", user), ("CHRONOS_PASSWORD", &password)],
            sql,
        )
    };
    let setup = as_user(
        "boss",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1)",
    );
    assert!(setup.status.success(), "{}", text(&setup));

    // Statement kinds and the least role each needs.
    let kinds = [
        ("SELECT count(*) FROM t", "read"),
        ("EXPLAIN SELECT * FROM t WHERE id = 1", "read"),
        ("INSERT INTO t VALUES (100, 0)", "write"),
        ("UPDATE t SET v = v + 1 WHERE id = 1", "write"),
        ("DELETE FROM t WHERE id = 100", "write"),
        ("BEGIN; UPDATE t SET v = 5 WHERE id = 1; COMMIT", "write"),
        ("CREATE TABLE x (id INT PRIMARY KEY)", "admin"),
        ("CREATE INDEX x_v ON t (v)", "admin"),
        ("ALTER TABLE t ADD COLUMN w INT", "admin"),
        ("CREATE VIEW vv AS SELECT id FROM t", "admin"),
        ("DROP TABLE x", "admin"),
    ];
    let rank = |r: &str| ["read", "write", "admin"].iter().position(|x| *x == r).unwrap();
    for (user, role) in [("reader", "read"), ("writer", "write"), ("boss", "admin")] {
        for (sql, needs) in kinds {
            let out = as_user(user, sql);
            let allowed = rank(role) >= rank(needs);
            assert_eq!(
                out.status.success(),
                allowed,
                "{user} ({role}) running `{sql}`: {}",
                text(&out)
            );
            if !allowed {
                assert!(
                    text(&out).contains(&format!("user '{user}' has role {role};"))
                        && text(&out).contains(&format!("needs role {needs}")),
                    "{}",
                    text(&out)
                );
            }
        }
        // Membership and backups are for admins; status for everyone.
        let cluster = |args: &[&str]| {
            let password = format!("{user}-pw");
            Command::new(BIN)
                .args(["cluster", "--leader", &node.address, "--ca", ca.to_str().unwrap()])
                .args(args)
                .env("CHRONOS_USER", user)
                .env("CHRONOS_PASSWORD", &password)
                .output()
                .unwrap()
        };
        assert!(cluster(&["status"]).status.success(), "{user}: status");
        let removed = cluster(&["remove", "nobody"]);
        assert_eq!(
            text(&removed).contains("needs role admin"),
            role != "admin",
            "{user}: {}",
            text(&removed)
        );
        let backup = Command::new(BIN)
            .args(["backup", "--leader", &node.address, "--ca", ca.to_str().unwrap()])
            .arg(dir.path().join(format!("{user}.backup")))
            .env("CHRONOS_USER", user)
            .env("CHRONOS_PASSWORD", format!("{user}-pw"))
            .output()
            .unwrap();
        assert_eq!(backup.status.success(), role == "admin", "{user}: {}", text(&backup));
    }

    // The change feed needs role read.
    let feed = Command::new(BIN)
        .args([
            "changes",
            "--leader",
            &node.address,
            "--ca",
            ca.to_str().unwrap(),
            "--no-follow",
        ])
        .env("CHRONOS_USER", "reader")
        .env("CHRONOS_PASSWORD", "reader-pw")
        .output()
        .unwrap();
    assert!(
        feed.status.success() && text(&feed).contains("\"op\":\"insert\""),
        "{}",
        text(&feed)
    );

    // No login, a wrong password (answered after a pause), an unknown user.
    let out = client(&node.address, &ca_arg, &[], "SELECT 1");
    assert!(text(&out).contains("requires a user"), "{}", text(&out));
    let began = Instant::now();
    let out = client(
        &node.address,
        &ca_arg,
        &[("CHRONOS_USER", "boss"), ("CHRONOS_PASSWORD", "guess")],
        "SELECT 1",
    );
    assert!(text(&out).contains("login failed for user 'boss'"), "{}", text(&out));
    assert!(began.elapsed() >= Duration::from_secs(1), "failed logins are slowed");
    let out = client(
        &node.address,
        &ca_arg,
        &[("CHRONOS_USER", "eve"), ("CHRONOS_PASSWORD", "x")],
        "SELECT 1",
    );
    assert!(text(&out).contains("login failed for user 'eve'"), "{}", text(&out));

    // A client certificate logs its user in; one for a name that is not a
    // user is refused.
    let cert_args = |name: &str| {
        vec![
            "--ca".to_string(),
            ca.display().to_string(),
            "--cert".into(),
            certs.join(format!("{name}.pem")).display().to_string(),
            "--key".into(),
            certs.join(format!("{name}.key")).display().to_string(),
        ]
    };
    let carol = cert_args("carol");
    let carol: Vec<&str> = carol.iter().map(String::as_str).collect();
    let out = client(&node.address, &carol, &[], "INSERT INTO t (id, v) VALUES (7, 7)");
    assert!(out.status.success(), "{}", text(&out));
    let out = client(&node.address, &carol, &[], "DROP TABLE t");
    assert!(text(&out).contains("user 'carol' has role write"), "{}", text(&out));
    let mallory = cert_args("mallory");
    let mallory: Vec<&str> = mallory.iter().map(String::as_str).collect();
    let out = client(&node.address, &mallory, &[], "SELECT 1");
    assert!(text(&out).contains("login failed for user 'mallory'"), "{}", text(&out));

    // A password file others may read is refused by the client.
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "reader-pw\n").unwrap();
    let pw_arg = pw.to_str().unwrap();
    let with_file = |sql: &str| {
        client(
            &node.address,
            &[
                "--ca",
                ca.to_str().unwrap(),
                "--user",
                "reader",
                "--password-file",
                pw_arg,
            ],
            &[],
            sql,
        )
    };
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(text(&with_file("SELECT 1")).contains("chmod 600"));
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = with_file("SELECT count(*) FROM t");
        assert!(out.status.success(), "{}", text(&out));
    }

    // HTTPS: the same users and roles.
    let ca_pem = file(&ca);
    let (carol_cert, carol_key) = (file(&certs.join("carol.pem")), file(&certs.join("carol.key")));
    common::block_on(async move {
        let reader = Login::Password("reader", "reader-pw");
        let answer = https(http_port, &ca_pem, "/v1/query", reader, "SELECT count(*) FROM t").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let reader = Login::Password("reader", "reader-pw");
        let denied = https(http_port, &ca_pem, "/v1/execute", reader, "DELETE FROM t").await;
        assert!(
            denied.starts_with("HTTP/1.1 403") && denied.contains("needs role write"),
            "{denied}"
        );
        let anonymous = https(http_port, &ca_pem, "/v1/query", Login::None, "SELECT 1").await;
        assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
        let writer = Login::Password("writer", "writer-pw");
        let written = https(http_port, &ca_pem, "/v1/execute", writer, "DELETE FROM t WHERE id = 7").await;
        assert!(written.starts_with("HTTP/1.1 200"), "{written}");
        // A client certificate names its user over HTTPS too.
        let carol = Login::Cert(&carol_cert, &carol_key);
        let inserted = https(
            http_port,
            &ca_pem,
            "/v1/execute",
            carol,
            "INSERT INTO t (id, v) VALUES (8, 8)",
        )
        .await;
        assert!(inserted.starts_with("HTTP/1.1 200"), "{inserted}");
        let carol = Login::Cert(&carol_cert, &carol_key);
        let dropped = https(http_port, &ca_pem, "/v1/execute", carol, "DROP TABLE t").await;
        assert!(
            dropped.starts_with("HTTP/1.1 403") && dropped.contains("user 'carol'"),
            "{dropped}"
        );
    });
}

/// How an HTTPS request logs in.
enum Login<'a> {
    None,
    Password(&'a str, &'a str),
    /// A client certificate and key (PEM).
    Cert(&'a [u8], &'a [u8]),
}

/// One HTTP/1.1 POST over TLS, trusting only `ca`; the whole answer.
async fn https(port: u16, ca: &[u8], path: &str, login: Login<'_>, sql: &str) -> String {
    use rustls_pki_types::pem::PemObject;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match &login {
        Login::Cert(cert, key) => {
            let chain = rustls_pki_types::CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key).unwrap();
            config.with_client_auth_cert(chain, key).unwrap()
        }
        _ => config.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let body = format!("{{\"sql\": \"{sql}\"}}");
    let auth = match login {
        Login::Password(u, p) => format!("Authorization: {}\r\n", chronos::security::auth::basic_header(u, p)),
        _ => String::new(),
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn sync_between_clusters_runs_over_tls_with_node_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path(), &["hq", "plant"], &[]);
    let ca = certs.join("ca.pem");
    let ca_arg = ["--ca", ca.to_str().unwrap()];
    let (hq_dir, plant_dir) = (dir.path().join("hq"), dir.path().join("plant"));
    std::fs::create_dir_all(&hq_dir).unwrap();
    std::fs::create_dir_all(&plant_dir).unwrap();
    let hq_toml = format!(
        "[sync]\nsite_id = \"hq\"\nsites = [\"plant\"]\n{}",
        tls_section(&certs, "hq")
    );
    let hq = start(&hq_dir, "hq", free_port(), &hq_toml);
    let plant_toml = format!(
        "[sync]\nsite_id = \"plant\"\nupstream = \"{}\"\ninterval_ms = 100\ntables = {{ readings = \"push\" }}\n{}",
        hq.address,
        tls_section(&certs, "plant")
    );
    let plant = start(&plant_dir, "plant", free_port(), &plant_toml);
    let schema = "CREATE TABLE readings (sensor STRING, seq INT, v FLOAT)";
    for node in [&hq, &plant] {
        let out = client(&node.address, &ca_arg, &[], schema);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = client(
        &plant.address,
        &ca_arg,
        &[],
        "INSERT INTO readings VALUES ('a', 1, 1.5), ('a', 2, 2.5), ('b', 1, 0.5)",
    );
    assert!(out.status.success(), "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = client(&hq.address, &ca_arg, &[], "SELECT count(*) FROM readings");
        if text(&out).contains(" 3 |") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rows did not reach the upstream: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = Command::new(BIN)
        .args([
            "sync",
            "--leader",
            &plant.address,
            "--ca",
            ca.to_str().unwrap(),
            "status",
        ])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status));
}
