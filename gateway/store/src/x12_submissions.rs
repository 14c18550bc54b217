//! The durable queue of the outbound X12 278 request path: which cases are
//! due to leave the gateway as a 278 request to a payer route, and how far
//! each has got.
//!
//! Why a table of its own: a case is due when it is `requested`, a route
//! takes it and no request was written for it on that route. Asking that of
//! the `cases` table on every poll would rescan every case; instead the
//! daemon's worker reads the `messages` committed since its cursor (a range
//! of the primary key), evaluates its routes on their cases, and inserts one
//! row per (case, route) here together with the new cursor position in one
//! transaction — so a kill -9 at any point either re-reads the same messages
//! (the unique index makes the insert idempotent) or finds the rows. Nothing
//! due is forgotten and no case is queued twice for a route.
//!
//! A row moves `due` → `recorded` → `sent`, or ends `refused` (the case
//! cannot be written as a valid 278: due again only when a new message
//! updates the case), `failed` (the partner
//! refused it for good) or `skipped` (the case was no longer `requested`).
//! `recorded` is written in the same transaction as the request's trace in
//! `case_requests` (#12's rule: the trace is durable before the request
//! leaves) and keeps the exact bytes, so a request interrupted after
//! recording is resent byte for byte — same trace, same control numbers —
//! and a payer that did get the first copy sees a duplicate, not a second
//! request.

use gateway_core::Case;
use gateway_core::case::CaseStatus;
use gateway_core::event::CaseEventType;
use rusqlite::{Connection, OptionalExtension, params};

use crate::case_requests::{NewCaseRequest, insert, load_case};
use crate::error::{Result, StoreError};
use crate::model::AuditEntry;
use crate::ops;
use crate::store::Store;
use crate::time::now_ms;

/// Where a submission is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionState {
    /// Queued: no request written yet.
    Due,
    /// Written and recorded (trace in `case_requests`), not yet delivered.
    Recorded,
    /// Delivered (the folder has the file, or the partner answered).
    Sent,
    /// The case cannot be written as a valid 278 (the reason names the
    /// missing facts); due again only when a new message updates the case.
    Refused,
    /// The partner refused the request for good; not retried.
    Failed,
    /// The case was no longer `requested` when its turn came.
    Skipped,
}

impl SubmissionState {
    /// Every state, in the order a submission moves.
    pub const ALL: [SubmissionState; 6] = [
        SubmissionState::Due,
        SubmissionState::Recorded,
        SubmissionState::Sent,
        SubmissionState::Refused,
        SubmissionState::Failed,
        SubmissionState::Skipped,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionState::Due => "due",
            SubmissionState::Recorded => "recorded",
            SubmissionState::Sent => "sent",
            SubmissionState::Refused => "refused",
            SubmissionState::Failed => "failed",
            SubmissionState::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| StoreError::InvalidState(format!("unknown submission state `{s}`")))
    }
}

/// A case committed since the cursor that is in `requested` status, with what
/// routes match on.
#[derive(Debug, Clone)]
pub struct SubmissionCandidate {
    /// The message that committed it.
    pub message_id: i64,
    /// The case as stored now.
    pub case: Case,
}

/// One queued submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X12Submission {
    /// Row id.
    pub id: i64,
    /// The case.
    pub case_id: String,
    /// The route's name.
    pub route: String,
    /// Where it is.
    pub state: SubmissionState,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// The `case_requests` row of the written request, once recorded.
    pub request_id: Option<i64>,
    /// The written 278, while recorded and not yet delivered.
    pub payload: Option<Vec<u8>>,
    /// Why it was refused, failed, skipped or last retried.
    pub reason: Option<String>,
}

const COLUMNS: &str = "id, case_id, route, state, attempts, request_id, payload, reason";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(X12Submission, String)> {
    let state: String = r.get(3)?;
    Ok((
        X12Submission {
            id: r.get(0)?,
            case_id: r.get(1)?,
            route: r.get(2)?,
            state: SubmissionState::Due,
            attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(u32::MAX),
            request_id: r.get(5)?,
            payload: r.get(6)?,
            reason: r.get(7)?,
        },
        state,
    ))
}

