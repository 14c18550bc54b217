//! Errors of the FHIR adapter, and how they map onto [`GatewayError`].
//!
//! The classification matters to callers: a 429, a 5xx or a timeout is worth
//! retrying later (the poller stops its pass and keeps its watermark), a 4xx with
//! an OperationOutcome is not (the request itself is wrong), and an auth failure
//! is a configuration problem an operator must fix.

use std::time::Duration;

use gateway_core::GatewayError;

use crate::outcome::OutcomeSummary;

/// Everything that can go wrong talking to a FHIR server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FhirError {
    /// The server answered with a non-success status.
    #[error("FHIR server answered {status}{}", outcome.as_ref().map(|o| format!(": {o}")).unwrap_or_default())]
    Status {
        /// HTTP status code.
        status: u16,
        /// The OperationOutcome in the body, if there was one.
        outcome: Option<OutcomeSummary>,
        /// `Retry-After`, when the server sent one.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused, reset or timed out.
    #[error("FHIR request failed: {message}")]
    Transport {
        /// What happened (no payload).
        message: String,
        /// True for a timeout.
        timeout: bool,
    },
    /// The token endpoint refused us or could not be reached.
    #[error("authorization failed: {0}")]
    Auth(#[from] crate::auth::AuthError),
    /// The answer was not the JSON we expected.
    #[error("unexpected FHIR response: {0}")]
    Decode(String),
    /// A setting or a profile makes the request impossible.
    #[error("FHIR adapter configuration: {0}")]
    Config(String),
    /// The answer was larger than the configured bound; it was not read on.
    #[error(
        "FHIR response larger than {limit} bytes (fhir.max_response_mb); smaller pages \
         (fhir.page_size) or a larger bound are needed"
    )]
    TooLarge {
        /// The bound in bytes.
        limit: usize,
    },
}

impl FhirError {
    /// Whether the same request may succeed later (429, 5xx, 408, timeouts,
    /// connection failures, a token endpoint that was down).
    pub fn retryable(&self) -> bool {
        match self {
            FhirError::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            FhirError::Transport { .. } => true,
            FhirError::Auth(e) => e.retryable(),
            FhirError::Decode(_) | FhirError::Config(_) | FhirError::TooLarge { .. } => false,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            FhirError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<FhirError> for GatewayError {
    fn from(e: FhirError) -> Self {
        match &e {
            FhirError::Config(_) => GatewayError::internal(false, e.to_string()),
            _ => GatewayError::downstream(e.retryable(), e.to_string()),
        }
    }
}
