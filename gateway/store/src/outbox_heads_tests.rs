//! Tests of the outbox's per-case heads: the scheduling queries cost the same
//! whatever the backlog, and the heads the writer keeps always equal "the first
//! open event of each case" (pending, or a dead letter not skipped) computed
//! from scratch.

use std::collections::BTreeMap;

use gateway_core::Case;
use gateway_core::case::CaseSource;
use jiff::Timestamp;
use rand::Rng;
use rusqlite::{Connection, StatementStatus};

use crate::model::{AttemptOutcome, DeliveryAttempt};
use crate::ops;
use crate::read::{DELIVERABLE, NEXT_DUE};
use crate::schema;
use crate::time::now_ms;

/// The scheduling query before `outbox_heads`: every pending event checked
/// against its case's earlier pending events. Kept here as the baseline that
/// shows the measurement below sees a scan when there is one.
const SCAN_DELIVERABLE: &str = "SELECT id FROM events WHERE state = 'pending'
     AND next_attempt_at_ms <= ?1
     AND NOT EXISTS (SELECT 1 FROM events p
                     WHERE p.case_id = events.case_id AND p.state = 'pending'
                       AND p.seq < events.seq)
     ORDER BY next_attempt_at_ms, created_at_ms LIMIT ?2";

fn store() -> Connection {
    let mut conn = Connection::open_in_memory().expect("memory db");
    crate::packing::register(&conn).expect("unpack functions");
    schema::migrate(&mut conn).expect("migrate");
    conn
}

fn case(n: usize) -> Case {
    let source = CaseSource {
        adapter: "hl7v2".to_owned(),
        profile: "epic".to_owned(),
        message_type: Some("ORM^O01".to_owned()),
        control_id: Some(format!("C{n}")),
        sender: Some("T^T".to_owned()),
        received_at: "2026-11-22T10:00:00Z".to_owned(),
    };
    Case::new(format!("case-{n:08}"), "mso-demo", source)
}

/// `events` pending events: one case per event, every tenth case three events.
fn seed(conn: &Connection, events: usize) {
    let tx = conn.unchecked_transaction().expect("tx");
    let now = now_ms();
    let mut made = 0;
    let mut n = 0;
    while made < events {
        let per_case = if n % 10 == 0 { 3 } else { 1 };
        for _ in 0..per_case.min(events - made) {
            ops::append_event(&tx, case(n), None, None, None, now).expect("append");
            made += 1;
        }
        n += 1;
    }
    tx.commit().expect("commit");
}

/// SQLite virtual-machine steps one run of `sql` takes (all rows read).
fn vm_steps(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> i32 {
    let mut st = conn.prepare(sql).expect("prepare");
    let mut rows = st.query(params).expect("query");
    while rows.next().expect("row").is_some() {}
    drop(rows);
    st.get_status(StatementStatus::VmStep)
}

/// Steps of (deliverable, next due, a retried head's new due time, the old
/// scan) with `backlog` pending events.
fn scheduling_steps(backlog: usize) -> (i32, i32, i32, i32) {
    let conn = store();
    seed(&conn, backlog);
    let due = now_ms() + 1;
    let retried = vm_steps(
        &conn,
        ops::RESCHEDULE_HEAD,
        rusqlite::params![case(backlog / 20).case_id, 1, due + 60_000],
    );
    assert_eq!(conn.changes(), 1, "the retried head moved");
    (
        vm_steps(&conn, DELIVERABLE, rusqlite::params![due, 16]),
        vm_steps(&conn, NEXT_DUE, []),
        retried,
        vm_steps(&conn, SCAN_DELIVERABLE, rusqlite::params![due, 16]),
    )
}

#[test]
fn scheduling_work_stays_flat_as_the_backlog_grows() {
    let (small_deliverable, small_due, small_retry, small_scan) = scheduling_steps(1_000);
    let (large_deliverable, large_due, large_retry, large_scan) = scheduling_steps(50_000);
    eprintln!(
        "VM steps at 1 000 / 50 000 pending: deliverable {small_deliverable} / \
         {large_deliverable}, next due {small_due} / {large_due}, retry {small_retry} / \
         {large_retry}, old scan {small_scan} / {large_scan}"
    );
    // The measurement sees a scan: the old query grows with the backlog.
    assert!(
        large_scan > 10 * small_scan,
        "baseline scan: {small_scan} → {large_scan}"
    );
    // The heads-based queries do not (a few steps of B-tree depth at most).
    assert!(
        large_deliverable <= small_deliverable + small_deliverable / 4 + 20,
        "deliverable: {small_deliverable} → {large_deliverable}"
    );
    assert!(
        large_due <= small_due + 20,
        "next due: {small_due} → {large_due}"
    );
    assert!(
        large_retry <= small_retry + 20,
        "retry: {small_retry} → {large_retry}"
    );
}

/// A case's head: its event id, when it is due, when it was made.
type Head = (String, Option<i64>, i64);

/// Heads computed from scratch: each case's first event that is pending (due
/// at its next attempt) or dead and not skipped (holding the case: no due time).
fn recomputed(conn: &Connection) -> BTreeMap<String, Head> {
    let mut st = conn
        .prepare(
            "SELECT case_id, id, CASE WHEN state = 'pending' THEN next_attempt_at_ms END,
                    created_at_ms
             FROM events e
             WHERE (state = 'pending' OR (state = 'dead' AND skipped_at_ms IS NULL))
               AND seq = (SELECT MIN(seq) FROM events p WHERE p.case_id = e.case_id
                          AND (p.state = 'pending'
                               OR (p.state = 'dead' AND p.skipped_at_ms IS NULL)))",
        )
        .expect("prepare");
    st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

/// Heads as the writer keeps them in the case rows. A head that names no
/// event would drop out of the join: the count of heads is compared too.
fn kept(conn: &Connection) -> BTreeMap<String, Head> {
    let mut st = conn
        .prepare(
            "SELECT c.case_id, e.id, c.head_due_ms, c.head_created_ms
             FROM cases c JOIN events e ON e.case_id = c.case_id AND e.seq = c.head_seq",
        )
        .expect("prepare");
    let heads: BTreeMap<String, Head> = st
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    let named: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM cases WHERE head_seq IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        named as usize,
        heads.len(),
        "every head names an event of its case"
    );
    let stray: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM cases
             WHERE head_seq IS NULL AND (head_due_ms IS NOT NULL OR head_created_ms IS NOT NULL)",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        stray, 0,
        "a case without a head has no due or creation time"
    );
    heads
}

