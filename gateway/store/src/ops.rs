//! Write operations. Each runs on the writer's connection inside a savepoint of
//! the current group transaction (see [`crate::writer`]), so a function here
//! either applies completely or not at all.

use gateway_core::Case;
use gateway_core::adapter::CommitReceipt;
use gateway_core::case::Decision;
use gateway_core::event::{CaseEventType, CloudEvent};
use gateway_core::ids::content_hash;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Result, StoreError};
use crate::model::*;
use crate::time::{now_ms, parse_rfc3339_ms, rfc3339};

/// Stores a raw message and, when accepted, its case snapshot and event.
pub(crate) fn commit_inbound(conn: &Connection, msg: NewInbound) -> Result<InboundReceipt> {
    let now = now_ms();
    let hash = content_hash(&msg.raw);
    let received_ms = parse_rfc3339_ms(&msg.received_at).unwrap_or(now);
    let (state, reason, diagnostics) = match &msg.outcome {
        InboundOutcome::Accepted { .. } => (MessageState::Accepted, None, None),
        InboundOutcome::Kept { note } => (MessageState::Accepted, Some(note.clone()), None),
        InboundOutcome::Rejected {
            reason,
            diagnostics,
        } => (
            MessageState::Rejected,
            Some(reason.clone()),
            Some(serde_json::to_string(diagnostics).map_err(StoreError::json("diagnostics"))?),
        ),
        InboundOutcome::Failed {
            reason,
            diagnostics,
        } => (
            MessageState::Error,
            Some(reason.clone()),
            Some(serde_json::to_string(diagnostics).map_err(StoreError::json("diagnostics"))?),
        ),
    };
    let case_id = match &msg.outcome {
        InboundOutcome::Accepted { case, .. } => Some(case.case_id.clone()),
        _ => None,
    };

    let message_id = if let Some(id) = msg.replay_of {
        let current: Option<String> = conn
            .query_row("SELECT state FROM messages WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(StoreError::sql("loading a replayed message"))?;
        match current.as_deref() {
            None => return Err(StoreError::UnknownMessage(id)),
            Some("rejected") | Some("error") => {}
            Some(other) => {
                return Err(StoreError::InvalidState(format!(
                    "message {id} is {other}; only rejected or error messages are re-processed"
                )));
            }
        }
        conn.execute(
            "UPDATE messages SET state = ?2, error_reason = ?3, diagnostics = ?4, case_id = ?5,
                    replay_requested_at_ms = NULL, replays = replays + 1
             WHERE id = ?1",
            params![id, state.as_str(), reason, diagnostics, case_id],
        )
        .map_err(StoreError::sql("updating a replayed message"))?;
        id
    } else {
        let original: Option<(i64, Option<String>)> = conn
            .prepare_cached(
                "SELECT id, case_id FROM messages
                 WHERE state = 'accepted' AND content_hash = ?1 AND sender IS ?2 AND control_id IS ?3
                 ORDER BY id LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![hash, msg.sender, msg.control_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(StoreError::sql("looking for a duplicate"))?;
        if let Some((original_id, original_case)) = original {
            let id = insert_message(
                conn,
                &msg,
                &hash,
                received_ms,
                now,
                MessageState::Duplicate,
                None,
                None,
                original_case,
                Some(original_id),
            )?;
            return Ok(InboundReceipt {
                receipt: CommitReceipt { message_id: id },
                disposition: Disposition::Duplicate {
                    original: CommitReceipt {
                        message_id: original_id,
                    },
                },
            });
        }
        insert_message(
            conn,
            &msg,
            &hash,
            received_ms,
            now,
            state,
            reason,
            diagnostics,
            case_id,
            None,
        )?
    };

    let disposition = match msg.outcome {
        InboundOutcome::Accepted { case, event_type } => {
            let appended = append_event(conn, *case, event_type, Some(message_id), None, now)?;
            Disposition::Accepted {
                case_id: appended.case_id,
                event_id: appended.event_id,
                sequence: appended.sequence,
                event_type: appended.event_type,
            }
        }
        InboundOutcome::Kept { .. } => Disposition::Kept,
        InboundOutcome::Rejected { .. } | InboundOutcome::Failed { .. } => Disposition::Rejected,
    };
    Ok(InboundReceipt {
        receipt: CommitReceipt { message_id },
        disposition,
    })
}

#[allow(clippy::too_many_arguments)]
fn insert_message(
    conn: &Connection,
    msg: &NewInbound,
    hash: &str,
    received_ms: i64,
    now: i64,
    state: MessageState,
    reason: Option<String>,
    diagnostics: Option<String>,
    case_id: Option<String>,
    duplicate_of: Option<i64>,
) -> Result<i64> {
    let packed = crate::packing::pack(&msg.raw)?;
    let raw_codec = crate::packing::codec_of(&packed);
    let raw_len = i64::try_from(msg.raw.len()).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO messages (adapter, profile, sender, control_id, message_type, content_hash,
                               raw, received_at, received_at_ms, stored_at_ms, peer, state,
                               case_id, duplicate_of, error_reason, diagnostics, raw_codec,
                               raw_len)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18)",
    )
    .and_then(|mut st| {
        st.execute(params![
            msg.adapter,
            msg.profile,
            msg.sender,
            msg.control_id,
            msg.message_type,
            hash,
            packed.as_deref().unwrap_or(&msg.raw),
            msg.received_at,
            received_ms,
            now,
            msg.peer,
            state.as_str(),
            case_id,
            duplicate_of,
            reason,
            diagnostics,
            raw_codec,
            raw_len,
        ])
    })
    .map_err(StoreError::sql("inserting a message"))?;
    Ok(conn.last_insert_rowid())
}

/// A CloudEvent with the CloudEvents `sequence` extension attribute: the
/// event's position in its case, zero-padded so that it orders as a string (as
/// the extension specifies). It lets the platform recognise an event that
/// arrives after a later one (a dead letter replayed after its successors).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(serde::Serialize)]
struct Sequenced<'a> {
    #[serde(flatten)]
    event: &'a CloudEvent,
    sequence: String,
}

