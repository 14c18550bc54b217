//! The MLLP listener over real loopback sockets: ordering, framing edge cases,
//! negative ACKs that keep the connection open, limits and deadlines, and the
//! rule that no ACK is written before the pipeline's outcome.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn acks_each_message_in_order_on_one_connection() {
    let p = RecordingPipeline::new(Mode::Accept);
    let run = start(config(), p.clone()).await;
    let mut s = TcpStream::connect(run.addr).await.expect("connect");
    for i in 0..20 {
        let id = format!("MSG{i:04}");
        let ack = exchange(&mut s, orm(&id).as_bytes()).await;
        assert_eq!(msa(&ack), ("AA".into(), id));
    }
    let ids: Vec<String> = (0..20).map(|i| format!("MSG{i:04}")).collect();
    assert_eq!(p.control_ids(), ids);
    let first = p.recorded.lock().expect("lock").messages[0].clone();
    assert_eq!(first.adapter, "hl7v2");
    assert_eq!(first.profile, "epic");
    assert!(first.parsed.is_ok());
    assert!(
        first
            .peer
            .as_deref()
            .is_some_and(|p| p.starts_with("127.0.0.1:"))
    );
    drop(s);
    run.shutdown().await;
}

#[tokio::test]
async fn coalesced_split_and_junk_framing() {
    let p = RecordingPipeline::new(Mode::Accept);
    let run = start(config(), p.clone()).await;
    let mut s = TcpStream::connect(run.addr).await.expect("connect");
    // Three frames in one write, with junk before the first and between.
    let mut wire = b"\r\n junk".to_vec();
    wire.extend(frame(orm("C1").as_bytes()));
    wire.extend(b"\n");
    wire.extend(frame(orm("C2").as_bytes()));
    wire.extend(frame(orm("C3").as_bytes()));
    s.write_all(&wire).await.expect("write");
    for id in ["C1", "C2", "C3"] {
        let ack = read_frame(&mut s, Duration::from_secs(5))
            .await
            .expect("ack");
        assert_eq!(msa(&ack).1, id);
    }
    // A frame whose terminator is split across writes.
    let f = frame(orm("C4").as_bytes());
    let (a, b) = f.split_at(f.len() - 1);
    s.write_all(a).await.expect("write");
    s.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b).await.expect("write");
    let ack = read_frame(&mut s, Duration::from_secs(5))
        .await
        .expect("ack");
    assert_eq!(msa(&ack), ("AA".into(), "C4".into()));
    assert_eq!(p.control_ids(), ["C1", "C2", "C3", "C4"]);
    drop(s);
    run.shutdown().await;
}

#[tokio::test]
async fn unparseable_gets_negative_ack_and_connection_stays_open() {
    let p = RecordingPipeline::new(Mode::Accept);
    let run = start(config(), p.clone()).await;
    let mut s = TcpStream::connect(run.addr).await.expect("connect");
    let ack = exchange(&mut s, b"this is not HL7 at all").await;
    let (code, _) = msa(&ack);
    assert!(code == "AR" || code == "AE", "got {code}");
    assert!(
        has_err(&ack),
        "negative ACK must carry ERR: {}",
        String::from_utf8_lossy(&ack)
    );
    // Kept for replay: the pipeline saw the raw bytes.
    assert_eq!(p.count(), 1);
    assert_eq!(
        p.recorded.lock().expect("lock").messages[0].raw,
        b"this is not HL7 at all"
    );
    // Same connection still works.
    let ack = exchange(&mut s, orm("AFTER").as_bytes()).await;
    assert_eq!(msa(&ack), ("AA".into(), "AFTER".into()));
    drop(s);
    run.shutdown().await;
}

#[tokio::test]
async fn pipeline_failure_gets_retryable_reject_and_connection_stays_open() {
    let p = RecordingPipeline::new(Mode::Fail);
    let run = start(config(), p.clone()).await;
    let mut s = TcpStream::connect(run.addr).await.expect("connect");
    let ack = exchange(&mut s, orm("F1").as_bytes()).await;
    assert_eq!(msa(&ack), ("AR".into(), "F1".into()));
    assert!(has_err(&ack));
    p.set_mode(Mode::Accept);
    let ack = exchange(&mut s, orm("F1").as_bytes()).await;
    assert_eq!(msa(&ack), ("AA".into(), "F1".into()));
    drop(s);
    run.shutdown().await;
}

#[tokio::test]
async fn oversized_frame_is_rejected_and_stream_resyncs() {
    let p = RecordingPipeline::new(Mode::Accept);
    let mut cfg = config();
    cfg.max_frame_bytes = 2048;
    let run = start(cfg, p.clone()).await;
    let mut s = TcpStream::connect(run.addr).await.expect("connect");
    let mut big = orm("BIG1");
    big.push_str("NTE|1||");
    big.push_str(&"X".repeat(10_000));
    big.push('\r');
    let ack = exchange(&mut s, big.as_bytes()).await;
    assert_eq!(
        msa(&ack),
        ("AR".into(), "BIG1".into()),
        "MSA-2 read from the kept head"
    );
    assert!(has_err(&ack));
    assert_eq!(p.count(), 0, "oversized frames are not submitted");
    let ack = exchange(&mut s, orm("SMALL").as_bytes()).await;
    assert_eq!(msa(&ack), ("AA".into(), "SMALL".into()));
    drop(s);
    run.shutdown().await;
}

