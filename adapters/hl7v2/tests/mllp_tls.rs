//! TLS and mutual TLS on the MLLP listener and sender, with certificates made
//! by rcgen at test time.

mod common;

use std::time::Duration;

use common::pki::{Ca, Leaf};
use common::*;
use gateway_hl7v2::mllp::config::{TlsClientConfig, TlsServerConfig};
use gateway_hl7v2::mllp::{MllpSender, SenderConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

struct Pki {
    _dir: tempfile::TempDir,
    ca: Ca,
    server: Leaf,
    client: Leaf,
    other_client: Leaf,
    rogue_ca: Ca,
    rogue_client: Leaf,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "practice");
    let server = ca.leaf(dir.path(), "server", &["localhost", "127.0.0.1"]);
    let client = ca.leaf(dir.path(), "client", &["epic-engine.cardio-north.test"]);
    let other_client = ca.leaf(dir.path(), "other", &["lab-engine.cardio-north.test"]);
    let rogue_ca = Ca::new(dir.path(), "rogue");
    let rogue_client = rogue_ca.leaf(
        dir.path(),
        "rogue-client",
        &["epic-engine.cardio-north.test"],
    );
    Pki {
        _dir: dir,
        ca,
        server,
        client,
        other_client,
        rogue_ca,
        rogue_client,
    }
}

fn server_tls(p: &Pki, mutual: bool, allowed: &[&str]) -> TlsServerConfig {
    TlsServerConfig {
        cert: p.server.cert.clone(),
        key: p.server.key.clone(),
        client_ca: mutual.then(|| p.ca.cert_pem.clone()),
        allowed_peers: allowed.iter().map(|s| s.to_string()).collect(),
        handshake_timeout_ms: 2_000,
    }
}

fn sender(addr: std::net::SocketAddr, ca: &Ca, client: Option<&Leaf>) -> MllpSender {
    let mut cfg = SenderConfig::new(addr.to_string());
    cfg.response_timeout_ms = 3_000;
    cfg.max_attempts = 1;
    cfg.tls = Some(TlsClientConfig {
        ca: ca.cert_pem.clone(),
        cert: client.map(|c| c.cert.clone()),
        key: client.map(|c| c.key.clone()),
        server_name: Some("localhost".into()),
    });
    MllpSender::new(cfg).expect("sender")
}

#[tokio::test]
async fn tls_round_trip_and_plaintext_client_fails_cleanly() {
    let p = pki();
    let pipeline = RecordingPipeline::new(Mode::Accept);
    let mut cfg = config();
    cfg.tls = Some(server_tls(&p, false, &[]));
    let run = start(cfg, pipeline.clone()).await;

    let mut s = sender(run.addr, &p.ca, None);
    for i in 0..3 {
        let ack = s
            .send(orm(&format!("T{i}")).as_bytes())
            .await
            .expect("accepted");
        assert_eq!(ack.control_id, format!("T{i}"));
    }

    // A plaintext MLLP client gets its connection closed, not a hang.
    let mut plain = TcpStream::connect(run.addr).await.expect("connect");
    plain
        .write_all(&frame(orm("PLAIN").as_bytes()))
        .await
        .expect("write");
    assert!(
        read_frame(&mut plain, Duration::from_secs(3))
            .await
            .is_none()
    );
    assert!(closed_within(&mut plain, Duration::from_secs(3)).await);
    assert_eq!(
        pipeline.count(),
        3,
        "nothing from the plaintext client was submitted"
    );

    // A client that does not trust our server's CA refuses the handshake.
    let mut wrong_trust = sender(run.addr, &p.rogue_ca, None);
    assert!(wrong_trust.send(orm("X").as_bytes()).await.is_err());

    // The listener is still healthy.
    assert!(s.send(orm("T9").as_bytes()).await.is_ok());
    run.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_requires_a_certificate_from_the_ca() {
    let p = pki();
    let pipeline = RecordingPipeline::new(Mode::Accept);
    let mut cfg = config();
    cfg.tls = Some(server_tls(&p, true, &[]));
    let run = start(cfg, pipeline.clone()).await;

    let mut good = sender(run.addr, &p.ca, Some(&p.client));
    assert_eq!(
        good.send(orm("M1").as_bytes())
            .await
            .expect("accepted")
            .control_id,
        "M1"
    );

    let mut anonymous = sender(run.addr, &p.ca, None);
    let err = anonymous
        .send(orm("M2").as_bytes())
        .await
        .expect_err("no client cert");
    assert!(
        !matches!(err, gateway_hl7v2::mllp::SendError::Negative(_)),
        "{err}"
    );

    let mut rogue = sender(run.addr, &p.ca, Some(&p.rogue_client));
    rogue
        .send(orm("M3").as_bytes())
        .await
        .expect_err("cert from another CA");

    assert_eq!(pipeline.control_ids(), ["M1"]);
    run.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_allowlist_by_subject_alternative_name() {
    let p = pki();
    let pipeline = RecordingPipeline::new(Mode::Accept);
    let mut cfg = config();
    cfg.tls = Some(server_tls(&p, true, &["epic-engine.cardio-north.test"]));
    let run = start(cfg, pipeline.clone()).await;

    let mut listed = sender(run.addr, &p.ca, Some(&p.client));
    listed
        .send(orm("A1").as_bytes())
        .await
        .expect("listed peer accepted");

    let mut unlisted = sender(run.addr, &p.ca, Some(&p.other_client));
    unlisted
        .send(orm("A2").as_bytes())
        .await
        .expect_err("valid certificate but not on the allowlist");

    assert_eq!(pipeline.control_ids(), ["A1"]);
    run.shutdown().await;
}
