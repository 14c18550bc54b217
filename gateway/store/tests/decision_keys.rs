//! Decisions exactly once on a real SQLite file: a key committed with its
//! decision answers repeats with the first receipt and writes nothing; the
//! same key for another request is refused; without a key every call is a
//! new decision; the audit row commits with the decision and only then.

use gateway_testkit::samples as common;

use common::{accepted, case};
use gateway_core::case::{Decision, DecisionStatus};
use gateway_store::*;
use gateway_testkit::store::TempStore;

fn decision(status: DecisionStatus) -> Decision {
    serde_json::from_value(
        serde_json::json!({ "status": status, "authorization_number": "AUTH-SYN-1" }),
    )
    .expect("decision")
}

fn key(k: &str) -> Option<DecisionKey> {
    Some(DecisionKey {
        channel: "admin-api".to_owned(),
        key: k.to_owned(),
    })
}

fn audit(actor: &str) -> Option<AuditEntry> {
    Some(AuditEntry {
        actor: actor.to_owned(),
        action: "decision.record".to_owned(),
        target: None,
        detail: None,
        case_id: None,
    })
}

async fn counts(s: &Store, case_id: &str) -> (usize, usize) {
    let id = case_id.to_owned();
    let decided = s
        .read(move |r| r.case_events(&id))
        .await
        .expect("events")
        .iter()
        .filter(|e| e.event_type == gateway_core::event::CaseEventType::Decided)
        .count();
    let audit = s.read(|r| r.audit_log(100)).await.expect("audit").len();
    (decided, audit)
}

#[tokio::test]
async fn a_key_records_once_and_binds_its_request() {
    let t = TempStore::new().await;
    let s = &t.store;
    let c = case(1, 1);
    let case_id = c.case_id.clone();
    s.commit_inbound(accepted(c, "MSG1", "MSH|1"))
        .await
        .expect("commit");

    let first = s
        .record_decision_once(
            &case_id,
            decision(DecisionStatus::Approved),
            key("k-1"),
            audit("ops"),
        )
        .await
        .expect("first");
    assert!(!first.replayed());
    let again = s
        .record_decision_once(
            &case_id,
            decision(DecisionStatus::Approved),
            key("k-1"),
            audit("ops"),
        )
        .await
        .expect("again");
    assert!(again.replayed());
    assert_eq!(again.receipt(), first.receipt());
    assert_eq!(
        counts(s, &case_id).await,
        (1, 1),
        "one decided event, one audit row"
    );
    let log = s.read(|r| r.audit_log(10)).await.expect("audit");
    assert_eq!(log[0].entry.actor, "ops");
    assert_eq!(
        log[0].entry.target.as_deref(),
        Some(format!("decision:{}", first.receipt().decision_id).as_str())
    );

    // The read-side lookup agrees, and another request under the key is refused.
    let looked = s
        .decision_for_key(
            key("k-1").expect("key"),
            &case_id,
            &decision(DecisionStatus::Approved),
        )
        .await
        .expect("lookup");
    assert_eq!(looked.as_ref(), Some(first.receipt()));
    let reused = s
        .record_decision_once(
            &case_id,
            decision(DecisionStatus::Denied),
            key("k-1"),
            audit("ops"),
        )
        .await;
    assert!(
        matches!(reused, Err(StoreError::IdempotencyKeyReused { .. })),
        "{reused:?}"
    );
    assert_eq!(
        counts(s, &case_id).await,
        (1, 1),
        "a refused reuse writes nothing"
    );

    // Another channel's key of the same text is another key.
    let other = s
        .record_decision_once(
            &case_id,
            decision(DecisionStatus::Approved),
            Some(DecisionKey {
                channel: "bus".to_owned(),
                key: "k-1".to_owned(),
            }),
            None,
        )
        .await
        .expect("other channel");
    assert!(!other.replayed());

    // Without a key every call is new.
    for _ in 0..2 {
        let new = s
            .record_decision_once(&case_id, decision(DecisionStatus::Approved), None, None)
            .await
            .expect("unkeyed");
        assert!(!new.replayed());
    }
    assert_eq!(counts(s, &case_id).await, (4, 1));

    // An unknown case commits neither the key nor the audit row.
    let unknown = s
        .record_decision_once(
            "case-unknown",
            decision(DecisionStatus::Approved),
            key("k-2"),
            audit("ops"),
        )
        .await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownCase(_))),
        "{unknown:?}"
    );
    assert_eq!(counts(s, &case_id).await, (4, 1));
    let after = s
        .decision_for_key(
            key("k-2").expect("key"),
            "case-unknown",
            &decision(DecisionStatus::Approved),
        )
        .await
        .expect("lookup");
    assert_eq!(after, None);
}
