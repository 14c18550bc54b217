//! The store packs raw messages and case snapshots (schema migrations 9 and
//! 11: codec 2 is zstd with the store's dictionary 1):
//! what is on disk is smaller, and every reader still sees the exact bytes
//! and the whole case.

use gateway_store::Disposition;
use gateway_testkit::samples::{accepted, case};
use gateway_testkit::store::TempStore;

#[tokio::test]
async fn raw_messages_and_case_snapshots_are_stored_packed_and_read_back_whole() {
    let t = TempStore::new().await;
    let raw = format!(
        "MSH|^~\\&|EPIC|NORTH|||20261122100000||ORM^O01|PACK1|P|2.5.1\r{}",
        "OBX|1|TX|NOTE^Synthetic note||synthetic text, not a patient's|\r".repeat(30)
    );
    let mut made = case(3, 3);
    made.notes = vec!["synthetic ".repeat(50)];
    let receipt = t
        .store
        .commit_inbound(accepted(made.clone(), "PACK1", &raw))
        .await
        .expect("commit");
    let Disposition::Accepted { case_id, .. } = receipt.disposition else {
        panic!("accepted: {receipt:?}");
    };
    let message_id = receipt.receipt.message_id;

    let stored = t
        .store
        .read(move |r| r.get_message(message_id))
        .await
        .expect("read")
        .expect("message");
    assert_eq!(stored.raw, raw.as_bytes(), "the exact bytes received");
    assert_eq!(stored.summary.size, raw.len() as i64, "the size received");
    let id = case_id.clone();
    let record = t
        .store
        .read(move |r| r.get_case(&id))
        .await
        .expect("read")
        .expect("case");
    assert_eq!(record.case, made);
    let id = case_id.clone();
    let events = t
        .store
        .read(move |r| r.case_events(&id))
        .await
        .expect("events");
    let body: serde_json::Value = serde_json::from_str(&events[0].body).expect("json");
    assert_eq!(
        body["data"],
        serde_json::to_value(&made).expect("case json"),
        "the event carries the whole case"
    );

    let path = t.path();
    t.store.close().await;
    let conn = rusqlite::Connection::open(&path).expect("open");
    let (codec, on_disk, raw_len): (i64, i64, i64) = conn
        .query_row(
            "SELECT raw_codec, length(raw), raw_len FROM messages WHERE id = ?1",
            [message_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("message row");
    assert_eq!(
        (codec, raw_len),
        (2, raw.len() as i64),
        "zstd with dictionary 1"
    );
    assert!(on_disk * 2 < raw.len() as i64, "{on_disk} bytes on disk");
    let (codec, kind, on_disk): (i64, String, i64) = conn
        .query_row(
            "SELECT snapshot_codec, typeof(snapshot), length(snapshot) FROM cases",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("case row");
    let whole = serde_json::to_string(&made).expect("case json").len();
    assert_eq!((codec, kind.as_str()), (2, "blob"));
    assert!(
        on_disk * 2 < whole as i64,
        "{on_disk} of {whole} bytes on disk"
    );
    // The event keeps only its envelope (it shares the snapshot), packed.
    let (codec, kind, shares): (i64, String, i64) = conn
        .query_row(
            "SELECT body_codec, typeof(body), shares_snapshot FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("event row");
    assert_eq!((codec, kind.as_str(), shares), (2, "blob", 1));
}