fn typed(rows: Vec<(X12Submission, String)>) -> Result<Vec<X12Submission>> {
    rows.into_iter()
        .map(|(mut s, state)| {
            s.state = SubmissionState::parse(&state)?;
            Ok(s)
        })
        .collect()
}

impl Store {
    /// The cases of the accepted messages committed after `cursor`'s position
    /// (at most `limit` messages), keeping those now in `requested` status,
    /// and the id of the last message read (`None` when there was none).
    /// Reads a range of the `messages` primary key: never the whole table.
    pub async fn x12_submission_candidates(
        &self,
        cursor: &str,
        limit: usize,
    ) -> Result<(Vec<SubmissionCandidate>, Option<i64>)> {
        let cursor = cursor.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |r| {
            let after: i64 = r
                .conn
                .prepare_cached("SELECT last_message_id FROM x12_submission_cursor WHERE name = ?1")
                .and_then(|mut st| st.query_row([&cursor], |row| row.get(0)).optional())
                .map_err(StoreError::sql("reading the submission cursor"))?
                .unwrap_or(0);
            let rows: Vec<(i64, Option<String>)> = r
                .conn
                .prepare_cached(
                    "SELECT m.id, unpack_text(c.snapshot, c.snapshot_codec) FROM messages m
                     LEFT JOIN cases c ON c.case_id = m.case_id
                          AND m.state = 'accepted' AND c.status = 'requested'
                     WHERE m.id > ?1 ORDER BY m.id LIMIT ?2",
                )
                .and_then(|mut st| {
                    st.query_map(params![after, limit], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(StoreError::sql("reading newly committed cases"))?;
            let last = rows.last().map(|(id, _)| *id);
            let mut candidates: Vec<SubmissionCandidate> = Vec::new();
            for (message_id, snapshot) in rows {
                let Some(snapshot) = snapshot else { continue };
                let case: Case =
                    serde_json::from_str(&snapshot).map_err(StoreError::json("case snapshot"))?;
                // A case updated by several new messages is one candidate.
                candidates.retain(|c| c.case.case_id != case.case_id);
                candidates.push(SubmissionCandidate { message_id, case });
            }
            Ok((candidates, last))
        })
        .await
    }

    /// Queues `(case_id, route)` pairs and moves `cursor` to `scanned_to`, in
    /// one transaction; returns how many rows became due. A pair already
    /// queued stays as it is — except one that ended `refused` or `skipped`:
    /// the new message that made the case a candidate again (an update that
    /// may complete it, a return to `requested`) makes it due again. A pair
    /// that was recorded or sent is never queued again.
    pub async fn enqueue_x12_submissions(
        &self,
        cursor: &str,
        scanned_to: i64,
        entries: Vec<(String, String)>,
    ) -> Result<usize> {
        let cursor = cursor.to_owned();
        self.inner
            .writer
            .write(move |conn| {
                let now = now_ms();
                let mut added = 0;
                for (case_id, route) in &entries {
                    added += conn
                        .prepare_cached(
                            "INSERT INTO x12_submissions
                             (case_id, route, state, next_attempt_at_ms, created_at_ms, updated_at_ms)
                             VALUES (?1, ?2, 'due', ?3, ?3, ?3)
                             ON CONFLICT (case_id, route) DO UPDATE SET
                                 state = 'due', attempts = 0, reason = NULL,
                                 next_attempt_at_ms = excluded.next_attempt_at_ms,
                                 updated_at_ms = excluded.updated_at_ms
                             WHERE state IN ('refused', 'skipped')",
                        )
                        .and_then(|mut st| st.execute(params![case_id, route, now]))
                        .map_err(StoreError::sql("queueing a 278 request"))?;
                }
                conn.prepare_cached(
                    "INSERT INTO x12_submission_cursor (name, last_message_id) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET last_message_id =
                         max(last_message_id, excluded.last_message_id)",
                )
                .and_then(|mut st| st.execute(params![cursor, scanned_to]))
                .map_err(StoreError::sql("moving the submission cursor"))?;
                Ok(added)
            })
            .await
    }

    /// Submissions to work on now (`due` or `recorded`, their retry time
    /// reached), soonest first, at most `limit`.
    pub async fn due_x12_submissions(&self, limit: usize) -> Result<Vec<X12Submission>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |r| {
            let rows = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM x12_submissions
                     WHERE state IN ('due', 'recorded') AND next_attempt_at_ms <= ?1
                     ORDER BY next_attempt_at_ms, id LIMIT ?2"
                ))
                .and_then(|mut st| {
                    st.query_map(params![now_ms(), limit], row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(StoreError::sql("reading due 278 requests"))?;
            typed(rows)
        })
        .await
    }

    /// The submissions of `case_id`, oldest first.
    pub async fn x12_submissions(&self, case_id: &str) -> Result<Vec<X12Submission>> {
        let case_id = case_id.to_owned();
        self.read(move |r| {
            let rows = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM x12_submissions WHERE case_id = ?1 ORDER BY id"
                ))
                .and_then(|mut st| {
                    st.query_map([&case_id], row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(StoreError::sql("reading a case's 278 requests"))?;
            typed(rows)
        })
        .await
    }

    /// Records the request written for submission `id`: its trace and
    /// control numbers in `case_requests` (with `audit`), its bytes and the
    /// `recorded` state here — one transaction. The caller sends `payload`
    /// only after this returns. Returns the `case_requests` row id.
    pub async fn record_x12_submission(
        &self,
        id: i64,
        request: NewCaseRequest,
        audit: AuditEntry,
        payload: Vec<u8>,
    ) -> Result<i64> {
        self.inner
            .writer
            .write(move |conn| {
                if load_case(conn, &request.case_id)?.is_none() {
                    return Err(StoreError::UnknownCase(request.case_id.clone()));
                }
                let request_id = insert(conn, &request)?;
                ops::audit(conn, &audit)?;
                let changed = conn
                    .prepare_cached(
                        "UPDATE x12_submissions SET state = 'recorded', request_id = ?2,
                         payload = ?3, updated_at_ms = ?4 WHERE id = ?1 AND state = 'due'",
                    )
                    .and_then(|mut st| st.execute(params![id, request_id, payload, now_ms()]))
                    .map_err(StoreError::sql("recording a 278 request"))?;
                if changed != 1 {
                    return Err(StoreError::InvalidState(format!(
                        "submission {id} is not due"
                    )));
                }
                Ok(request_id)
            })
            .await
    }

    /// Ends submission `id` in `state` (`sent`, `refused`, `failed`,
    /// `skipped`) with `reason`, and `audit` when given. The request's bytes
    /// (patient data) are dropped: they were kept only to resend them; its
    /// trace and control numbers stay in `case_requests`.
    ///
    /// `sent` also moves a case still `draft` or `requested` to `submitted`
    /// with an `updated` event, in the same transaction: the platform learns
    /// the request reached the payer. A case the payer already answered
    /// (a real-time 278 response adopted before this call) keeps its status.
    pub async fn finish_x12_submission(
        &self,
        id: i64,
        state: SubmissionState,
        reason: Option<String>,
        audit: Option<AuditEntry>,
    ) -> Result<()> {
        if matches!(state, SubmissionState::Due | SubmissionState::Recorded) {
            return Err(StoreError::InvalidState(format!(
                "`{}` does not end a submission",
                state.as_str()
            )));
        }
        self.inner
            .writer
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE x12_submissions SET state = ?2, reason = ?3, updated_at_ms = ?4,
                     payload = NULL WHERE id = ?1",
                )
                .and_then(|mut st| st.execute(params![id, state.as_str(), reason, now_ms()]))
                .map_err(StoreError::sql("ending a 278 request"))?;
                if let Some(audit) = &audit {
                    ops::audit(conn, audit)?;
                }
                if state == SubmissionState::Sent {
                    mark_submitted(conn, id)?;
                }
                Ok(())
            })
            .await
    }

    /// Counts a failed delivery of submission `id` and schedules the next
    /// attempt `delay_ms` from now; returns the failures so far.
    pub async fn retry_x12_submission(
        &self,
        id: i64,
        delay_ms: u64,
        reason: String,
    ) -> Result<u32> {
        let delay = i64::try_from(delay_ms).unwrap_or(i64::MAX / 4);
        self.inner
            .writer
            .write(move |conn| {
                let now = now_ms();
                conn.prepare_cached(
                    "UPDATE x12_submissions SET attempts = attempts + 1,
                     next_attempt_at_ms = ?2, reason = ?3, updated_at_ms = ?4
                     WHERE id = ?1 RETURNING attempts",
                )
                .and_then(|mut st| {
                    st.query_row(params![id, now.saturating_add(delay), reason, now], |r| {
                        r.get::<_, i64>(0)
                    })
                })
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                .map_err(StoreError::sql("scheduling a 278 request retry"))
            })
            .await
    }
}

