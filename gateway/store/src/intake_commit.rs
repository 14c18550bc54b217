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

use gateway_core::Case;
use gateway_core::case::CaseStatus;
use rusqlite::OptionalExtension;

use crate::error::{Result, StoreError};
use crate::model::{InboundOutcome, InboundReceipt, NewInbound};
use crate::ops;
use crate::store::Store;

impl Store {
    /// [`Store::commit_inbound`] for an accepted case that is merged with its
    /// stored snapshot: when the outcome is `Accepted` and the case is already
    /// stored, `merge(new, stored)` runs on the writer thread inside the same
    /// transaction before the commit. Returns the receipt and the status of
    /// the case as stored (`None` when the outcome is not `Accepted`).
    pub async fn commit_inbound_merged<M>(
        &self,
        message: NewInbound,
        merge: M,
    ) -> Result<(InboundReceipt, Option<CaseStatus>)>
    where
        M: FnOnce(&mut Case, Case) + Send + 'static,
    {
        self.inner
            .writer
            .write_intake(move |conn| {
                let mut message = message;
                let mut status = None;
                if let InboundOutcome::Accepted { case, .. } = &mut message.outcome {
                    let snapshot: Option<String> = conn
                        .prepare_cached("SELECT snapshot FROM cases WHERE case_id = ?1")
                        .and_then(|mut st| st.query_row([&case.case_id], |r| r.get(0)).optional())
                        .map_err(StoreError::sql("loading a case"))?;
                    if let Some(snapshot) = snapshot {
                        let existing: Case = serde_json::from_str(&snapshot)
                            .map_err(StoreError::json("case snapshot"))?;
                        merge(case, existing);
                    }
                    status = Some(case.status);
                }
                let receipt = ops::commit_inbound(conn, message)?;
                Ok((receipt, status))
            })
            .await
    }
}
