//! The alerting engine ([`Engine`]): every `interval`, read a [`Snapshot`],
//! evaluate the rules, debounce, publish to [`AlertState`] and queue
//! transitions for the webhook.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gateway_store::Store;
use jiff::Timestamp;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::config::AlertSettings;
use super::debounce::Debouncer;
use super::rules::{Snapshot, StoreSizeSignal, evaluate};
use super::webhook::{GatewayIdentity, Webhook};
use super::{AlertState, AlertStatus};
use crate::telemetry::AdapterHealth;

/// What the evaluator reads from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The store (outbox, recent messages, delivery attempts).
    pub store: Store,
    /// The configured adapters' health.
    pub adapters: AdapterHealth,
    /// The sink's name (`http`, `file`), the `sink` label of `sink_down`.
    pub sink: String,
    /// Who this gateway is, sent with every notification.
    pub identity: GatewayIdentity,
    /// The certificates the TLS listeners serve (`certificate_expiry`).
    pub certificates: Vec<crate::certificates::Served>,
    /// `[store] warn_fraction` (`store_nearly_full`).
    pub store_warn_fraction: f64,
}

/// The alerting engine: the rules of `[alerts]` over [`Sources`], debounced,
/// published to an [`AlertState`] (and a webhook when one is set).
///
/// Invariants: a transition is published only by [`Engine::pass`], firing
/// once after its rule's `for` duration and resolving once when it clears;
/// [`AlertState::active`] is replaced as a whole after every pass.
pub struct Engine {
    settings: AlertSettings,
    sources: Sources,
    state: AlertState,
    webhook: Option<Webhook>,
    debouncer: Debouncer,
    /// The store's refusal count at the previous pass.
    refused_seen: AtomicU64,
}

impl Engine {
    /// An engine publishing to `state`, without a webhook.
    pub fn new(settings: AlertSettings, sources: Sources, state: AlertState) -> Self {
        Engine {
            settings,
            sources,
            state,
            webhook: None,
            debouncer: Debouncer::new(),
            refused_seen: AtomicU64::new(0),
        }
    }

    /// Also posts each transition to `webhook`.
    pub(super) fn with_webhook(mut self, webhook: Option<Webhook>) -> Self {
        self.webhook = webhook;
        self
    }

    /// Evaluates every `interval` until `stop` is cancelled.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.settings.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let snapshot = self.snapshot().await;
            self.pass(&snapshot, Timestamp::now());
        }
    }

    /// One evaluation of `snapshot` at `now`.
    pub fn pass(&mut self, snapshot: &Snapshot, now: Timestamp) {
        let observations = evaluate(&self.settings, snapshot);
        for event in self.debouncer.step(observations, now) {
            match event.status {
                AlertStatus::Firing => tracing::warn!(alert = %event.alert, labels = ?event.labels,
                    value = event.value, threshold = event.threshold, "Alert firing."),
                AlertStatus::Resolved => {
                    tracing::info!(alert = %event.alert, labels = ?event.labels,
                    value = event.value, "Alert resolved.")
                }
            }
            self.state.push(event.clone());
            if let Some(webhook) = &self.webhook {
                let _ = webhook.send(event);
            }
        }
        self.state.set_active(self.debouncer.active());
    }

    /// What the sources say now.
    pub async fn snapshot(&self) -> Snapshot {
        let store = &self.sources.store;
        let mut snapshot = Snapshot {
            adapters: self.sources.adapters.snapshot(),
            ..Snapshot::default()
        };
        let now = Timestamp::now().as_second();
        snapshot.certificates = self
            .sources
            .certificates
            .iter()
            .map(|c| (c.listener.clone(), c.seconds_left(now) as f64))
            .collect();
        if self.settings.outbox_depth.is_some() || self.settings.outbox_oldest_age.is_some() {
            match store.outbox_stats().await {
                Ok(stats) => {
                    snapshot.outbox = Some((stats.pending, stats.oldest_pending_age_secs));
                }
                Err(error) => tracing::warn!(%error, "Alerts: cannot read the outbox."),
            }
        }
        if self.settings.store_size.is_some() {
            match store.size().await {
                Ok(size) => {
                    let before = self.refused_seen.swap(size.refused, Ordering::Relaxed);
                    if let Some(limit) = size.limit_bytes {
                        snapshot.store_size = Some(StoreSizeSignal {
                            counted_bytes: size.counted_bytes,
                            audit_bytes: size.audit_bytes,
                            limit_bytes: limit,
                            warn_fraction: self.sources.store_warn_fraction,
                            refusing: size.full() || size.refused > before,
                        });
                    }
                }
                Err(error) => tracing::warn!(%error, "Alerts: cannot measure the store."),
            }
        }
        if let Some(rule) = &self.settings.error_rate {
            let since = window_start(Timestamp::now(), rule.window);
            match store.intake_counts_since(since).await {
                Ok(counts) => snapshot.intake = Some((counts.total, counts.failed)),
                Err(error) => tracing::warn!(%error, "Alerts: cannot count recent messages."),
            }
        }
        if self.settings.sink_down.is_some() {
            match store.failed_delivery_run().await {
                Ok((n, status)) => {
                    snapshot.sink = Some((self.sources.sink.clone(), n));
                    snapshot.sink_status = status;
                }
                Err(error) => tracing::warn!(%error, "Alerts: cannot read delivery attempts."),
            }
        }
        snapshot
    }
}

