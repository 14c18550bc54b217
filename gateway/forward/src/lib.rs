//! The forwarder: delivers the store's outbox to a [`Sink`], in order per case.
//!
//! *Why a crate of its own*: the store owns storage (the outbox rows, their
//! due times and attempts); this crate owns network and file delivery. Sinks
//! get their settings as values — certificate, key and token bytes the daemon
//! has already read — so nothing here reads the environment or a secret file.
//!
//! Guarantees:
//! * **order per case** — an event is sent only when every earlier event of its
//!   case is delivered or dead, and at most one attempt per case is in flight;
//! * **parallel across cases** — up to `concurrency` attempts at once; a sink
//!   that takes batches gets up to `batch_max` events of different cases per
//!   attempt (the file sink: one fsync; the HTTP sink with `batch = true`: one
//!   CloudEvents batch POST), recorded in one store transaction;
//! * **batches fill under load** — for a sink that takes batches, events
//!   committed while an attempt is in flight wait for it to end and then go
//!   out together; a partial batch starts only when no attempt is in flight
//!   (a backlog still goes out as full batches in parallel). Under a steady
//!   load this turns one sink fsync, one outbox read and one bookkeeping
//!   transaction per intake commit into one per batch. A batch that is not
//!   full waits `linger_ms` (default 5) for more before it is sent, so a
//!   trickle of single commits also goes out a few at a time;
//! * **cost per round follows what is sent** — the writer keeps each case's
//!   first pending event as the case row's outbox head (`cases.head_*`), so
//!   finding what is due reads those rows through an index instead of scanning
//!   the backlog;
//! * **at-least-once** — an event leaves `pending` only after the sink confirmed
//!   it; a crash or an aborted attempt means it is sent again, with the same
//!   CloudEvents `id` as idempotency key;
//! * **backoff** — transient failures back off exponentially with jitter
//!   ([`BackoffPolicy`]), `Retry-After` wins when the sink reports one;
//!   permanent refusals (the event itself is bad: HTTP 400/413/422) are
//!   dead-lettered with their reason and can be re-queued with
//!   [`Store::replay_message`] / [`Store::requeue_event`];
//! * **a dead letter holds its case back** — the case's later events wait
//!   until it is replayed (they then follow it in order) or an operator skips
//!   it ([`Store::skip_dead_event_audited`], audited), so the platform
//!   never sees a case's events out of order. Every event also carries the
//!   CloudEvents `sequence` extension (its position in the case, zero-padded);
//! * **clock steps** — due times are stored wall-clock (they survive a
//!   restart); at start, and whenever the wall clock jumps against the
//!   monotonic clock, a due time further ahead than the longest backoff is
//!   brought back to it, so a clock stepped backwards never stalls retries;
//! * **graceful stop** — [`Forwarder::shutdown`] takes no new events and lets
//!   in-flight attempts finish within a grace period.
//!
//! Metrics (through the `metrics` facade): `ehr_gateway_forward_attempts_total{sink,result}`
//! and the gauges `ehr_gateway_outbox_depth`, `ehr_gateway_outbox_oldest_age_seconds`,
//! `ehr_gateway_dead_letters`.

pub mod file;
pub mod http;
pub mod nats;
pub mod sink;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use file::{FileSink, FileSinkConfig};
pub use gateway_store::backoff::BackoffPolicy;
pub use http::{ClientIdentity, HttpSink, HttpSinkConfig};
pub use nats::{NatsAuth, NatsConnectConfig, NatsSink, Subjects};
pub use sink::{Sink, SinkResult};

use gateway_store::Store;
use gateway_store::{AttemptOutcome, DeliveryAttempt, OutboxEvent};

/// Why a sink could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// A setting is unusable (bad URL, certificate, key or token).
    #[error("{0}")]
    Config(String),
    /// The file sink's directory could not be created.
    #[error("{context}: {message}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The I/O error.
        message: String,
    },
}

/// Result of setting up a sink.
pub type Result<T> = std::result::Result<T, ForwardError>;

