//! The seam between the forwarder and where events go.
//!
//! A sink makes one delivery attempt and classifies the result; the forwarder
//! owns retries, ordering and bookkeeping. A sink whose receiver takes several
//! events per exchange says so ([`Sink::takes_batches`]) and gets them in one
//! call: draining a backlog then costs one fsync or one POST per batch. That keeps sinks small and lets tests
//! drive the forwarder with real sinks against loopback receivers.

use std::time::Duration;

use gateway_core::adapter::BoxFuture;

use gateway_store::OutboxEvent;

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

    /// Whether [`Sink::deliver_batch`] delivers several events in one
    /// exchange (one fsync, one POST). The forwarder then hands it up to
    /// `batch_max` events at once, never two of one case.
    fn takes_batches(&self) -> bool {
        false
    }

    /// One delivery attempt of several events (of different cases), one result
    /// per event in order. The default delivers them one after another.
    fn deliver_batch<'a>(&'a self, events: &'a [OutboxEvent]) -> BoxFuture<'a, Vec<SinkResult>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(events.len());
            for event in events {
                results.push(self.deliver(event).await);
            }
            results
        })
    }
}