#[tokio::test]
async fn no_ack_before_the_pipeline_returns() {
    let p = RecordingPipeline::new(Mode::Block);
    let run = start(config(), p.clone()).await;
    let mut s = TcpStream::connect(run.addr).await.expect("connect");
    s.write_all(&frame(orm("WAIT").as_bytes()))
        .await
        .expect("write");
    p.entered.notified().await;
    // While the pipeline has not returned, nothing may come back.
    assert!(
        read_frame(&mut s, Duration::from_millis(300))
            .await
            .is_none()
    );
    p.release.notify_one();
    let ack = read_frame(&mut s, Duration::from_secs(5))
        .await
        .expect("ack");
    assert_eq!(msa(&ack), ("AA".into(), "WAIT".into()));
    drop(s);
    run.shutdown().await;
}

#[tokio::test]
async fn connection_limit_closes_extra_connections_only() {
    let p = RecordingPipeline::new(Mode::Accept);
    let mut cfg = config();
    cfg.max_connections = 2;
    let run = start(cfg, p.clone()).await;
    let mut a = TcpStream::connect(run.addr).await.expect("connect");
    let mut b = TcpStream::connect(run.addr).await.expect("connect");
    // Make sure both are accepted before the third arrives.
    assert_eq!(msa(&exchange(&mut a, orm("A1").as_bytes()).await).0, "AA");
    assert_eq!(msa(&exchange(&mut b, orm("B1").as_bytes()).await).0, "AA");
    let mut c = TcpStream::connect(run.addr)
        .await
        .expect("tcp connect succeeds");
    assert!(
        closed_within(&mut c, Duration::from_secs(5)).await,
        "third connection closed"
    );
    assert_eq!(msa(&exchange(&mut a, orm("A2").as_bytes()).await).0, "AA");
    // A freed slot is reusable.
    drop(b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut d = TcpStream::connect(run.addr).await.expect("connect");
    assert_eq!(msa(&exchange(&mut d, orm("D1").as_bytes()).await).0, "AA");
    drop((a, d));
    run.shutdown().await;
}

#[tokio::test]
async fn slowloris_frame_is_cut_off_at_the_frame_deadline() {
    let p = RecordingPipeline::new(Mode::Accept);
    let mut cfg = config();
    cfg.frame_timeout_ms = 400;
    cfg.idle_timeout_ms = 60_000;
    let run = start(cfg, p.clone()).await;
    let mut s = TcpStream::connect(run.addr).await.expect("connect");
    let f = frame(orm("SLOW").as_bytes());
    let started = tokio::time::Instant::now();
    let mut closed = false;
    // Drip one byte every 50 ms: each read is "activity", yet the frame must
    // still complete within 400 ms.
    for byte in &f[..f.len() - 2] {
        if s.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    if !closed {
        closed = closed_within(&mut s, Duration::from_secs(2)).await;
    }
    assert!(closed, "slow frame must be cut off");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(p.count(), 0);
    run.shutdown().await;
}

#[tokio::test]
async fn idle_connection_is_closed_and_junk_does_not_keep_it_alive() {
    let p = RecordingPipeline::new(Mode::Accept);
    let mut cfg = config();
    cfg.idle_timeout_ms = 300;
    let run = start(cfg, p.clone()).await;
    let mut s = TcpStream::connect(run.addr).await.expect("connect");
    assert_eq!(msa(&exchange(&mut s, orm("I1").as_bytes()).await).0, "AA");
    let started = tokio::time::Instant::now();
    for _ in 0..5 {
        let _ = s.write_all(b"junk").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed_within(&mut s, Duration::from_secs(2)).await);
    assert!(started.elapsed() < Duration::from_secs(2));
    run.shutdown().await;
}

#[tokio::test]
async fn many_concurrent_connections() {
    let p = RecordingPipeline::new(Mode::Accept);
    let run = start(config(), p.clone()).await;
    let mut tasks = Vec::new();
    for c in 0..24 {
        let addr = run.addr;
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            for i in 0..10 {
                let id = format!("C{c}M{i}");
                let ack = exchange(&mut s, orm(&id).as_bytes()).await;
                assert_eq!(msa(&ack), ("AA".into(), id));
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    assert_eq!(p.count(), 24 * 10);
    run.shutdown().await;
}

#[tokio::test]
async fn shutdown_answers_the_message_in_hand_then_closes() {
    let p = RecordingPipeline::new(Mode::Block);
    let run = start(config(), p.clone()).await;
    let mut s = TcpStream::connect(run.addr).await.expect("connect");
    s.write_all(&frame(orm("LAST").as_bytes()))
        .await
        .expect("write");
    p.entered.notified().await;
    let Running { addr, stop, task } = run;
    drop(stop);
    // New connections are refused once the listener saw the stop, while the
    // message in hand is still held (the pipeline is blocked until below).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener still accepts connections after the stop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!task.is_finished(), "the message in hand is still answered");
    p.release.notify_one();
    let ack = read_frame(&mut s, Duration::from_secs(5))
        .await
        .expect("ack");
    assert_eq!(msa(&ack), ("AA".into(), "LAST".into()));
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("serve returns")
        .expect("task");
    let _ = Arc::strong_count(&p);
}
