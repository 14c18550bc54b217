//! Requests this gateway wrote for a case (today: X12 278 requests the admin
//! API hands the platform), recorded with the references a reply must echo.
//!
//! Why: a reply that names one of our case ids (a 278 response whose BHT03
//! echoes the case id our request carried) may update that case only when it
//! answers a request the gateway knows. Case ids are derived from the tenant
//! and the order key, so anyone who knows those can compute one; the trace a
//! written request carries (TRN02, random per request) cannot be computed, and
//! it is recorded here durably before the request leaves the gateway. The
//! intake check reads these rows inside the same writer transaction as the
//! commit it guards ([`Store::commit_inbound_adopted`]).

use std::collections::BTreeMap;

use gateway_core::Case;
use gateway_core::case::Decision;
use gateway_core::event::CaseEventType;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Result, StoreError};
use crate::intake_commit::{MergeRefused, Merged};
use crate::model::{AuditEntry, Disposition, InboundOutcome, InboundReceipt, NewInbound};
use crate::ops;
use crate::store::Store;
use crate::time::{now_ms, ts};

/// A request written for a case, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCaseRequest {
    /// The case the request is about.
    pub case_id: String,
    /// What was written (`x12-278`).
    pub kind: String,
    /// `references` names and values a reply to it echoes (`x12_bht_reference`,
    /// `x12_trace`, `x12_trace_originator`).
    pub references: BTreeMap<String, String>,
    /// Control numbers it went out with (`isa13`, `gs06`, `st02`).
    pub control: BTreeMap<String, String>,
    /// Who obtained it (`admin-api:platform`).
    pub actor: String,
}

/// A recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRequestRecord {
    /// Row id.
    pub id: i64,
    /// When it was recorded.
    pub at: Timestamp,
    /// The request.
    pub request: NewCaseRequest,
}

impl Store {
    /// Records `request` and its audit row in one transaction, after checking
    /// the case is stored ([`StoreError::UnknownCase`] otherwise); returns the
    /// row id. The caller hands the request out only after this returns.
    pub async fn record_case_request(
        &self,
        request: NewCaseRequest,
        audit: AuditEntry,
    ) -> Result<i64> {
        self.inner
            .writer
            .write(move |conn| {
                if load_case(conn, &request.case_id)?.is_none() {
                    return Err(StoreError::UnknownCase(request.case_id.clone()));
                }
                let id = insert(conn, &request)?;
                ops::audit(conn, &audit)?;
                Ok(id)
            })
            .await
    }

    /// The requests recorded for `case_id`, oldest first.
    pub async fn case_requests(&self, case_id: &str) -> Result<Vec<CaseRequestRecord>> {
        let case_id = case_id.to_owned();
        self.read(move |r| list(&r.conn, &case_id)).await
    }

    /// [`Store::commit_inbound`] for a document that adopts one of our case
    /// ids (`[case_id] own`): `check(new, stored, requests)` runs on the writer
    /// thread inside the commit's transaction with the stored case (if any)
    /// and the requests recorded for it, and either merges (`Ok`) or refuses;
    /// a refused document is committed as rejected, with no case event.
    ///
    /// An adopted document is the counterpart's answer to a request the
    /// gateway sent (a payer's 278 response): when it brings a decision the
    /// case did not have (a new one, or a different one), the write-back of
    /// the case's owner (`source.adapter` after `check`: the adapter that
    /// opened the case — HL7, FHIR, PAS, X12 — not the one the answer came
    /// through) is queued in the same transaction, as a decision recorded
    /// through the admin API would be. So the EHR that asked learns the
    /// payer's decision (a PAS subscription notification, an HL7 decision
    /// message, a 278 response to the requester) whichever side decided.
    pub async fn commit_inbound_adopted<M>(
        &self,
        message: NewInbound,
        check: M,
    ) -> Result<(InboundReceipt, Merged)>
    where
        M: FnOnce(
                &mut Case,
                Option<Case>,
                Vec<CaseRequestRecord>,
            ) -> std::result::Result<(), MergeRefused>
            + Send
            + 'static,
    {
        self.inner
            .writer
            .write_intake(move |conn| {
                let mut message = message;
                let mut merged = Merged::Status(None);
                let mut decided = None;
                if let InboundOutcome::Accepted { case, .. } = &mut message.outcome {
                    let existing = load_case(conn, &case.case_id)?;
                    let before = existing.as_ref().and_then(|c| c.decision.clone());
                    let requests = list(conn, &case.case_id)?;
                    merged = match check(case, existing, requests) {
                        Ok(()) => {
                            decided = case
                                .decision
                                .clone()
                                .filter(|d| before.as_ref() != Some(d))
                                .map(|d| (case.case_id.clone(), case.source.adapter.clone(), d));
                            Merged::Status(Some(case.status))
                        }
                        Err(refused) => Merged::Refused(refused),
                    };
                }
                // A new decision is announced as one: the platform learns
                // the payer's answer as `decided`, as it would a decision
                // recorded through the admin API (unless the mapping said
                // what the event is, e.g. a cancellation).
                if decided.is_some()
                    && let InboundOutcome::Accepted { event_type, .. } = &mut message.outcome
                    && event_type.is_none()
                {
                    *event_type = Some(CaseEventType::Decided);
                }
                if let Merged::Refused(refused) = &merged {
                    message.outcome = InboundOutcome::Rejected {
                        reason: refused.reason.clone(),
                        diagnostics: refused.diagnostics.clone(),
                    };
                }
                let receipt = ops::commit_inbound(conn, message)?;
                if let (Some((case_id, owner, decision)), Disposition::Accepted { .. }) =
                    (decided, &receipt.disposition)
                {
                    queue_writeback(conn, &case_id, &owner, &decision)?;
                }
                Ok((receipt, merged))
            })
            .await
    }
}