/// Moves the case of submission `id` to `submitted` if it is still `draft`
/// or `requested` (see [`Store::finish_x12_submission`]).
fn mark_submitted(conn: &Connection, id: i64) -> Result<()> {
    let case_id: Option<String> = conn
        .prepare_cached("SELECT case_id FROM x12_submissions WHERE id = ?1")
        .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
        .map_err(StoreError::sql("reading a 278 request's case"))?;
    let Some(mut case) = case_id
        .map(|case_id| load_case(conn, &case_id))
        .transpose()?
        .flatten()
    else {
        return Ok(());
    };
    if !matches!(case.status, CaseStatus::Draft | CaseStatus::Requested) {
        return Ok(());
    }
    case.status = CaseStatus::Submitted;
    ops::append_event(
        conn,
        case,
        Some(CaseEventType::Updated),
        None,
        None,
        now_ms(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::StoreOptions;
    use crate::test_cases::{case, inbound};

    fn audit() -> AuditEntry {
        AuditEntry {
            actor: "x12-route:acme".into(),
            action: "x12.request".into(),
            target: None,
            detail: None,
            case_id: None,
        }
    }

    #[tokio::test]
    async fn the_cursor_finds_each_requested_case_once_and_rows_move_to_recorded_and_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        let store = Store::open(&path, StoreOptions::default())
            .await
            .expect("store");
        let (a, b) = (
            "case-0000000000000000000000aa",
            "case-0000000000000000000000bb",
        );
        store
            .commit_inbound(inbound("1", case(a, "requested")))
            .await
            .expect("a");
        store
            .commit_inbound(inbound("2", case(b, "approved")))
            .await
            .expect("b");
        store
            .commit_inbound(inbound("3", case(a, "requested")))
            .await
            .expect("a again");
        let (found, last) = store
            .x12_submission_candidates("x12", 100)
            .await
            .expect("candidates");
        let ids: Vec<&str> = found.iter().map(|c| c.case.case_id.as_str()).collect();
        assert_eq!(ids, [a], "approved cases are not due; one row per case");
        let last = last.expect("messages were read");
        let queued = || vec![(a.to_owned(), "acme".to_owned())];
        assert_eq!(
            store
                .enqueue_x12_submissions("x12", last, queued())
                .await
                .expect("enqueue"),
            1
        );
        // Queueing again (a crash before the cursor moved) adds nothing.
        assert_eq!(
            store
                .enqueue_x12_submissions("x12", last, queued())
                .await
                .expect("enqueue"),
            0
        );
        let (found, none) = store
            .x12_submission_candidates("x12", 100)
            .await
            .expect("candidates");
        assert!(found.is_empty() && none.is_none(), "the cursor moved");

        let due = store.due_x12_submissions(10).await.expect("due");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].state, SubmissionState::Due);
        let request = NewCaseRequest {
            case_id: a.into(),
            kind: "x12-278".into(),
            references: BTreeMap::from([("x12_trace".into(), "T1".into())]),
            control: BTreeMap::new(),
            actor: "x12-route:acme".into(),
        };
        let request_id = store
            .record_x12_submission(due[0].id, request.clone(), audit(), b"ISA".to_vec())
            .await
            .expect("recorded");
        let again = store
            .record_x12_submission(due[0].id, request, audit(), b"ISA".to_vec())
            .await
            .expect_err("recorded once");
        assert!(matches!(again, StoreError::InvalidState(_)), "{again}");
        assert_eq!(store.case_requests(a).await.expect("requests").len(), 1);
        store.close().await;

        // After a restart the recorded request is still due, with its bytes.
        let store = Store::open(&path, StoreOptions::default())
            .await
            .expect("reopen");
        let due = store.due_x12_submissions(10).await.expect("due");
        assert_eq!(due[0].state, SubmissionState::Recorded);
        assert_eq!(due[0].request_id, Some(request_id));
        assert_eq!(due[0].payload.as_deref(), Some(&b"ISA"[..]));
        assert_eq!(
            store
                .retry_x12_submission(due[0].id, 60_000, "down".into())
                .await
                .expect("retry"),
            1
        );
        assert!(store.due_x12_submissions(10).await.expect("due").is_empty());
        store
            .finish_x12_submission(due[0].id, SubmissionState::Sent, None, None)
            .await
            .expect("sent");
        assert_eq!(
            store
                .enqueue_x12_submissions("x12", last, vec![(a.to_owned(), "acme".to_owned())])
                .await
                .expect("enqueue"),
            0,
            "a sent request is never queued again"
        );
        let listed = store.x12_submissions(a).await.expect("listed");
        assert_eq!(listed[0].state, SubmissionState::Sent);
        assert_eq!(listed[0].attempts, 1);
        assert_eq!(listed[0].payload, None, "no patient data kept once sent");
        let sent = store.get_case(a).await.expect("read").expect("case");
        assert_eq!(
            sent.case.status,
            CaseStatus::Submitted,
            "a sent request moves its requested case to submitted"
        );

        // A refused case is due again when a new message names it (it may
        // now be complete); until then it stays refused.
        store
            .enqueue_x12_submissions("x12", last, vec![(b.to_owned(), "acme".to_owned())])
            .await
            .expect("enqueue b");
        let due = store.due_x12_submissions(10).await.expect("due");
        store
            .finish_x12_submission(
                due[0].id,
                SubmissionState::Refused,
                Some("no NPI".into()),
                None,
            )
            .await
            .expect("refused");
        assert!(store.due_x12_submissions(10).await.expect("due").is_empty());
        assert_eq!(
            store
                .enqueue_x12_submissions("x12", last, vec![(b.to_owned(), "acme".to_owned())])
                .await
                .expect("requeue"),
            1
        );
        let due = store.due_x12_submissions(10).await.expect("due");
        assert_eq!(
            (due[0].state, due[0].reason.clone()),
            (SubmissionState::Due, None)
        );
        store.close().await;
    }

    #[tokio::test]
    async fn a_case_the_payer_already_answered_keeps_its_status_when_its_request_ends_sent() {
        let (_dir, store) = crate::test_cases::fresh_store().await;
        let id = "case-0000000000000000000000cc";
        store
            .commit_inbound(inbound("1", case(id, "requested")))
            .await
            .expect("requested");
        let (_, last) = store
            .x12_submission_candidates("x12", 100)
            .await
            .expect("candidates");
        store
            .enqueue_x12_submissions(
                "x12",
                last.expect("read"),
                vec![(id.to_owned(), "acme".to_owned())],
            )
            .await
            .expect("enqueue");
        let due = store.due_x12_submissions(10).await.expect("due");
        let request = NewCaseRequest {
            case_id: id.into(),
            kind: "x12-278".into(),
            references: BTreeMap::from([("x12_trace".into(), "T9".into())]),
            control: BTreeMap::new(),
            actor: "x12-route:acme".into(),
        };
        store
            .record_x12_submission(due[0].id, request, audit(), b"ISA".to_vec())
            .await
            .expect("recorded");
        // The payer's real-time answer is taken in before the row ends.
        store
            .commit_inbound(inbound("2", case(id, "approved")))
            .await
            .expect("answer");
        let before = store.get_case(id).await.expect("read").expect("case");
        store
            .finish_x12_submission(due[0].id, SubmissionState::Sent, None, None)
            .await
            .expect("sent");
        let after = store.get_case(id).await.expect("read").expect("case");
        assert_eq!(after.case.status, CaseStatus::Approved);
        assert_eq!(
            after.last_sequence, before.last_sequence,
            "no event for a case that is past requested"
        );
        store.close().await;
    }
}
