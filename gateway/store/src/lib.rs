//! gateway-store: the durable heart of the gateway.
//!
//! One SQLite file (WAL, `synchronous=FULL`, foreign keys on) holds the raw
//! messages, the latest snapshot of every case, the **outbox** of case events,
//! delivery attempts, decisions with their write-back state, and an audit log.
//!
//! * [`Store`] is the async handle (cheap to clone). All writes go through one
//!   writer thread doing **group commit**: queued requests share one
//!   transaction and one fsync, and each caller is answered only after COMMIT —
//!   so an adapter that acknowledges after [`Store::commit_inbound`] returned
//!   never acknowledges something a crash could lose.
//! * [`Reader`] is a synchronous read-only view (`ehr-gateway messages list`
//!   uses it on a live daemon's file; WAL lets it read while the daemon writes).
//! * The outbox API ([`Reader::deliverable`], [`Store::record_attempts`], …)
//!   is what the forwarder (crate `gateway-forward`) drives; the store itself
//!   makes no network or file delivery and reads no secret. [`backoff`] is the
//!   retry schedule of both outboxes it persists (case events and write-backs).
//! * Reads for operators: [`pages`] (messages, dead letters and the audit log
//!   by keyset page), [`activity`] (a time window's messages, decisions and
//!   deliveries, the outbox now) and counts for health signals
//!   ([`IntakeCounts`], [`Store::failed_delivery_run`]). They
//!   answer row-level questions through indexes; what a dashboard tile or an
//!   alert rule makes of them lives with the daemon.
//! * [`RetentionPolicy`] via [`Store::prune`] removes finished data by age and
//!   size budget and gives the space back.
//! * The intake size budget ([`StoreOptions::max_bytes`], [`Store::size`]):
//!   at the limit, with nothing delivered left to prune, intake commits fail
//!   with [`StoreError::Full`] before anything is written (a retryable
//!   refusal for the sender), as they do on a full disk (`SQLITE_FULL`).
//!
//! Replays: `ehr-gateway messages replay ID` calls [`Store::replay_message`]
//! (from its own process; SQLite serializes the two writers). A rejected or
//! failed message is flagged; the intake pipeline picks it up with
//! [`Store::replay_requests`] and commits the new verdict with
//! [`NewInbound::replay_of`] set, which updates the row in place. For an
//! accepted message, its dead events go back to `pending`; the forwarder
//! notices within its poll interval.
//!
//! Schema versions are forward-only migrations recorded in `user_version`
//! ([`SCHEMA_VERSION`]); a file written by a newer binary is refused.
//!
//! # Benchmark
//!
//! ```text
//! cargo run --release -p gateway-store --bin store-bench
//! ```
//! measures commits/s for sequential single commits and for group commit with
//! 1, 16 and 64 concurrent writers, printing ratios against the sequential
//! baseline measured in the same run (`--help` for options).

pub mod activity;
pub mod backoff;
pub mod backup;
mod case_lookup;
mod case_requests;
mod control_numbers;
mod counts;
mod decision_keys;
mod error;
mod evidence;
mod intake_commit;
mod model;
mod ops;
#[cfg(test)]
mod outbox_heads_tests;
mod packing;
pub mod pages;
pub mod private_files;
mod read;
mod retention;
mod schema;
mod size_budget;
mod store;
#[cfg(test)]
mod test_cases;
mod time;
mod writer;
mod x12_submissions;

use gateway_core::Case;
use patient_hashing::patient_hash;

pub use case_lookup::INDEXED_REFERENCES;
pub use case_requests::{CaseRequestRecord, NewCaseRequest};
pub use counts::IntakeCounts;
pub use decision_keys::{DecisionKey, DecisionRecorded};
pub use error::{Result, StoreError};
pub use evidence::{EvidenceFilter, EvidenceRecord, NewEvidence, StoredEvidence};
pub use intake_commit::{MergeRefused, Merged};
pub use model::*;
pub use read::Reader;
pub use schema::SCHEMA_VERSION;
pub use size_budget::StoreSize;
pub use store::{CommitStats, Store, StoreOptions};
pub use writer::WriterState;
pub use x12_submissions::{SubmissionCandidate, SubmissionState, X12Submission};

/// The key [`Store::open_cases_for_patient`] looks cases up by: a hash of the
/// tenant and the patient's first `MR` identifier (value and assigner), or of
/// the first identifier when there is no `MR`. `None` without identifiers.
/// Hashed so that the index holds no readable identifier.
pub fn patient_key(case: &Case) -> Option<String> {
    let patient = case.patient.as_ref()?;
    let id = patient
        .identifiers
        .iter()
        .find(|i| i.kind.as_deref() == Some("MR"))
        .or_else(|| patient.identifiers.first())?;
    Some(patient_hash(
        &case.tenant,
        id.assigner.as_deref().unwrap_or(""),
        &id.value,
    ))
}

mod patient_hashing {
    //! Patient key hashing on top of gateway-core's content hash (SHA-256).
    pub(crate) fn patient_hash(tenant: &str, assigner: &str, value: &str) -> String {
        let mut buf = Vec::with_capacity(tenant.len() + assigner.len() + value.len() + 2);
        buf.extend_from_slice(tenant.as_bytes());
        buf.push(0);
        buf.extend_from_slice(assigner.as_bytes());
        buf.push(0);
        buf.extend_from_slice(value.as_bytes());
        format!("pk-{}", &gateway_core::ids::content_hash(&buf)[..32])
    }
}
