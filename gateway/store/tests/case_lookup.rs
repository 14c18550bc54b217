//! Finding a case by one of its `references` (the PAS server's Claim
//! identifier lookups) and by the message that produced it, on a real store.

use gateway_store::{Disposition, Store};
use gateway_testkit::samples::{accepted, case};
use gateway_testkit::store::TempStore;

async fn commit(store: &Store, n: u32, claim: &str, raw: &str) -> (String, i64) {
    let mut c = case(n, n);
    c.references
        .insert("pas_submission".to_owned(), claim.to_owned());
    let receipt = store
        .commit_inbound(accepted(c, &format!("MSG{n}"), raw))
        .await
        .expect("commit");
    let Disposition::Accepted { case_id, .. } = receipt.disposition else {
        panic!("accepted: {receipt:?}");
    };
    (case_id, receipt.receipt.message_id)
}

#[tokio::test]
async fn cases_are_found_by_reference_and_by_message() {
    let t = TempStore::new().await;
    let s = &t.store;
    let (first, first_message) = commit(s, 1, "REQ-1", "raw 1").await;
    let (second, _) = commit(s, 2, "REQ-2", "raw 2").await;

    let found = s
        .case_by_reference("hl7v2", "pas_submission", "REQ-2")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.case.case_id, second);
    // Another adapter's cases, or an unknown value, are not found.
    assert!(
        s.case_by_reference("davinci-pas", "pas_submission", "REQ-2")
            .await
            .expect("lookup")
            .is_none()
    );
    assert!(
        s.case_by_reference("hl7v2", "pas_submission", "REQ-3")
            .await
            .expect("lookup")
            .is_none()
    );
    // Reference names are plain identifiers, never a JSON path.
    assert!(
        s.case_by_reference("hl7v2", "pas_submission') OR 1=1 --", "x")
            .await
            .is_err()
    );

    let by_message = s
        .case_of_message(first_message)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(by_message.case.case_id, first);
    // A duplicate produced no event: its own row names no case.
    let dup = s
        .commit_inbound(accepted(case(1, 1), "MSG1", "raw 1"))
        .await
        .expect("dup");
    assert!(matches!(dup.disposition, Disposition::Duplicate { .. }));
    assert!(
        s.case_of_message(dup.receipt.message_id)
            .await
            .expect("lookup")
            .is_none()
    );
}
