//! The daemon's contract with its supervisor: systemd notifications over a
//! real NOTIFY_SOCKET, and the standard gRPC health service.

use crate::common;

use common::{Node, free_port};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Collects notification datagrams until one contains `wanted`.
/// Waits for a notification with a line starting with `wanted` (messages
/// already seen count too).
fn wait_for(socket: &UnixDatagram, wanted: &str, seen: &mut Vec<String>) {
    if seen.iter().any(|m| m.lines().any(|l| l.starts_with(wanted))) {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = message.lines().any(|l| l.starts_with(wanted));
            seen.push(message);
            if done {
                return;
            }
        }
    }
    panic!("no {wanted} notification; got {seen:?}");
}

#[test]
fn tells_systemd_ready_status_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let port = free_port();
    let node = Node::start_with_env(
        &dir.path().join("data"),
        port,
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    let mut seen = Vec::new();
    wait_for(&socket, "READY=1", &mut seen);
    assert!(
        seen.iter()
            .any(|m| m.contains(&format!("STATUS=serving on 127.0.0.1:{port}"))),
        "{seen:?}"
    );
    // STATUS= then carries the Raft role and the leader.
    wait_for(
        &socket,
        &format!("STATUS=serving on 127.0.0.1:{port}: leader, leader node1, term 1"),
        &mut seen,
    );
    let status = node.terminate();
    assert!(status.success());
    wait_for(&socket, "STOPPING=1", &mut seen);
}

#[test]
fn serves_grpc_health() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), free_port());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.address))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = HealthClient::new(channel);
        for service in ["", "chronos.v1.Chronos"] {
            let reply = client
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(reply.status, ServingStatus::Serving as i32, "service '{service}'");
        }
    });
}