/// Forwarder settings.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwarderOptions {
    /// Cases delivered in parallel (default 8).
    pub concurrency: usize,
    /// Longest sleep between outbox scans when nothing is committed (default 1000 ms).
    pub poll_interval_ms: u64,
    /// Backoff for transient failures.
    pub backoff: BackoffPolicy,
    /// Upper bound on an honoured `Retry-After`, in seconds (default 3600).
    pub max_retry_after_secs: u64,
    /// Most events handed to a sink that takes batches in one attempt
    /// (default 256; each of a different case).
    pub batch_max: usize,
    /// For a sink that takes batches: how long a batch that is not full
    /// waits for more events before it is sent (default 5 ms; 0 sends at
    /// once). At a steady trickle (one sender, one message per commit) this
    /// makes one sink write and one bookkeeping transaction carry several
    /// events instead of one each, so they do not take turns with intake
    /// commits for the store's fsync.
    pub linger_ms: u64,
}

impl Default for ForwarderOptions {
    fn default() -> Self {
        ForwarderOptions {
            concurrency: 8,
            poll_interval_ms: 1_000,
            backoff: BackoffPolicy::default(),
            max_retry_after_secs: 3_600,
            batch_max: 256,
            linger_ms: 5,
        }
    }
}

/// A running forwarder.
#[derive(Debug)]
pub struct Forwarder {
    stop: watch::Sender<Option<Duration>>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    /// Starts delivering `store`'s outbox to `sink` on the current tokio runtime.
    pub fn spawn(store: Store, sink: Arc<dyn Sink>, options: ForwarderOptions) -> Forwarder {
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(run(store, sink, options, stop_rx));
        Forwarder { stop, task }
    }

    /// Stops taking new events, waits up to `grace` for in-flight attempts (an
    /// attempt cut off by the grace period stays pending and is sent again later).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(Some(grace));
        let _ = self.task.await;
    }
}

async fn run(
    store: Store,
    sink: Arc<dyn Sink>,
    options: ForwarderOptions,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let committed = store.committed();
    let mut in_flight: JoinSet<()> = JoinSet::new();
    // Cases with an attempt in flight, by the task making it.
    let mut tasks: HashMap<tokio::task::Id, Vec<String>> = HashMap::new();
    let mut busy: HashSet<String> = HashSet::new();
    let concurrency = options.concurrency.max(1);
    // Events per attempt: a sink that takes batches gets up to `batch_max`
    // heads at once (never two of one case); any other sink one.
    let per_attempt = if sink.takes_batches() {
        options.batch_max.max(1)
    } else {
        1
    };
    let poll = Duration::from_millis(options.poll_interval_ms.max(10));
    let mut last_gauges: Option<std::time::Instant> = None;
    let mut clock = ClockWatch::new();
    clamp_due_times(&store, &options).await;
    // Whether the loop woke only because something was committed.
    let mut woke_on_commit = false;
    // Until when the partial batch last seen waits for more (`linger_ms`).
    let linger = Duration::from_millis(options.linger_ms);
    let mut lingering: Option<tokio::time::Instant> = None;
    let grace = loop {
        if let Some(grace) = *stop.borrow() {
            break grace;
        }
        if clock.stepped() {
            tracing::warn!("the wall clock jumped; re-checking delivery due times");
            clamp_due_times(&store, &options).await;
        }
        let mut sleep_for = poll;
        let free = concurrency.saturating_sub(tasks.len());
        // While a batch is in flight, what is committed meanwhile waits for it
        // and goes out together: a commit alone does not start a read, and a
        // read starts only full batches (a backlog still drains in parallel).
        let batching = per_attempt > 1 && !tasks.is_empty();
        // A partial batch first lingers: it starts once it was seen waiting
        // for `linger` (monotonic time), so a trickle of commits goes out a
        // few at a time. Commits during the linger start no read.
        let now = tokio::time::Instant::now();
        let lingers = lingering.is_some_and(|until| now < until);
        if free > 0 && !((batching || lingers) && woke_on_commit) {
            let busy_now = busy.clone();
            let wanted = free * per_attempt;
            match store
                .read(move |r| Ok((r.deliverable(wanted, &busy_now)?, r.next_due()?)))
                .await
            {
                Ok((events, next_due)) => {
                    if events.is_empty() {
                        lingering = None;
                    }
                    let mut events = events.into_iter().peekable();
                    while events.peek().is_some() {
                        let chunk: Vec<OutboxEvent> = events.by_ref().take(per_attempt).collect();
                        if chunk.len() < per_attempt && per_attempt > 1 {
                            if batching {
                                break;
                            }
                            let until = *lingering.get_or_insert(now + linger);
                            if now < until {
                                sleep_for = sleep_for.min(until - now);
                                break;
                            }
                        }
                        lingering = None;
                        let cases: Vec<String> = chunk.iter().map(|e| e.case_id.clone()).collect();
                        busy.extend(cases.iter().cloned());
                        let store = store.clone();
                        let sink = sink.clone();
                        let handle = in_flight.spawn(attempt(store, sink, chunk, options));
                        tasks.insert(handle.id(), cases);
                    }
                    if let Some(due) = next_due {
                        let wait = due.duration_since(Timestamp::now());
                        // Already due means blocked behind an in-flight attempt of its
                        // case (or no free slot): its completion wakes the loop.
                        if wait > SignedDuration::ZERO {
                            sleep_for = sleep_for.min(wait.unsigned_abs());
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "forwarder could not read the outbox"),
            }
        }
        if last_gauges.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            publish_gauges(&store).await;
            last_gauges = Some(std::time::Instant::now());
        }
        if let Some(until) = lingering.filter(|until| now < *until) {
            sleep_for = sleep_for.min(until - now);
        }
        woke_on_commit = false;
        tokio::select! {
            changed = stop.changed() => {
                // The handle was dropped without `shutdown`: stop now
                // (instead of spinning on a closed channel).
                if changed.is_err() {
                    break Duration::ZERO;
                }
            }
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        tracing::error!(error = %e, "a delivery attempt task failed");
                        e.id()
                    }
                };
                for case_id in tasks.remove(&id).unwrap_or_default() {
                    busy.remove(&case_id);
                }
            }
            _ = committed.notified() => woke_on_commit = true,
            _ = tokio::time::sleep(sleep_for) => {}
        }
    };
    let drained = tokio::time::timeout(grace, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            aborted = in_flight.len(),
            "forwarder grace period over; unfinished attempts stay pending"
        );
        in_flight.abort_all();
        while in_flight.join_next().await.is_some() {}
    }
    publish_gauges(&store).await;
}

