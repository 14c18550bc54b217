#![cfg(feature = "transports")]
//! The file drop on a real temp folder: accepted files are archived with their
//! 999 beside them, bad ones go to error/ unchanged with the 999/TA1 that says
//! why, and nothing moves when the pipeline cannot commit.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::pipeline::MappingPipeline;
use gateway_x12::ack::{AckIdentity, parse_acks};
use gateway_x12::config::FileDropConfig;
use gateway_x12::filedrop::{FileDrop, FileOutcome};
use gateway_x12::write::MemoryControlNumbers;

fn config(dir: &std::path::Path) -> FileDropConfig {
    FileDropConfig {
        inbound: dir.join("inbound"),
        archive: None,
        error: None,
        poll_interval_ms: 50,
        settle_ms: 0,
        max_bytes: 1 << 20,
    }
}

#[tokio::test]
async fn files_are_processed_archived_and_acknowledged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path());
    let pipeline = Arc::new(MappingPipeline::new());
    let mut drop = FileDrop::new(
        cfg.clone(),
        "x12-278".into(),
        pipeline.clone(),
        AckIdentity::default(),
        Arc::new(MemoryControlNumbers::new()),
    )
    .expect("folders");
    let good = common::sample("multi-transaction.x12");
    let bad = String::from_utf8(common::sample("request.x12"))
        .expect("ascii")
        .replace("SE*26*0001~", "SE*20*0001~");
    let truncated = common::sample("request.x12")[..70].to_vec();
    std::fs::write(cfg.inbound.join("a-good.x12"), &good).expect("write");
    std::fs::write(cfg.inbound.join("b-bad.x12"), &bad).expect("write");
    std::fs::write(cfg.inbound.join("c-truncated.x12"), &truncated).expect("write");
    std::fs::write(cfg.inbound.join("d-incoming.x12.part"), b"ISA").expect("write");

    let outcomes = drop.poll().await.expect("poll");
    let archive = cfg.archive_dir();
    let error = cfg.error_dir();
    assert_eq!(
        outcomes,
        vec![
            FileOutcome::Archived(archive.join("a-good.x12")),
            FileOutcome::Rejected(error.join("b-bad.x12")),
            FileOutcome::Rejected(error.join("c-truncated.x12")),
        ]
    );
    // Raw bytes kept unchanged; the in-progress upload untouched.
    assert_eq!(
        std::fs::read(archive.join("a-good.x12")).expect("archived"),
        good
    );
    assert_eq!(
        std::fs::read(error.join("b-bad.x12")).expect("kept"),
        bad.as_bytes()
    );
    assert_eq!(
        std::fs::read(error.join("c-truncated.x12")).expect("kept"),
        truncated
    );
    assert!(cfg.inbound.join("d-incoming.x12.part").exists());

    let ack = parse_acks(&std::fs::read(archive.join("a-good.x12.999")).expect("999 beside"))
        .expect("parses");
    assert_eq!(ack.functional[0].status, "A");
    assert_eq!(ack.functional[0].accepted, Some(2));
    let ack = parse_acks(&std::fs::read(error.join("b-bad.x12.999")).expect("999 beside"))
        .expect("parses");
    assert_eq!(ack.functional[0].sets[0].codes, ["4"]);
    let ta1 = parse_acks(&std::fs::read(error.join("c-truncated.x12.ta1")).expect("ta1 beside"))
        .expect("parses");
    assert_eq!(ta1.ta1[0].note_code, "023");

    // One submission per transaction set, plus one each for the bad files.
    let committed = pipeline.committed();
    assert_eq!(committed.len(), 4);
    assert_eq!(committed.iter().filter(|c| c.rejected).count(), 2);
    assert_eq!(committed[0].status.as_deref(), Some("requested"));
    assert!(committed.iter().all(|c| !c.raw.is_empty()));
}

#[tokio::test]
async fn nothing_moves_or_is_acknowledged_when_the_pipeline_cannot_commit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path());
    let pipeline = Arc::new(MappingPipeline::new());
    pipeline.fail.store(true, Ordering::SeqCst);
    let mut drop = FileDrop::new(
        cfg.clone(),
        "x12-278".into(),
        pipeline.clone(),
        AckIdentity::default(),
        Arc::new(MemoryControlNumbers::new()),
    )
    .expect("folders");
    std::fs::write(cfg.inbound.join("r.x12"), common::sample("request.x12")).expect("write");
    let outcomes = drop.poll().await.expect("poll");
    assert_eq!(
        outcomes,
        vec![FileOutcome::Retry(cfg.inbound.join("r.x12"))]
    );
    assert!(cfg.inbound.join("r.x12").exists());
    assert_eq!(
        std::fs::read_dir(cfg.archive_dir()).expect("dir").count(),
        0
    );
    // Once the store is back, the next poll takes it.
    pipeline.fail.store(false, Ordering::SeqCst);
    let outcomes = drop.poll().await.expect("poll");
    assert_eq!(
        outcomes,
        vec![FileOutcome::Archived(cfg.archive_dir().join("r.x12"))]
    );
    assert!(cfg.archive_dir().join("r.x12.999").exists());
}

#[tokio::test]
async fn the_worker_runs_until_shutdown() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path());
    let pipeline = Arc::new(MappingPipeline::new());
    let drop = FileDrop::new(
        cfg.clone(),
        "x12-278".into(),
        pipeline.clone(),
        AckIdentity::default(),
        Arc::new(MemoryControlNumbers::new()),
    )
    .expect("folders");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(drop.run(async move {
        let _ = stopped.await;
    }));
    std::fs::write(
        cfg.inbound.join("late.x12"),
        common::sample("response-approved.x12"),
    )
    .expect("write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cfg.archive_dir().join("late.x12").exists() {
        assert!(std::time::Instant::now() < deadline, "file not picked up");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    task.await.expect("worker ends");
    assert_eq!(pipeline.committed()[0].status.as_deref(), Some("approved"));
}
