//! Windowed reads over intake and the outbox: message counts by adapter,
//! case site, state and completion; decisions and first deliveries of a time
//! window with their timings; the outbox now; dead letters with what they
//! hold back; cases a person had to touch; messages per minute.
//!
//! *Why here:* these are the reads that must know the schema (which table has
//! a time index, which grows with its row id, what a case's site is). What a
//! caller makes of them — the dashboard's tiles, percentiles, rates — lives
//! with that caller (`ehr-gateway`'s `admin::queries`), so the store does not
//! change when a tile does.
//!
//! Every query is bounded by an index: messages by `messages_received`;
//! delivery attempts and decisions (which have no time index) by their
//! ever-growing row id — a binary search finds the first row of the window
//! (their time column is written with the writer's clock at insert, so it
//! grows with the row id; [`CLOCK_SKEW_MS`] absorbs small clock steps) and the
//! exact time filter is applied on top; events by their primary key or
//! `events_state`; the audit log by `audit_case`. Nothing here reads a raw
//! message, and only the `practice`, `site` and `tenant` members of a case
//! snapshot — the rows carry ids, names, counts and instants, never PHI.

use rusqlite::{OptionalExtension, params};

use crate::error::{Result, StoreError};
use crate::model::MessageState;
use crate::read::Reader;

/// How far back a row's time may be behind an earlier row's (a clock step)
/// and still be found by the row-id search.
pub const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// Tenant, practice and site of a case (all absent for messages without one).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct CaseSite {
    /// Tenant of the case.
    pub tenant: Option<String>,
    /// Practice of the case.
    pub practice: Option<String>,
    /// Site of the case.
    pub site: Option<String>,
}

/// How many messages of a window share an adapter, a case site, a state and
/// completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTally {
    /// Adapter that received them.
    pub adapter: String,
    /// Their case's site (duplicates and messages without a case have none).
    pub site: CaseSite,
    /// Their state.
    pub state: MessageState,
    /// Accepted and every case event they produced is delivered (or they
    /// produced none).
    pub completed: bool,
    /// How many.
    pub count: u64,
}

/// A decision received in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionTiming {
    /// Its case's site.
    pub site: CaseSite,
    /// Milliseconds from the case's first commit to the decision.
    pub after_case_ms: i64,
}

/// An event's first successful delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstDelivery {
    /// When it was delivered (ms since the epoch).
    pub at_ms: i64,
    /// When the event was appended.
    pub event_created_ms: i64,
    /// When the message behind it was received (`None` for events without a
    /// message, e.g. decisions).
    pub message_received_ms: Option<i64>,
}

/// The pending events now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PendingEvents {
    /// How many.
    pub count: u64,
    /// When the oldest of them was appended.
    pub oldest_created_ms: Option<i64>,
}

/// Dead letters now and what they hold back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeadLetterTotals {
    /// Dead events not skipped by an operator.
    pub count: u64,
    /// Cases whose outbox head (first open event) is dead.
    pub held_cases: u64,
    /// Pending events behind those heads.
    pub held_events: u64,
}

/// A dead event not skipped, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldDeadLetter {
    /// Event id.
    pub event_id: String,
    /// The case.
    pub case_id: String,
    /// Adapter owning the case.
    pub adapter: String,
    /// Event type.
    pub event_type: String,
    /// Position in the case.
    pub sequence: i64,
    /// Delivery attempts made.
    pub attempts: i64,
    /// When it was dead-lettered.
    pub dead_since_ms: Option<i64>,
    /// HTTP status of the last attempt, when there was one.
    pub http_status: Option<u16>,
    /// Pending events of the same case behind it.
    pub held_events: u64,
}

/// Stored cases and how many of them a person touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaseTouches {
    /// Stored cases.
    pub cases: u64,
    /// Of them, those with an audit entry of one of the asked actions, a
    /// write-back that gave up, or desktop evidence.
    pub touched: u64,
}

/// A case's tenant, practice and site as one JSON array
/// (`["mso","north",null]`; NULL without a case): the snapshot is unpacked
/// once per row, not once per field ([`CaseSite::from_json`]).
macro_rules! site_sql {
    () => {
        "json_extract(unpack_text(c.snapshot, c.snapshot_codec), '$.tenant', '$.practice', '$.site')"
    };
}

