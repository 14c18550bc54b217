//! The Prometheus recorder behind `/metrics`, and the daemon's own metric
//! duties. Installed once per process (only the daemon installs it; libraries
//! emit through the `metrics` facade).
//!
//! Beyond installing the recorder this module
//! * describes every metric (`# HELP` lines) — the list in `docs/metrics.md`;
//! * zero-initialises the series whose labels are known at start (configured
//!   adapters and profiles, the sink, outcomes, reasons), so dashboards and
//!   alert rules see `0` before the first message rather than no series;
//! * supervises the adapters' tasks for `ehr_gateway_adapter_up{adapter}`
//!   ([`AdapterHealth`]): 1 while every task of a started adapter runs, 0
//!   before start, after stop and as soon as any of its tasks ends or panics;
//! * refreshes the outbox gauges on an interval ([`outbox_gauges`]), so they
//!   are current between scrapes and for other readers of the recorder.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use gateway_core::case::CaseStatus;
use gateway_store::{OutboxStats, Store};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Histogram buckets (seconds) for every `*_seconds` histogram: from 1 ms ACK
/// latencies to multi-day decision cycles.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 86400.0, 604800.0,
];

// The names this module describes and zero-initialises (all defined in
// `gateway_core::metrics`; the short aliases are this module's own API).
use gateway_core::metrics as names;
pub use gateway_core::metrics::{
    ACK_LATENCY_SECONDS as ACK_LATENCY, ADAPTER_UP, CASES_TOTAL, DEAD_LETTERS,
    DECISION_CYCLE_SECONDS as DECISION_CYCLE, FORWARD_ATTEMPTS_TOTAL as FORWARD_ATTEMPTS,
    MANUAL_INTERVENTIONS_TOTAL as MANUAL_INTERVENTIONS, MESSAGES_TOTAL, OUTBOX_DEPTH,
    OUTBOX_OLDEST_AGE_SECONDS as OUTBOX_OLDEST_AGE,
};

/// The `outcome` values of [`MESSAGES_TOTAL`] (a `Kept` message — stored and
/// acknowledged positively without a case event — counts as `accepted`).
pub const OUTCOMES: [&str; 4] = ["accepted", "rejected", "duplicate", "error"];
/// The `result` values of [`FORWARD_ATTEMPTS`].
pub const FORWARD_RESULTS: [&str; 3] = ["delivered", "retry", "dead"];
/// The `reason` values of [`MANUAL_INTERVENTIONS`].
pub const INTERVENTION_REASONS: [&str; 5] = [
    "replay",
    "desktop_abort",
    "writeback_failed",
    "dead_letter",
    "skip",
];
/// Case statuses (Case v1 vocabulary), the `status` values of [`CASES_TOTAL`].
pub const CASE_STATUSES: [&str; CaseStatus::NAMES.len()] = CaseStatus::NAMES;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder's handle, installing the recorder (and the metric
/// descriptions) on first use.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            // Only fails for an empty bucket list, which BUCKETS is not.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "A metrics recorder was already installed; /metrics shows only this one's data."
                );
            }
            describe();
            handle
        })
        .clone()
}

