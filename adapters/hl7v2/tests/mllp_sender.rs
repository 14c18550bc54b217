//! The MLLP sender against our own listener and against scripted receivers
//! that misbehave: negative ACKs, wrong control ids, extra ACKs, garbage,
//! silence, dropped connections, a receiver that is not up yet.

mod common;

use std::time::{Duration, Instant};

use common::scripted::{Action, ScriptedReceiver, ack, framed};
use common::*;
use gateway_hl7v2::mllp::ack_check::{AckCode, AckError};
use gateway_hl7v2::mllp::{MllpSender, SendError, SenderConfig};

fn cfg(addr: &str) -> SenderConfig {
    let mut c = SenderConfig::new(addr);
    c.response_timeout_ms = 2_000;
    c.connect_timeout_ms = 1_000;
    c.max_attempts = 3;
    c.backoff_initial_ms = 20;
    c.backoff_max_ms = 100;
    c
}

#[tokio::test]
async fn persistent_connection_to_our_listener() {
    let p = RecordingPipeline::new(Mode::Accept);
    let run = start(config(), p.clone()).await;
    let mut s = MllpSender::new(cfg(&run.addr.to_string())).expect("sender");
    for i in 0..10 {
        let id = format!("P{i}");
        assert_eq!(
            s.send(orm(&id).as_bytes()).await.expect("AA").control_id,
            id
        );
    }
    let peers: std::collections::BTreeSet<String> = p
        .recorded
        .lock()
        .expect("lock")
        .messages
        .iter()
        .filter_map(|m| m.peer.clone())
        .collect();
    assert_eq!(peers.len(), 1, "one connection for all ten messages");
    run.shutdown().await;
}

#[tokio::test]
async fn application_error_is_not_retried() {
    let r = ScriptedReceiver::start(|_, _, id| Action::Ack(ack("AE", id))).await;
    let mut s = MllpSender::new(cfg(&r.addr)).expect("sender");
    match s.send(orm("E1").as_bytes()).await {
        Err(SendError::Negative(a)) => assert_eq!(a.code, AckCode::AE),
        other => panic!("expected AE, got {other:?}"),
    }
    assert_eq!(r.frames(), 1);
    assert!(
        s.is_connected(),
        "a valid negative ACK keeps the connection"
    );
}

#[tokio::test]
async fn reject_is_retried_with_backoff_until_attempts_are_used() {
    let r = ScriptedReceiver::start(|_, _, id| Action::Ack(ack("AR", id))).await;
    let mut s = MllpSender::new(cfg(&r.addr)).expect("sender");
    let started = Instant::now();
    let err = s.send(orm("R1").as_bytes()).await.expect_err("AR");
    assert!(
        matches!(err, SendError::Negative(ref a) if a.code == AckCode::AR),
        "{err}"
    );
    assert_eq!(r.frames(), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(20 + 40),
        "backoff applied"
    );
}

#[tokio::test]
async fn commit_accept_is_success() {
    let r = ScriptedReceiver::start(|_, _, id| Action::Ack(ack("CA", id))).await;
    let mut s = MllpSender::new(cfg(&r.addr)).expect("sender");
    assert_eq!(
        s.send(orm("C1").as_bytes()).await.expect("CA").code,
        AckCode::CA
    );
}

#[tokio::test]
async fn wrong_control_id_fails_then_retry_on_new_connection_succeeds() {
    // First connection acknowledges the wrong message; later ones behave.
    let r = ScriptedReceiver::start(|conn, _, id| {
        if conn == 0 {
            Action::Ack(ack("AA", "NOT-YOURS"))
        } else {
            Action::Ack(ack("AA", id))
        }
    })
    .await;
    let mut s = MllpSender::new(cfg(&r.addr)).expect("sender");
    let err = s
        .send_once(orm("W1").as_bytes())
        .await
        .expect_err("mismatch");
    assert!(
        matches!(err, SendError::InvalidAck(AckError::WrongControlId { ref got, .. }) if got == "NOT-YOURS"),
        "{err}"
    );
    assert!(!s.is_connected());
    assert_eq!(
        s.send(orm("W1").as_bytes())
            .await
            .expect("retry")
            .control_id,
        "W1"
    );
    assert_eq!(r.connections(), 2);
}

#[tokio::test]
async fn two_acks_for_one_message_are_caught() {
    let r = ScriptedReceiver::start(|_, _, id| {
        let mut raw = Vec::new();
        for _ in 0..2 {
            raw.push(0x0B);
            raw.extend_from_slice(ack("AA", id).as_bytes());
            raw.extend_from_slice(&[0x1C, 0x0D]);
        }
        Action::Raw(raw)
    })
    .await;
    let mut s = MllpSender::new(cfg(&r.addr)).expect("sender");
    let err = s
        .send_once(orm("X1").as_bytes())
        .await
        .expect_err("extra ACK");
    assert!(matches!(err, SendError::ExtraResponse(_)), "{err}");
}

