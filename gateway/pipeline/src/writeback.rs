//! Decision routing: recorded decisions are written back into the EHR (or to
//! the payer) by the adapter that owns the case.
//!
//! [`WriteBackRegistry`] maps an adapter name, optionally narrowed to one
//! profile, to its [`WriteBack`]. [`WriteBackWorker`] polls the store for due
//! write-backs of registered adapters, applies them with a timeout, and
//! records `done`, `retry` (with exponential backoff and jitter) or `failed`.
//! Decisions for adapters with no registered write-back stay `pending` and
//! visible in the store until one is registered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::adapter::WriteBack;
use gateway_store::backoff::BackoffPolicy;
use gateway_store::{Store, WriteBackJob, WriteBackOutcome};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// Write-backs by adapter and optional profile.
#[derive(Clone, Default)]
pub struct WriteBackRegistry {
    entries: BTreeMap<(String, Option<String>), Arc<dyn WriteBack>>,
}

impl std::fmt::Debug for WriteBackRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.keys()).finish()
    }
}

impl WriteBackRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `writeback` for its adapter, for every profile (`None`) or one.
    pub fn register(&mut self, writeback: Arc<dyn WriteBack>, profile: Option<&str>) {
        let key = (writeback.adapter().to_owned(), profile.map(str::to_owned));
        self.entries.insert(key, writeback);
    }

    /// The write-back for a case owned by `adapter` with `profile`: the
    /// profile-specific one, else the adapter-wide one.
    pub fn lookup(&self, adapter: &str, profile: &str) -> Option<Arc<dyn WriteBack>> {
        self.entries
            .get(&(adapter.to_owned(), Some(profile.to_owned())))
            .or_else(|| self.entries.get(&(adapter.to_owned(), None)))
            .cloned()
    }

    /// Adapters with at least one registered write-back.
    pub fn adapters(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.keys().map(|(a, _)| a.clone()).collect();
        names.dedup();
        names
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Applies due write-backs until shut down.
#[derive(Debug, Clone)]
pub struct WriteBackWorker {
    store: Store,
    registry: WriteBackRegistry,
    wake: Arc<Notify>,
    backoff: BackoffPolicy,
    /// Attempts after which a retryable failure becomes `failed`.
    pub max_attempts: i64,
    /// Time limit of one write-back attempt.
    pub attempt_timeout: Duration,
    /// How often the store is polled when nothing wakes the worker.
    pub poll_interval: Duration,
}

impl WriteBackWorker {
    /// A worker over `store` and `registry`, woken by `wake` (share it with
    /// [`crate::DecisionIntake`]).
    pub fn new(store: Store, registry: WriteBackRegistry, wake: Arc<Notify>) -> Self {
        WriteBackWorker {
            store,
            registry,
            wake,
            backoff: BackoffPolicy::default(),
            max_attempts: 10,
            attempt_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
        }
    }

    /// Sets the retry backoff.
    pub fn with_backoff(mut self, backoff: BackoffPolicy) -> Self {
        self.backoff = backoff;
        self
    }

    /// Runs until `shutdown` is cancelled; an attempt in flight is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.registry.is_empty() {
            // Nothing can be written back; decisions stay pending and visible.
            shutdown.cancelled().await;
            return;
        }
        loop {
            if let Err(error) = self.pass().await {
                tracing::warn!(%error, "Write-back pass failed; will retry.");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    /// Applies every due write-back once; returns how many were attempted.
    pub async fn pass(&self) -> Result<usize, gateway_store::StoreError> {
        let mut attempted = 0;
        for adapter in self.registry.adapters() {
            let jobs = self.store.pending_writebacks(Some(&adapter), 32).await?;
            for job in jobs {
                self.apply(job).await?;
                attempted += 1;
            }
        }
        Ok(attempted)
    }

    async fn apply(&self, job: WriteBackJob) -> Result<(), gateway_store::StoreError> {
        let Some(writeback) = self.registry.lookup(&job.adapter, &job.case.source.profile) else {
            // The adapter writes back for other profiles only: keep the
            // decision pending (and visible) but out of the way of routable
            // ones, so a backlog of these cannot starve them.
            let retry_at = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_secs(60))
                .unwrap_or_else(|_| jiff::Timestamp::now());
            let error = format!(
                "no write-back registered for {} profile {}",
                job.adapter, job.case.source.profile
            );
            return self
                .store
                .complete_writeback(job.decision_id, WriteBackOutcome::Retry { retry_at, error })
                .await;
        };
        let attempts = job.attempts + 1;
        let result = tokio::time::timeout(self.attempt_timeout, writeback.apply(&job.case)).await;
        let outcome = match result {
            Ok(Ok(receipt)) => WriteBackOutcome::Done {
                detail: receipt.detail,
            },
            Ok(Err(error)) if error.retryable && attempts < self.max_attempts => {
                self.retry(attempts, error.message)
            }
            Ok(Err(error)) => WriteBackOutcome::Failed {
                error: error.message,
            },
            Err(_) if attempts < self.max_attempts => {
                self.retry(attempts, "write-back timed out".to_owned())
            }
            Err(_) => WriteBackOutcome::Failed {
                error: "write-back timed out".to_owned(),
            },
        };
        let label = match &outcome {
            WriteBackOutcome::Done { .. } => "done",
            WriteBackOutcome::Retry { .. } => "retry",
            WriteBackOutcome::Failed { .. } => "failed",
        };
        metrics::writeback(&job.adapter, label);
        if label == "failed" {
            // Retries are exhausted: the decision now waits for a person.
            metrics::manual_intervention("writeback_failed");
        }
        tracing::info!(
            decision_id = job.decision_id,
            case_id = %job.case.case_id,
            adapter = %job.adapter,
            attempts,
            result = label,
            "Write-back attempted."
        );
        self.store
            .complete_writeback(job.decision_id, outcome)
            .await
    }

    fn retry(&self, attempts: i64, error: String) -> WriteBackOutcome {
        let failures = u32::try_from(attempts).unwrap_or(u32::MAX);
        let delay = self.backoff.delay(failures);
        let retry_at = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or_default())
            .unwrap_or_else(|_| jiff::Timestamp::now());
        WriteBackOutcome::Retry { retry_at, error }
    }
}
