//! Read-only queries on their own connection.
//!
//! WAL mode lets readers run beside the writer, including from another process:
//! `ehr-gateway messages list` opens a [`Reader`] on the daemon's live file. The
//! async [`crate::Store`] keeps a small pool of readers and runs them on the
//! blocking thread pool.

use std::collections::HashSet;
use std::path::Path;

use gateway_core::Case;
use gateway_core::case::Decision;
use gateway_core::event::CaseEventType;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use crate::error::{Result, StoreError};
use crate::model::*;
use crate::schema;
use crate::time::{now_ms, ts};

/// The columns [`message_summary`] reads, in its order.
pub(crate) const MESSAGE_COLUMNS: &str = "id, adapter, profile, sender, control_id, message_type, \
    content_hash, received_at, peer, state, case_id, duplicate_of, error_reason, \
    replay_requested_at_ms IS NOT NULL, coalesce(raw_len, length(raw))";

/// An event's whole body as SQL over an `events` row: the stored body, or —
/// when the event shares its case's snapshot (schema migration 8) — its
/// envelope followed by the snapshot as `data` and the CloudEvents
/// `sequence`, byte for byte what [`crate::ops`] would have stored in full.
/// The stored body may be packed (`body_codec`, schema migration 11).
macro_rules! event_body_sql {
    () => {
        crate::read::event_body_sql!(
            "(SELECT unpack_text(c.snapshot, c.snapshot_codec) FROM cases c \
             WHERE c.case_id = events.case_id)"
        )
    };
    // `$snapshot`: SQL for the event's case snapshot, unpacked.
    ($snapshot:literal) => {
        concat!(
            "CASE WHEN events.shares_snapshot = 1 THEN \
             unpack_text(events.body, events.body_codec) || ',\"data\":' || ",
            $snapshot,
            " || ',\"sequence\":\"' || printf('%010d', events.seq) || '\"}' \
             ELSE unpack_text(events.body, events.body_codec) END"
        )
    };
}
pub(crate) use event_body_sql;

/// The columns [`Reader::events_where`] reads, in its order, over an
/// `events` row; `$snapshot` as in [`event_body_sql`].
macro_rules! event_columns {
    ($($snapshot:literal)?) => {
        concat!(
            "events.id, events.case_id, events.seq, events.type, events.message_id, \
             events.decision_id, ",
            event_body_sql!($($snapshot)?),
            ", events.state, events.attempts, events.next_attempt_at_ms, events.last_error, \
             events.created_at_ms"
        )
    };
}

const EVENT_COLUMNS: &str = event_columns!();

const CASE_COLUMNS: &str = "unpack_text(snapshot, snapshot_codec), adapter, profile, patient_key, last_seq, \
     created_at_ms, updated_at_ms";

/// [`Reader::deliverable`]'s query: due heads through the `cases_head_due`
/// index, earliest first (a head's due time is its event's next attempt;
/// `CROSS JOIN` keeps the case rows the outer loop),
/// each head's event found by its `(case_id, seq)` key. A head event that
/// shares its case's snapshot takes it from the case row the index entry
/// points at, not through a second probe of the cases key: per event sent,
/// one B-tree descent and one page fewer to read on a connection whose page
/// cache every commit invalidates.
pub(crate) const DELIVERABLE: &str = concat!(
    "SELECT ",
    event_columns!("unpack_text(heads.snapshot, heads.snapshot_codec)"),
    " FROM cases AS heads CROSS JOIN events
        ON events.case_id = heads.case_id AND events.seq = heads.head_seq
      WHERE heads.head_due_ms IS NOT NULL AND heads.head_due_ms <= ?1
      ORDER BY heads.head_due_ms LIMIT ?2"
);

/// [`Reader::next_due`]'s query.
/// (Heads held back by a dead letter have no due time.)
pub(crate) const NEXT_DUE: &str =
    "SELECT MIN(head_due_ms) FROM cases WHERE head_due_ms IS NOT NULL";

/// A read-only view of a store file.
pub struct Reader {
    pub(crate) conn: Connection,
}

