//! A full store refuses intake with a retryable `StoreError::Full` before
//! anything is written, both at its size budget (`max_bytes`) and when SQLite
//! itself runs out of room (`max_page_count`, standing in for a full disk);
//! nothing half-written remains, the audit log is never the reason, and
//! intake resumes by itself once delivery and pruning free space.

use gateway_testkit::samples as common;

use common::{accepted, case};
use gateway_store::*;
use gateway_testkit::store::TempStore;

/// ~1.2 KB of synthetic raw bytes for message `n`.
fn raw(n: u32) -> String {
    format!("MSH|^~\\&|SYNTH|{n}|{}", "Z".repeat(1200))
}

/// Commits messages `from..` one at a time until the store refuses; returns
/// the control ids acknowledged (committed) and the refusal.
async fn fill_until_full(s: &Store, from: u32, most: u32) -> (Vec<u32>, StoreError) {
    let mut acked = Vec::new();
    for n in from..from + most {
        match s
            .commit_inbound(accepted(case(n, n), &format!("C{n}"), &raw(n)))
            .await
        {
            Ok(_) => acked.push(n),
            Err(e) => return (acked, e),
        }
    }
    panic!("the store never filled after {most} messages");
}

/// Concurrent commits (group transactions with savepoints) until refusals
/// come back; returns the ids answered `Ok` and every error seen.
async fn fill_concurrently(s: &Store, from: u32, n: u32) -> (Vec<u32>, Vec<StoreError>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in from..from + n {
        let s = s.clone();
        tasks.spawn(async move {
            let r = s
                .commit_inbound(accepted(case(i, i), &format!("C{i}"), &raw(i)))
                .await;
            (i, r)
        });
    }
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, r) = joined.expect("task");
        match r {
            Ok(_) => ok.push(i),
            Err(e) => errors.push(e),
        }
    }
    ok.sort_unstable();
    (ok, errors)
}

/// The whole-store check: the file is intact, every accepted message has its
/// case event, every event its case, and exactly `acked` are stored.
fn assert_whole(path: &std::path::Path, acked: &[u32]) {
    let conn = rusqlite::Connection::open(path).expect("open for checking");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ok, "ok");
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM messages m WHERE m.state = 'accepted'
               AND NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = m.id)",
            [],
            |r| r.get(0),
        )
        .expect("orphans");
    assert_eq!(orphans, 0, "an accepted message without its event");
    let caseless: i64 = conn
        .query_row(
            "SELECT count(*) FROM events e
               WHERE NOT EXISTS (SELECT 1 FROM cases c WHERE c.case_id = e.case_id)",
            [],
            |r| r.get(0),
        )
        .expect("caseless");
    assert_eq!(caseless, 0, "an event without its case");
    let mut st = conn
        .prepare("SELECT control_id FROM messages WHERE state = 'accepted'")
        .expect("prepare");
    let mut stored: Vec<u32> = st
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|c| {
            c.expect("row")
                .trim_start_matches('C')
                .parse()
                .expect("synthetic id")
        })
        .collect();
    stored.sort_unstable();
    let mut expected = acked.to_vec();
    expected.sort_unstable();
    assert_eq!(stored, expected, "stored = acknowledged");
}

/// Marks every pending event delivered (the platform came back).
async fn deliver_all(s: &Store) -> usize {
    let events = s
        .read(|r| r.list_events(Some(EventState::Pending), 1_000_000))
        .await
        .expect("events");
    let n = events.len();
    s.record_attempts(
        events
            .into_iter()
            .map(|e| DeliveryAttempt {
                event_id: e.id,
                sink: "file".to_owned(),
                http_status: None,
                outcome: AttemptOutcome::Delivered,
            })
            .collect(),
    )
    .await
    .expect("delivered");
    n
}

#[tokio::test]
async fn at_the_size_budget_intake_is_refused_retryably_and_resumes_after_delivery_and_prune() {
    let probe = TempStore::new().await;
    let empty = probe.store.size().await.expect("size").counted_bytes;
    let budget = empty + 512 * 1024;
    let t = TempStore::with_options(StoreOptions {
        max_bytes: Some(budget),
        ..StoreOptions::default()
    })
    .await;
    let s = &t.store;
    let (mut acked, refusal) = fill_until_full(s, 0, 10_000).await;
    assert!(matches!(refusal, StoreError::Full(_)), "{refusal:?}");
    assert!(refusal.retryable());
    assert!(refusal.to_string().starts_with("store full"), "{refusal}");
    let size = s.size().await.expect("size");
    assert!(size.full(), "{size:?}");
    assert!(size.refused >= 1);
    assert!(acked.len() > 50, "some fit first: {}", acked.len());
    // Concurrent senders (group transactions) are all refused too, each whole.
    let (more, errors) = fill_concurrently(s, 20_000, 64).await;
    assert!(more.is_empty(), "{more:?}");
    assert_eq!(errors.len(), 64);
    assert!(errors.iter().all(|e| matches!(e, StoreError::Full(_))));
    assert_whole(&t.path(), &acked);

    // Pending events are never pruned: pruning alone frees nothing.
    let report = s.prune_for_size(budget / 2).await.expect("prune");
    assert_eq!(report.events, 0);
    assert!(s.size().await.expect("size").full());

    // The platform returns: delivery + prune free space, intake resumes.
    assert_eq!(deliver_all(s).await, acked.len());
    let report = s.prune_for_size(budget / 2).await.expect("prune");
    assert!(report.events > 0 && report.messages > 0, "{report:?}");
    let after = s.size().await.expect("size");
    assert!(!after.full(), "{after:?}");
    let (again, errors) = fill_concurrently(s, 30_000, 32).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(again.len(), 32);
    acked.extend(again);
    // Delivered data was pruned; what is stored now is what was acknowledged
    // and not yet pruned — every one of them whole.
    let conn = rusqlite::Connection::open(t.path()).expect("open");
    let undelivered: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )
        .expect("pending");
    assert_eq!(undelivered, 32);
}