/// The envelope fields of a [`CloudEvent`], in its serialisation order,
/// without `data`.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    specversion: &'a str,
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    subject: &'a str,
    time: &'a str,
    datacontenttype: &'a str,
}

/// What an event that shares its case's snapshot stores as its body: the
/// serialised envelope without its closing brace. Readers append `data`
/// (the snapshot) and `sequence` ([`crate::read::event_body_sql`]), which
/// gives exactly what serialising [`Sequenced`] gives (unit test below).
fn event_head(event: &CloudEvent) -> Result<String> {
    let mut envelope = serde_json::to_string(&Envelope {
        specversion: &event.specversion,
        id: &event.id,
        source: &event.source,
        kind: &event.kind,
        subject: &event.subject,
        time: &event.time,
        datacontenttype: &event.datacontenttype,
    })
    .map_err(StoreError::json("cloud event"))?;
    // `{…}` → `{…` (readers add `,"data":<snapshot>,"sequence":"0000000001"}`)
    envelope.pop();
    Ok(envelope)
}

/// The event just appended.
pub(crate) struct Appended {
    pub case_id: String,
    pub event_id: String,
    pub sequence: i64,
    pub event_type: CaseEventType,
}

/// Upserts the case snapshot and appends its next event.
pub(crate) fn append_event(
    conn: &Connection,
    case: Case,
    event_type: Option<CaseEventType>,
    message_id: Option<i64>,
    decision_id: Option<i64>,
    now: i64,
) -> Result<Appended> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT last_seq FROM cases WHERE case_id = ?1")
        .and_then(|mut st| st.query_row([&case.case_id], |r| r.get(0)).optional())
        .map_err(StoreError::sql("loading a case"))?;
    let event_type = event_type.unwrap_or(if last.is_some() {
        CaseEventType::Updated
    } else {
        CaseEventType::Created
    });
    if let Some(last_seq) = last {
        keep_own_copy(conn, &case.case_id, last_seq)?;
    }
    let sequence = last.unwrap_or(0) + 1;
    let snapshot = serde_json::to_string(&case).map_err(StoreError::json("case snapshot"))?;
    let packed = crate::packing::pack(snapshot.as_bytes())?;
    let snapshot_codec = crate::packing::codec_of(&packed);
    // A snapshot left plain stays TEXT, as every snapshot was before packing.
    let stored = match packed {
        Some(bytes) => rusqlite::types::Value::Blob(bytes),
        None => rusqlite::types::Value::Text(snapshot),
    };
    let key = crate::patient_key(&case);
    conn.prepare_cached(
        "INSERT INTO cases (case_id, snapshot, status, profile, adapter, patient_key, last_seq,
                            created_at_ms, updated_at_ms, snapshot_codec,
                            head_seq, head_due_ms, head_created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?7, ?8, ?8)
         ON CONFLICT (case_id) DO UPDATE SET
            snapshot = excluded.snapshot, snapshot_codec = excluded.snapshot_codec,
            status = excluded.status, profile = excluded.profile,
            adapter = excluded.adapter, patient_key = excluded.patient_key,
            last_seq = excluded.last_seq, updated_at_ms = excluded.updated_at_ms,
            -- The new event becomes the case's outbox head unless an earlier
            -- one is still open (pending, or dead and holding the case).
            -- (Every right-hand side reads the row as it was.)
            head_seq = COALESCE(cases.head_seq, excluded.head_seq),
            head_due_ms = CASE WHEN cases.head_seq IS NULL THEN excluded.head_due_ms
                               ELSE cases.head_due_ms END,
            head_created_ms = CASE WHEN cases.head_seq IS NULL THEN excluded.head_created_ms
                                   ELSE cases.head_created_ms END",
    )
    .and_then(|mut st| {
        st.execute(params![
            case.case_id,
            stored,
            case.status.as_str(),
            case.source.profile,
            case.source.adapter,
            key,
            sequence,
            now,
            snapshot_codec,
        ])
    })
    .map_err(StoreError::sql("upserting a case"))?;
    crate::case_lookup::index_references(conn, &case)?;

    let event_id = uuid::Uuid::now_v7().to_string();
    let case_id = case.case_id.clone();
    let event = CloudEvent::new(event_id.clone(), event_type, rfc3339(now), case);
    let head = event_head(&event)?;
    let packed = crate::packing::pack(head.as_bytes())?;
    let body_codec = crate::packing::codec_of(&packed);
    let body = match packed {
        Some(bytes) => rusqlite::types::Value::Blob(bytes),
        None => rusqlite::types::Value::Text(head),
    };
    conn.prepare_cached(
        "INSERT INTO events (id, case_id, seq, type, message_id, decision_id, body, state,
                             attempts, next_attempt_at_ms, created_at_ms, shares_snapshot,
                             body_codec)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 0, ?8, ?8, 1, ?9)",
    )
    .and_then(|mut st| {
        st.execute(params![
            event_id,
            case_id,
            sequence,
            event_type.as_str(),
            message_id,
            decision_id,
            body,
            now,
            body_codec,
        ])
    })
    .map_err(StoreError::sql("appending an event"))?;
    Ok(Appended {
        case_id,
        event_id,
        sequence,
        event_type,
    })
}

