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

#[tokio::test]
async fn a_case_is_found_by_its_current_reference_only() {
    let t = TempStore::new().await;
    let s = &t.store;
    let (id, _) = commit(s, 7, "REQ-OLD", "raw 7").await;
    // An update of the same case under a new submission identifier.
    let (again, _) = commit(s, 7, "REQ-NEW", "raw 7 updated").await;
    assert_eq!(again, id);
    let by = |value: &'static str| async move {
        s.case_by_reference("hl7v2", "pas_submission", value)
            .await
            .expect("lookup")
            .map(|r| r.case.case_id)
    };
    assert_eq!(by("REQ-NEW").await.as_deref(), Some(id.as_str()));
    assert_eq!(
        by("REQ-OLD").await,
        None,
        "the replaced value names no case"
    );
    // A name no adapter looks cases up by is refused, not scanned for.
    let refused = s
        .case_by_reference("hl7v2", "placer_order", "ORD7")
        .await
        .expect_err("not indexed");
    assert!(refused.to_string().contains("placer_order"), "{refused}");
}

#[tokio::test]
async fn a_store_from_before_the_index_is_backfilled_when_opened() {
    let t = TempStore::new().await;
    let raw = format!("MSH|^~\\&|{}", "OBX|synthetic|".repeat(40));
    let (id, message_id) = commit(&t.store, 8, "REQ-8", &raw).await;
    let path = t.path();
    t.store.close().await;
    // Make the file what schema 6 wrote: no case_references table, migration
    // 8's indexes and column undone, migrations 9 and 11's packing undone
    // (raw bytes, snapshots and event bodies stored as given) and migration
    // 10's heads back in their own table.
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(
            r#"CREATE TABLE outbox_heads (
                 case_id     TEXT PRIMARY KEY,
                 event_id    TEXT NOT NULL,
                 seq         INTEGER NOT NULL,
                 due_ms      INTEGER,
                 created_ms  INTEGER NOT NULL
             );
             CREATE INDEX outbox_heads_due ON outbox_heads (due_ms) WHERE due_ms IS NOT NULL;
             CREATE INDEX outbox_heads_created ON outbox_heads (created_ms);
             INSERT INTO outbox_heads (case_id, event_id, seq, due_ms, created_ms)
                 SELECT c.case_id, e.id, c.head_seq, c.head_due_ms, c.head_created_ms
                 FROM cases c JOIN events e ON e.case_id = c.case_id AND e.seq = c.head_seq;
             DROP INDEX cases_head_due;
             DROP INDEX cases_head_age;
             DROP INDEX cases_held;
             ALTER TABLE cases DROP COLUMN head_seq;
             ALTER TABLE cases DROP COLUMN head_due_ms;
             ALTER TABLE cases DROP COLUMN head_created_ms;"#,
        )
        .expect("heads in their own table");
        let heads: i64 = conn
            .query_row("SELECT COUNT(*) FROM outbox_heads", [], |r| r.get(0))
            .expect("heads");
        assert_eq!(heads, 1, "the pending event was its case's head");
        unpack_in_place(&conn, "messages", "id", "raw", "raw_codec", false);
        unpack_in_place(
            &conn,
            "cases",
            "case_id",
            "snapshot",
            "snapshot_codec",
            true,
        );
        unpack_in_place(&conn, "events", "id", "body", "body_codec", true);
        conn.execute_batch(
            r#"ALTER TABLE messages DROP COLUMN raw_codec;
             ALTER TABLE messages DROP COLUMN raw_len;
             ALTER TABLE cases DROP COLUMN snapshot_codec;
             ALTER TABLE events DROP COLUMN body_codec;
             DROP INDEX events_decision;
             CREATE INDEX events_decision ON events (decision_id);
             DROP TABLE case_references;
             DROP INDEX messages_control;
             CREATE INDEX messages_dedup ON messages (content_hash, sender, control_id)
                 WHERE state = 'accepted';
             CREATE INDEX messages_control ON messages (control_id, id);
             CREATE INDEX events_open_case ON events (case_id, seq)
                 WHERE state = 'pending' OR (state = 'dead' AND skipped_at_ms IS NULL);
             UPDATE events SET body = body || ',"data":' ||
                 (SELECT snapshot FROM cases c WHERE c.case_id = events.case_id) ||
                 ',"sequence":"' || printf('%010d', seq) || '"}'
                 WHERE shares_snapshot = 1;
             ALTER TABLE events DROP COLUMN shares_snapshot;
             PRAGMA user_version = 6;"#,
        )
        .expect("downgrade");
    }
    let reopened = Store::open(&path, gateway_store::StoreOptions::default())
        .await
        .expect("migrates");
    let found = reopened
        .case_by_reference("hl7v2", "pas_submission", "REQ-8")
        .await
        .expect("lookup")
        .expect("backfilled");
    assert_eq!(found.case.case_id, id);
    // An event stored whole before migration 8 still reads whole.
    let case_id = id.clone();
    let events = reopened
        .read(move |r| r.case_events(&case_id))
        .await
        .expect("events");
    assert_eq!(events.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&events[0].body).expect("json");
    assert_eq!(body["data"]["case_id"], id.as_str());
    assert_eq!(body["sequence"], "0000000001");
    // Its head moved into the case row: the forwarder still finds it due.
    let due = reopened
        .read(|r| r.deliverable(10, &std::collections::HashSet::new()))
        .await
        .expect("deliverable");
    assert_eq!(
        due.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        [events[0].id.as_str()]
    );
    // A message stored before packing reads back byte for byte, with its size.
    let stored = reopened
        .read(move |r| r.get_message(message_id))
        .await
        .expect("read")
        .expect("message");
    assert_eq!(stored.raw, raw.as_bytes());
    assert_eq!(stored.summary.size, raw.len() as i64);
    reopened.close().await;
}

/// Rewrites `column` of every row of `table` whose `codec` column says it is
/// packed (1: one zstd frame; 2: one made with the store's dictionary 1) as
/// the bytes it stands for: what the store held before migration 9.
fn unpack_in_place(
    conn: &rusqlite::Connection,
    table: &str,
    key: &str,
    column: &str,
    codec: &str,
    text: bool,
) {
    let rows: Vec<(rusqlite::types::Value, Vec<u8>, i64)> = conn
        .prepare(&format!(
            "SELECT {key}, {column}, {codec} FROM {table} WHERE {codec} != 0"
        ))
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .expect("packed rows");
    assert!(!rows.is_empty(), "{table}.{column} was stored packed");
    let dictionary: &[u8] = match rows.first().map(|r| r.2) {
        Some(2) => include_bytes!("../dictionaries/pack-1.bin"),
        _ => &[],
    };
    for (id, packed, _) in rows {
        let mut decoder = zstd::bulk::Decompressor::with_dictionary(dictionary).expect("decoder");
        let size = zstd::zstd_safe::get_frame_content_size(&packed)
            .ok()
            .flatten()
            .expect("a zstd frame with its size");
        let bytes = decoder
            .decompress(&packed, size as usize)
            .expect("a zstd frame");
        let value = if text {
            rusqlite::types::Value::Text(String::from_utf8(bytes).expect("utf-8"))
        } else {
            rusqlite::types::Value::Blob(bytes)
        };
        conn.execute(
            &format!("UPDATE {table} SET {column} = ?1, {codec} = 0 WHERE {key} = ?2"),
            rusqlite::params![value, id],
        )
        .expect("unpacked");
    }
}