#[tokio::test]
async fn a_raised_limit_lets_intake_in_again() {
    let probe = TempStore::new().await;
    let empty = probe.store.size().await.expect("size").counted_bytes;
    let t = TempStore::with_options(StoreOptions {
        max_bytes: Some(empty + 256 * 1024),
        ..StoreOptions::default()
    })
    .await;
    let s = &t.store;
    let (mut acked, refusal) = fill_until_full(s, 0, 10_000).await;
    assert!(matches!(refusal, StoreError::Full(_)));
    s.set_size_limit(Some(empty + 1024 * 1024));
    let (more, refusal) = fill_until_full(s, 10_000, 10_000).await;
    assert!(matches!(refusal, StoreError::Full(_)));
    assert!(!more.is_empty());
    acked.extend(more);
    assert_whole(&t.path(), &acked);
}

#[tokio::test]
async fn the_audit_log_is_never_the_reason_intake_is_refused() {
    let probe = TempStore::new().await;
    let empty = probe.store.size().await.expect("size").counted_bytes;
    let t = TempStore::with_options(StoreOptions {
        max_bytes: Some(empty + 256 * 1024),
        ..StoreOptions::default()
    })
    .await;
    let s = &t.store;
    // Far more audit than the whole budget.
    for i in 0..4_000 {
        s.audit(AuditEntry {
            actor: "admin-api:token-1".to_owned(),
            action: "message.read".to_owned(),
            target: Some(format!("{i}")),
            detail: Some("Y".repeat(200)),
            case_id: None,
        })
        .await
        .expect("audit");
    }
    // A store reopened measures its audit log at open.
    let path = t.path();
    s.clone().close().await;
    let _ = t.store.clone();
    let reopened = Store::open(
        &path,
        StoreOptions {
            max_bytes: Some(empty + 256 * 1024),
            ..StoreOptions::default()
        },
    )
    .await
    .expect("reopen");
    let size = reopened.size().await.expect("size");
    assert!(
        size.audit_bytes > 512 * 1024,
        "the audit log is larger than the budget: {size:?}"
    );
    assert!(!size.full(), "{size:?}");
    reopened
        .commit_inbound(accepted(case(1, 1), "C1", &raw(1)))
        .await
        .expect("intake admitted: the audit log does not count");
    // And a size prune never deletes audit rows.
    let report = reopened.prune_for_size(0).await.expect("prune");
    assert_eq!(report.audit, 0);
    let audit = reopened.read(|r| r.audit_log(10_000)).await.expect("audit");
    assert_eq!(audit.len(), 4_000);
}

#[tokio::test]
async fn a_full_disk_sqlite_full_is_the_same_retryable_refusal_and_leaves_nothing_half_written() {
    // `max_page_count` makes SQLite fail page allocation with SQLITE_FULL,
    // exactly as a full file system does.
    let probe = TempStore::new().await;
    let pages = probe
        .store
        .size()
        .await
        .expect("size")
        .used_bytes
        .div_ceil(4096);
    let t = TempStore::with_options(StoreOptions {
        max_page_count: Some(pages + 160),
        ..StoreOptions::default()
    })
    .await;
    let s = &t.store;
    let (mut acked, refusal) = fill_until_full(s, 0, 10_000).await;
    assert!(matches!(refusal, StoreError::Full(_)), "{refusal:?}");
    assert!(refusal.retryable());
    // Group transactions hitting the limit: each job fails alone, whole.
    let (more, errors) = fill_concurrently(s, 20_000, 64).await;
    assert!(!errors.is_empty());
    assert!(
        errors.iter().all(StoreError::retryable),
        "only retryable refusals: {errors:?}"
    );
    acked.extend(more);
    assert_whole(&t.path(), &acked);

    // Space returns (an operator frees disk space; here: a higher page
    // limit): intake resumes by itself, without a restart.
    let limit = s.set_max_page_count(pages + 400).await.expect("limit");
    assert_eq!(limit, pages + 400);
    let (again, errors) = fill_concurrently(s, 25_000, 16).await;
    assert!(errors.is_empty(), "{errors:?}");
    acked.extend(again);
    assert_whole(&t.path(), &acked);
    // And delivery + prune make room inside the same limit.
    let (_, refusal) = fill_until_full(s, 40_000, 10_000).await;
    assert!(matches!(refusal, StoreError::Full(_)), "{refusal:?}");
    s.set_max_page_count(pages + 1_000).await.expect("limit");
    deliver_all(s).await;
    s.set_max_page_count(pages + 400).await.expect("limit");
    let report = s.prune_for_size(0).await.expect("prune");
    assert!(report.events > 0, "{report:?}");
    let (again, errors) = fill_concurrently(s, 30_000, 16).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(again.len(), 16);
}