impl CaseSite {
    /// The site [`site_sql`] selected.
    fn from_json(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<CaseSite> {
        let Some(text) = row.get::<_, Option<String>>(index)? else {
            return Ok(CaseSite::default());
        };
        let (tenant, practice, site): (Option<String>, Option<String>, Option<String>) =
            serde_json::from_str(&text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    index,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?;
        Ok(CaseSite {
            tenant,
            practice,
            site,
        })
    }
}

/// Messages of a window by adapter, site, state and completion.
const MESSAGE_TALLY_SQL: &str = concat!(
    "SELECT m.adapter, ",
    site_sql!(),
    ",
                        m.state,
                        m.state = 'accepted' AND NOT EXISTS (
                            SELECT 1 FROM events e
                            WHERE e.message_id = m.id AND e.state <> 'delivered'),
                        COUNT(*)
                 FROM messages m
                 LEFT JOIN cases c ON c.case_id = m.case_id AND m.state <> 'duplicate'
                 WHERE m.received_at_ms >= ?1 AND m.received_at_ms < ?2
                 GROUP BY 1, 2, 3, 4"
);

/// Events first delivered in a window, from a row id on.
const FIRST_DELIVERIES_SQL: &str = "SELECT MIN(a.at_ms), e.created_at_ms, m.received_at_ms
                 FROM delivery_attempts a NOT INDEXED
                 JOIN events e ON e.id = a.event_id
                 LEFT JOIN messages m ON m.id = e.message_id
                 WHERE a.id >= ?1 AND a.result = 'delivered'
                   AND a.at_ms >= ?2 AND a.at_ms < ?3
                   AND NOT EXISTS (SELECT 1 FROM delivery_attempts b
                                   WHERE b.event_id = a.event_id AND b.result = 'delivered'
                                     AND b.at_ms < ?2)
                 GROUP BY a.event_id";
/// Stored cases, and those a person had to touch: an audit entry of one of
/// the asked actions (`?1…`), a write-back that gave up, or desktop evidence.
/// Each source is read through its own index (`audit_case`,
/// `decisions_writeback`, `evidence_case`), so the cost follows the touched
/// cases, not all cases.
fn case_touches_sql(actions: usize) -> String {
    let placeholders = (1..=actions.max(1))
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT (SELECT COUNT(*) FROM cases),
        (SELECT COUNT(*) FROM (
            SELECT case_id FROM audit_log WHERE case_id IS NOT NULL AND action IN ({placeholders})
            UNION SELECT case_id FROM decisions WHERE writeback_state = 'failed'
            UNION SELECT case_id FROM evidence WHERE case_id IS NOT NULL
         ) AS touched
         WHERE EXISTS (SELECT 1 FROM cases c WHERE c.case_id = touched.case_id))"
    )
}

impl Reader {
    /// Messages received in `[since, until)` (ms since the epoch), counted by
    /// adapter, case site, state and completion.
    pub fn message_tallies(&self, since: i64, until: i64) -> Result<Vec<MessageTally>> {
        self.conn
            .prepare_cached(MESSAGE_TALLY_SQL)
            .and_then(|mut st| {
                st.query_map(params![since, until], |r| {
                    let state: String = r.get(2)?;
                    let state = MessageState::from_name(&state).ok_or_else(|| {
                        rusqlite::Error::FromSqlConversionFailure(
                            2,
                            rusqlite::types::Type::Text,
                            format!("unknown message state {state:?}").into(),
                        )
                    })?;
                    Ok(MessageTally {
                        adapter: r.get(0)?,
                        site: CaseSite::from_json(r, 1)?,
                        state,
                        completed: r.get(3)?,
                        count: r.get::<_, i64>(4)?.max(0) as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("aggregating message volume"))
    }

    /// Decisions received in `[since, until)`: their case's site and the time
    /// from the case's first commit to the decision.
    pub fn decisions_between(&self, since: i64, until: i64) -> Result<Vec<DecisionTiming>> {
        let Some(first) = self.first_row_since("decisions", "received_at_ms", since)? else {
            return Ok(Vec::new());
        };
        self.conn
            .prepare_cached(concat!(
                "SELECT ",
                site_sql!(),
                ", d.received_at_ms - c.created_at_ms
                 FROM decisions d NOT INDEXED JOIN cases c ON c.case_id = d.case_id
                 WHERE d.id >= ?1 AND d.received_at_ms >= ?2 AND d.received_at_ms < ?3"
            ))
            .and_then(|mut st| {
                st.query_map(params![first, since, until], |r| {
                    Ok(DecisionTiming {
                        site: CaseSite::from_json(r, 0)?,
                        after_case_ms: r.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("aggregating decisions"))
    }

    /// Events whose first successful delivery falls in `[since, until)`.
    pub fn first_deliveries(&self, since: i64, until: i64) -> Result<Vec<FirstDelivery>> {
        let Some(first) = self.first_row_since("delivery_attempts", "at_ms", since)? else {
            return Ok(Vec::new());
        };
        // An event delivered again (at least once) keeps its first delivery:
        // a later window must not count it a second time. `NOT INDEXED`: the
        // planner would otherwise scan all of `attempts_event` for the GROUP BY
        // instead of the row-id range.
        self.conn
            .prepare_cached(FIRST_DELIVERIES_SQL)
            .and_then(|mut st| {
                st.query_map(params![first, since, until], |r| {
                    Ok(FirstDelivery {
                        at_ms: r.get(0)?,
                        event_created_ms: r.get(1)?,
                        message_received_ms: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("aggregating deliveries"))
    }

    /// The pending events now and when the oldest was appended.
    pub fn pending_events(&self) -> Result<PendingEvents> {
        let (count, oldest): (i64, Option<i64>) = self
            .conn
            .query_row(
                "SELECT COUNT(*), MIN(created_at_ms) FROM events WHERE state = 'pending'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(StoreError::sql("counting pending events"))?;
        Ok(PendingEvents {
            count: count.max(0) as u64,
            oldest_created_ms: oldest,
        })
    }

    /// The dead letters not skipped, the cases they hold and the events
    /// behind them. A case is held when its outbox head (its first open event,
    /// kept by the writer) is dead, so the totals read the heads, not the
    /// backlog.
    pub fn dead_letter_totals(&self) -> Result<DeadLetterTotals> {
        let (count, held_cases, held_events): (i64, i64, i64) = self
            .conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM events
                         WHERE state = 'dead' AND skipped_at_ms IS NULL),
                        (SELECT COUNT(*) FROM cases
                         WHERE head_seq IS NOT NULL AND head_due_ms IS NULL),
                        (SELECT COUNT(*) FROM cases h
                         CROSS JOIN events p ON p.case_id = h.case_id AND p.seq > h.head_seq
                                            AND p.state = 'pending'
                         WHERE h.head_seq IS NOT NULL AND h.head_due_ms IS NULL)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(StoreError::sql("counting dead letters"))?;
        Ok(DeadLetterTotals {
            count: count.max(0) as u64,
            held_cases: held_cases.max(0) as u64,
            held_events: held_events.max(0) as u64,
        })
    }

    /// The oldest `limit` dead letters not skipped (skipped ones hold nothing
    /// back), with the pending events behind each.
    pub fn oldest_dead_letters(&self, limit: usize) -> Result<Vec<HeldDeadLetter>> {
        self.conn
            .prepare_cached(
                "SELECT e.id, e.case_id, c.adapter, e.type, e.seq, e.attempts, e.finished_at_ms,
                        (SELECT a.http_status FROM delivery_attempts a
                         WHERE a.event_id = e.id ORDER BY a.id DESC LIMIT 1),
                        (SELECT COUNT(*) FROM events p
                         WHERE p.case_id = e.case_id AND p.seq > e.seq AND p.state = 'pending')
                 FROM events e JOIN cases c ON c.case_id = e.case_id
                 WHERE e.state = 'dead' AND e.skipped_at_ms IS NULL
                 ORDER BY e.next_attempt_at_ms, e.created_at_ms, e.id LIMIT ?1",
            )
            .and_then(|mut st| {
                st.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok(HeldDeadLetter {
                        event_id: r.get(0)?,
                        case_id: r.get(1)?,
                        adapter: r.get(2)?,
                        event_type: r.get(3)?,
                        sequence: r.get(4)?,
                        attempts: r.get(5)?,
                        dead_since_ms: r.get(6)?,
                        http_status: r.get(7)?,
                        held_events: r.get::<_, i64>(8)?.max(0) as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("listing dead letters"))
    }

    /// All stored cases, and those touched by a person: an audit entry with
    /// one of `audit_actions` about the case, a write-back that gave up
    /// (staff enter it in the EHR themselves) or desktop evidence kept for an
    /// operator. Touches of unknown cases do not count.
    pub fn case_touches(&self, audit_actions: &[&str]) -> Result<CaseTouches> {
        let none = [""];
        let actions = if audit_actions.is_empty() {
            &none[..]
        } else {
            audit_actions
        };
        let (cases, touched): (i64, i64) = self
            .conn
            .prepare_cached(&case_touches_sql(actions.len()))
            .and_then(|mut st| {
                st.query_row(rusqlite::params_from_iter(actions), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            })
            .map_err(StoreError::sql("measuring automation coverage"))?;
        Ok(CaseTouches {
            cases: cases.max(0) as u64,
            touched: touched.max(0) as u64,
        })
    }

    /// Messages received in `[start, until)` except duplicates, per whole
    /// minute after `start`: `(minute index, count)` for the minutes that had
    /// any, in no particular order.
    pub fn messages_per_minute(&self, start: i64, until: i64) -> Result<Vec<(i64, u64)>> {
        self.conn
            .prepare_cached(
                "SELECT (received_at_ms - ?1) / 60000, COUNT(*) FROM messages
                 WHERE received_at_ms >= ?1 AND received_at_ms < ?2 AND state <> 'duplicate'
                 GROUP BY 1",
            )
            .and_then(|mut st| {
                st.query_map(params![start, until], |r| {
                    Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("counting messages per minute"))
    }

    /// The smallest row id of `table` whose `column` is at or after
    /// `since − CLOCK_SKEW_MS`, by binary search over the row id (the caller
    /// filters exactly by time). `None` when no row is that recent.
    fn first_row_since(
        &self,
        table: &'static str,
        column: &'static str,
        since: i64,
    ) -> Result<Option<i64>> {
        let target = since.saturating_sub(CLOCK_SKEW_MS);
        let bounds: (Option<i64>, Option<i64>) = self
            .conn
            .query_row(&format!("SELECT MIN(id), MAX(id) FROM {table}"), [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(StoreError::sql("finding a table's row ids"))?;
        let (Some(mut lo), Some(mut hi)) = bounds else {
            return Ok(None);
        };
        let probe_sql =
            format!("SELECT id, {column} FROM {table} WHERE id >= ?1 ORDER BY id LIMIT 1");
        let probe = |id: i64| -> Result<Option<(i64, i64)>> {
            self.conn
                .prepare_cached(&probe_sql)
                .and_then(|mut st| {
                    st.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(StoreError::sql("searching a table by time"))
        };
        // The last row is too old: nothing in the window.
        match probe(hi)? {
            Some((_, t)) if t >= target => {}
            _ => return Ok(None),
        }
        // Invariants: every row before `lo` is older than `target`; the first
        // row at or after `hi` is not. Rows between `mid` and the probed row do
        // not exist, so `mid` is as good a bound as that row's id.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match probe(mid)? {
                Some((_, t)) if t >= target => hi = mid,
                Some((id, _)) => lo = id + 1,
                None => break,
            }
        }
        Ok(Some(lo))
    }
}

#[cfg(test)]
mod tests {
    //! The row-id search and the query plans on a real store file. The
    //! figures built from these reads are checked with the dashboard
    //! (`ehr-gateway`'s `admin::queries::stats`).

    use gateway_core::Case;
    use rusqlite::Connection;

    use super::*;
    use crate::model::*;
    use crate::store::{Store, StoreOptions};

    /// 2026-11-22T12:00:00Z.
    const T: i64 = 1_795_348_800_000;
    const MIN: i64 = 60_000;

    fn inbound(n: u32) -> NewInbound {
        let case: Case = serde_json::from_value(serde_json::json!({
            "case_id": format!("case-{n}"), "tenant": "mso-test", "practice": "cardio-north",
            "source": {"adapter": "hl7v2", "profile": "p", "received_at": "2026-11-22T10:00:00Z"},
            "status": "requested",
            "patient": {"identifiers": [{"type": "MR", "value": "E10001"}]}
        }))
        .expect("case");
        NewInbound {
            adapter: "hl7v2".to_owned(),
            profile: "p".to_owned(),
            sender: Some("SENDER".to_owned()),
            control_id: Some(format!("M-{n}")),
            message_type: Some("ORM^O01".to_owned()),
            raw: format!("raw {n}").into_bytes(),
            received_at: "2026-11-22T10:00:00Z".to_owned(),
            peer: None,
            outcome: InboundOutcome::Accepted {
                case: Box::new(case),
                event_type: None,
            },
            replay_of: None,
        }
    }

    /// Three delivered events with their attempts pinned at `times`, in
    /// row-id order; returns the first attempt's row id.
    async fn delivered_at(path: &std::path::Path, times: [i64; 3]) -> i64 {
        let store = Store::open(path, StoreOptions::default())
            .await
            .expect("open");
        for n in 0..3 {
            let receipt = store.commit_inbound(inbound(n)).await.expect("commit");
            let Disposition::Accepted { event_id, .. } = receipt.disposition else {
                panic!("not accepted");
            };
            store
                .record_attempt(DeliveryAttempt {
                    event_id,
                    sink: "http".to_owned(),
                    http_status: Some(202),
                    outcome: AttemptOutcome::Delivered,
                })
                .await
                .expect("attempt");
        }
        store.close().await;
        let conn = Connection::open(path).expect("open");
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM delivery_attempts ORDER BY id")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("attempt ids");
        assert_eq!(ids.len(), times.len());
        for (id, at) in ids.iter().zip(times) {
            conn.execute(
                "UPDATE delivery_attempts SET at_ms = ?2 WHERE id = ?1",
                params![id, at],
            )
            .expect("attempt time");
        }
        ids[0]
    }

    #[tokio::test]
    async fn the_row_id_search_finds_the_first_recent_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("search.sqlite");
        let first_id = delivered_at(&path, [T - 180 * MIN, T - 50 * MIN, T - 45 * MIN]).await;
        let reader = Reader::open(&path).expect("reader");
        let find = |since| {
            reader
                .first_row_since("delivery_attempts", "at_ms", since)
                .expect("search")
        };
        // Everything is recent for a window reaching before the first row.
        assert_eq!(find(T - 200 * MIN), Some(first_id));
        // The skew allowance reaches 5 minutes back: T-54m finds T-50m,
        // T-44m finds T-45m.
        assert_eq!(find(T - 54 * MIN), Some(first_id + 1));
        assert_eq!(find(T - 44 * MIN), Some(first_id + 2));
        assert_eq!(find(T + 10 * MIN), None);
        assert_eq!(
            reader
                .first_row_since("decisions", "received_at_ms", T)
                .expect("search"),
            None
        );
        // The exact filter on top: from T-49m the search starts at T-50m's
        // row (skew), but only T-45m's delivery is in the window.
        let seen = reader
            .first_deliveries(T - 49 * MIN, T)
            .expect("deliveries");
        assert_eq!(
            seen.iter().map(|d| d.at_ms).collect::<Vec<_>>(),
            vec![T - 45 * MIN]
        );
    }

    #[tokio::test]
    async fn window_queries_use_the_row_id_range_and_time_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plans.sqlite");
        delivered_at(&path, [T - 3 * MIN, T - 2 * MIN, T - MIN]).await;
        let reader = Reader::open(&path).expect("reader");
        let plan = |sql: &str, params: usize| -> String {
            let nulls = vec![rusqlite::types::Null; params];
            reader
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .and_then(|mut st| {
                    st.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .expect("plan")
                .join("\n")
        };
        let deliveries = plan(FIRST_DELIVERIES_SQL, 3);
        assert!(
            deliveries.contains("SEARCH a USING INTEGER PRIMARY KEY (rowid>?)"),
            "{deliveries}"
        );
        let messages = plan(MESSAGE_TALLY_SQL, 2);
        assert!(
            messages.contains("SEARCH m USING INDEX messages_received"),
            "{messages}"
        );
        let touches = plan(&case_touches_sql(3), 3);
        for index in ["audit_case", "decisions_writeback", "evidence_case"] {
            assert!(touches.contains(index), "{index}: {touches}");
        }
    }
}
