//! Keyset pages over stored rows: message search, the dead-letter list with
//! the message each event came from, and the audit log with filters.
//!
//! *Why a module of its own:* these filtered, paged reads grow with their
//! callers (the admin API's `/api/v1` lists); keeping them here leaves the
//! core read paths in `read.rs` untouched. Every query is bounded (`limit`,
//! at most 1 000 rows) and uses an index (`messages_state`,
//! `messages_control`, `messages_received`, `events_state`, `audit_case`).

use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::model::{AuditRecord, MessageState, MessageSummary};
use crate::read::Reader;
use crate::store::Store;
use crate::time::ts;

use crate::read::{MESSAGE_COLUMNS as COLUMNS, audit_record, message_summary as summary};

/// Most rows one page returns.
pub const MAX_PAGE: usize = 1000;

/// A message search. Results are newest first; `before_id` pages backwards.
#[derive(Debug, Clone, Default)]
pub struct MessageSearch {
    /// Only this state.
    pub state: Option<MessageState>,
    /// Only this control id (exact).
    pub control_id: Option<String>,
    /// Only this adapter.
    pub adapter: Option<String>,
    /// Only this profile.
    pub profile: Option<String>,
    /// Only messages of this case.
    pub case_id: Option<String>,
    /// Received at or after (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Received before (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Only ids below this (the next page after a page ending at it).
    pub before_id: Option<i64>,
    /// Rows per page (default 50, at most [`MAX_PAGE`]).
    pub limit: Option<usize>,
}

/// One page of a message search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessagePage {
    /// The messages, newest first.
    pub messages: Vec<MessageSummary>,
    /// How many messages match the filters (all pages).
    pub total: u64,
    /// `before_id` of the next page, when there is one.
    pub next_before_id: Option<i64>,
}

/// A dead-lettered event with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Event id (CloudEvents `id`).
    pub event_id: String,
    /// The case.
    pub case_id: String,
    /// Position in the case.
    pub sequence: i64,
    /// `created`, `updated`, `decided`.
    pub event_type: String,
    /// Delivery attempts made.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the event was appended (RFC 3339).
    pub created_at: String,
    /// When it was dead-lettered (RFC 3339), when recorded.
    pub dead_at: Option<String>,
    /// The message that produced it.
    pub message_id: Option<i64>,
    /// That message's control id.
    pub control_id: Option<String>,
    /// Adapter of the case.
    pub adapter: Option<String>,
    /// Profile of the case.
    pub profile: Option<String>,
}

/// Filter of [`Reader::audit_entries`]; newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this action (`phi.read`, `message.replay`, …).
    pub action: Option<String>,
    /// Only entries about this case.
    pub case_id: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only ids below this (paging).
    pub before_id: Option<i64>,
    /// Rows (default 100, at most [`MAX_PAGE`]).
    pub limit: Option<usize>,
}

fn page_size(limit: Option<usize>, default: usize) -> usize {
    limit.unwrap_or(default).clamp(1, MAX_PAGE)
}

impl Reader {
    /// Searches stored messages (without their bytes), newest first.
    pub fn search_messages(&self, search: &MessageSearch) -> Result<MessagePage> {
        let mut clause = String::from("1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut add = |sql: &str, value: rusqlite::types::Value| {
            args.push(value);
            clause.push_str(&format!(" AND {sql} ?{}", args.len()));
        };
        if let Some(state) = search.state {
            add("state =", state.as_str().to_owned().into());
        }
        if let Some(control) = &search.control_id {
            add("control_id =", control.clone().into());
        }
        if let Some(adapter) = &search.adapter {
            add("adapter =", adapter.clone().into());
        }
        if let Some(profile) = &search.profile {
            add("profile =", profile.clone().into());
        }
        if let Some(case_id) = &search.case_id {
            add("case_id =", case_id.clone().into());
        }
        if let Some(since) = search.since_ms {
            add("received_at_ms >=", since.into());
        }
        if let Some(until) = search.until_ms {
            add("received_at_ms <", until.into());
        }
        let total: i64 = self
            .conn
            .query_row(
                &format!("SELECT count(*) FROM messages WHERE {clause}"),
                rusqlite::params_from_iter(args.iter()),
                |r| r.get(0),
            )
            .map_err(StoreError::sql("counting messages"))?;
        let mut page_clause = clause;
        let mut page_args = args;
        if let Some(before) = search.before_id {
            page_args.push(before.into());
            page_clause.push_str(&format!(" AND id < ?{}", page_args.len()));
        }
        let limit = page_size(search.limit, 50);
        // One more than asked, to know whether a next page exists.
        page_args.push(((limit + 1) as i64).into());
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE {page_clause} ORDER BY id DESC LIMIT ?{}",
            page_args.len()
        );
        let mut messages = self
            .conn
            .prepare(&sql)
            .and_then(|mut st| {
                st.query_map(rusqlite::params_from_iter(page_args), summary)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("searching messages"))?;
        let next_before_id = if messages.len() > limit {
            messages.truncate(limit);
            messages.last().map(|m| m.id)
        } else {
            None
        };
        Ok(MessagePage {
            messages,
            total: total.max(0) as u64,
            next_before_id,
        })
    }

