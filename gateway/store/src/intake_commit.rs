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
