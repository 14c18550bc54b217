//! Interop with real MLLP implementations on loopback: python `hl7`
//! (`mllp_send` and its asyncio server) and npm `node-hl7-client` /
//! `node-hl7-server`, as senders to our listener and receivers for our sender.

mod common;

use common::peers::*;
use common::*;
use gateway_hl7v2::mllp::ack_check::AckError;
use gateway_hl7v2::mllp::{MllpSender, SendError, SenderConfig};

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i:03}")).collect()
}

#[tokio::test]
async fn python_mllp_send_to_our_listener() {
    if !have_mllp_send() {
        return;
    }
    let p = RecordingPipeline::new(Mode::Accept);
    let run = start(config(), p.clone()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("batch.hl7");
    // A bare file with LF line ends, as interface analysts save them.
    let want = ids("PY", 3);
    let text: String = want.iter().map(|id| orm(id).replace('\r', "\n")).collect();
    std::fs::write(&file, text).expect("write");
    let out = tokio::process::Command::new("mllp_send")
        .arg("--loose")
        .arg("-f")
        .arg(&file)
        .arg("-p")
        .arg(run.addr.port().to_string())
        .arg("127.0.0.1")
        .output()
        .await
        .expect("run mllp_send");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for id in &want {
        assert!(
            stdout.contains(&format!("MSA|AA|{id}")),
            "no AA for {id} in {stdout:?}"
        );
    }
    assert_eq!(p.control_ids(), want);
    run.shutdown().await;
}

#[tokio::test]
async fn node_hl7_client_to_our_listener() {
    if !have_node_peers() {
        return;
    }
    let p = RecordingPipeline::new(Mode::Accept);
    let run = start(config(), p.clone()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("messages.json");
    let want = ids("ND", 5);
    let msgs: Vec<String> = want.iter().map(|id| orm(id)).collect();
    std::fs::write(&file, serde_json::to_string(&msgs).expect("json")).expect("write");
    let out = tokio::process::Command::new("node")
        .arg(peers_dir().join("node_client.js"))
        .arg(run.addr.port().to_string())
        .arg(&file)
        .current_dir(peers_dir())
        .output()
        .await
        .expect("run node client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acks: Vec<&str> = stdout.lines().filter(|l| l.starts_with("ACK ")).collect();
    let expected: Vec<String> = want.iter().map(|id| format!("ACK AA {id}")).collect();
    assert_eq!(acks, expected);
    assert_eq!(p.control_ids(), want);
    run.shutdown().await;
}

fn sender_cfg(addr: String) -> SenderConfig {
    let mut cfg = SenderConfig::new(addr);
    cfg.response_timeout_ms = 5_000;
    cfg.backoff_initial_ms = 20;
    cfg
}

#[tokio::test]
async fn our_sender_to_python_asyncio_server_persistent() {
    if !have_python_hl7() {
        return;
    }
    let mut peer = PeerServer::python().await;
    let mut s = MllpSender::new(sender_cfg(peer.addr())).expect("sender");
    let want = ids("PS", 5);
    for id in &want {
        let ack = s.send_once(orm(id).as_bytes()).await.expect("accepted");
        assert_eq!(ack.control_id, *id);
        assert!(s.is_connected(), "connection is kept between messages");
    }
    assert_eq!(peer.received(5).await, want);
    peer.stop().await;
}

#[tokio::test]
async fn our_sender_to_node_hl7_server_one_message_per_connection() {
    if !have_node_peers() {
        return;
    }
    let mut peer = PeerServer::node().await;
    let mut cfg = sender_cfg(peer.addr());
    cfg.connection_per_message = true;
    let mut s = MllpSender::new(cfg).expect("sender");
    let want = ids("NS", 5);
    for id in &want {
        let ack = s.send_once(orm(id).as_bytes()).await.expect("accepted");
        assert_eq!(ack.control_id, *id);
    }
    assert_eq!(peer.received(5).await, want);
    peer.stop().await;
}

#[tokio::test]
async fn our_sender_detects_node_hl7_server_wrong_ack_on_persistent_connection() {
    if !have_node_peers() {
        return;
    }
    let peer = PeerServer::node().await;
    let mut s = MllpSender::new(sender_cfg(peer.addr())).expect("sender");
    let first = s
        .send_once(orm("NP001").as_bytes())
        .await
        .expect("first is fine");
    assert_eq!(first.control_id, "NP001");
    // The second message on the same connection gets a wrong / extra ACK.
    let err = s
        .send_once(orm("NP002").as_bytes())
        .await
        .expect_err("node-hl7-server's wrong MSA-2 must be caught");
    assert!(
        matches!(
            err,
            SendError::InvalidAck(AckError::WrongControlId { .. }) | SendError::ExtraResponse(_)
        ),
        "unexpected error: {err}"
    );
    assert!(err.retryable());
    assert!(
        !s.is_connected(),
        "a connection that mis-pairs ACKs is dropped"
    );
    // With retries the sender reconnects, and a fresh connection answers right.
    let ack = s
        .send(orm("NP002").as_bytes())
        .await
        .expect("retried on a new connection");
    assert_eq!(ack.control_id, "NP002");
    peer.stop().await;
}
