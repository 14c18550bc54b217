//! Decisions exactly once: an idempotency key stored with the decision in the
//! same writer transaction.
//!
//! *Why in the store and not in the admin handler:* the central platform
//! retries a decision it got no answer for, and the answer may have been lost
//! after the COMMIT. Only a key committed together with the decision row (and
//! looked up inside the same serialized writer job) tells a retry from a new
//! decision without a window between check and insert. Every decision channel
//! (the admin API today, a message-bus consumer later) passes its own
//! `channel` name and the key the sender chose; `(channel, key)` is unique.
//!
//! A key is bound to its request by a fingerprint (SHA-256 of the case id and
//! the decision's canonical JSON): the same key with the same request answers
//! the first receipt and changes nothing; the same key with another request is
//! [`StoreError::IdempotencyKeyReused`].

use gateway_core::case::Decision;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::model::{AuditEntry, DecisionReceipt};
use crate::ops;
use crate::store::Store;
use crate::time::now_ms;

/// Where a decision came from and the key its sender chose for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionKey {
    /// The channel (`admin-api`, …): keys of different channels never meet.
    pub channel: String,
    /// The sender's idempotency key.
    pub key: String,
}

/// What [`Store::record_decision_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionRecorded {
    /// A new decision row, its `decided` event and its write-back job.
    New(DecisionReceipt),
    /// The key was already committed with the same request: the first
    /// receipt, nothing changed.
    Replayed(DecisionReceipt),
}

impl DecisionRecorded {
    /// The receipt, new or first.
    pub fn receipt(&self) -> &DecisionReceipt {
        match self {
            DecisionRecorded::New(r) | DecisionRecorded::Replayed(r) => r,
        }
    }

    /// Whether this answered a repeat.
    pub fn replayed(&self) -> bool {
        matches!(self, DecisionRecorded::Replayed(_))
    }
}

/// The request fingerprint a key is bound to.
fn fingerprint(case_id: &str, decision: &Decision) -> Result<String> {
    let json = serde_json::to_string(decision).map_err(StoreError::json("decision"))?;
    let mut hash = Sha256::new();
    hash.update(case_id.as_bytes());
    hash.update([0]);
    hash.update(json.as_bytes());
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The stored receipt of `key`, checked against this request.
fn lookup(
    conn: &Connection,
    key: &DecisionKey,
    fingerprint: &str,
) -> Result<Option<DecisionReceipt>> {
    let row: Option<(String, i64, String, i64)> = conn
        .prepare_cached(
            "SELECT fingerprint, decision_id, event_id, sequence FROM decision_keys
             WHERE channel = ?1 AND key = ?2",
        )
        .and_then(|mut st| {
            st.query_row(params![key.channel, key.key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .map_err(StoreError::sql("looking up a decision key"))?;
    match row {
        None => Ok(None),
        Some((stored, ..)) if stored != fingerprint => Err(StoreError::IdempotencyKeyReused {
            channel: key.channel.clone(),
        }),
        Some((_, decision_id, event_id, sequence)) => Ok(Some(DecisionReceipt {
            decision_id,
            event_id,
            sequence,
        })),
    }
}

/// One writer job: the key's first receipt, or a new decision with its key
/// and audit row (its target, when unset, is `decision:<id>`).
fn record_once(
    conn: &Connection,
    case_id: &str,
    decision: Decision,
    key: Option<&DecisionKey>,
    audit: Option<&AuditEntry>,
) -> Result<DecisionRecorded> {
    let print = fingerprint(case_id, &decision)?;
    if let Some(key) = key
        && let Some(first) = lookup(conn, key, &print)?
    {
        return Ok(DecisionRecorded::Replayed(first));
    }
    let receipt = ops::record_decision(conn, case_id, decision)?;
    if let Some(key) = key {
        conn.prepare_cached(
            "INSERT INTO decision_keys (channel, key, fingerprint, case_id, decision_id,
                                        event_id, sequence, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .and_then(|mut st| {
            st.execute(params![
                key.channel,
                key.key,
                print,
                case_id,
                receipt.decision_id,
                receipt.event_id,
                receipt.sequence,
                now_ms()
            ])
        })
        .map_err(StoreError::sql("storing a decision key"))?;
    }
    if let Some(entry) = audit {
        let mut entry = entry.clone();
        if entry.target.is_none() {
            entry.target = Some(format!("decision:{}", receipt.decision_id));
        }
        ops::audit(conn, &entry)?;
    }
    Ok(DecisionRecorded::New(receipt))
}

impl Store {
    /// Records `decision` for `case_id` at most once per `key`: when `key` was
    /// committed before with the same request, the first receipt comes back
    /// and nothing is written; otherwise the decision, its `decided` event,
    /// its write-back job, the key and `audit` commit in one transaction.
    /// Without a key every call is a new decision. Errors:
    /// [`StoreError::UnknownCase`], [`StoreError::IdempotencyKeyReused`].
    pub async fn record_decision_once(
        &self,
        case_id: &str,
        decision: Decision,
        key: Option<DecisionKey>,
        audit: Option<AuditEntry>,
    ) -> Result<DecisionRecorded> {
        let case_id = case_id.to_owned();
        self.inner
            .writer
            .write(move |conn| record_once(conn, &case_id, decision, key.as_ref(), audit.as_ref()))
            .await
    }

    /// The first receipt of `key` when it was committed with this same
    /// request (a read, no writer job); [`StoreError::IdempotencyKeyReused`]
    /// when it was committed with another request.
    pub async fn decision_for_key(
        &self,
        key: DecisionKey,
        case_id: &str,
        decision: &Decision,
    ) -> Result<Option<DecisionReceipt>> {
        let print = fingerprint(case_id, decision)?;
        self.read(move |r| lookup(&r.conn, &key, &print)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::case::DecisionStatus;

    fn decision(status: DecisionStatus) -> Decision {
        serde_json::from_value(serde_json::json!({ "status": status })).expect("decision")
    }

    #[test]
    fn fingerprints_bind_case_and_decision() {
        let a = fingerprint("c1", &decision(DecisionStatus::Approved)).expect("a");
        let b = fingerprint("c1", &decision(DecisionStatus::Denied)).expect("b");
        let c = fingerprint("c2", &decision(DecisionStatus::Approved)).expect("c");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            a,
            fingerprint("c1", &decision(DecisionStatus::Approved)).expect("a again")
        );
    }
}