/// The longest any retry may wait: the backoff cap, or an honoured
/// `Retry-After`, whichever is longer.
fn longest_wait(options: &ForwarderOptions) -> Duration {
    Duration::from_millis(options.backoff.max_ms)
        .max(Duration::from_secs(options.max_retry_after_secs))
}

/// Due times are persisted as wall-clock instants (they must survive a
/// restart); one further away than [`longest_wait`] can only come from a
/// clock stepped backwards, and is brought back so retries never stall.
async fn clamp_due_times(store: &Store, options: &ForwarderOptions) {
    let latest = Timestamp::now()
        .checked_add(SignedDuration::try_from(longest_wait(options)).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX);
    match store.clamp_due_times(latest).await {
        Ok(0) => {}
        Ok(moved) => tracing::warn!(
            moved,
            "delivery due times lay further ahead than any backoff (the clock was stepped \
             back); brought forward"
        ),
        Err(e) => tracing::warn!(error = %e, "could not check delivery due times"),
    }
}

/// Notices the wall clock stepping (NTP correction, a VM resumed, an operator)
/// by comparing it with the monotonic clock between forwarder rounds.
struct ClockWatch {
    mono: std::time::Instant,
    wall: Timestamp,
}

impl ClockWatch {
    /// Tolerated drift between the two clocks per round.
    const TOLERANCE: Duration = Duration::from_secs(2);

    fn new() -> ClockWatch {
        ClockWatch {
            mono: std::time::Instant::now(),
            wall: Timestamp::now(),
        }
    }

    /// Whether the wall clock moved differently from the monotonic clock
    /// since the last call by more than the tolerance.
    fn stepped(&mut self) -> bool {
        let (mono, wall) = (std::time::Instant::now(), Timestamp::now());
        let mono_ms = mono.duration_since(self.mono).as_millis() as i64;
        let wall_ms = wall.as_millisecond() - self.wall.as_millisecond();
        (self.mono, self.wall) = (mono, wall);
        (wall_ms - mono_ms).unsigned_abs() > Self::TOLERANCE.as_millis() as u64
    }
}

