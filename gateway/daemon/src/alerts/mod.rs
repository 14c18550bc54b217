//! Alerts: thresholds from `[alerts]` evaluated continuously, debounced, sent
//! to a webhook and kept for the dashboard and `GET /api/v1/alerts`.
//!
//! Why in the daemon and not only in Prometheus: a practice often has no
//! alerting stack, and the gateway is the one thing that knows when its own
//! outbox backs up or its platform link is down. The rules are few and fixed
//! (outbox depth, oldest pending age, intake error rate, adapter down, sink
//! down, a served TLS certificate about to expire); each has a threshold and a `for` duration.
//!
//! Flow: [`evaluator`] takes a [`rules::Snapshot`] every `interval` (store
//! queries plus the adapters' health), [`rules::evaluate`] turns it into one
//! observation per rule and label set, [`debounce::Debouncer`] decides what
//! fires (held for `for`) and what resolves (cleared once), and
//! [`webhook::Webhook`] posts each transition with retries. [`AlertState`] is
//! the shared read view.
//!
//! **One entry**: [`Engine`] (started by [`spawn`] with the webhook when one
//! is configured). The rest of the daemon reads [`AlertState`] and nothing
//! else; this module reads the store and [`crate::telemetry::AdapterHealth`]
//! only through [`Sources`]. Invariants: no PHI in labels or summaries
//! (adapter, sink and listener names only); a rule fires once after holding
//! for its `for` duration and resolves once.

pub mod config;
pub mod debounce;
pub mod evaluator;
pub mod rules;
pub mod webhook;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::Secret;
use webhook::Webhook;

pub use config::{AlertSettings, check_settings};
pub use evaluator::{Engine, Sources};

/// Starts the evaluator (and the webhook sender when configured); returns
/// their tasks, which end when `stop` is cancelled. Nothing is started when no
/// rule is configured.
pub fn spawn(
    settings: &AlertSettings,
    sources: Sources,
    state: AlertState,
    stop: CancellationToken,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    if !settings.any_rule() {
        return Ok(tasks);
    }
    let webhook = match &settings.webhook {
        Some(hook) => {
            // Checked with the configuration; read again here, where it is used.
            let token: Option<Secret> = hook.token_source().read().map_err(|message| {
                anyhow::anyhow!("alerts.webhook.bearer_token_file: {message}")
            })?;
            let (webhook, task) =
                Webhook::spawn(hook.clone(), token, sources.identity.clone(), stop.clone())?;
            tasks.push(task);
            Some(webhook)
        }
        None => None,
    };
    tracing::info!(
        interval_ms = settings.interval.as_millis() as u64,
        webhook = webhook.is_some(),
        "Alert rules evaluated continuously."
    );
    let engine = Engine::new(settings.clone(), sources, state).with_webhook(webhook);
    tasks.push(tokio::spawn(engine.run(stop)));
    Ok(tasks)
}

/// How many transitions [`AlertState::recent`] keeps.
const RECENT: usize = 100;

/// Whether a transition started or ended an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The condition held for the rule's `for` duration.
    Firing,
    /// The condition of a firing alert cleared.
    Resolved,
}

impl AlertStatus {
    /// `firing` / `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// Where a condition that holds now is in its debounce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertPhase {
    /// The condition holds but not yet for `for`; nothing was sent.
    Pending,
    /// The condition has held for `for`; a `firing` notification went out.
    Firing,
}

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveAlert {
    /// The rule: `outbox_depth`, `outbox_oldest_age`, `error_rate`,
    /// `adapter_down`, `sink_down`, `certificate_expiry`.
    pub alert: String,
    /// What the rule is about (`adapter`, `sink`); never PHI.
    pub labels: BTreeMap<String, String>,
    /// Pending or firing.
    pub phase: AlertPhase,
    /// The latest observed value.
    pub value: f64,
    /// The configured threshold.
    pub threshold: f64,
    /// When the condition started to hold (RFC 3339).
    pub started_at: String,
    /// When the `firing` notification was raised, once firing.
    pub fired_at: Option<String>,
    /// One line for people.
    pub summary: String,
}

/// One firing or resolved transition, as sent to the webhook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    /// `firing` or `resolved`.
    pub status: AlertStatus,
    /// The rule name.
    pub alert: String,
    /// What the rule is about (`adapter`, `sink`); never PHI.
    pub labels: BTreeMap<String, String>,
    /// The observed value at the transition.
    pub value: f64,
    /// The configured threshold.
    pub threshold: f64,
    /// When the condition started to hold (RFC 3339).
    pub started_at: String,
    /// When it cleared (RFC 3339); set on `resolved` only.
    pub ended_at: Option<String>,
    /// One line for people.
    pub summary: String,
}

/// The shared view of alerts: what holds now and the latest transitions.
/// Cheap to clone; the evaluator writes, the admin server reads.
#[derive(Debug, Clone, Default)]
pub struct AlertState {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    active: Vec<ActiveAlert>,
    recent: VecDeque<AlertEvent>,
}

impl AlertState {
    /// An empty state (no alerts configured or none yet).
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data; keep serving it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Conditions that hold now (pending and firing), firing first.
    pub fn active(&self) -> Vec<ActiveAlert> {
        self.lock().active.clone()
    }

    /// The latest transitions, newest first (at most 100).
    pub fn recent(&self) -> Vec<AlertEvent> {
        self.lock().recent.iter().cloned().collect()
    }

    /// Replaces the active list (called by the evaluator after each pass).
    pub(crate) fn set_active(&self, mut active: Vec<ActiveAlert>) {
        active.sort_by(|a, b| {
            let rank = |p: AlertPhase| u8::from(p != AlertPhase::Firing);
            rank(a.phase)
                .cmp(&rank(b.phase))
                .then_with(|| a.alert.cmp(&b.alert))
                .then_with(|| a.labels.cmp(&b.labels))
        });
        self.lock().active = active;
    }

    /// Records a transition.
    pub(crate) fn push(&self, event: AlertEvent) {
        let mut inner = self.lock();
        inner.recent.push_front(event);
        inner.recent.truncate(RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> AlertEvent {
        AlertEvent {
            status: AlertStatus::Firing,
            alert: format!("rule{n}"),
            labels: BTreeMap::new(),
            value: n as f64,
            threshold: 1.0,
            started_at: "2026-11-23T10:00:00Z".to_owned(),
            ended_at: None,
            summary: String::new(),
        }
    }

    #[test]
    fn recent_is_newest_first_and_bounded() {
        let state = AlertState::new();
        for n in 0..(RECENT + 5) {
            state.push(event(n));
        }
        let recent = state.recent();
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].alert, format!("rule{}", RECENT + 4));
        assert_eq!(recent[RECENT - 1].alert, "rule5");
    }

    #[test]
    fn active_lists_firing_first() {
        let state = AlertState::new();
        let alert = |name: &str, phase| ActiveAlert {
            alert: name.to_owned(),
            labels: BTreeMap::new(),
            phase,
            value: 1.0,
            threshold: 1.0,
            started_at: String::new(),
            fired_at: None,
            summary: String::new(),
        };
        state.set_active(vec![
            alert("a", AlertPhase::Pending),
            alert("b", AlertPhase::Firing),
        ]);
        let names: Vec<_> = state.active().into_iter().map(|a| a.alert).collect();
        assert_eq!(names, ["b", "a"]);
    }
}
