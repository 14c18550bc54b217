//! Operator evidence: stored with its body, read back by id, listed by case and
//! time without bodies, readable from a separate Reader, and removed by
//! retention once older than the retention age (younger evidence stays).

use gateway_store::*;
use gateway_testkit::store::TempStore;

fn shot(case_id: Option<&str>, body: &[u8]) -> NewEvidence {
    NewEvidence {
        adapter: "desktop".into(),
        kind: "abort-screenshot".into(),
        case_id: case_id.map(str::to_owned),
        content_type: "image/png".into(),
        body: body.to_vec(),
        detail: Some(r#"{"reason":"verify_mismatch"}"#.into()),
    }
}

#[tokio::test]
async fn put_get_and_list() {
    let t = TempStore::new().await;
    let s = &t.store;
    let a = s
        .put_evidence(shot(Some("case-a"), b"\x89PNG-a"))
        .await
        .expect("put");
    let b = s
        .put_evidence(shot(None, b"\x89PNG-bb"))
        .await
        .expect("put");
    let c = s
        .put_evidence(shot(Some("case-a"), b"\x89PNG-ccc"))
        .await
        .expect("put");
    assert!(a < b && b < c);

    let got = s.get_evidence(b).await.expect("get").expect("exists");
    assert_eq!(got.body, b"\x89PNG-bb");
    assert_eq!(got.record.id, b);
    assert_eq!(got.record.adapter, "desktop");
    assert_eq!(got.record.kind, "abort-screenshot");
    assert_eq!(got.record.case_id, None);
    assert_eq!(got.record.content_type, "image/png");
    assert_eq!(got.record.size, 7);
    assert_eq!(
        got.record.detail.as_deref(),
        Some(r#"{"reason":"verify_mismatch"}"#)
    );
    assert!(s.get_evidence(c + 100).await.expect("get").is_none());
    // Debug never prints the body.
    assert!(!format!("{got:?}").contains("PNG-bb"));

    let all = s
        .list_evidence(EvidenceFilter::default())
        .await
        .expect("list");
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![c, b, a],
        "newest first"
    );
    let for_case = s
        .list_evidence(EvidenceFilter {
            case_id: Some("case-a".into()),
            ..EvidenceFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(
        for_case.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![c, a]
    );
    let limited = s
        .list_evidence(EvidenceFilter {
            limit: 1,
            ..EvidenceFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(limited.len(), 1);

    // Time window: everything is at or after the first row's instant, and
    // nothing is before it.
    let first_at = all.last().expect("rows").at;
    let since = s
        .list_evidence(EvidenceFilter {
            since: Some(first_at),
            ..EvidenceFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(since.len(), 3);
    let until = s
        .list_evidence(EvidenceFilter {
            until: Some(first_at),
            ..EvidenceFilter::default()
        })
        .await
        .expect("list");
    assert!(until.is_empty());
    let future = s
        .list_evidence(EvidenceFilter {
            since: Some(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600)),
            ..EvidenceFilter::default()
        })
        .await
        .expect("list");
    assert!(future.is_empty());

    // A separate read-only connection sees the same rows.
    let reader = Reader::open(t.path()).expect("reader");
    let again = reader.get_evidence(a).expect("get").expect("exists");
    assert_eq!(again.body, b"\x89PNG-a");
    assert_eq!(again.record.case_id.as_deref(), Some("case-a"));
}

#[tokio::test]
async fn retention_removes_only_evidence_older_than_the_age() {
    let t = TempStore::new().await;
    let s = &t.store;
    let id = s
        .put_evidence(shot(Some("case-r"), &[7u8; 4096]))
        .await
        .expect("put");
    // An hour of retention keeps fresh evidence.
    let report = s
        .prune(RetentionPolicy {
            max_age_secs: Some(3600),
            max_bytes: None,
            audit_max_age_secs: None,
        })
        .await
        .expect("prune");
    assert_eq!(report.evidence, 0);
    assert!(s.get_evidence(id).await.expect("get").is_some());

    // A retention age of zero makes everything stored before now old.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let report = s
        .prune(RetentionPolicy {
            max_age_secs: Some(0),
            max_bytes: None,
            audit_max_age_secs: None,
        })
        .await
        .expect("prune");
    assert_eq!(report.evidence, 1);
    assert!(s.get_evidence(id).await.expect("get").is_none());
    assert!(
        s.list_evidence(EvidenceFilter::default())
            .await
            .expect("list")
            .is_empty()
    );
}
