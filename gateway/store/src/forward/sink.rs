//! The seam between the forwarder and where events go.
//!
//! A sink makes one delivery attempt and classifies the result; the forwarder
//! owns retries, ordering and bookkeeping. That keeps sinks small and lets tests
//! drive the forwarder with real sinks against loopback receivers.

use std::time::Duration;

use gateway_core::adapter::BoxFuture;

use crate::model::OutboxEvent;

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkResult {
    /// The receiver has the event.
    Delivered {
        /// HTTP status, for HTTP sinks.
        http_status: Option<u16>,
    },
    /// A transient failure: try again later.
    Retry {
        /// Why (status, timeout, connection error; no PHI).
        error: String,
        /// HTTP status, when there was a response.
        http_status: Option<u16>,
        /// The receiver's `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The receiver refused the event for good: dead-letter it.
    Reject {
        /// Why: status and a capped excerpt of the receiver's answer.
        error: String,
        /// HTTP status, when there was a response.
        http_status: Option<u16>,
    },
}

/// Where case events are delivered.
pub trait Sink: Send + Sync {
    /// Short name for metrics labels and the attempts table (`http`, `file`).
    fn name(&self) -> &str;

    /// Makes one delivery attempt of `event` (its `body` is the CloudEvent JSON;
    /// its `id` is the idempotency key).
    fn deliver<'a>(&'a self, event: &'a OutboxEvent) -> BoxFuture<'a, SinkResult>;
}
