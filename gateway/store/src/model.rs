//! The store's public data types: what callers hand in and what they get back.
//!
//! Times are [`jiff::Timestamp`]s (UTC instants); the store keeps them as
//! milliseconds since the epoch so range queries and ordering are exact.

use gateway_core::Case;
use gateway_core::adapter::CommitReceipt;
use gateway_core::case::Decision;
use gateway_core::diagnostic::Diagnostic;
use gateway_core::event::CaseEventType;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A raw inbound message and what the pipeline made of it, committed as one unit
/// by [`crate::Store::commit_inbound`].
#[derive(Debug, Clone)]
pub struct NewInbound {
    /// Adapter name (`hl7v2`, `fhir`, `x12`, `desktop`).
    pub adapter: String,
    /// Mapping profile name.
    pub profile: String,
    /// Sending system (MSH-3^MSH-4, ISA06, FHIR base), when known.
    pub sender: Option<String>,
    /// Sender's control id (MSH-10, ISA13/ST02, resource id), when known.
    pub control_id: Option<String>,
    /// Message type (`ORM^O01`, `278`, `ServiceRequest`), when known.
    pub message_type: Option<String>,
    /// The exact bytes received.
    pub raw: Vec<u8>,
    /// When it was received, RFC 3339 with offset (as the adapter recorded it).
    pub received_at: String,
    /// Transport peer, for audit.
    pub peer: Option<String>,
    /// What the pipeline decided.
    pub outcome: InboundOutcome,
    /// Set when this is the re-processing of a stored message after
    /// [`crate::Store::replay_message`]: the original row is updated in place
    /// (no new row, no duplicate check) instead of inserting a new one.
    pub replay_of: Option<i64>,
}

/// The pipeline's verdict on an inbound message.
#[derive(Debug, Clone)]
pub enum InboundOutcome {
    /// Mapped: upsert the case snapshot and append its event.
    Accepted {
        /// The mapped case (its `case_id` is the key).
        case: Box<Case>,
        /// Event type; `None` lets the store choose `created` for a new case and
        /// `updated` for a known one.
        event_type: Option<CaseEventType>,
    },
    /// Acknowledged and kept without a case event (an ignored document type,
    /// a patient update with no open case). Stored as `accepted` with no case
    /// id and the note in `error_reason`; duplicates of it are recognized.
    Kept {
        /// Why no case event was produced, without PHI.
        note: String,
    },
    /// The sender's input or the mapping failed: keep the bytes with the reason.
    Rejected {
        /// Why, without PHI.
        reason: String,
        /// Parser and mapper findings.
        diagnostics: Vec<Diagnostic>,
    },
    /// Processing failed on our side (not the sender's fault): keep for replay.
    Failed {
        /// Why, without PHI.
        reason: String,
        /// Findings so far.
        diagnostics: Vec<Diagnostic>,
    },
}

/// What [`crate::Store::commit_inbound`] committed. Returned only after COMMIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundReceipt {
    /// The message row written now (for a replay: the replayed row).
    pub receipt: CommitReceipt,
    /// What happened.
    pub disposition: Disposition,
}

/// The result of an inbound commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Stored with its case event.
    Accepted {
        /// The case created or updated.
        case_id: String,
        /// The appended event (its CloudEvents `id`).
        event_id: String,
        /// The event's position in its case (1, 2, …).
        sequence: i64,
        /// Created, updated or decided.
        event_type: CaseEventType,
    },
    /// Seen before (same sender, control id and content hash): no new event.
    Duplicate {
        /// The original accepted message.
        original: CommitReceipt,
    },
    /// Stored as accepted without a case event ([`InboundOutcome::Kept`]).
    Kept,
    /// Stored with its reason (state `rejected` or `error`).
    Rejected,
}

/// State of a stored raw message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Mapped into a case event.
    Accepted,
    /// A repeat of an accepted message.
    Duplicate,
    /// Refused (sender or mapping problem); replayable.
    Rejected,
    /// Failed on our side; replayable.
    Error,
}

gateway_core::vocabulary!(MessageState, "message state" {
    Accepted => "accepted",
    Duplicate => "duplicate",
    Rejected => "rejected",
    Error => "error",
});

