//! Store behaviour on real SQLite files: inbound commits, duplicates, replays,
//! decisions, queries, migrations and retention.

use gateway_testkit::samples as common;

use common::{accepted, case, rejected};
use gateway_core::case::{CaseStatus, Decision, DecisionStatus};
use gateway_core::event::CaseEventType;
use gateway_store::*;
use gateway_testkit::store::TempStore;

fn decision(status: DecisionStatus) -> Decision {
    Decision {
        status,
        authorization_number: Some("AUTH0001".to_owned()),
        effective: None,
        reason_codes: vec![],
        payer_trace: vec![],
        service_decisions: vec![],
        decided_at: None,
        note: None,
    }
}

#[tokio::test]
async fn accepted_messages_create_then_update_cases_and_duplicates_add_no_event() {
    let t = TempStore::new().await;
    let s = &t.store;
    let first = s
        .commit_inbound(accepted(case(1, 1), "MSG1", "MSH|1"))
        .await
        .expect("commit");
    let Disposition::Accepted {
        case_id,
        sequence,
        event_type,
        event_id,
    } = first.disposition.clone()
    else {
        panic!("expected accepted: {first:?}");
    };
    assert_eq!((sequence, event_type), (1, CaseEventType::Created));
    assert_eq!(event_id.len(), 36, "uuid event id");

    // The same bytes again: a duplicate pointing at the original, no new event.
    let dup = s
        .commit_inbound(accepted(case(1, 1), "MSG1", "MSH|1"))
        .await
        .expect("commit dup");
    assert_eq!(
        dup.disposition,
        Disposition::Duplicate {
            original: first.receipt
        }
    );
    assert_ne!(
        dup.receipt, first.receipt,
        "the duplicate is kept as its own row"
    );

    // Same control id, different bytes: not a duplicate, an update.
    let second = s
        .commit_inbound(accepted(case(1, 1), "MSG1", "MSH|1|amended"))
        .await
        .expect("commit update");
    assert!(matches!(
        second.disposition,
        Disposition::Accepted {
            sequence: 2,
            event_type: CaseEventType::Updated,
            ..
        }
    ));

    let events = s
        .read(move |r| r.case_events(&case_id))
        .await
        .expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].id, event_id);
    let body: serde_json::Value = serde_json::from_str(&events[0].body).expect("json");
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["type"], "org.ehr-gateway.case.created");
    assert_eq!(body["subject"], events[0].case_id.as_str());
    assert_eq!(body["specversion"], "1.0");
    assert_eq!(
        body["sequence"], "0000000001",
        "CloudEvents sequence extension"
    );
    let second: serde_json::Value = serde_json::from_str(&events[1].body).expect("json");
    assert_eq!(second["sequence"], "0000000002");
    let parsed: gateway_core::event::CloudEvent =
        serde_json::from_str(&events[1].body).expect("still a CloudEvent");
    assert_eq!(parsed.kind, "org.ehr-gateway.case.updated");

    let dup_row = s
        .get_message(dup.receipt.message_id)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(dup_row.summary.state, MessageState::Duplicate);
    assert_eq!(dup_row.summary.duplicate_of, Some(first.receipt.message_id));
    assert_eq!(dup_row.raw, b"MSH|1");
}