    /// Dead-lettered events, oldest first, after event id `after` (event ids
    /// are UUID v7: they sort by creation).
    pub fn dead_letter_page(
        &self,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<(Vec<DeadLetter>, u64)> {
        let total: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM events WHERE state = 'dead'",
                [],
                |r| r.get(0),
            )
            .map_err(StoreError::sql("counting dead letters"))?;
        let limit = page_size(limit, 100) as i64;
        let rows = self
            .conn
            .prepare(
                "SELECT e.id, e.case_id, e.seq, e.type, e.attempts, e.last_error,
                        e.created_at_ms, e.finished_at_ms, e.message_id, m.control_id,
                        c.adapter, c.profile
                 FROM events e
                 LEFT JOIN messages m ON m.id = e.message_id
                 LEFT JOIN cases c ON c.case_id = e.case_id
                 WHERE e.state = 'dead' AND (?1 IS NULL OR e.id > ?1)
                 ORDER BY e.id LIMIT ?2",
            )
            .and_then(|mut st| {
                st.query_map(rusqlite::params![after, limit], |r| {
                    Ok(DeadLetter {
                        event_id: r.get(0)?,
                        case_id: r.get(1)?,
                        sequence: r.get(2)?,
                        event_type: r.get(3)?,
                        attempts: r.get(4)?,
                        last_error: r.get(5)?,
                        created_at: format!("{:.3}", ts(r.get(6)?)),
                        dead_at: r
                            .get::<_, Option<i64>>(7)?
                            .map(|ms| format!("{:.3}", ts(ms))),
                        message_id: r.get(8)?,
                        control_id: r.get(9)?,
                        adapter: r.get(10)?,
                        profile: r.get(11)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("listing dead letters"))?;
        Ok((rows, total.max(0) as u64))
    }

    /// Audit entries matching `query`, newest first.
    pub fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        self.conn
            .prepare(
                "SELECT id, at_ms, actor, action, target, detail, case_id FROM audit_log
                 WHERE (?1 IS NULL OR action = ?1) AND (?2 IS NULL OR case_id = ?2)
                   AND (?3 IS NULL OR actor = ?3) AND (?4 IS NULL OR id < ?4)
                 ORDER BY id DESC LIMIT ?5",
            )
            .and_then(|mut st| {
                st.query_map(
                    rusqlite::params![
                        query.action,
                        query.case_id,
                        query.actor,
                        query.before_id,
                        page_size(query.limit, 100) as i64
                    ],
                    audit_record,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("reading the audit log"))
    }
}

impl Store {
    /// See [`Reader::search_messages`].
    pub async fn search_messages(&self, search: MessageSearch) -> Result<MessagePage> {
        self.read(move |r| r.search_messages(&search)).await
    }

    /// See [`Reader::dead_letter_page`].
    pub async fn dead_letter_page(
        &self,
        after: Option<String>,
        limit: Option<usize>,
    ) -> Result<(Vec<DeadLetter>, u64)> {
        self.read(move |r| r.dead_letter_page(after.as_deref(), limit))
            .await
    }

    /// See [`Reader::audit_entries`].
    pub async fn audit_entries(&self, query: AuditQuery) -> Result<Vec<AuditRecord>> {
        self.read(move |r| r.audit_entries(&query)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AuditEntry, InboundOutcome, NewInbound};

    fn message(control: &str, received_at: &str) -> NewInbound {
        NewInbound {
            adapter: "hl7v2".into(),
            profile: "epic".into(),
            sender: Some("EPIC^TEST".into()),
            control_id: Some(control.into()),
            message_type: Some("ORM^O01".into()),
            raw: format!("MSH|^~\\&|EPIC|TEST|||||ORM^O01|{control}|P|2.5.1\r").into_bytes(),
            received_at: received_at.into(),
            peer: None,
            outcome: InboundOutcome::Rejected {
                reason: "test".into(),
                diagnostics: vec![],
            },
            replay_of: None,
        }
    }

    #[tokio::test]
    async fn search_filters_pages_and_counts() {
        let (_dir, store) = crate::test_cases::fresh_store().await;
        for i in 0..5 {
            store
                .commit_inbound(message(
                    &format!("C{i}"),
                    &format!("2026-11-22T10:0{i}:00Z"),
                ))
                .await
                .expect("commit");
        }
        let page = store
            .search_messages(MessageSearch {
                limit: Some(2),
                ..MessageSearch::default()
            })
            .await
            .expect("search");
        assert_eq!(page.total, 5);
        let ids: Vec<_> = page.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![5, 4]);
        assert_eq!(page.next_before_id, Some(4));
        let last = store
            .search_messages(MessageSearch {
                limit: Some(2),
                before_id: Some(2),
                ..MessageSearch::default()
            })
            .await
            .expect("search");
        assert_eq!(last.messages.len(), 1);
        assert_eq!(last.next_before_id, None);

        let ranged = store
            .search_messages(MessageSearch {
                since_ms: "2026-11-22T10:01:00Z"
                    .parse::<jiff::Timestamp>()
                    .ok()
                    .map(|t| t.as_millisecond()),
                until_ms: "2026-11-22T10:03:00Z"
                    .parse::<jiff::Timestamp>()
                    .ok()
                    .map(|t| t.as_millisecond()),
                ..MessageSearch::default()
            })
            .await
            .expect("search");
        let controls: Vec<_> = ranged
            .messages
            .iter()
            .filter_map(|m| m.control_id.clone())
            .collect();
        assert_eq!(controls, vec!["C2".to_owned(), "C1".to_owned()]);
        assert_eq!(ranged.total, 2);

        let one = store
            .search_messages(MessageSearch {
                control_id: Some("C3".into()),
                state: Some(MessageState::Rejected),
                ..MessageSearch::default()
            })
            .await
            .expect("search");
        assert_eq!(one.total, 1);
        assert_eq!(one.messages[0].control_id.as_deref(), Some("C3"));
    }

    #[tokio::test]
    async fn audit_entries_filter_by_action_and_case() {
        let (_dir, store) = crate::test_cases::fresh_store().await;
        for (action, case) in [
            ("phi.read", Some("c1")),
            ("login", None),
            ("phi.read", Some("c2")),
        ] {
            store
                .audit(AuditEntry {
                    actor: "ops".into(),
                    action: action.into(),
                    target: None,
                    detail: None,
                    case_id: case.map(str::to_owned),
                })
                .await
                .expect("audit");
        }
        let phi = store
            .audit_entries(AuditQuery {
                action: Some("phi.read".into()),
                ..AuditQuery::default()
            })
            .await
            .expect("read");
        assert_eq!(phi.len(), 2);
        assert_eq!(phi[0].entry.case_id.as_deref(), Some("c2"));
        let c1 = store
            .audit_entries(AuditQuery {
                case_id: Some("c1".into()),
                ..AuditQuery::default()
            })
            .await
            .expect("read");
        assert_eq!(c1.len(), 1);
        let (dead, total) = store.dead_letter_page(None, None).await.expect("dead");
        assert!(dead.is_empty());
        assert_eq!(total, 0);
    }
}