#[tokio::test]
async fn late_extra_ack_between_messages_forces_a_reconnect() {
    // Connection 0 answers message 1 correctly, then sends a stray second ACK
    // 100 ms later (node-hl7-server style); later connections behave.
    let r = ScriptedReceiver::start(|conn, frame, id| {
        if conn == 0 && frame == 0 {
            Action::Timed(vec![
                (0, framed(&ack("AA", id))),
                (100, framed(&ack("AA", id))),
            ])
        } else {
            Action::Ack(ack("AA", id))
        }
    })
    .await;
    let mut s = MllpSender::new(cfg(&r.addr)).expect("sender");
    s.send_once(orm("L1").as_bytes()).await.expect("first");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.connections(), 1);
    // The stray ACK is noticed before L2 goes out, so L2 uses a fresh connection
    // and is not paired with the stray answer.
    assert_eq!(
        s.send_once(orm("L2").as_bytes())
            .await
            .expect("second")
            .control_id,
        "L2"
    );
    assert_eq!(r.connections(), 2, "stray data forced a reconnect");
    s.send_once(orm("L3").as_bytes()).await.expect("third");
    assert_eq!(r.connections(), 2, "clean connection is kept");
}

#[tokio::test]
async fn garbage_response_is_invalid() {
    let r = ScriptedReceiver::start(|_, _, _| Action::Ack("HTTP/1.1 400 Bad Request".into())).await;
    let mut s = MllpSender::new(cfg(&r.addr)).expect("sender");
    let err = s
        .send_once(orm("G1").as_bytes())
        .await
        .expect_err("garbage");
    assert!(
        matches!(err, SendError::InvalidAck(AckError::Unreadable(_))),
        "{err}"
    );
}

#[tokio::test]
async fn silence_times_out_and_dropped_connections_are_retried() {
    let r = ScriptedReceiver::start(|_, _, _| Action::Silent).await;
    let mut c = cfg(&r.addr);
    c.response_timeout_ms = 200;
    c.max_attempts = 2;
    let mut s = MllpSender::new(c).expect("sender");
    let started = Instant::now();
    let err = s.send(orm("T1").as_bytes()).await.expect_err("timeout");
    assert!(matches!(err, SendError::Timeout(_)), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(r.frames(), 2, "the same message was sent again");

    let closer = ScriptedReceiver::start(|conn, _, id| {
        if conn == 0 {
            Action::Close
        } else {
            Action::Ack(ack("AA", id))
        }
    })
    .await;
    let mut s = MllpSender::new(cfg(&closer.addr)).expect("sender");
    assert_eq!(
        s.send(orm("D1").as_bytes())
            .await
            .expect("second attempt")
            .control_id,
        "D1"
    );
    assert_eq!(closer.connections(), 2);
}

#[tokio::test]
async fn receiver_that_comes_up_later_is_reached_after_backoff() {
    let reserve = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = reserve.local_addr().expect("addr");
    drop(reserve);
    let mut c = cfg(&addr.to_string());
    c.max_attempts = 8;
    c.backoff_initial_ms = 50;
    c.backoff_max_ms = 200;
    let mut s = MllpSender::new(c).expect("sender");
    let bring_up = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let l = tokio::net::TcpListener::bind(addr).await.expect("rebind");
        ScriptedReceiver::start_on(l, |_, _, id| Action::Ack(ack("AA", id)))
    });
    let ack = s.send(orm("U1").as_bytes()).await.expect("reached");
    assert_eq!(ack.control_id, "U1");
    drop(bring_up.await.expect("receiver"));
}

#[tokio::test]
async fn unframeable_or_unidentifiable_messages_are_refused_without_sending() {
    let r = ScriptedReceiver::start(|_, _, id| Action::Ack(ack("AA", id))).await;
    let mut s = MllpSender::new(cfg(&r.addr)).expect("sender");
    let err = s
        .send(b"MSH|^~\\&|A|B|C|D|20260101||ORM^O01||P|2.5.1\rPID|1\r")
        .await
        .expect_err("no MSH-10");
    assert!(matches!(err, SendError::NoControlId) && !err.retryable());
    let err = s
        .send(b"MSH|^~\\&|A|B|C|D|20260101||ORM^O01|F1|P|2.5.1\rNTE|1||\x1c\r")
        .await
        .expect_err("framing byte");
    assert!(matches!(err, SendError::Framing(_)));
    assert_eq!(r.frames(), 0);
}