/// Queues the write-back of `decision` to `adapter` (the case's owner):
/// a `pending` decision row, due now, which the write-back worker applies.
fn queue_writeback(
    conn: &Connection,
    case_id: &str,
    adapter: &str,
    decision: &Decision,
) -> Result<i64> {
    let decision = serde_json::to_string(decision).map_err(StoreError::json("decision"))?;
    conn.prepare_cached(
        "INSERT INTO decisions (case_id, adapter, decision, received_at_ms, writeback_state,
                                next_attempt_at_ms)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?4)",
    )
    .and_then(|mut st| st.execute(params![case_id, adapter, decision, now_ms()]))
    .map_err(StoreError::sql(
        "queueing the write-back of an adopted decision",
    ))?;
    Ok(conn.last_insert_rowid())
}

pub(crate) fn load_case(conn: &Connection, case_id: &str) -> Result<Option<Case>> {
    let snapshot: Option<String> = conn
        .prepare_cached(
            "SELECT unpack_text(snapshot, snapshot_codec) FROM cases WHERE case_id = ?1",
        )
        .and_then(|mut st| st.query_row([case_id], |r| r.get(0)).optional())
        .map_err(StoreError::sql("loading a case"))?;
    snapshot
        .map(|s| serde_json::from_str(&s).map_err(StoreError::json("case snapshot")))
        .transpose()
}

pub(crate) fn insert(conn: &Connection, request: &NewCaseRequest) -> Result<i64> {
    let refs = serde_json::to_string(&request.references)
        .map_err(StoreError::json("request references"))?;
    let control = serde_json::to_string(&request.control)
        .map_err(StoreError::json("request control numbers"))?;
    conn.prepare_cached(
        "INSERT INTO case_requests (case_id, at_ms, kind, refs, control, actor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut st| {
        st.execute(params![
            request.case_id,
            now_ms(),
            request.kind,
            refs,
            control,
            request.actor
        ])
    })
    .map_err(StoreError::sql("recording a written request"))?;
    Ok(conn.last_insert_rowid())
}

