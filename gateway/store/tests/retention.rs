//! Retention prunes only finished data and gives the space back to the file system.

use gateway_testkit::samples as common;

use common::{accepted, case, rejected};
use gateway_store::*;
use gateway_testkit::store::TempStore;

fn file_size(path: &std::path::Path) -> u64 {
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

/// Fills the store with `n` accepted messages of ~4 KB each plus a few rejected
/// ones; delivers every event except those of the first `keep_pending` cases and
/// dead-letters one more.
/// 8 KiB of printable text that does not pack (the store packs raw
/// messages, so a repeated filler would take no room at all), different for
/// every `seed`: a xorshift sequence over the printable ASCII range.
fn filler(seed: u32) -> String {
    let mut state = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..8192)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'!' + (state % 94) as u8)
        })
        .collect()
}

async fn fill(s: &Store, n: u32, keep_pending: u32) -> (Vec<String>, String) {
    for i in 0..n {
        s.commit_inbound(accepted(
            case(i, i),
            &format!("M{i}"),
            &format!("{i}{}", filler(i)),
        ))
        .await
        .expect("commit");
        if i % 50 == 0 {
            s.commit_inbound(rejected(&format!("R{i}"), &format!("bad{i}"), "bad"))
                .await
                .expect("commit");
        }
    }
    let events = s
        .read(|r| r.list_events(Some(EventState::Pending), 100_000))
        .await
        .expect("events");
    let pending_cases: Vec<String> = (0..keep_pending).map(|i| case(i, i).case_id).collect();
    let mut kept = Vec::new();
    let mut dead = None;
    let mut tasks = tokio::task::JoinSet::new();
    for e in events {
        let outcome = if pending_cases.contains(&e.case_id) {
            kept.push(e.id.clone());
            continue;
        } else if dead.is_none() {
            dead = Some(e.id.clone());
            AttemptOutcome::Dead {
                error: "HTTP 400: bad".to_owned(),
            }
        } else {
            AttemptOutcome::Delivered
        };
        let s = s.clone();
        tasks.spawn(async move {
            s.record_attempt(DeliveryAttempt {
                event_id: e.id,
                sink: "file".to_owned(),
                http_status: None,
                outcome,
            })
            .await
            .expect("attempt");
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("attempt task");
    }
    (kept, dead.expect("one dead event"))
}

#[tokio::test]
async fn age_retention_prunes_finished_data_keeps_pending_and_shrinks_the_file() {
    let t = TempStore::new().await;
    let s = &t.store;
    let (pending, dead) = fill(s, 600, 5).await;
    let before = file_size(&t.path());
    assert!(before > 2_000_000, "filled: {before}");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let report = s
        .prune(RetentionPolicy {
            max_age_secs: Some(0),
            max_bytes: None,
            audit_max_age_secs: None,
        })
        .await
        .expect("prune");
    let after = file_size(&t.path());
    assert_eq!(report.bytes_after, after);
    assert!(
        after * 4 < before,
        "space reclaimed on disk: {before} -> {after} bytes ({report:?})"
    );
    assert_eq!(report.events, 600 - 5 - 1, "delivered events pruned");
    // 594 fully delivered messages plus the 12 rejected ones.
    assert_eq!(report.messages, 594 + 12);

    // Pending and dead events, and their messages, are kept.
    let left = s
        .read(|r| r.list_events(None, 10_000))
        .await
        .expect("events");
    let mut left_ids: Vec<String> = left.iter().map(|e| e.id.clone()).collect();
    left_ids.sort();
    let mut expected = pending.clone();
    expected.push(dead.clone());
    expected.sort();
    assert_eq!(left_ids, expected);
    for e in &left {
        let m = e.message_id.expect("message kept");
        assert!(s.get_message(m).await.expect("get").is_some());
    }
    assert_eq!(s.outbox_stats().await.expect("stats").pending, 5);
    // Cases are never pruned.
    assert!(
        s.get_case(&case(300, 300).case_id)
            .await
            .expect("get")
            .is_some()
    );
}

#[tokio::test]
async fn size_budget_prunes_oldest_finished_data_first_but_never_pending() {
    let t = TempStore::new().await;
    let s = &t.store;
    let (pending, _dead) = fill(s, 400, 3).await;
    let all_ids = |s: Store| async move {
        s.list_messages(MessageFilter {
            after_id: Some(0),
            limit: Some(10_000),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.id)
        .collect::<std::collections::BTreeSet<i64>>()
    };
    let before = all_ids(s.clone()).await;
    let protected: std::collections::BTreeSet<i64> = s
        .read(|r| r.list_events(None, 100_000))
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.state != EventState::Delivered)
        .filter_map(|e| e.message_id)
        .collect();
    let report = s
        .prune(RetentionPolicy {
            max_age_secs: None,
            max_bytes: Some(1_000_000),
            audit_max_age_secs: None,
        })
        .await
        .expect("prune");
    assert!(report.messages > 200, "{report:?}");
    assert!(report.bytes_after < report.bytes_before / 2, "{report:?}");
    let after = all_ids(s.clone()).await;
    assert!(protected.is_subset(&after), "unfinished messages kept");
    // The oldest finished messages went first: every deleted id is older than
    // every surviving finished one.
    let deleted: Vec<i64> = before.difference(&after).copied().collect();
    let newest_deleted = deleted.iter().max().copied().expect("some deleted");
    let oldest_kept = after
        .difference(&protected)
        .min()
        .copied()
        .expect("some finished kept");
    assert!(
        newest_deleted < oldest_kept,
        "{newest_deleted} vs {oldest_kept}"
    );
    let events = s
        .read(|r| r.list_events(Some(EventState::Pending), 100))
        .await
        .expect("events");
    assert_eq!(events.len(), pending.len());

    // A budget below what unfinished data needs stops at the unfinished data.
    let report = s
        .prune(RetentionPolicy {
            max_age_secs: None,
            max_bytes: Some(1),
            audit_max_age_secs: None,
        })
        .await
        .expect("prune");
    let _ = report;
    assert_eq!(s.outbox_stats().await.expect("stats").pending, 3);
    assert_eq!(s.outbox_stats().await.expect("stats").dead, 1);
}

/// The audit trail has its own horizon: pruning messages at age 0 and a tiny
/// size budget leaves every audit row; only the audit horizon removes them.
#[tokio::test]
async fn audit_rows_survive_message_retention_and_the_size_budget() {
    let t = TempStore::new().await;
    let s = &t.store;
    fill(s, 50, 1).await;
    for i in 0..20 {
        s.audit(AuditEntry {
            actor: "cli:test".to_owned(),
            action: "phi.read".to_owned(),
            target: Some(format!("message:{i}")),
            detail: None,
            case_id: None,
        })
        .await
        .expect("audit");
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let report = s
        .prune(RetentionPolicy {
            max_age_secs: Some(0),
            max_bytes: Some(1),
            audit_max_age_secs: Some(2_190 * 86_400),
        })
        .await
        .expect("prune");
    assert!(report.messages > 0, "messages were pruned: {report:?}");
    assert_eq!(report.audit, 0, "{report:?}");
    let kept = s.read(|r| r.audit_log(1_000)).await.expect("audit log");
    assert_eq!(kept.len(), 20);
    // Past the audit horizon they go.
    let report = s
        .prune(RetentionPolicy {
            max_age_secs: None,
            max_bytes: None,
            audit_max_age_secs: Some(0),
        })
        .await
        .expect("prune");
    assert_eq!(report.audit, 20, "{report:?}");
}