/// Gives the case's newest event (`last_seq`) its own copy of the case
/// before the snapshot it shares is overwritten: an event keeps the case as
/// it was when the event was made. Only the newest event of a case can share
/// the snapshot (every overwrite passes here first), so this is one probe of
/// the `(case_id, seq)` key, and nothing for an event that has its own copy.
/// The whole body is stored as text (`body_codec` 0): packing it would mean
/// reading it out of SQL and back for an update that is rarer than intake.
fn keep_own_copy(conn: &Connection, case_id: &str, last_seq: i64) -> Result<()> {
    conn.prepare_cached(concat!(
        "UPDATE events SET body = ",
        crate::read::event_body_sql!(),
        ", body_codec = 0, shares_snapshot = 0 \
         WHERE case_id = ?1 AND seq = ?2 AND shares_snapshot = 1"
    ))
    .and_then(|mut st| st.execute(params![case_id, last_seq]))
    .map_err(StoreError::sql("copying the case into its previous event"))?;
    Ok(())
}

/// Stores a decision, applies it to the case snapshot and appends `decided`.
pub(crate) fn record_decision(
    conn: &Connection,
    case_id: &str,
    decision: Decision,
) -> Result<DecisionReceipt> {
    let now = now_ms();
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT unpack_text(snapshot, snapshot_codec), adapter FROM cases WHERE case_id = ?1",
            [case_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(StoreError::sql("loading a case"))?;
    let Some((snapshot, adapter)) = row else {
        return Err(StoreError::UnknownCase(case_id.to_owned()));
    };
    let mut case: Case =
        serde_json::from_str(&snapshot).map_err(StoreError::json("case snapshot"))?;
    let decision_json = serde_json::to_string(&decision).map_err(StoreError::json("decision"))?;
    case.status = decision.status.case_status();
    case.decision = Some(decision);
    conn.execute(
        "INSERT INTO decisions (case_id, adapter, decision, received_at_ms, writeback_state,
                                next_attempt_at_ms)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?4)",
        params![case_id, adapter, decision_json, now],
    )
    .map_err(StoreError::sql("inserting a decision"))?;
    let decision_id = conn.last_insert_rowid();
    let appended = append_event(
        conn,
        case,
        Some(CaseEventType::Decided),
        None,
        Some(decision_id),
        now,
    )?;
    Ok(DecisionReceipt {
        decision_id,
        event_id: appended.event_id,
        sequence: appended.sequence,
    })
}