/// Unix milliseconds of `now − window`.
fn window_start(now: Timestamp, window: Duration) -> i64 {
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    now.as_millisecond().saturating_sub(window_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::config::SinkDownRule;

    #[tokio::test]
    async fn passes_publish_state_and_transitions() {
        let temp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(
            temp.path().join("gateway.sqlite"),
            gateway_store::StoreOptions::default(),
        )
        .await
        .expect("store");
        let settings = AlertSettings {
            sink_down: Some(SinkDownRule {
                failures: 2,
                hold: Duration::from_secs(10),
            }),
            ..AlertSettings::default()
        };
        let state = AlertState::new();
        let mut evaluator = Engine::new(
            settings,
            Sources {
                store: store.clone(),
                adapters: AdapterHealth::new(),
                sink: "http".to_owned(),
                identity: GatewayIdentity::default(),
                certificates: Vec::new(),
                store_warn_fraction: 0.8,
            },
            state.clone(),
        );
        let t0 = Timestamp::from_second(1_790_000_000).expect("t0");
        let down = Snapshot {
            sink: Some(("http".to_owned(), 2)),
            ..Snapshot::default()
        };
        evaluator.pass(&down, t0);
        // sink_down and platform_unreachable (no answer seen) hold together.
        assert_eq!(state.active().len(), 2);
        assert!(state.recent().is_empty());
        evaluator.pass(&down, t0 + jiff::SignedDuration::from_secs(10));
        assert_eq!(state.recent()[0].status, AlertStatus::Firing);
        let up = Snapshot {
            sink: Some(("http".to_owned(), 0)),
            ..Snapshot::default()
        };
        evaluator.pass(&up, t0 + jiff::SignedDuration::from_secs(11));
        let statuses: Vec<_> = state.recent().iter().map(|e| e.status).collect();
        assert_eq!(
            statuses,
            [
                AlertStatus::Resolved,
                AlertStatus::Resolved,
                AlertStatus::Firing,
                AlertStatus::Firing
            ]
        );
        assert!(state.active().is_empty());
        // The real snapshot of an empty store: no failed deliveries.
        assert_eq!(
            evaluator.snapshot().await.sink,
            Some(("http".to_owned(), 0))
        );
        store.close().await;
    }

    #[test]
    fn the_window_reaches_back_from_now() {
        let now = Timestamp::from_millisecond(1_000_000).expect("now");
        assert_eq!(window_start(now, Duration::from_secs(60)), 940_000);
    }
}
