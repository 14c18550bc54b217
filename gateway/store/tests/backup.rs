//! Backup and restore: a round trip keeps pending and delivered events, a
//! backup taken while another connection writes is a consistent snapshot, and
//! a tampered backup is refused.

use gateway_testkit::samples as common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use gateway_store::backup;
use gateway_store::{
    AttemptOutcome, DeliveryAttempt, Disposition, EventState, Reader, Store, StoreOptions,
};

async fn commit(store: &Store, n: u32) -> String {
    let receipt = store
        .commit_inbound(common::accepted(
            common::case(n, n),
            &format!("MSG{n:04}"),
            &format!("MSH|^~\\&|synthetic {n}"),
        ))
        .await
        .expect("commit");
    match receipt.disposition {
        Disposition::Accepted { event_id, .. } => event_id,
        other => panic!("not accepted: {other:?}"),
    }
}

#[tokio::test]
async fn round_trip_keeps_pending_and_delivered_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live/gateway.sqlite");
    let store = Store::open(&live, StoreOptions::default())
        .await
        .expect("open");
    let mut delivered = Vec::new();
    let mut pending = Vec::new();
    for n in 1..=6 {
        let event = commit(&store, n).await;
        if n % 2 == 0 {
            store
                .record_attempt(DeliveryAttempt {
                    event_id: event.clone(),
                    sink: "file".to_owned(),
                    http_status: None,
                    outcome: AttemptOutcome::Delivered,
                })
                .await
                .expect("deliver");
            delivered.push(event);
        } else {
            pending.push(event);
        }
    }
    store
        .commit_inbound(common::rejected("BAD1", "not hl7", "no MSH"))
        .await
        .expect("reject");

    // Backup while the store is open (the daemon's writer holds it).
    let file = dir.path().join("backup.sqlite");
    let info = backup::backup(&live, &file).expect("backup");
    assert_eq!(info.schema_version, gateway_store::SCHEMA_VERSION);
    let sidecar = std::fs::read_to_string(backup::sidecar_path(&file)).expect("sidecar");
    assert_eq!(sidecar, format!("{}  backup.sqlite\n", info.sha256));
    assert_eq!(backup::verify(&file).expect("verify"), info);

    // Work after the backup is not in it.
    commit(&store, 99).await;
    store.close().await;

    let target = dir.path().join("restored/gateway.sqlite");
    let report = backup::restore(&file, &target).expect("restore");
    assert_eq!(report.previous, None);

    let reader = Reader::open(&target).expect("reader");
    let pending_now: Vec<String> = reader
        .list_events(Some(EventState::Pending), 100)
        .expect("pending")
        .into_iter()
        .map(|e| e.id)
        .collect();
    let delivered_now: Vec<String> = reader
        .list_events(Some(EventState::Delivered), 100)
        .expect("delivered")
        .into_iter()
        .map(|e| e.id)
        .collect();
    let mut expected_pending = pending.clone();
    expected_pending.sort();
    let mut got = pending_now.clone();
    got.sort();
    assert_eq!(got, expected_pending);
    let mut expected_delivered = delivered.clone();
    expected_delivered.sort();
    let mut got = delivered_now.clone();
    got.sort();
    assert_eq!(got, expected_delivered);
    let rejected = reader
        .list_messages(&gateway_store::MessageFilter {
            state: Some(gateway_store::MessageState::Rejected),
            ..Default::default()
        })
        .expect("list");
    assert_eq!(rejected.len(), 1);
    drop(reader);

    // The restored store opens for writing and keeps going.
    let store = Store::open(&target, StoreOptions::default())
        .await
        .expect("reopen");
    commit(&store, 7).await;
    store.close().await;

    // Restoring over an existing store moves it aside (with its WAL files).
    let report = backup::restore(&file, &live).expect("restore over live");
    let previous = report.previous.expect("previous kept");
    assert!(previous.exists());
    let reader = Reader::open(&live).expect("reader");
    assert_eq!(
        reader
            .list_events(Some(EventState::Pending), 100)
            .expect("pending")
            .len(),
        pending.len(),
        "the message committed after the backup is gone from the restored store"
    );
    let before = Reader::open(&previous).expect("previous opens");
    assert_eq!(
        before
            .list_events(Some(EventState::Pending), 100)
            .expect("pending")
            .len(),
        pending.len() + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_another_connection_writes_is_a_consistent_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("gateway.sqlite");
    let store = Store::open(&live, StoreOptions::default())
        .await
        .expect("open");
    for n in 1..=20 {
        commit(&store, n).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(20));
    let writer = {
        let store = store.clone();
        let stop = stop.clone();
        let written = written.clone();
        tokio::spawn(async move {
            let mut n = 1000;
            while !stop.load(Ordering::SeqCst) {
                commit(&store, n).await;
                written.fetch_add(1, Ordering::SeqCst);
                n += 1;
            }
        })
    };
    // Let the writer get going, then take three backups under load.
    while written.load(Ordering::SeqCst) < 60 {
        tokio::task::yield_now().await;
    }
    let mut counts = Vec::new();
    for i in 0..3 {
        let file = dir.path().join(format!("b{i}.sqlite"));
        let at_start = written.load(Ordering::SeqCst);
        let path = live.clone();
        let target = file.clone();
        let info = tokio::task::spawn_blocking(move || backup::backup(&path, &target))
            .await
            .expect("join")
            .expect("backup under load");
        let at_end = written.load(Ordering::SeqCst);
        backup::verify(&file).expect("verify");
        let conn = rusqlite::Connection::open(&file).expect("open backup");
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect("count") };
        let events = count("SELECT COUNT(*) FROM events");
        let messages = count("SELECT COUNT(*) FROM messages");
        // Every message has its event: no torn transaction in the snapshot.
        assert_eq!(events, messages);
        let n = events as u64;
        assert!(
            n >= at_start && n <= at_end + 1,
            "snapshot of {n} rows, {at_start}..{at_end} committed around it"
        );
        assert!(info.bytes > 0);
        counts.push(n);
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.expect("writer");
    store.close().await;
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
}

#[tokio::test]
async fn a_tampered_or_unchecksummed_backup_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("gateway.sqlite");
    let store = Store::open(&live, StoreOptions::default())
        .await
        .expect("open");
    commit(&store, 1).await;
    store.close().await;
    let file = dir.path().join("b.sqlite");
    backup::backup(&live, &file).expect("backup");
    assert!(
        backup::backup(&live, &file).is_err(),
        "an existing backup is never overwritten"
    );

    let mut bytes = std::fs::read(&file).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).expect("write");
    let error = backup::verify(&file).expect_err("tampered");
    assert!(error.to_string().contains("checksum mismatch"), "{error}");
    let target = dir.path().join("other/gateway.sqlite");
    assert!(backup::restore(&file, &target).is_err());
    assert!(!target.exists(), "nothing installed on a failed verify");

    std::fs::remove_file(backup::sidecar_path(&file)).expect("rm");
    let error = backup::verify(&file).expect_err("no sidecar");
    assert!(error.to_string().contains("checksum file"), "{error}");
}
