//! The alert signals: recent intake counts by verdict, and the run of failed
//! delivery attempts at the tail of the attempt log.

use gateway_testkit::samples as common;

use common::{accepted, case, rejected};
use gateway_store::{AttemptOutcome, DeliveryAttempt, IntakeCounts};
use gateway_testkit::store::TempStore;

#[tokio::test]
async fn intake_counts_split_failed_from_total() {
    let temp = TempStore::new().await;
    let store = &temp.store;
    store
        .commit_inbound(accepted(case(1, 1), "MSG0001", "raw-1"))
        .await
        .expect("commit");
    store
        .commit_inbound(accepted(case(2, 2), "MSG0002", "raw-2"))
        .await
        .expect("commit");
    store
        .commit_inbound(rejected("MSG0003", "raw-3", "unparseable"))
        .await
        .expect("commit");
    assert_eq!(
        store.intake_counts_since(0).await.expect("counts"),
        IntakeCounts {
            total: 3,
            failed: 1
        }
    );
    // The samples were received on 2026-11-22; nothing after 2100.
    assert_eq!(
        store
            .intake_counts_since(4_102_444_800_000)
            .await
            .expect("counts"),
        IntakeCounts::default()
    );
}

#[tokio::test]
async fn failed_delivery_run_counts_back_from_the_newest_attempt() {
    let temp = TempStore::new().await;
    let store = &temp.store;
    assert_eq!(store.consecutive_failed_deliveries().await.expect("n"), 0);
    store
        .commit_inbound(accepted(case(1, 1), "MSG0001", "raw-1"))
        .await
        .expect("commit");
    let events = store
        .read(|r| r.list_events(None, 10))
        .await
        .expect("events");
    let event_id = events[0].id.clone();
    let attempt = |outcome| DeliveryAttempt {
        event_id: event_id.clone(),
        sink: "http".to_owned(),
        http_status: Some(503),
        outcome,
    };
    let retry = || AttemptOutcome::Retry {
        retry_at: jiff::Timestamp::now(),
        error: "503".to_owned(),
    };
    for expected in 1..=3 {
        store
            .record_attempt(attempt(retry()))
            .await
            .expect("attempt");
        assert_eq!(
            store.consecutive_failed_deliveries().await.expect("n"),
            expected
        );
    }
    store
        .record_attempt(attempt(AttemptOutcome::Delivered))
        .await
        .expect("attempt");
    assert_eq!(store.consecutive_failed_deliveries().await.expect("n"), 0);
}