#[tokio::test]
async fn rejected_messages_are_kept_and_replay_reprocesses_them_in_place() {
    let t = TempStore::new().await;
    let s = &t.store;
    let r = s
        .commit_inbound(rejected("BAD1", "garbage", "no MSH segment"))
        .await
        .expect("commit");
    assert_eq!(r.disposition, Disposition::Rejected);
    let id = r.receipt.message_id;
    let stored = s.get_message(id).await.expect("get").expect("row");
    assert_eq!(stored.summary.state, MessageState::Rejected);
    assert_eq!(
        stored.summary.error_reason.as_deref(),
        Some("no MSH segment")
    );
    assert_eq!(stored.diagnostics.len(), 1);
    assert_eq!(stored.raw, b"garbage");

    assert!(s.replay_requests(10).await.expect("list").is_empty());
    assert_eq!(
        s.replay_message(id).await.expect("replay"),
        ReplayOutcome::MessageQueued { message_id: id }
    );
    let queued = s.replay_requests(10).await.expect("list");
    assert_eq!(queued.len(), 1);
    assert!(queued[0].summary.replay_requested);

    // The pipeline re-processes it with a fixed mapping.
    let mut again = accepted(case(7, 1), "BAD1", "garbage");
    again.replay_of = Some(id);
    let done = s.commit_inbound(again).await.expect("replayed commit");
    assert_eq!(done.receipt.message_id, id, "updated in place");
    assert!(matches!(done.disposition, Disposition::Accepted { .. }));
    let row = s.get_message(id).await.expect("get").expect("row");
    assert_eq!(row.summary.state, MessageState::Accepted);
    assert!(!row.summary.replay_requested);
    assert!(s.replay_requests(10).await.expect("list").is_empty());
    let all = s
        .list_messages(MessageFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 1, "no new row for a replay");

    // Replaying an accepted message without dead events is refused.
    assert!(matches!(
        s.replay_message(id).await,
        Err(StoreError::InvalidState(_))
    ));
    assert!(matches!(
        s.replay_message(9_999).await,
        Err(StoreError::UnknownMessage(9_999))
    ));
}

/// An audited replay commits with its audit row or not at all.
#[tokio::test]
async fn an_audited_replay_commits_together_with_its_audit_row() {
    let t = TempStore::new().await;
    let s = &t.store;
    let id = s
        .commit_inbound(rejected("BAD2", "garbage", "no MSH segment"))
        .await
        .expect("commit")
        .receipt
        .message_id;
    let entry = move |detail: &str| AuditEntry {
        actor: "ops-desk".to_owned(),
        action: "message.replay".to_owned(),
        target: Some(format!("message:{id}")),
        detail: Some(detail.to_owned()),
        case_id: None,
    };

    // The audit entry cannot be built (here: its builder panics): the replay
    // is rolled back with it.
    let failed = s
        .replay_message_audited(id, |_| panic!("no audit entry"))
        .await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(s.replay_requests(10).await.expect("list").is_empty());
    let audit = s.read(|r| r.audit_log(10)).await.expect("audit");
    assert!(audit.is_empty(), "{audit:?}");

    let first = entry("queued");
    let done = s
        .replay_message_audited(id, move |outcome| {
            assert_eq!(*outcome, ReplayOutcome::MessageQueued { message_id: id });
            first
        })
        .await
        .expect("replay");
    assert_eq!(done, ReplayOutcome::MessageQueued { message_id: id });
    assert_eq!(s.replay_requests(10).await.expect("list").len(), 1);
    let audit = s.read(|r| r.audit_log(10)).await.expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry, entry("queued"));

    // A refused replay leaves no audit row either.
    let mut again = accepted(case(8, 1), "BAD2", "garbage");
    again.replay_of = Some(id);
    s.commit_inbound(again).await.expect("replayed commit");
    let refused = s
        .replay_message_audited(id, move |_| entry("should not be written"))
        .await;
    assert!(
        matches!(refused, Err(StoreError::InvalidState(_))),
        "{refused:?}"
    );
    assert_eq!(s.read(|r| r.audit_log(10)).await.expect("audit").len(), 1);
}