#[test]
fn heads_follow_every_change_of_the_outbox() {
    let conn = store();
    let mut rng = rand::rng();
    for step in 0..3_000 {
        let pending: Vec<String> = conn
            .prepare("SELECT id FROM events WHERE state = 'pending'")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("pending");
        let dead: Vec<String> = conn
            .prepare("SELECT id FROM events WHERE state = 'dead'")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("dead");
        let pick = |ids: &[String], rng: &mut rand::rngs::ThreadRng| {
            ids.get(rng.random_range(0..ids.len().max(1))).cloned()
        };
        let outcome = match rng.random_range(0..10) {
            0..=3 => {
                ops::append_event(
                    &conn,
                    case(rng.random_range(0..40)),
                    None,
                    None,
                    None,
                    now_ms(),
                )
                .expect("append");
                None
            }
            4..=5 => Some(AttemptOutcome::Delivered),
            6 => Some(AttemptOutcome::Dead {
                error: "HTTP 422".to_owned(),
            }),
            7..=8 => Some(AttemptOutcome::Retry {
                retry_at: Timestamp::from_millisecond(now_ms() + rng.random_range(1..100_000))
                    .expect("time"),
                error: "HTTP 503".to_owned(),
            }),
            9 if rng.random_bool(0.5) => {
                if let Some(id) = pick(&dead, &mut rng) {
                    ops::requeue_event(&conn, &id).expect("requeue");
                }
                None
            }
            _ => {
                if let Some(id) = pick(&dead, &mut rng) {
                    // Skipping twice is refused; either way the heads must hold.
                    let _ = ops::skip_dead_event(&conn, &id);
                }
                None
            }
        };
        if let (Some(outcome), Some(event_id)) = (outcome, pick(&pending, &mut rng)) {
            ops::record_attempt(
                &conn,
                &DeliveryAttempt {
                    event_id,
                    sink: "test".to_owned(),
                    http_status: None,
                    outcome,
                },
            )
            .expect("attempt");
        }
        assert_eq!(kept(&conn), recomputed(&conn), "after step {step}");
    }
}

#[test]
fn attempt_history_keeps_the_first_and_last_attempts_and_counts_all() {
    let conn = store();
    let appended = ops::append_event(&conn, case(1), None, None, None, now_ms()).expect("append");
    for n in 0..30u16 {
        ops::record_attempt(
            &conn,
            &DeliveryAttempt {
                event_id: appended.event_id.clone(),
                sink: "test".to_owned(),
                http_status: Some(500 + n),
                outcome: AttemptOutcome::Retry {
                    retry_at: Timestamp::from_millisecond(now_ms()).expect("time"),
                    error: format!("HTTP {}", 500 + n),
                },
            },
        )
        .expect("attempt");
    }
    let kept: Vec<i64> = conn
        .prepare("SELECT http_status FROM delivery_attempts ORDER BY id")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .expect("attempts");
    let expected: Vec<i64> = (500..502).chain(522..530).collect();
    assert_eq!(kept, expected, "first 2 and last 8 kept");
    let counted: i64 = conn
        .query_row("SELECT attempts FROM events", [], |r| r.get(0))
        .expect("count");
    assert_eq!(counted, 30, "every attempt counted");
}