fn list(conn: &Connection, case_id: &str) -> Result<Vec<CaseRequestRecord>> {
    let rows: Vec<(i64, i64, String, String, String, String)> = conn
        .prepare_cached(
            "SELECT id, at_ms, kind, refs, control, actor FROM case_requests
             WHERE case_id = ?1 ORDER BY id",
        )
        .and_then(|mut st| {
            st.query_map([case_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql("reading written requests"))?;
    rows.into_iter()
        .map(|(id, at, kind, refs, control, actor)| {
            Ok(CaseRequestRecord {
                id,
                at: ts(at),
                request: NewCaseRequest {
                    case_id: case_id.to_owned(),
                    kind,
                    references: serde_json::from_str(&refs)
                        .map_err(StoreError::json("request references"))?,
                    control: serde_json::from_str(&control)
                        .map_err(StoreError::json("request control numbers"))?,
                    actor,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Disposition;

    fn case(id: &str) -> Case {
        crate::test_cases::case(id, "requested")
    }

    /// A payer's 278 about `case`.
    fn inbound(control: &str, case: Case) -> NewInbound {
        NewInbound {
            adapter: "x12".into(),
            profile: "x12-278".into(),
            sender: Some("PAYER".into()),
            message_type: Some("278".into()),
            ..crate::test_cases::inbound(control, case)
        }
    }

    fn audit() -> AuditEntry {
        AuditEntry {
            actor: "test".into(),
            action: "x12.request".into(),
            target: None,
            detail: None,
            case_id: None,
        }
    }

    #[tokio::test]
    async fn requests_are_recorded_for_stored_cases_and_handed_to_the_adoption_check() {
        let (_dir, store) = crate::test_cases::fresh_store().await;
        let id = "case-0123456789abcdef01234567";
        let request = NewCaseRequest {
            case_id: id.into(),
            kind: "x12-278".into(),
            references: BTreeMap::from([("x12_trace".into(), "T1".into())]),
            control: BTreeMap::from([("isa13".into(), "000000001".into())]),
            actor: "test".into(),
        };
        let unknown = store
            .record_case_request(request.clone(), audit())
            .await
            .expect_err("no such case");
        assert!(matches!(unknown, StoreError::UnknownCase(_)), "{unknown}");
        store
            .commit_inbound(inbound("A", case(id)))
            .await
            .expect("seed");
        store
            .record_case_request(request.clone(), audit())
            .await
            .expect("recorded");
        let listed = store.case_requests(id).await.expect("listed");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].request, request);

        // The check sees the stored case and the recorded request; a refusal
        // is committed as rejected, with no case event.
        let (receipt, merged) = store
            .commit_inbound_adopted(inbound("B", case(id)), |_, existing, requests| {
                assert!(existing.is_some());
                assert_eq!(requests.len(), 1);
                Err(MergeRefused {
                    reason: "unknown request".into(),
                    diagnostics: Vec::new(),
                })
            })
            .await
            .expect("committed");
        assert!(matches!(merged, Merged::Refused(_)));
        assert!(matches!(receipt.disposition, Disposition::Rejected));
        let (receipt, merged) = store
            .commit_inbound_adopted(inbound("C", case(id)), |_, _, _| Ok(()))
            .await
            .expect("committed");
        assert!(matches!(merged, Merged::Status(Some(_))));
        assert!(matches!(receipt.disposition, Disposition::Accepted { .. }));
        store.close().await;
    }

    #[tokio::test]
    async fn an_adopted_reply_that_brings_a_decision_queues_the_owner_s_write_back() {
        let (_dir, store) = crate::test_cases::fresh_store().await;
        let id = "case-0123456789abcdef01234567";
        let mut opened = case(id);
        opened.source.adapter = "davinci-pas".into();
        store
            .commit_inbound(inbound("A", opened))
            .await
            .expect("seed");
        let reply = |control: &str, auth: Option<&str>| {
            let mut reply = case(id);
            reply.source.adapter = "x12".into();
            reply.decision = auth.map(|auth| {
                serde_json::from_value(serde_json::json!({
                    "status": "approved", "authorization_number": auth
                }))
                .expect("decision")
            });
            inbound(control, reply)
        };
        // As the pipeline's check does: the case stays its opener's.
        let keep_owner = |case: &mut Case, existing: Option<Case>, _: Vec<CaseRequestRecord>| {
            if let Some(existing) = existing {
                case.source = existing.source;
                if case.decision.is_none() {
                    case.decision = existing.decision;
                }
            }
            Ok(())
        };
        let pending = |store: Store| async move {
            store
                .pending_writebacks(None, 10)
                .await
                .expect("write-backs")
                .into_iter()
                .map(|job| (job.adapter, job.decision.authorization_number))
                .collect::<Vec<_>>()
        };

        let event_type = |receipt: &InboundReceipt| match &receipt.disposition {
            Disposition::Accepted { event_type, .. } => Some(*event_type),
            _ => None,
        };
        // A reply without a decision queues nothing and is an update.
        let (receipt, _) = store
            .commit_inbound_adopted(reply("B", None), keep_owner)
            .await
            .expect("committed");
        assert_eq!(event_type(&receipt), Some(CaseEventType::Updated));
        assert!(pending(store.clone()).await.is_empty());

        // A refused reply with a decision queues nothing.
        store
            .commit_inbound_adopted(reply("C", Some("AUTH-1")), |_, _, _| {
                Err(MergeRefused {
                    reason: "unknown request".into(),
                    diagnostics: Vec::new(),
                })
            })
            .await
            .expect("committed");
        assert!(pending(store.clone()).await.is_empty());

        // The payer's approval: the owner's write-back, not the replying
        // adapter's, and a `decided` event for the platform.
        let (receipt, _) = store
            .commit_inbound_adopted(reply("D", Some("AUTH-1")), keep_owner)
            .await
            .expect("committed");
        assert_eq!(event_type(&receipt), Some(CaseEventType::Decided));
        assert_eq!(
            pending(store.clone()).await,
            [("davinci-pas".to_owned(), Some("AUTH-1".to_owned()))]
        );

        // The same decision again queues no second write-back and is an
        // update; a changed one is a decision again.
        let (receipt, _) = store
            .commit_inbound_adopted(reply("E", Some("AUTH-1")), keep_owner)
            .await
            .expect("committed");
        assert_eq!(event_type(&receipt), Some(CaseEventType::Updated));
        assert_eq!(pending(store.clone()).await.len(), 1);
        let (receipt, _) = store
            .commit_inbound_adopted(reply("F", Some("AUTH-2")), keep_owner)
            .await
            .expect("committed");
        assert_eq!(event_type(&receipt), Some(CaseEventType::Decided));
        assert_eq!(
            pending(store.clone()).await,
            [
                ("davinci-pas".to_owned(), Some("AUTH-1".to_owned())),
                ("davinci-pas".to_owned(), Some("AUTH-2".to_owned()))
            ]
        );
        store.close().await;
    }
}
