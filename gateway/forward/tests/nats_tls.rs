//! The `nats` sink over TLS with a client certificate against a real
//! `nats-server` that verifies clients (`tls { verify: true }`): with the
//! cluster's CA and the client certificate the event is acknowledged; with
//! the CA alone the server refuses the connection and the sink reports a
//! transient failure (the outbox holds). NKey authentication: the user's
//! seed is accepted, another seed is not. Skips with a printed reason when
//! nats-server is missing (fails under CI).

use gateway_testkit::samples as common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{accepted, case};
use gateway_forward::nats::NatsAuth;
use gateway_forward::nats::{self, StreamPlan};
use gateway_forward::*;
use gateway_testkit::nats::{NatsCluster, nats_server_or_skip};
use gateway_testkit::store::TempStore;
use gateway_testkit::tls::TestPki;

#[tokio::test]
async fn mutual_tls_is_required_and_works() {
    let Some(binary) = nats_server_or_skip() else {
        return;
    };
    let pki = TestPki::generate();
    let certs = tempfile::tempdir().expect("tmp");
    let (cert, key, ca) = (
        certs.path().join("server.pem"),
        certs.path().join("server.key"),
        certs.path().join("ca.pem"),
    );
    std::fs::write(&cert, &pki.server_cert_pem).expect("cert");
    std::fs::write(&key, &pki.server_key_pem).expect("key");
    std::fs::write(&ca, &pki.ca_cert_pem).expect("ca");
    let tls = format!(
        "tls {{ cert_file: {:?}, key_file: {:?}, ca_file: {:?}, verify: true, timeout: 5 }}\n",
        cert.display().to_string(),
        key.display().to_string(),
        ca.display().to_string()
    );
    let cluster = NatsCluster::start_with(&binary, 1, &[], &tls);
    let server = format!("tls://127.0.0.1:{}", cluster.nodes[0].port);

    let mut config = NatsConnectConfig::new(vec![server.clone()]);
    config.ca_cert_pem = Some(pki.ca_cert_pem.clone().into_bytes());
    config.client_identity = Some(ClientIdentity {
        cert_pem: pki.client_cert_pem.clone().into_bytes(),
        key_pem: pki.client_key_pem.clone().into_bytes(),
    });
    config.require_tls = true;
    let client = nats::connect(&config).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.connection_state() != nats::async_nats::connection::State::Connected {
        assert!(Instant::now() < deadline, "no TLS connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let js = nats::jetstream_context(client.clone(), 5_000);
    nats::provision(&js, &StreamPlan::new("ehr", 1), None, false)
        .await
        .expect("provision");

    let t = TempStore::new().await;
    t.store
        .commit_inbound(accepted(case(1, 1), "TLS-1", "raw tls 1"))
        .await
        .expect("commit");
    let event = t
        .store
        .read(|r| r.deliverable(1, &HashSet::new()))
        .await
        .expect("read")
        .remove(0);
    let subjects = Subjects::new("ehr", "mso-demo", "cardio-north").expect("subjects");
    let sink = NatsSink::new(client, subjects.clone(), 5_000);
    assert_eq!(
        sink.deliver(&event).await,
        SinkResult::Delivered { http_status: None }
    );

    // The CA alone: the server wants a client certificate.
    let mut without = NatsConnectConfig::new(vec![server]);
    without.ca_cert_pem = Some(pki.ca_cert_pem.clone().into_bytes());
    without.require_tls = true;
    let client = nats::connect(&without).await.expect("client object");
    let sink = NatsSink::new(client, subjects, 1_000);
    assert!(
        matches!(sink.deliver(&event).await, SinkResult::Retry { .. }),
        "no connection without a client certificate: retried, not delivered"
    );

    // A client certificate without the CA is a configuration error.
    let mut bad = NatsConnectConfig::new(vec!["tls://127.0.0.1:1".to_owned()]);
    bad.client_identity = Some(ClientIdentity {
        cert_pem: pki.client_cert_pem.into_bytes(),
        key_pem: pki.client_key_pem.into_bytes(),
    });
    assert!(matches!(
        nats::connect(&bad).await,
        Err(ForwardError::Config(_))
    ));
}

#[tokio::test]
async fn nkey_seed_authenticates_and_a_foreign_seed_does_not() {
    let Some(binary) = nats_server_or_skip() else {
        return;
    };
    let user = nkeys::KeyPair::new_user();
    let auth = format!(
        "authorization {{ users: [ {{ nkey: {:?} }} ] }}\n",
        user.public_key()
    );
    let cluster = NatsCluster::start_with(&binary, 1, &[], &auth);
    let subjects = Subjects::new("ehr", "mso-demo", "cardio-north").expect("subjects");
    let t = TempStore::new().await;
    t.store
        .commit_inbound(accepted(case(2, 2), "NKEY-1", "raw nkey 1"))
        .await
        .expect("commit");
    let event = t
        .store
        .read(|r| r.deliverable(1, &HashSet::new()))
        .await
        .expect("read")
        .remove(0);

    let mut config = NatsConnectConfig::new(cluster.urls());
    config.auth = NatsAuth::NkeySeed(user.seed().expect("seed"));
    let client = nats::connect(&config).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.connection_state() != nats::async_nats::connection::State::Connected {
        assert!(Instant::now() < deadline, "the NKey user was not let in");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let js = nats::jetstream_context(client.clone(), 5_000);
    nats::provision(&js, &StreamPlan::new("ehr", 1), None, false)
        .await
        .expect("provision");
    let sink = NatsSink::new(client, subjects.clone(), 5_000);
    assert_eq!(
        sink.deliver(&event).await,
        SinkResult::Delivered { http_status: None }
    );

    let stranger = nkeys::KeyPair::new_user();
    let mut config = NatsConnectConfig::new(cluster.urls());
    config.auth = NatsAuth::NkeySeed(stranger.seed().expect("seed"));
    let client = nats::connect(&config).await.expect("client object");
    let sink = NatsSink::new(client, subjects, 1_000);
    assert!(
        matches!(sink.deliver(&event).await, SinkResult::Retry { .. }),
        "a foreign NKey is not let in: retried, not delivered"
    );
}