/// Records a delivery attempt and moves the event accordingly.
pub(crate) fn record_attempt(conn: &Connection, attempt: &DeliveryAttempt) -> Result<()> {
    let now = now_ms();
    let (result, error) = match &attempt.outcome {
        AttemptOutcome::Delivered => ("delivered", None),
        AttemptOutcome::Retry { error, .. } => ("retry", Some(error.as_str())),
        AttemptOutcome::Dead { error } => ("dead", Some(error.as_str())),
    };
    // The event's case and place in it when the attempt changed a pending event.
    let changed: Option<(String, i64)> = match &attempt.outcome {
        AttemptOutcome::Delivered => conn
            .prepare_cached(
                "UPDATE events SET state = 'delivered', attempts = attempts + 1,
                                   last_error = NULL, finished_at_ms = ?2
                 WHERE id = ?1 AND state = 'pending' RETURNING case_id, seq",
            )
            .and_then(|mut st| {
                st.query_row(params![attempt.event_id, now], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            }),
        AttemptOutcome::Retry { retry_at, error } => conn
            .prepare_cached(
                "UPDATE events SET attempts = attempts + 1, last_error = ?2,
                                   next_attempt_at_ms = ?3
                 WHERE id = ?1 AND state = 'pending' RETURNING case_id, seq",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![attempt.event_id, error, retry_at.as_millisecond()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
            }),
        AttemptOutcome::Dead { error } => conn
            .prepare_cached(
                "UPDATE events SET state = 'dead', attempts = attempts + 1, last_error = ?2,
                                   finished_at_ms = ?3
                 WHERE id = ?1 AND state = 'pending' RETURNING case_id, seq",
            )
            .and_then(|mut st| {
                st.query_row(params![attempt.event_id, error, now], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            }),
    }
    .map_err(StoreError::sql("updating an event"))?;
    match (&changed, &attempt.outcome) {
        (None, _) => {
            let exists: bool = conn
                .query_row(
                    "SELECT 1 FROM events WHERE id = ?1",
                    [&attempt.event_id],
                    |_| Ok(true),
                )
                .optional()
                .map_err(StoreError::sql("loading an event"))?
                .unwrap_or(false);
            if !exists {
                return Err(StoreError::UnknownEvent(attempt.event_id.clone()));
            }
            // Not pending any more (e.g. delivered twice at-least-once): only log the attempt.
        }
        (Some((case_id, seq)), AttemptOutcome::Retry { retry_at, .. }) => {
            conn.prepare_cached(RESCHEDULE_HEAD)
                .and_then(|mut st| st.execute(params![case_id, seq, retry_at.as_millisecond()]))
                .map_err(StoreError::sql("rescheduling the outbox head"))?;
        }
        (Some((case_id, _)), _) => refresh_head(conn, case_id)?,
    }
    conn.prepare_cached(
        "INSERT INTO delivery_attempts (event_id, sink, at_ms, result, http_status, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut st| {
        st.execute(params![
            attempt.event_id,
            attempt.sink,
            now,
            result,
            attempt.http_status,
            error
        ])
    })
    .map_err(StoreError::sql("recording a delivery attempt"))?;
    if matches!(attempt.outcome, AttemptOutcome::Retry { .. }) {
        trim_attempt_history(conn, &attempt.event_id)?;
    }
    Ok(())
}