impl MessageState {
    /// Parses the storage name.
    pub fn from_name(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

/// One stored message without its bytes (for listings).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageSummary {
    /// Row id.
    pub id: i64,
    /// Adapter name.
    pub adapter: String,
    /// Profile name.
    pub profile: String,
    /// Sending system.
    pub sender: Option<String>,
    /// Sender's control id.
    pub control_id: Option<String>,
    /// Message type.
    pub message_type: Option<String>,
    /// Hex SHA-256 of the raw bytes.
    pub content_hash: String,
    /// Received time as the adapter recorded it.
    pub received_at: String,
    /// Transport peer.
    pub peer: Option<String>,
    /// Current state.
    pub state: MessageState,
    /// The case it produced (accepted messages).
    pub case_id: Option<String>,
    /// For duplicates: the original message.
    pub duplicate_of: Option<i64>,
    /// Why it was rejected or failed.
    pub error_reason: Option<String>,
    /// Whether a replay is queued for it.
    pub replay_requested: bool,
    /// Size of the raw bytes.
    pub size: i64,
}

/// One stored message with its bytes and diagnostics.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    /// The listing fields.
    pub summary: MessageSummary,
    /// The exact bytes received.
    pub raw: Vec<u8>,
    /// Diagnostics recorded with a rejection (empty otherwise).
    pub diagnostics: Vec<Diagnostic>,
}

/// Filter for [`crate::Reader::list_messages`]. Results are ordered by id,
/// newest first unless `after_id` is set (then oldest first after that id, for paging forward).
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Only messages in this state.
    pub state: Option<MessageState>,
    /// Only messages with this control id.
    pub control_id: Option<String>,
    /// Received at or after.
    pub since: Option<Timestamp>,
    /// Received before.
    pub until: Option<Timestamp>,
    /// Only ids greater than this (ascending order).
    pub after_id: Option<i64>,
    /// Maximum rows (default 100, at most 10 000).
    pub limit: Option<usize>,
}

/// A case's latest snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecord {
    /// The case (latest snapshot).
    pub case: Case,
    /// Adapter that owns the case.
    pub adapter: String,
    /// Profile that produced it.
    pub profile: String,
    /// Patient key (see [`crate::patient_key`]).
    pub patient_key: Option<String>,
    /// Number of events appended so far.
    pub last_sequence: i64,
    /// First stored.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// Delivery state of a case event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Waiting for (another) delivery attempt.
    Pending,
    /// Acknowledged by the sink.
    Delivered,
    /// Refused permanently; replayable.
    Dead,
}

impl EventState {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Pending => "pending",
            EventState::Delivered => "delivered",
            EventState::Dead => "dead",
        }
    }

    /// Parses the storage name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(EventState::Pending),
            "delivered" => Some(EventState::Delivered),
            "dead" => Some(EventState::Dead),
            _ => None,
        }
    }
}

/// A case event in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Event id (uuid v7) = CloudEvents `id` = idempotency key.
    pub id: String,
    /// The case.
    pub case_id: String,
    /// Position within the case, from 1.
    pub sequence: i64,
    /// Created, updated or decided.
    pub event_type: CaseEventType,
    /// The message that produced it (inbound events).
    pub message_id: Option<i64>,
    /// The decision that produced it (`decided` events).
    pub decision_id: Option<i64>,
    /// The CloudEvent, serialized (structured JSON mode), exactly as delivered.
    pub body: String,
    /// Delivery state.
    pub state: EventState,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Earliest time of the next attempt.
    pub next_attempt_at: Timestamp,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was appended.
    pub created_at: Timestamp,
}

/// What a delivery attempt achieved, as recorded by the forwarder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Accepted by the sink: the event is delivered.
    Delivered,
    /// Failed transiently: try again at `retry_at`.
    Retry {
        /// When to try again.
        retry_at: Timestamp,
        /// Why it failed (no PHI).
        error: String,
    },
    /// Refused permanently: dead-letter with the reason.
    Dead {
        /// Why (status and a capped body excerpt).
        error: String,
    },
}

/// One delivery attempt, recorded in the same transaction as the event's new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// The event.
    pub event_id: String,
    /// Sink name (`http`, `file`).
    pub sink: String,
    /// HTTP status, when there was one.
    pub http_status: Option<u16>,
    /// The result.
    pub outcome: AttemptOutcome,
}