#[tokio::test]
async fn decisions_update_the_case_append_decided_and_queue_write_back() {
    let t = TempStore::new().await;
    let s = &t.store;
    assert!(matches!(
        s.record_decision("case-unknown", decision(DecisionStatus::Approved))
            .await,
        Err(StoreError::UnknownCase(id)) if id == "case-unknown"
    ));
    let c = case(2, 5);
    let case_id = c.case_id.clone();
    s.commit_inbound(accepted(c, "MSG2", "MSH|2"))
        .await
        .expect("commit");
    let receipt = s
        .record_decision(&case_id, decision(DecisionStatus::Denied))
        .await
        .expect("decision");
    assert_eq!(receipt.sequence, 2);
    let record = s.get_case(&case_id).await.expect("get").expect("case");
    assert_eq!(record.case.status, CaseStatus::Denied);
    assert_eq!(
        record.case.decision.as_ref().map(|d| d.status),
        Some(DecisionStatus::Denied)
    );
    let events = {
        let id = case_id.clone();
        s.read(move |r| r.case_events(&id)).await.expect("events")
    };
    assert_eq!(events[1].event_type, CaseEventType::Decided);
    assert_eq!(events[1].decision_id, Some(receipt.decision_id));

    let jobs = s.pending_writebacks(Some("hl7v2"), 10).await.expect("jobs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].case.status, CaseStatus::Denied);
    assert!(
        s.pending_writebacks(Some("fhir"), 10)
            .await
            .expect("jobs")
            .is_empty()
    );
    s.complete_writeback(
        receipt.decision_id,
        WriteBackOutcome::Done {
            detail: "ORU^R01 acknowledged AA".to_owned(),
        },
    )
    .await
    .expect("done");
    assert!(
        s.pending_writebacks(None, 10)
            .await
            .expect("jobs")
            .is_empty()
    );
    assert!(matches!(
        s.complete_writeback(
            receipt.decision_id,
            WriteBackOutcome::Failed {
                error: "x".to_owned()
            }
        )
        .await,
        Err(StoreError::InvalidState(_))
    ));
    let state = s
        .read(move |r| r.writeback_state(receipt.decision_id))
        .await
        .expect("state");
    assert_eq!(state.map(|s| s.0), Some(WriteBackState::Done));
}

#[tokio::test]
async fn open_cases_are_found_by_patient_key() {
    let t = TempStore::new().await;
    let s = &t.store;
    for (n, patient) in [(1, 1), (2, 1), (3, 2)] {
        s.commit_inbound(accepted(
            case(n, patient),
            &format!("M{n}"),
            &format!("raw{n}"),
        ))
        .await
        .expect("commit");
    }
    let key = patient_key(&case(99, 1)).expect("key");
    assert!(
        !key.contains("E10001"),
        "the key holds no readable identifier"
    );
    let open = s.open_cases_for_patient(&key).await.expect("find");
    assert_eq!(open.len(), 2);
    // Closing one (a denial) removes it from the open list.
    s.record_decision(&case(1, 1).case_id, decision(DecisionStatus::Denied))
        .await
        .expect("decide");
    let open = s.open_cases_for_patient(&key).await.expect("find");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].case.case_id, case(2, 1).case_id);
}

