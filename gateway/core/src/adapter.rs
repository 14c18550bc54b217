//! The seams between adapters and the rest of the gateway.
//!
//! Adapters depend on this crate only — never on the mapping engine or the store.
//! An inbound adapter frames and parses what it receives, then hands an
//! [`InboundMessage`] to an [`IntakePipeline`] (implemented by the daemon and by
//! the conformance runner over the same code). The pipeline maps, stores the raw
//! bytes and the case event in one commit and only then returns an
//! [`IntakeOutcome`]; the adapter acknowledges from that outcome, so nothing is
//! acknowledged before it is durable.
//!
//! Decisions flow the other way through [`WriteBack`]: the adapter that owns a
//! case's EHR turns a decided [`Case`] into an HL7 message, a FHIR write, a 278
//! or keystrokes.
//!
//! Futures are boxed ([`BoxFuture`]) so the traits stay object-safe and this
//! crate needs no async runtime.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use crate::case::Case;
use crate::diagnostic::Diagnostic;
use crate::error::GatewayError;
use crate::source::SourceDocument;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The adapter names this build knows, as case sources, stored messages and
/// metrics labels spell them (the registry maps each to its adapter crate).
pub mod name {
    /// The HL7 v2 adapter (MLLP).
    pub const HL7V2: &str = "hl7v2";
    /// The X12 adapter (CORE SOAP, file drop).
    pub const X12: &str = "x12";
    /// The FHIR R4 adapter (polling, rest-hook).
    pub const FHIR: &str = "fhir";
    /// The desktop UI-automation adapter.
    pub const DESKTOP: &str = "desktop";
    /// The Da Vinci PAS adapter (FHIR `Claim/$submit` server).
    pub const DAVINCI_PAS: &str = "davinci-pas";
}

/// An adapter's name (`hl7v2`, …): the `adapter` of an [`InboundMessage`],
/// of a case source and of a stored message. Serialized as the plain name.
/// An adapter crate added later can declare its own with
/// [`AdapterName::from_static`] (core need not know it).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct AdapterName(Cow<'static, str>);

impl AdapterName {
    /// [`name::HL7V2`].
    pub const HL7V2: AdapterName = AdapterName::from_static(name::HL7V2);
    /// [`name::X12`].
    pub const X12: AdapterName = AdapterName::from_static(name::X12);
    /// [`name::FHIR`].
    pub const FHIR: AdapterName = AdapterName::from_static(name::FHIR);
    /// [`name::DESKTOP`].
    pub const DESKTOP: AdapterName = AdapterName::from_static(name::DESKTOP);
    /// [`name::DAVINCI_PAS`].
    pub const DAVINCI_PAS: AdapterName = AdapterName::from_static(name::DAVINCI_PAS);

    /// A name known at compile time (an adapter crate's own).
    pub const fn from_static(name: &'static str) -> AdapterName {
        AdapterName(Cow::Borrowed(name))
    }