/// `# HELP` texts for every metric the gateway emits.
fn describe() {
    describe_counter!(
        crate::alerts::webhook::DROPPED_METRIC,
        "Alert transitions dropped because the webhook queue was full (the webhook is down or slow)."
    );
    describe_counter!(
        MESSAGES_TOTAL,
        "Inbound messages, each counted once on arrival, by adapter, profile and outcome (accepted incl. kept-without-case, rejected, duplicate, error)."
    );
    describe_counter!(
        names::IGNORED_MESSAGES_TOTAL,
        "Messages acknowledged and kept without a case event by a mapping file with action ignore, by adapter, profile, message_type and rule (the mapping file)."
    );
    describe_counter!(
        names::REPLAYED_MESSAGES_TOTAL,
        "Stored messages processed again on request, by adapter, profile and the replay's outcome."
    );
    describe_histogram!(
        ACK_LATENCY,
        Unit::Seconds,
        "Seconds from receiving a message to sending its acknowledgement (MLLP ACK, X12 999/TA1), by adapter."
    );
    describe_counter!(
        CASES_TOTAL,
        "Case events committed, by profile and the case's status after the event."
    );
    describe_gauge!(
        OUTBOX_DEPTH,
        "Case events waiting for delivery to the central platform."
    );
    describe_gauge!(
        OUTBOX_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest case event waiting for delivery (0 when none)."
    );
    describe_gauge!(
        DEAD_LETTERS,
        "Case events the platform refused for good, waiting for a person to replay them."
    );
    describe_counter!(
        FORWARD_ATTEMPTS,
        "Delivery attempts to the central platform, by sink and result (delivered, retry, dead)."
    );
    describe_gauge!(
        names::NATS_CONNECTED,
        "sink = nats: 1 while the JetStream client is connected, 0 while it reconnects."
    );
    describe_histogram!(
        names::NATS_PUBLISH_SECONDS,
        Unit::Seconds,
        "sink = nats: seconds from publishing an event to JetStream's acknowledgement."
    );
    describe_histogram!(
        DECISION_CYCLE,
        Unit::Seconds,
        "Seconds from a case's first event (the request) to a recorded decision."
    );
    describe_gauge!(
        ADAPTER_UP,
        "1 while every task of a configured adapter runs; 0 before start, after stop or failure."
    );
    describe_counter!(
        MANUAL_INTERVENTIONS,
        "Events that needed or were a person's touch, by reason (replay, desktop_abort, writeback_failed, dead_letter, skip)."
    );
    describe_counter!(
        names::WRITEBACK_ATTEMPTS_TOTAL,
        "Decision write-back attempts into the EHR, by adapter and result (done, retry, failed)."
    );
    describe_counter!(
        crate::alerts::webhook::NOTIFICATIONS_TOTAL,
        "Alert webhook posts, by result (delivered, retry, failed)."
    );
    describe_counter!(
        names::MLLP_DISCARDED_BYTES_TOTAL,
        "Bytes received outside MLLP frames and dropped."
    );
    describe_counter!(
        names::MLLP_FRAME_ERRORS_TOTAL,
        "MLLP frame problems, by kind (oversized, frame_timeout, truncated)."
    );
    describe_gauge!(names::MLLP_CONNECTIONS, "Open inbound MLLP connections.");
    describe_counter!(
        names::MLLP_CONNECTIONS_REFUSED_TOTAL,
        "MLLP connections refused, by reason (limit, tls, not_allowed)."
    );
    describe_counter!(
        names::MLLP_SENDS_TOTAL,
        "Outbound MLLP sends (write-back), by result."
    );
    describe_counter!(
        names::FHIR_REQUESTS_TOTAL,
        "FHIR API requests to the EHR, by outcome (ok, retry, error)."
    );
    crate::store_budget::describe();
}

/// The label sets known when the daemon starts.
#[derive(Debug, Clone, Default)]
pub struct KnownSeries {
    /// Intake instances: (adapter, profile).
    pub intake: Vec<(String, String)>,
    /// The sink's name (`http`, `file`).
    pub sink: String,
}

/// Registers every series of `known` at zero (counters) or empty (histograms).
pub fn zero_init(known: &KnownSeries) {
    let mut profiles = std::collections::BTreeSet::new();
    let mut adapters = std::collections::BTreeSet::new();
    for (adapter, profile) in &known.intake {
        for outcome in OUTCOMES {
            metrics::counter!(MESSAGES_TOTAL, "adapter" => adapter.clone(),
                "profile" => profile.clone(), "outcome" => outcome)
            .increment(0);
        }
        profiles.insert(profile.clone());
        adapters.insert(adapter.clone());
    }
    for adapter in adapters {
        // Adapters that acknowledge what they receive (MLLP ACK; X12 999/TA1
        // by SOAP reply or file), as the registry declares them.
        if gateway_registry::adapter(&adapter).is_some_and(|a| a.acknowledges) {
            // Registering creates the (empty) histogram: `_count 0`.
            let _ = metrics::histogram!(ACK_LATENCY, "adapter" => adapter);
        }
    }
    for profile in profiles {
        for status in CASE_STATUSES {
            metrics::counter!(CASES_TOTAL, "profile" => profile.clone(), "status" => status)
                .increment(0);
        }
    }
    for result in FORWARD_RESULTS {
        metrics::counter!(FORWARD_ATTEMPTS, "sink" => known.sink.clone(), "result" => result)
            .increment(0);
    }
    for reason in INTERVENTION_REASONS {
        metrics::counter!(MANUAL_INTERVENTIONS, "reason" => reason).increment(0);
    }
    let _ = metrics::histogram!(DECISION_CYCLE);
}

/// Sets the three outbox gauges from `stats`.
pub fn publish_outbox(stats: &OutboxStats) {
    metrics::gauge!(OUTBOX_DEPTH).set(stats.pending as f64);
    metrics::gauge!(OUTBOX_OLDEST_AGE).set(stats.oldest_pending_age_secs);
    metrics::gauge!(DEAD_LETTERS).set(stats.dead as f64);
}