#[tokio::test]
async fn list_messages_filters_and_pages() {
    let t = TempStore::new().await;
    let s = &t.store;
    for n in 0..10u32 {
        let mut m = if n % 3 == 0 {
            rejected(&format!("C{n}"), &format!("bad{n}"), "bad")
        } else {
            accepted(case(n, 1), &format!("C{n}"), &format!("good{n}"))
        };
        m.received_at = format!("2026-11-22T10:00:{n:02}+01:00");
        s.commit_inbound(m).await.expect("commit");
    }
    let all = s
        .list_messages(MessageFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 10);
    assert!(all[0].id > all[9].id, "newest first");
    let rejected_only = s
        .list_messages(MessageFilter {
            state: Some(MessageState::Rejected),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(rejected_only.len(), 4);
    let by_control = s
        .list_messages(MessageFilter {
            control_id: Some("C5".to_owned()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(by_control.len(), 1);
    assert_eq!(by_control[0].received_at, "2026-11-22T10:00:05+01:00");
    // Offsets are honoured: 10:00:03+01:00 is 09:00:03Z.
    let window = s
        .list_messages(MessageFilter {
            since: Some("2026-11-22T09:00:03Z".parse().expect("ts")),
            until: Some("2026-11-22T09:00:06Z".parse().expect("ts")),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        window
            .iter()
            .map(|m| m.control_id.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["C5", "C4", "C3"]
    );
    let page1 = s
        .list_messages(MessageFilter {
            after_id: Some(0),
            limit: Some(4),
            ..Default::default()
        })
        .await
        .expect("list");
    let page2 = s
        .list_messages(MessageFilter {
            after_id: Some(page1[3].id),
            limit: Some(4),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page1.len(), 4);
    assert!(page2[0].id > page1[3].id);
}

#[tokio::test]
async fn a_reader_in_another_connection_sees_commits_while_the_writer_runs() {
    let t = TempStore::new().await;
    let reader = Reader::open(t.path()).expect("reader");
    assert!(
        reader
            .list_messages(&MessageFilter::default())
            .expect("list")
            .is_empty()
    );
    t.store
        .commit_inbound(accepted(case(1, 1), "M1", "x"))
        .await
        .expect("commit");
    assert_eq!(
        reader
            .list_messages(&MessageFilter::default())
            .expect("list")
            .len(),
        1
    );
    assert!(matches!(
        Reader::open(t.dir.path().join("missing.db")),
        Err(StoreError::Missing(_))
    ));
}

#[tokio::test]
async fn a_checkpoint_folds_the_wal_into_the_file_while_the_store_stays_open() {
    let t = TempStore::new().await;
    t.store
        .commit_inbound(accepted(case(1, 1), "M1", "x"))
        .await
        .expect("commit");
    let wal = t.path().with_extension("db-wal");
    let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(wal_len() > 0, "the commit went to the WAL first");
    assert!(
        t.store.checkpoint().await.expect("checkpoint"),
        "incomplete"
    );
    assert_eq!(wal_len(), 0, "TRUNCATE leaves an empty WAL");
    // The main file alone now holds the schema version and the message.
    let header = std::fs::read(t.path()).expect("read the file");
    let version = u32::from_be_bytes(header[60..64].try_into().expect("header"));
    assert_eq!(version, SCHEMA_VERSION as u32);
    t.store
        .commit_inbound(accepted(case(2, 1), "M2", "y"))
        .await
        .expect("the store keeps working after a checkpoint");
}

#[tokio::test]
async fn a_store_from_a_newer_binary_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.db");
    let s = Store::open(&path, StoreOptions::default())
        .await
        .expect("open");
    s.close().await;
    {
        let conn = rusqlite_conn(&path);
        let auto_vacuum: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(auto_vacuum, 2, "incremental auto-vacuum is enabled");
        conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
            .expect("bump");
    }
    let err = Store::open(&path, StoreOptions::default())
        .await
        .expect_err("newer schema must be refused");
    assert!(matches!(err, StoreError::NewerSchema { .. }));
    let text = err.to_string();
    assert!(
        text.contains(&format!("version {}", SCHEMA_VERSION + 1)),
        "{text}"
    );
    assert!(
        text.contains(&format!("version {SCHEMA_VERSION}")),
        "{text}"
    );
    assert!(matches!(
        Reader::open(&path),
        Err(StoreError::NewerSchema { .. })
    ));
    // Reopening the same version works and keeps data.
    let dir2 = tempfile::tempdir().expect("dir");
    let path2 = dir2.path().join("store.db");
    let s = Store::open(&path2, StoreOptions::default())
        .await
        .expect("open");
    s.commit_inbound(accepted(case(1, 1), "M1", "x"))
        .await
        .expect("commit");
    s.close().await;
    let s = Store::open(&path2, StoreOptions::default())
        .await
        .expect("reopen");
    assert_eq!(
        s.list_messages(MessageFilter::default())
            .await
            .expect("list")
            .len(),
        1
    );
}

fn rusqlite_conn(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("open sqlite")
}

#[tokio::test]
async fn audit_entries_are_appended() {
    let t = TempStore::new().await;
    let id = t
        .store
        .audit(AuditEntry {
            actor: "cli:operator".to_owned(),
            action: "message.replay".to_owned(),
            target: Some("42".to_owned()),
            detail: None,
            case_id: Some("case-42".to_owned()),
        })
        .await
        .expect("audit");
    let log = t.store.read(|r| r.audit_log(10)).await.expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].id, id);
    assert_eq!(log[0].entry.action, "message.replay");
    assert_eq!(log[0].entry.case_id.as_deref(), Some("case-42"));
}

#[tokio::test]
async fn concurrent_requests_share_group_transactions_and_a_failing_one_fails_alone() {
    let t = TempStore::new().await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..64u32 {
        let s = t.store.clone();
        tasks.spawn(async move {
            if n % 8 == 0 {
                // Fails inside the batch: must roll back alone.
                let r = s
                    .record_decision("case-nope", decision(DecisionStatus::Approved))
                    .await;
                assert!(matches!(r, Err(StoreError::UnknownCase(_))), "{r:?}");
            } else {
                s.commit_inbound(accepted(case(n, n), &format!("G{n}"), &format!("g{n}")))
                    .await
                    .expect("commit");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    let stats = t.store.commit_stats();
    assert_eq!(
        stats.requests, 56,
        "failed requests are not counted as committed"
    );
    assert!(
        stats.transactions < stats.requests / 2,
        "64 concurrent requests were grouped: {stats:?}"
    );
    let all = t
        .store
        .list_messages(MessageFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 56);
    let events = t
        .store
        .read(|r| r.list_events(None, 1_000))
        .await
        .expect("events");
    assert_eq!(events.len(), 56);
    t.store.check_writable().await.expect("writable");
}

/// Announced messages that arrive a little later share the first one's
/// COMMIT; without announcements each arrival is committed on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_messages_arriving_later_share_one_commit() {
    /// (transactions, requests) committed.
    async fn staggered(store: &Store, announce: bool) -> (u64, u64) {
        let before = store.commit_stats();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..4u32 {
            let s = store.clone();
            let ticket = announce.then(|| s.intake_ticket());
            tasks.spawn(async move {
                // Arrivals 25 ms apart: far beyond one commit's fsync.
                tokio::time::sleep(std::time::Duration::from_millis(25 * u64::from(n))).await;
                let tag = format!("{}{n}", if announce { "A" } else { "U" });
                s.commit_inbound(accepted(case(n + 100 * u32::from(announce), n), &tag, &tag))
                    .await
                    .expect("commit");
                drop(ticket);
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("task");
        }
        let after = store.commit_stats();
        (
            after.transactions - before.transactions,
            after.requests - before.requests,
        )
    }
    let t = TempStore::with_options(StoreOptions {
        group_commit_wait: std::time::Duration::from_secs(2),
        ..StoreOptions::default()
    })
    .await;
    let unannounced = staggered(&t.store, false).await;
    assert_eq!(unannounced, (4, 4));
    let announced = staggered(&t.store, true).await;
    assert_eq!(announced, (1, 4));
}

/// A damaged store refuses to open for writing and says how to recover.
#[tokio::test]
async fn a_damaged_store_refuses_to_open_and_names_the_recovery_commands() {
    let t = TempStore::new().await;
    let path = t.path();
    for i in 0..200 {
        t.store
            .commit_inbound(accepted(case(i, i), &format!("D{i}"), &format!("raw {i}")))
            .await
            .expect("commit");
    }
    t.store.checkpoint().await.expect("checkpoint");
    let TempStore { store, dir: _dir } = t;
    store.close().await;
    // Scribble over the middle of the file: table and index pages.
    let mut bytes = std::fs::read(&path).expect("read");
    let page = 4096;
    assert!(bytes.len() > 8 * page, "a file of several pages");
    for b in &mut bytes[3 * page..5 * page] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).expect("write");
    let error = Store::open(&path, StoreOptions::default())
        .await
        .expect_err("a damaged store must not open");
    let text = error.to_string();
    assert!(matches!(error, StoreError::Damaged { .. }), "{text}");
    assert!(text.contains("ehr-gateway store verify"), "{text}");
    assert!(text.contains("ehr-gateway store restore"), "{text}");
}