/// Attempts kept per event: the first few (how it started failing) and the
/// last few (how it fails now). `events.attempts` keeps counting all of them,
/// so an outage of days adds no rows per retry beyond these.
pub(crate) const ATTEMPTS_KEPT_FIRST: i64 = 2;
/// See [`ATTEMPTS_KEPT_FIRST`].
pub(crate) const ATTEMPTS_KEPT_LAST: i64 = 8;

/// Deletes an event's attempt rows between its first and last kept ones.
fn trim_attempt_history(conn: &Connection, event_id: &str) -> Result<()> {
    conn.prepare_cached(
        "DELETE FROM delivery_attempts WHERE event_id = ?1
           AND id NOT IN (SELECT id FROM delivery_attempts WHERE event_id = ?1
                          ORDER BY id LIMIT ?2)
           AND id NOT IN (SELECT id FROM delivery_attempts WHERE event_id = ?1
                          ORDER BY id DESC LIMIT ?3)",
    )
    .and_then(|mut st| st.execute(params![event_id, ATTEMPTS_KEPT_FIRST, ATTEMPTS_KEPT_LAST]))
    .map_err(StoreError::sql("trimming the attempt history"))?;
    Ok(())
}

/// A retried head's next due time: `?1` case id, `?2` the event's sequence,
/// `?3` when it is due. Only a head has a due time to move (a later event
/// waits for it), and the case id is the row's key: one probe whatever the
/// backlog (`outbox_heads_tests`).
pub(crate) const RESCHEDULE_HEAD: &str =
    "UPDATE cases SET head_due_ms = ?3 WHERE case_id = ?1 AND head_seq = ?2";

/// Makes the case's outbox head (`cases.head_*`) its first open event again —
/// pending, or a dead letter nobody skipped, which holds the case back
/// (`head_due_ms` NULL) — or none when none is open: called whenever an event
/// of the case changes state. A range of the `(case_id, seq)` key: the case's
/// events from its first, up to its first open one (schema migration 8
/// dropped the partial index of open events, a random-keyed page per event at
/// insert and again at delivery).
fn refresh_head(conn: &Connection, case_id: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE cases SET (head_seq, head_due_ms, head_created_ms) = (
            SELECT seq, CASE WHEN state = 'pending' THEN next_attempt_at_ms END, created_at_ms
            FROM events
            WHERE case_id = ?1
              AND (state = 'pending' OR (state = 'dead' AND skipped_at_ms IS NULL))
            ORDER BY seq LIMIT 1)
         WHERE case_id = ?1",
    )
    .and_then(|mut st| st.execute([case_id]))
    .map_err(StoreError::sql("moving the outbox head"))?;
    Ok(())
}

/// Brings every pending due time later than `latest_ms` back to it (events
/// and their heads). Due times are wall-clock instants; after the clock was
/// stepped backwards they can lie hours ahead, longer than any backoff would
/// ever wait, and the forwarder would sleep on them. Returns how many moved.
pub(crate) fn clamp_due_times(conn: &Connection, latest_ms: i64) -> Result<usize> {
    let events = conn
        .execute(
            "UPDATE events SET next_attempt_at_ms = ?1
             WHERE state = 'pending' AND next_attempt_at_ms > ?1",
            [latest_ms],
        )
        .map_err(StoreError::sql("clamping due times"))?;
    conn.execute(
        "UPDATE cases SET head_due_ms = ?1 WHERE head_due_ms IS NOT NULL AND head_due_ms > ?1",
        [latest_ms],
    )
    .map_err(StoreError::sql("clamping due times"))?;
    Ok(events)
}