/// One delivery attempt of `events` (one event, or a batch for a sink that
/// takes them) and its bookkeeping, committed in one transaction.
async fn attempt(
    store: Store,
    sink: Arc<dyn Sink>,
    events: Vec<OutboxEvent>,
    options: ForwarderOptions,
) {
    let results = if events.len() == 1 {
        vec![sink.deliver(&events[0]).await]
    } else {
        sink.deliver_batch(&events).await
    };
    let records: Vec<DeliveryAttempt> = events
        .iter()
        .zip(results)
        .map(|(event, result)| classify(sink.name(), event, result, options))
        .collect();
    if let Err(e) = store.record_attempts(records).await {
        // The events stay pending and are delivered again: at-least-once.
        tracing::warn!(events = events.len(), error = %e, "could not record delivery attempts");
        // Their cases stay busy a moment: a store that cannot write (a full
        // disk) would otherwise have the same events re-sent in a hot loop.
        tokio::time::sleep(RECORD_FAILED_PAUSE).await;
    }
}

/// How long the cases of an attempt whose bookkeeping failed wait before
/// their events are tried again.
const RECORD_FAILED_PAUSE: Duration = Duration::from_secs(1);

/// Turns a sink's answer for one event into the attempt to record (with its
/// metrics and log line).
fn classify(
    sink: &str,
    event: &OutboxEvent,
    result: SinkResult,
    options: ForwarderOptions,
) -> DeliveryAttempt {
    let failures = u32::try_from(event.attempts + 1).unwrap_or(u32::MAX);
    let (outcome, http_status, label) = match result {
        SinkResult::Delivered { http_status } => {
            (AttemptOutcome::Delivered, http_status, "delivered")
        }
        SinkResult::Retry {
            error,
            http_status,
            retry_after,
        } => {
            let delay = match retry_after {
                Some(after) => after.min(Duration::from_secs(options.max_retry_after_secs)),
                None => options.backoff.delay(failures),
            };
            let retry_at = Timestamp::now()
                .checked_add(SignedDuration::try_from(delay).unwrap_or(SignedDuration::MAX))
                .unwrap_or(Timestamp::MAX);
            (
                AttemptOutcome::Retry { retry_at, error },
                http_status,
                "retry",
            )
        }
        SinkResult::Reject { error, http_status } => {
            (AttemptOutcome::Dead { error }, http_status, "dead")
        }
    };
    metrics::counter!(
        gateway_core::metrics::FORWARD_ATTEMPTS_TOTAL,
        "sink" => sink.to_owned(),
        "result" => label
    )
    .increment(1);
    match &outcome {
        AttemptOutcome::Dead { error } => {
            // A dead letter waits for a person to fix and replay it.
            metrics::counter!(gateway_core::metrics::MANUAL_INTERVENTIONS_TOTAL, "reason" => "dead_letter")
                .increment(1);
            tracing::warn!(
                event_id = %event.id, case_id = %event.case_id, sequence = event.sequence,
                error = %error, "event dead-lettered"
            )
        }
        AttemptOutcome::Retry { error, retry_at } => tracing::debug!(
            event_id = %event.id, attempts = failures, %retry_at, error = %error,
            "delivery failed; will retry"
        ),
        AttemptOutcome::Delivered => {
            tracing::debug!(event_id = %event.id, sequence = event.sequence, "event delivered")
        }
    }
    DeliveryAttempt {
        event_id: event.id.clone(),
        sink: sink.to_owned(),
        http_status,
        outcome,
    }
}

async fn publish_gauges(store: &Store) {
    match store.outbox_stats().await {
        Ok(stats) => {
            metrics::gauge!(gateway_core::metrics::OUTBOX_DEPTH).set(stats.pending as f64);
            metrics::gauge!(gateway_core::metrics::OUTBOX_OLDEST_AGE_SECONDS)
                .set(stats.oldest_pending_age_secs);
            metrics::gauge!(gateway_core::metrics::DEAD_LETTERS).set(stats.dead as f64);
        }
        Err(e) => tracing::debug!(error = %e, "could not read outbox stats"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarder_options_fill_defaults_and_reject_unknown_keys() {
        let opts: ForwarderOptions =
            serde_json::from_str(r#"{"concurrency": 2, "backoff": {"max_ms": 1000}}"#)
                .expect("options");
        assert_eq!(opts.concurrency, 2);
        assert_eq!(opts.backoff.max_ms, 1000);
        assert_eq!(opts.backoff.initial_ms, 500);
        assert!(serde_json::from_str::<ForwarderOptions>(r#"{"concurency": 2}"#).is_err());
    }
}