/// A recorded delivery attempt, for `messages show` and audits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Sink name.
    pub sink: String,
    /// When.
    pub at: Timestamp,
    /// `delivered`, `retry` or `dead`.
    pub result: String,
    /// HTTP status, if any.
    pub http_status: Option<u16>,
    /// Error, if any.
    pub error: Option<String>,
}

/// Outbox health, for metrics and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OutboxStats {
    /// Events waiting for delivery.
    pub pending: u64,
    /// Age of the oldest pending event in seconds (0 when none).
    pub oldest_pending_age_secs: f64,
    /// Dead-lettered events.
    pub dead: u64,
}

/// What [`crate::Store::record_decision`] committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionReceipt {
    /// The decision row (also the write-back job id).
    pub decision_id: i64,
    /// The appended `decided` event.
    pub event_id: String,
    /// Its position in the case.
    pub sequence: i64,
}

/// A decision waiting to be written back into the EHR by its adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBackJob {
    /// Decision row id.
    pub decision_id: i64,
    /// Adapter that owns the case.
    pub adapter: String,
    /// The case snapshot with the decision applied.
    pub case: Case,
    /// The decision as received.
    pub decision: Decision,
    /// Attempts so far.
    pub attempts: i64,
}

/// State of a decision's write-back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteBackState {
    /// Not yet written (or retrying).
    Pending,
    /// Written back.
    Done,
    /// Gave up; needs an operator.
    Failed,
}

/// Result of one write-back attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteBackOutcome {
    /// Written; `detail` says what was written where (no PHI).
    Done {
        /// Audit detail.
        detail: String,
    },
    /// Failed transiently; try again at `retry_at`.
    Retry {
        /// When to try again.
        retry_at: Timestamp,
        /// Why (no PHI).
        error: String,
    },
    /// Failed permanently.
    Failed {
        /// Why (no PHI).
        error: String,
    },
}

/// An audit log entry (who did what to which target). No PHI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who: `cli:root`, `admin-api:token-1`, `forwarder`.
    pub actor: String,
    /// What: `message.replay`, `decision.record`.
    pub action: String,
    /// Which: a message id, case id or event id.
    pub target: Option<String>,
    /// Extra detail (no PHI).
    pub detail: Option<String>,
    /// The case the action touched, when there is one.
    pub case_id: Option<String>,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Row id.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// The entry.
    pub entry: AuditEntry,
}

/// What [`crate::Store::replay_message`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// A rejected/error message is queued for re-processing by the pipeline
    /// (see [`crate::Store::replay_requests`]).
    MessageQueued {
        /// The message.
        message_id: i64,
    },
    /// Dead events produced by this message were re-queued for delivery.
    EventsRequeued {
        /// The events, in case order.
        event_ids: Vec<String>,
    },
}

/// Retention limits. Only finished data is pruned: delivered events (with their
/// attempts), messages whose events are all delivered, duplicates and rejected
/// or failed messages without a pending replay, finished write-backs, and
/// audit entries past their own (longer) horizon. Pending or dead events,
/// their messages and cases are never pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Prune finished data older than this many seconds.
    pub max_age_secs: Option<u64>,
    /// Then keep pruning the oldest finished data until the file's used size is
    /// at most this many bytes. The audit log is never pruned for size.
    pub max_bytes: Option<u64>,
    /// Prune audit entries older than this many seconds — its own horizon,
    /// apart from the messages' (HIPAA practice keeps audit trails six years);
    /// `None` keeps them forever.
    #[serde(default)]
    pub audit_max_age_secs: Option<u64>,
}

/// What a retention run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneReport {
    /// Raw messages deleted.
    pub messages: u64,
    /// Delivered events deleted.
    pub events: u64,
    /// Finished decisions deleted.
    pub decisions: u64,
    /// Audit entries deleted.
    pub audit: u64,
    /// Operator evidence (abort screenshots) deleted.
    pub evidence: u64,
    /// File size before (bytes, database file plus WAL).
    pub bytes_before: u64,
    /// File size after reclaiming space.
    pub bytes_after: u64,
}
