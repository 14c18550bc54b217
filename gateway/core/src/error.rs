//! Error kinds, classified by who caused the problem and whether retrying helps.
//!
//! The classification drives behaviour everywhere: a [`ErrorKind::Sender`]
//! problem gets a NAK/999/4xx and is kept for replay; a [`ErrorKind::Mapping`]
//! problem is kept until the profile is fixed; [`ErrorKind::Downstream`] failures
//! are retried with backoff when [`GatewayError::retryable`] says so;
//! [`ErrorKind::Internal`] is our bug or our disk.

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The sending system sent something malformed or unsupported.
    Sender,
    /// The mapping profile could not produce a valid case from valid input.
    Mapping,
    /// Our own fault: storage, invariants, resource exhaustion.
    Internal,
    /// A system we call (central platform, EHR, payer) failed or refused.
    Downstream,
}

impl ErrorKind {
    /// Lowercase name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Sender => "sender",
            ErrorKind::Mapping => "mapping",
            ErrorKind::Internal => "internal",
            ErrorKind::Downstream => "downstream",
        }
    }
}

/// An error crossing crate boundaries: kind, retryability and a message
/// without patient data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} error: {message}", kind.as_str())]
pub struct GatewayError {
    /// Who caused it.
    pub kind: ErrorKind,
    /// Whether the same operation may succeed if retried later.
    pub retryable: bool,
    /// What went wrong (no PHI).
    pub message: String,
}

impl GatewayError {
    /// A sender error (never retryable: the same bytes fail the same way).
    pub fn sender(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Sender, false, message)
    }

    /// A mapping error (retryable by replay once the profile is fixed, not by backoff).
    pub fn mapping(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Mapping, false, message)
    }

    /// An internal error; `retryable` when transient (disk full, busy).
    pub fn internal(retryable: bool, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, retryable, message)
    }

    /// A downstream error; `retryable` for timeouts, 5xx, 408, 429.
    pub fn downstream(retryable: bool, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Downstream, retryable, message)
    }

    fn new(kind: ErrorKind, retryable: bool, message: impl Into<String>) -> Self {
        GatewayError {
            kind,
            retryable,
            message: message.into(),
        }
    }
}