/// Refreshes the outbox gauges every `every` until `stop` is cancelled.
pub async fn outbox_gauges(store: Store, every: Duration, stop: CancellationToken) {
    loop {
        match store.outbox_stats().await {
            Ok(stats) => publish_outbox(&stats),
            Err(error) => tracing::debug!(%error, "Could not read the outbox for its gauges."),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Which configured adapters run: the source of
/// `ehr_gateway_adapter_up{adapter}` and of the `adapter_down` alert.
#[derive(Debug, Clone, Default)]
pub struct AdapterHealth {
    inner: Arc<Mutex<BTreeMap<String, Run>>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Run {
    started: bool,
    tasks: usize,
    ended: usize,
}

impl Run {
    fn up(self) -> bool {
        self.started && self.ended == 0
    }
}

impl AdapterHealth {
    /// Nothing registered.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Run>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(name: &str, run: Run) {
        metrics::gauge!(ADAPTER_UP, "adapter" => name.to_owned()).set(if run.up() {
            1.0
        } else {
            0.0
        });
    }

    /// Registers a configured adapter as not (yet) running.
    pub fn configured(&self, name: &str) {
        let run = *self.lock().entry(name.to_owned()).or_default();
        Self::publish(name, run);
    }

    /// Marks `name` started and watches `tasks`: the returned handles finish
    /// when the originals do, and aborting one aborts its original. When any
    /// of them ends the adapter counts as down.
    pub fn started(&self, name: &str, tasks: Vec<JoinHandle<()>>) -> Vec<JoinHandle<()>> {
        let run = {
            let mut map = self.lock();
            let run = map.entry(name.to_owned()).or_default();
            *run = Run {
                started: true,
                tasks: tasks.len(),
                ended: 0,
            };
            *run
        };
        Self::publish(name, run);
        tasks
            .into_iter()
            .map(|task| {
                let watch = TaskWatch {
                    health: self.clone(),
                    name: name.to_owned(),
                    task,
                };
                tokio::spawn(watch.wait())
            })
            .collect()
    }

    fn ended(&self, name: &str) {
        let run = {
            let mut map = self.lock();
            let run = map.entry(name.to_owned()).or_default();
            run.ended = (run.ended + 1).min(run.tasks.max(1));
            *run
        };
        Self::publish(name, run);
    }

    /// Every configured adapter and whether it runs, by name.
    pub fn snapshot(&self) -> Vec<(String, bool)> {
        self.lock()
            .iter()
            .map(|(name, run)| (name.clone(), run.up()))
            .collect()
    }
}

/// Waits for one adapter task; reports its end however it comes (finished,
/// panicked, or this watcher aborted at shutdown, which aborts the task too).
struct TaskWatch {
    health: AdapterHealth,
    name: String,
    task: JoinHandle<()>,
}

impl TaskWatch {
    async fn wait(mut self) {
        if let Err(error) = (&mut self.task).await
            && error.is_panic()
        {
            tracing::error!(adapter = %self.name, "An adapter task panicked.");
        }
    }
}

impl Drop for TaskWatch {
    fn drop(&mut self) {
        self.task.abort();
        self.health.ended(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_adapter_is_up_while_all_its_tasks_run() {
        let health = AdapterHealth::new();
        health.configured("hl7v2");
        assert_eq!(health.snapshot(), [("hl7v2".to_owned(), false)]);
        // The long task holds `alive` until it is dropped (aborted).
        let (alive, gone) = tokio::sync::oneshot::channel::<()>();
        let long = tokio::spawn(async move {
            let _alive = alive;
            std::future::pending::<()>().await;
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let short = tokio::spawn(async move {
            let _ = rx.await;
        });
        let watched = health.started("hl7v2", vec![long, short]);
        assert_eq!(health.snapshot(), [("hl7v2".to_owned(), true)]);
        // One task ends early: the adapter is down although the other runs.
        let _ = tx.send(());
        let mut watched = watched.into_iter();
        let first = watched.next().expect("first");
        let second = watched.next().expect("second");
        second.await.expect("second watcher");
        assert_eq!(health.snapshot(), [("hl7v2".to_owned(), false)]);
        // Aborting a watcher aborts its task (the daemon's grace-period path).
        first.abort();
        let _ = first.await;
        assert!(gone.await.is_err(), "the task was aborted with its watcher");
        assert_eq!(health.snapshot(), [("hl7v2".to_owned(), false)]);
    }

    #[tokio::test]
    async fn a_restarted_adapter_is_up_again() {
        let health = AdapterHealth::new();
        let done = tokio::spawn(async {});
        for w in health.started("x12", vec![done]) {
            w.await.expect("watcher");
        }
        assert_eq!(health.snapshot(), [("x12".to_owned(), false)]);
        let stop = CancellationToken::new();
        let running = {
            let stop = stop.clone();
            tokio::spawn(async move { stop.cancelled().await })
        };
        let watched = health.started("x12", vec![running]);
        assert_eq!(health.snapshot(), [("x12".to_owned(), true)]);
        stop.cancel();
        for w in watched {
            w.await.expect("watcher");
        }
        assert_eq!(health.snapshot(), [("x12".to_owned(), false)]);
    }
}