impl Reader {
    /// Opens an existing store file for reading. Never creates or migrates it;
    /// fails on a missing file and on a schema this binary does not know.
    pub fn open(path: impl AsRef<Path>) -> Result<Reader> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        // Read-write without CREATE plus `query_only`: a read-only open cannot
        // always attach to another process's WAL index.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(StoreError::sql("opening the store for reading"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(StoreError::sql("setting the busy timeout"))?;
        conn.execute_batch("PRAGMA query_only = ON")
            .map_err(StoreError::sql("making the reader read-only"))?;
        crate::packing::register(&conn)?;
        // As on the writer (`store::open_writer`): without the planner
        // stability guarantee the bundled SQLite (STAT4) re-prepares a cached
        // statement whenever a bound value changes, e.g. the forwarder's
        // outbox read on every round (~2% of the daemon's CPU under load).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map_err(StoreError::sql("configuring the query planner"))?;
        let found = schema::check_not_newer(&conn)?;
        if found < schema::SCHEMA_VERSION {
            return Err(StoreError::InvalidState(format!(
                "store schema version {found} is older than this binary's version {}; \
                 open it once with the daemon to migrate",
                schema::SCHEMA_VERSION
            )));
        }
        Ok(Reader { conn })
    }

    /// Lists messages matching `filter` (without their bytes).
    pub fn list_messages(&self, filter: &MessageFilter) -> Result<Vec<MessageSummary>> {
        let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(state) = filter.state {
            args.push(state.as_str().to_owned().into());
            sql.push_str(&format!(" AND state = ?{}", args.len()));
        }
        if let Some(control) = &filter.control_id {
            args.push(control.clone().into());
            sql.push_str(&format!(" AND control_id = ?{}", args.len()));
        }
        if let Some(since) = filter.since {
            args.push(since.as_millisecond().into());
            sql.push_str(&format!(" AND received_at_ms >= ?{}", args.len()));
        }
        if let Some(until) = filter.until {
            args.push(until.as_millisecond().into());
            sql.push_str(&format!(" AND received_at_ms < ?{}", args.len()));
        }
        if let Some(after) = filter.after_id {
            args.push(after.into());
            sql.push_str(&format!(" AND id > ?{} ORDER BY id ASC", args.len()));
        } else {
            sql.push_str(" ORDER BY id DESC");
        }
        let limit = filter.limit.unwrap_or(100).min(10_000) as i64;
        args.push(limit.into());
        sql.push_str(&format!(" LIMIT ?{}", args.len()));
        let mut st = self
            .conn
            .prepare(&sql)
            .map_err(StoreError::sql("listing messages"))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(args), message_summary)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(StoreError::sql("listing messages"))?;
        Ok(rows)
    }

    /// One message with its bytes and diagnostics.
    pub fn get_message(&self, id: i64) -> Result<Option<StoredMessage>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS}, unpack_blob(raw, raw_codec), diagnostics \
             FROM messages WHERE id = ?1"
        );
        let row = self
            .conn
            .query_row(&sql, [id], |r| {
                Ok((
                    message_summary(r)?,
                    r.get::<_, Vec<u8>>(15)?,
                    r.get::<_, Option<String>>(16)?,
                ))
            })
            .optional()
            .map_err(StoreError::sql("loading a message"))?;
        row.map(|(summary, raw, diagnostics)| {
            let diagnostics = match diagnostics {
                Some(json) => {
                    serde_json::from_str(&json).map_err(StoreError::json("stored diagnostics"))?
                }
                None => Vec::new(),
            };
            Ok(StoredMessage {
                summary,
                raw,
                diagnostics,
            })
        })
        .transpose()
    }

    /// Rejected or failed messages an operator asked to re-process, oldest request first.
    pub fn replay_requests(&self, limit: usize) -> Result<Vec<StoredMessage>> {
        let ids: Vec<i64> = self
            .conn
            .prepare(
                "SELECT id FROM messages WHERE replay_requested_at_ms IS NOT NULL
                 ORDER BY replay_requested_at_ms, id LIMIT ?1",
            )
            .and_then(|mut st| {
                st.query_map([limit as i64], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()
            })
            .map_err(StoreError::sql("listing replay requests"))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(m) = self.get_message(id)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// The latest snapshot of a case.
    pub fn get_case(&self, case_id: &str) -> Result<Option<CaseRecord>> {
        let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE case_id = ?1");
        let row = self
            .conn
            .query_row(&sql, [case_id], case_row)
            .optional()
            .map_err(StoreError::sql("loading a case"))?;
        row.map(case_record).transpose()
    }

    /// Cases of a patient (see [`crate::patient_key`]) that are not closed
    /// (approved, partially approved, modified, denied, cancelled or error),
    /// most recently updated first.
    pub fn open_cases_for_patient(&self, patient_key: &str) -> Result<Vec<CaseRecord>> {
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE patient_key = ?1
             AND status IN ('draft', 'requested', 'submitted', 'pended')
             ORDER BY updated_at_ms DESC"
        );
        let rows = self
            .conn
            .prepare(&sql)
            .and_then(|mut st| {
                st.query_map([patient_key], case_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("finding a patient's cases"))?;
        rows.into_iter().map(case_record).collect()
    }

    /// All events of a case in sequence order.
    pub fn case_events(&self, case_id: &str) -> Result<Vec<OutboxEvent>> {
        self.events_where("case_id = ?1 ORDER BY seq", params![case_id])
    }

    /// The events a message produced (for a duplicate: none).
    pub fn message_events(&self, message_id: i64) -> Result<Vec<OutboxEvent>> {
        self.events_where("message_id = ?1 ORDER BY case_id, seq", params![message_id])
    }

    /// One event.
    pub fn event(&self, event_id: &str) -> Result<Option<OutboxEvent>> {
        Ok(self
            .events_where("id = ?1", params![event_id])?
            .into_iter()
            .next())
    }

    /// Events, optionally in one state, in append order (oldest first).
    pub fn list_events(&self, state: Option<EventState>, limit: usize) -> Result<Vec<OutboxEvent>> {
        match state {
            Some(s) => self.events_where(
                "state = ?1 ORDER BY created_at_ms, id LIMIT ?2",
                params![s.as_str(), limit as i64],
            ),
            None => self.events_where(
                "1 = 1 ORDER BY created_at_ms, id LIMIT ?1",
                params![limit as i64],
            ),
        }
    }

    /// One page of every event, in id order (ids are UUIDv7: creation order):
    /// the events after `after_id` (all when `None`), at most `limit`, capped
    /// at 10 000 like [`Reader::list_messages`]. Page on the last id returned
    /// until a page comes back empty to visit the whole outbox.
    pub fn events_page(&self, after_id: Option<&str>, limit: usize) -> Result<Vec<OutboxEvent>> {
        let limit = limit.min(10_000) as i64;
        match after_id {
            Some(after) => self.events_where("id > ?1 ORDER BY id LIMIT ?2", params![after, limit]),
            None => self.events_where("1 = 1 ORDER BY id LIMIT ?1", params![limit]),
        }
    }

    /// Dead-lettered events, oldest first.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEvent>> {
        self.list_events(Some(EventState::Dead), limit)
    }

    /// Events the forwarder may send now: the first pending event of each case
    /// (its outbox head, kept by the writer in the case's row) that is due,
    /// earliest due first, skipping cases in `busy` (an attempt is in flight).
    /// At most one event per case. Reads `limit + busy.len()` heads through
    /// the `cases_head_due` index: the cost follows what is sent, not the size
    /// of the backlog.
    pub fn deliverable(&self, limit: usize, busy: &HashSet<String>) -> Result<Vec<OutboxEvent>> {
        let fetch = (limit + busy.len()) as i64;
        let events = self.events_from(DELIVERABLE, params![now_ms(), fetch])?;
        Ok(events
            .into_iter()
            .filter(|e| !busy.contains(&e.case_id))
            .take(limit)
            .collect())
    }

    /// When the next sendable event (the first pending one of its case) falls
    /// due, for the forwarder's sleep. One index probe.
    pub fn next_due(&self) -> Result<Option<jiff::Timestamp>> {
        let ms: Option<i64> = self
            .conn
            .prepare_cached(NEXT_DUE)
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(StoreError::sql("finding the next due event"))?;
        Ok(ms.map(ts))
    }

    /// Delivery attempts of one event, oldest first.
    pub fn attempts(&self, event_id: &str) -> Result<Vec<AttemptRecord>> {
        self.conn
            .prepare(
                "SELECT sink, at_ms, result, http_status, error FROM delivery_attempts
                 WHERE event_id = ?1 ORDER BY id",
            )
            .and_then(|mut st| {
                st.query_map([event_id], |r| {
                    Ok(AttemptRecord {
                        sink: r.get(0)?,
                        at: ts(r.get(1)?),
                        result: r.get(2)?,
                        http_status: r.get(3)?,
                        error: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("listing delivery attempts"))
    }

    /// Outbox depth, the age of the oldest pending event and the dead-letter
    /// count. The oldest pending event is a case's head, or follows a dead
    /// letter holding its case back (rare: those cases are read one by one
    /// through `cases_held`), so its age costs index probes, not a scan; the
    /// depth counts index entries.
    pub fn outbox_stats(&self) -> Result<OutboxStats> {
        let (pending, oldest): (i64, Option<i64>) = self
            .conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM events WHERE state = 'pending'),
                        (SELECT MIN(at) FROM (
                            SELECT MIN(head_created_ms) AS at FROM cases
                            WHERE head_due_ms IS NOT NULL
                            UNION ALL
                            SELECT MIN(e.created_at_ms) FROM cases h
                            CROSS JOIN events e ON e.case_id = h.case_id
                                                AND e.seq > h.head_seq
                                                AND e.state = 'pending'
                            WHERE h.head_seq IS NOT NULL AND h.head_due_ms IS NULL))",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(StoreError::sql("counting pending events"))?;
        let dead: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM events WHERE state = 'dead'",
                [],
                |r| r.get(0),
            )
            .map_err(StoreError::sql("counting dead events"))?;
        let age = oldest
            .map(|ms| ((now_ms() - ms).max(0) as f64) / 1000.0)
            .unwrap_or(0.0);
        Ok(OutboxStats {
            pending: pending as u64,
            oldest_pending_age_secs: age,
            dead: dead as u64,
        })
    }

    /// Decisions whose write-back is due, oldest first, optionally for one adapter.
    pub fn pending_writebacks(
        &self,
        adapter: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WriteBackJob>> {
        let rows: Vec<(i64, String, String, String, i64)> = self
            .conn
            .prepare(
                "SELECT d.id, d.adapter, d.decision, unpack_text(c.snapshot, c.snapshot_codec), d.attempts
                 FROM decisions d JOIN cases c ON c.case_id = d.case_id
                 WHERE d.writeback_state = 'pending' AND d.next_attempt_at_ms <= ?1
                   AND (?2 IS NULL OR d.adapter = ?2)
                 ORDER BY d.next_attempt_at_ms, d.id LIMIT ?3",
            )
            .and_then(|mut st| {
                st.query_map(params![now_ms(), adapter, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("listing write-backs"))?;
        rows.into_iter()
            .map(|(decision_id, adapter, decision, snapshot, attempts)| {
                let decision: Decision =
                    serde_json::from_str(&decision).map_err(StoreError::json("stored decision"))?;
                let case: Case = serde_json::from_str(&snapshot)
                    .map_err(StoreError::json("stored case snapshot"))?;
                Ok(WriteBackJob {
                    decision_id,
                    adapter,
                    case,
                    decision,
                    attempts,
                })
            })
            .collect()
    }

    /// State of one decision's write-back and its last error.
    pub fn writeback_state(
        &self,
        decision_id: i64,
    ) -> Result<Option<(WriteBackState, Option<String>)>> {
        let row: Option<(String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT writeback_state, last_error FROM decisions WHERE id = ?1",
                [decision_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::sql("loading a decision"))?;
        Ok(row.map(|(s, e)| {
            let state = match s.as_str() {
                "done" => WriteBackState::Done,
                "failed" => WriteBackState::Failed,
                _ => WriteBackState::Pending,
            };
            (state, e)
        }))
    }

    /// The newest audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditRecord>> {
        self.conn
            .prepare(
                "SELECT id, at_ms, actor, action, target, detail, case_id FROM audit_log
                 ORDER BY id DESC LIMIT ?1",
            )
            .and_then(|mut st| {
                st.query_map([limit as i64], audit_record)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("reading the audit log"))
    }

    fn events_where(&self, clause: &str, args: impl rusqlite::Params) -> Result<Vec<OutboxEvent>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE {clause}");
        self.events_from(&sql, args)
    }

    /// The events `sql` selects; its columns are [`event_columns`]'s.
    fn events_from(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<OutboxEvent>> {
        let rows = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut st| {
                st.query_map(args, |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, i64>(8)?,
                        r.get::<_, i64>(9)?,
                        r.get::<_, Option<String>>(10)?,
                        r.get::<_, i64>(11)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("loading events"))?;
        rows.into_iter()
            .map(
                |(id, case_id, seq, kind, msg, dec, body, state, attempts, next, err, created)| {
                    Ok(OutboxEvent {
                        event_type: CaseEventType::from_name(&kind).ok_or_else(|| {
                            StoreError::InvalidState(format!("event {id} has unknown type {kind}"))
                        })?,
                        state: EventState::from_name(&state).ok_or_else(|| {
                            StoreError::InvalidState(format!(
                                "event {id} has unknown state {state}"
                            ))
                        })?,
                        id,
                        case_id,
                        sequence: seq,
                        message_id: msg,
                        decision_id: dec,
                        body,
                        attempts,
                        next_attempt_at: ts(next),
                        last_error: err,
                        created_at: ts(created),
                    })
                },
            )
            .collect()
    }
}

/// An [`AuditRecord`] from a row selected as
/// `id, at_ms, actor, action, target, detail, case_id`.
pub(crate) fn audit_record(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.get(0)?,
        at: ts(r.get(1)?),
        entry: AuditEntry {
            actor: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            detail: r.get(5)?,
            case_id: r.get(6)?,
        },
    })
}

/// A [`MessageSummary`] from a row selected with [`MESSAGE_COLUMNS`] first.
pub(crate) fn message_summary(r: &Row<'_>) -> rusqlite::Result<MessageSummary> {
    let state: String = r.get(9)?;
    Ok(MessageSummary {
        id: r.get(0)?,
        adapter: r.get(1)?,
        profile: r.get(2)?,
        sender: r.get(3)?,
        control_id: r.get(4)?,
        message_type: r.get(5)?,
        content_hash: r.get(6)?,
        received_at: r.get(7)?,
        peer: r.get(8)?,
        // The CHECK constraint keeps this total; fall back to `error` defensively.
        state: MessageState::from_name(&state).unwrap_or(MessageState::Error),
        case_id: r.get(10)?,
        duplicate_of: r.get(11)?,
        error_reason: r.get(12)?,
        replay_requested: r.get(13)?,
        size: r.get(14)?,
    })
}

type CaseRow = (String, String, String, Option<String>, i64, i64, i64);

fn case_row(r: &Row<'_>) -> rusqlite::Result<CaseRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn case_record(row: CaseRow) -> Result<CaseRecord> {
    let (snapshot, adapter, profile, patient_key, last_seq, created, updated) = row;
    Ok(CaseRecord {
        case: serde_json::from_str(&snapshot).map_err(StoreError::json("stored case snapshot"))?,
        adapter,
        profile,
        patient_key,
        last_sequence: last_seq,
        created_at: ts(created),
        updated_at: ts(updated),
    })
}
