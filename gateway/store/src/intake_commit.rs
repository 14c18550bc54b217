//! The intake commit that merges with the stored case, in one writer job.
//!
//! Why: a later document about a stored case (an amended order, a 278
//! response) must keep what it leaves out, so the pipeline merges the new case
//! with the stored snapshot. It used to read the snapshot through the reader
//! pool first (a `spawn_blocking` round trip per message, on a read connection
//! whose page cache every commit invalidates) and then queue the commit.
//! Reading it inside the writer's transaction costs one primary-key probe
//! (nothing more for a new case), needs no extra thread hop, and is atomic
//! with the commit: nothing can change the case between the read and the write.
//! The merge may also refuse the document (it is about another case, e.g. a
//! 278 response whose trace is not its request's): the message is then
//! committed as rejected in the same transaction, with no case event.

use gateway_core::case::CaseStatus;
use gateway_core::{Case, Diagnostic};
use rusqlite::OptionalExtension;

use crate::error::{Result, StoreError};
use crate::model::{InboundOutcome, InboundReceipt, NewInbound};
use crate::ops;
use crate::store::Store;

/// A merge that refuses the new document (it is about another case): the
/// message is stored as rejected with this reason and these diagnostics, and
/// no case event is written.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeRefused {
    /// Why, without PHI.
    pub reason: String,
    /// Every diagnostic to keep with the message.
    pub diagnostics: Vec<Diagnostic>,
}

/// What [`Store::commit_inbound_merged`] did with an accepted case.
#[derive(Debug, Clone, PartialEq)]
pub enum Merged {
    /// Committed; the status of the case as stored (`None` when the outcome
    /// was not `Accepted`).
    Status(Option<CaseStatus>),
    /// The merge refused it: stored as rejected.
    Refused(MergeRefused),
}

impl Store {
    /// [`Store::commit_inbound`] for an accepted case that is merged with its
    /// stored snapshot: when the outcome is `Accepted` and the case is already
    /// stored, `merge(new, stored)` runs on the writer thread inside the same
    /// transaction before the commit; when it refuses, the message is
    /// committed as rejected instead (disposition `Rejected`).
    pub async fn commit_inbound_merged<M>(
        &self,
        message: NewInbound,
        merge: M,
    ) -> Result<(InboundReceipt, Merged)>
    where
        M: FnOnce(&mut Case, Case) -> std::result::Result<(), MergeRefused> + Send + 'static,
    {
        self.inner
            .writer
            .write_intake(move |conn| {
                let mut message = message;
                let mut merged = Merged::Status(None);
                if let InboundOutcome::Accepted { case, .. } = &mut message.outcome {
                    let snapshot: Option<String> = conn
                        .prepare_cached("SELECT unpack_text(snapshot, snapshot_codec) FROM cases WHERE case_id = ?1")
                        .and_then(|mut st| st.query_row([&case.case_id], |r| r.get(0)).optional())
                        .map_err(StoreError::sql("loading a case"))?;
                    let refused = match snapshot {
                        Some(snapshot) => {
                            let existing: Case = serde_json::from_str(&snapshot)
                                .map_err(StoreError::json("case snapshot"))?;
                            merge(case, existing).err()
                        }
                        None => None,
                    };
                    merged = match refused {
                        Some(refused) => Merged::Refused(refused),
                        None => Merged::Status(Some(case.status)),
                    };
                }
                if let Merged::Refused(refused) = &merged {
                    message.outcome = InboundOutcome::Rejected {
                        reason: refused.reason.clone(),
                        diagnostics: refused.diagnostics.clone(),
                    };
                }
                let receipt = ops::commit_inbound(conn, message)?;
                Ok((receipt, merged))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    //! The merge runs inside the write: what it makes of a stored case is
    //! what is stored, each event keeps the case as it was when it was made,
    //! and a refused message changes nothing of the case.

    use super::*;
    use crate::model::Disposition;
    use crate::test_cases::inbound;

    fn case(id: &str, notes: &[&str]) -> Case {
        let mut case = crate::test_cases::case(id, "requested");
        case.notes = notes.iter().map(|n| (*n).to_owned()).collect();
        case
    }

    async fn stored(store: &Store, id: &str) -> (Case, Vec<String>) {
        let id = id.to_owned();
        store
            .read(move |r| {
                let case = r.get_case(&id)?.expect("the case is stored").case;
                let bodies = r.case_events(&id)?.into_iter().map(|e| e.body).collect();
                Ok((case, bodies))
            })
            .await
            .expect("read")
    }

    /// The merge of these tests: keeps the stored case's notes after the new
    /// ones, or refuses a case whose first note is "refuse".
    fn merge(case: &mut Case, existing: Case) -> std::result::Result<(), MergeRefused> {
        if case.notes.first().map(String::as_str) == Some("refuse") {
            return Err(MergeRefused {
                reason: "refused by the test".into(),
                diagnostics: Vec::new(),
            });
        }
        case.notes.extend(existing.notes);
        Ok(())
    }

    #[tokio::test]
    async fn a_merged_case_is_stored_as_merged_and_its_events_keep_each_version() {
        let (_dir, store) = crate::test_cases::fresh_store().await;
        let id = "case-0123456789abcdef01234567";

        let (first, merged) = store
            .commit_inbound_merged(inbound("M1", case(id, &["first"])), merge)
            .await
            .expect("first commit");
        assert!(matches!(first.disposition, Disposition::Accepted { .. }));
        assert!(matches!(merged, Merged::Status(Some(_))));
        assert_eq!(stored(&store, id).await.0.notes, ["first"]);

        store
            .commit_inbound_merged(inbound("M2", case(id, &["second"])), merge)
            .await
            .expect("second commit");
        let (case_now, bodies) = stored(&store, id).await;
        assert_eq!(
            case_now.notes,
            ["second", "first"],
            "the merge's result is stored"
        );
        let notes_in = |body: &str| -> Vec<String> {
            let event: serde_json::Value = serde_json::from_str(body).expect("event JSON");
            serde_json::from_value(event["data"]["notes"].clone()).expect("notes")
        };
        assert_eq!(
            notes_in(&bodies[0]),
            ["first"],
            "the first event keeps its case"
        );
        assert_eq!(notes_in(&bodies[1]), ["second", "first"]);

        let (refused, merged) = store
            .commit_inbound_merged(inbound("M3", case(id, &["refuse"])), merge)
            .await
            .expect("refused commit");
        assert!(matches!(refused.disposition, Disposition::Rejected));
        assert!(matches!(merged, Merged::Refused(_)));
        let (case_now, bodies) = stored(&store, id).await;
        assert_eq!(
            case_now.notes,
            ["second", "first"],
            "a refused case changes nothing"
        );
        assert_eq!(bodies.len(), 2, "and appends no event");
    }
}