/// Lets a dead letter go for good: the event stays `dead` with the time it
/// was skipped, and its case's later events are delivered again. Returns the
/// case id.
pub(crate) fn skip_dead_event(conn: &Connection, event_id: &str) -> Result<String> {
    let row: Option<(String, String, Option<i64>)> = conn
        .query_row(
            "SELECT state, case_id, skipped_at_ms FROM events WHERE id = ?1",
            [event_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(StoreError::sql("loading an event"))?;
    match row {
        None => Err(StoreError::UnknownEvent(event_id.to_owned())),
        Some((state, case_id, None)) if state == "dead" => {
            conn.execute(
                "UPDATE events SET skipped_at_ms = ?2 WHERE id = ?1",
                params![event_id, now_ms()],
            )
            .map_err(StoreError::sql("skipping a dead letter"))?;
            refresh_head(conn, &case_id)?;
            Ok(case_id)
        }
        Some((state, _, skipped)) => Err(StoreError::InvalidState(match skipped {
            Some(_) => format!("event {event_id} was skipped already"),
            None => format!("event {event_id} is {state}, not dead"),
        })),
    }
}

/// Moves one dead event back to pending (attempts reset, due now).
pub(crate) fn requeue_event(conn: &Connection, event_id: &str) -> Result<()> {
    let state: Option<String> = conn
        .query_row("SELECT state FROM events WHERE id = ?1", [event_id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(StoreError::sql("loading an event"))?;
    match state.as_deref() {
        None => Err(StoreError::UnknownEvent(event_id.to_owned())),
        Some("dead") => {
            conn.execute(
                "UPDATE events SET state = 'pending', attempts = 0, next_attempt_at_ms = ?2,
                                   finished_at_ms = NULL, skipped_at_ms = NULL
                 WHERE id = ?1",
                params![event_id, now_ms()],
            )
            .map_err(StoreError::sql("re-queueing an event"))?;
            let case_id: String = conn
                .query_row(
                    "SELECT case_id FROM events WHERE id = ?1",
                    [event_id],
                    |r| r.get(0),
                )
                .map_err(StoreError::sql("loading an event"))?;
            refresh_head(conn, &case_id)
        }
        Some(other) => Err(StoreError::InvalidState(format!(
            "event {event_id} is {other}, not dead"
        ))),
    }
}

/// `messages replay ID`: queue a rejected/error message for re-processing, or
/// re-queue the dead events an accepted (or duplicate) message produced.
pub(crate) fn replay_message(conn: &Connection, id: i64) -> Result<ReplayOutcome> {
    let row: Option<(String, Option<i64>)> = conn
        .query_row(
            "SELECT state, duplicate_of FROM messages WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(StoreError::sql("loading a message"))?;
    let Some((state, duplicate_of)) = row else {
        return Err(StoreError::UnknownMessage(id));
    };
    match state.as_str() {
        "rejected" | "error" => {
            conn.execute(
                "UPDATE messages SET replay_requested_at_ms = ?2 WHERE id = ?1",
                params![id, now_ms()],
            )
            .map_err(StoreError::sql("queueing a replay"))?;
            Ok(ReplayOutcome::MessageQueued { message_id: id })
        }
        _ => {
            let source = duplicate_of.unwrap_or(id);
            let dead: Vec<String> = conn
                .prepare(
                    "SELECT id FROM events WHERE message_id = ?1 AND state = 'dead'
                     ORDER BY case_id, seq",
                )
                .and_then(|mut st| {
                    st.query_map([source], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<String>>>()
                })
                .map_err(StoreError::sql("finding dead events"))?;
            if dead.is_empty() {
                return Err(StoreError::InvalidState(format!(
                    "message {id} is {state} and has no dead-lettered event; nothing to replay"
                )));
            }
            for event in &dead {
                requeue_event(conn, event)?;
            }
            Ok(ReplayOutcome::EventsRequeued { event_ids: dead })
        }
    }
}

/// Records the result of a write-back attempt.
pub(crate) fn complete_writeback(
    conn: &Connection,
    decision_id: i64,
    outcome: &WriteBackOutcome,
) -> Result<()> {
    let now = now_ms();
    let changed = match outcome {
        WriteBackOutcome::Done { detail } => conn.execute(
            "UPDATE decisions SET writeback_state = 'done', attempts = attempts + 1, detail = ?2,
                                  last_error = NULL, finished_at_ms = ?3
             WHERE id = ?1 AND writeback_state = 'pending'",
            params![decision_id, detail, now],
        ),
        WriteBackOutcome::Retry { retry_at, error } => conn.execute(
            "UPDATE decisions SET attempts = attempts + 1, last_error = ?2, next_attempt_at_ms = ?3
             WHERE id = ?1 AND writeback_state = 'pending'",
            params![decision_id, error, retry_at.as_millisecond()],
        ),
        WriteBackOutcome::Failed { error } => conn.execute(
            "UPDATE decisions SET writeback_state = 'failed', attempts = attempts + 1,
                                  last_error = ?2, finished_at_ms = ?3
             WHERE id = ?1 AND writeback_state = 'pending'",
            params![decision_id, error, now],
        ),
    }
    .map_err(StoreError::sql("updating a write-back"))?;
    if changed == 0 {
        return Err(StoreError::InvalidState(format!(
            "decision {decision_id} has no pending write-back"
        )));
    }
    Ok(())
}

/// Appends an audit entry.
pub(crate) fn audit(conn: &Connection, entry: &AuditEntry) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at_ms, actor, action, target, detail, case_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut st| {
        st.execute(params![
            now_ms(),
            entry.actor,
            entry.action,
            entry.target,
            entry.detail,
            entry.case_id
        ])
    })
    .map_err(StoreError::sql("appending to the audit log"))?;
    Ok(conn.last_insert_rowid())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serialising the event in full gives.
    fn expected_body(id: &str, kind: CaseEventType, now: i64, case: Case, seq: i64) -> String {
        let event = CloudEvent::new(id.to_owned(), kind, rfc3339(now), case);
        serde_json::to_string(&Sequenced {
            event: &event,
            sequence: format!("{seq:010}"),
        })
        .expect("event")
    }

    /// (id, body as readers see it, shares_snapshot) of every event of the
    /// case, in sequence order.
    fn bodies(conn: &Connection, case_id: &str) -> Vec<(String, String, i64)> {
        conn.prepare(concat!(
            "SELECT id, ",
            crate::read::event_body_sql!(),
            ", shares_snapshot FROM events WHERE case_id = ?1 ORDER BY seq"
        ))
        .and_then(|mut st| {
            st.query_map([case_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .expect("events")
    }

    #[test]
    fn an_event_reads_back_as_the_serialised_sequenced_event_and_keeps_its_case_after_an_update() {
        let mut conn = Connection::open_in_memory().expect("db");
        crate::packing::register(&conn).expect("unpack functions");
        crate::schema::migrate(&mut conn).expect("schema");
        let mut first = gateway_testkit::samples::case(1, 7);
        first.practice = Some("north".to_owned());
        let case_id = first.case_id.clone();
        let a = append_event(&conn, first.clone(), None, None, None, 1_000).expect("first");
        let got = bodies(&conn, &case_id);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2, 1, "the newest event shares the snapshot");
        assert_eq!(
            got[0].1,
            expected_body(&a.event_id, CaseEventType::Created, 1_000, first.clone(), 1)
        );

        let mut second = first.clone();
        second.notes.push("amended".to_owned());
        second.practice = None;
        let b = append_event(&conn, second.clone(), None, None, None, 2_000).expect("second");
        let got = bodies(&conn, &case_id);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].2, 0, "the earlier event got its own copy");
        assert_eq!(
            got[0].1,
            expected_body(&a.event_id, CaseEventType::Created, 1_000, first, 1),
            "the earlier event still carries the case as it was"
        );
        assert_eq!(got[1].2, 1);
        assert_eq!(
            got[1].1,
            expected_body(&b.event_id, CaseEventType::Updated, 2_000, second, 2)
        );
        let stored: i64 = conn
            .query_row(
                "SELECT length(body) FROM events WHERE id = ?1",
                [&b.event_id],
                |r| r.get(0),
            )
            .expect("length");
        assert!(
            (stored as usize) < got[1].1.len() / 2,
            "the newest event stores its envelope, not the case"
        );
    }
}