    /// A name read back from storage (replays).
    pub fn new(name: impl Into<String>) -> AdapterName {
        AdapterName(Cow::Owned(name.into()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AdapterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for AdapterName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for AdapterName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// One message as an adapter received it.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    /// Which adapter received it.
    pub adapter: AdapterName,
    /// The mapping profile this adapter instance is configured with.
    pub profile: String,
    /// The exact bytes received (after transport framing is removed).
    pub raw: Vec<u8>,
    /// When it was received (the adapter reads the clock). Stored and mapped
    /// as its RFC 3339 text (`Timestamp`'s `Display`, UTC).
    pub received_at: jiff::Timestamp,
    /// The transport peer (`127.0.0.1:40522`, a file name), for audit.
    pub peer: Option<String>,
    /// The parsed document, or the diagnostics that made parsing impossible.
    pub parsed: Result<SourceDocument, Vec<Diagnostic>>,
}

/// Proof that something was durably committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommitReceipt {
    /// Id of the raw message row in the store.
    pub message_id: i64,
}

/// What the pipeline did with an inbound message. Every variant is returned only
/// after the raw bytes are committed.
#[derive(Debug, Clone)]
pub enum IntakeOutcome {
    /// Mapped and stored with its case event: acknowledge positively.
    Accepted {
        /// The stored message.
        receipt: CommitReceipt,
        /// The case the message created or updated.
        case_id: String,
        /// Mapping warnings (the case is still valid).
        warnings: Vec<Diagnostic>,
    },
    /// Stored and acknowledged positively, but it produces no case event: the
    /// profile's mapping file says to ignore this kind of document, or a
    /// patient update (ADT) found no open case of that patient. Interface
    /// engines send every ADT; answering those with a negative ACK would
    /// flood the practice's error queue.
    Kept {
        /// The stored message.
        receipt: CommitReceipt,
        /// Why no case event was produced (no PHI).
        reason: String,
        /// Parser and mapping warnings.
        warnings: Vec<Diagnostic>,
    },
    /// Seen before (same sender, control id and content hash): acknowledge
    /// positively, no second case event.
    Duplicate {
        /// The original message.
        receipt: CommitReceipt,
    },
    /// Kept with its reason but not turned into a case: acknowledge negatively.
    Rejected {
        /// The stored raw message.
        receipt: CommitReceipt,
        /// Why (sender or mapping problem).
        error: GatewayError,
        /// Everything the parser and mapper found.
        diagnostics: Vec<Diagnostic>,
    },
}

/// Maps and durably stores inbound messages. Implemented by the daemon.
pub trait IntakePipeline: Send + Sync {
    /// Processes one message. `Err` means nothing could be committed (e.g. the
    /// disk failed): the adapter must answer with a retryable negative
    /// acknowledgement so the sender tries again.
    fn submit(&self, message: InboundMessage)
    -> BoxFuture<'_, Result<IntakeOutcome, GatewayError>>;

    /// Says that a message has arrived and will be submitted soon (it is being
    /// parsed). Hold the ticket until [`IntakePipeline::submit`] returned. The
    /// store's group commit uses the count of live tickets to wait a moment
    /// for messages it knows are coming instead of paying one fsync each; a
    /// pipeline without a store returns [`IntakeTicket::untracked`].
    fn announce(&self) -> IntakeTicket {
        IntakeTicket::untracked()
    }
}

/// One announced message on its way to [`IntakePipeline::submit`]; counted
/// while alive (see [`IntakePipeline::announce`]).
#[derive(Debug)]
pub struct IntakeTicket {
    counter: Option<Arc<AtomicUsize>>,
}

impl IntakeTicket {
    /// A ticket that counts nothing.
    pub fn untracked() -> Self {
        IntakeTicket { counter: None }
    }

    /// A ticket that adds one to `counter` until it is dropped.
    pub fn counted(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, AtomicOrdering::AcqRel);
        IntakeTicket {
            counter: Some(counter),
        }
    }
}

impl Drop for IntakeTicket {
    fn drop(&mut self) {
        if let Some(counter) = &self.counter {
            counter.fetch_sub(1, AtomicOrdering::AcqRel);
        }
    }
}

/// What a write-back did, for the audit trail (no PHI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBackReceipt {
    /// What was written where: `ORU^R01 control 123 acknowledged AA`.
    pub detail: String,
}

/// Writes a decided case back into the EHR (or to the payer).
pub trait WriteBack: Send + Sync {
    /// The adapter name this write-back belongs to.
    fn adapter(&self) -> &str;

    /// Writes `case.decision` for `case` to the target system. Retryable errors
    /// are retried by the caller with backoff.
    fn apply<'a>(&'a self, case: &'a Case)
    -> BoxFuture<'a, Result<WriteBackReceipt, GatewayError>>;
}

#[cfg(test)]
mod tests {
    use super::AdapterName;

    #[test]
    fn adapter_names_serialize_as_the_plain_name() {
        let json = serde_json::to_string(&AdapterName::X12).expect("serialize");
        assert_eq!(json, r#""x12""#);
        let back: AdapterName = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, AdapterName::X12);
        assert_eq!(AdapterName::new("x12"), AdapterName::X12);
        assert_eq!(AdapterName::HL7V2.to_string(), "hl7v2");
    }
}
