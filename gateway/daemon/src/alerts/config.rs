//! The `[alerts]` section: evaluation interval, webhook, one table per rule.
//!
//! A rule is on when its table is present. Durations are strings such as
//! `"30s"`, `"5m"`, `"1h 30m"` (parsed by jiff's friendly format); a wrong one
//! is reported with its key like every other configuration problem. The
//! webhook's bearer token comes from a file or an environment variable, never
//! from the file itself.
//!
//! ```toml
//! [alerts]
//! interval = "5s"
//! [alerts.webhook]
//! url = "https://alerts.example.test/hook"
//! bearer_token_file = "/etc/ehr-gateway/alert-hook.token"
//! [alerts.outbox_depth]
//! threshold = 500
//! for = "5m"
//! [alerts.outbox_oldest_age]
//! threshold = "15m"
//! for = "1m"
//! [alerts.error_rate]
//! threshold = 0.2        # share of rejected + error messages
//! window = "15m"
//! min_messages = 10
//! for = "5m"
//! [alerts.adapter_down]
//! for = "1m"
//! [alerts.sink_down]
//! failures = 3           # consecutive failed delivery attempts
//! for = "2m"
//! [alerts.certificate_expiry]
//! threshold = "720h"     # a served TLS certificate expires within 30 days
//! for = "1m"
//! [alerts.store_size]    # on without this table too; thresholds: [store] warn_fraction
//! for = "0s"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::settings::SecretSource;

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// How often the rules are evaluated (default 5 s).
    #[serde(default = "default_interval", deserialize_with = "duration")]
    pub interval: Duration,
    /// Where transitions are posted; without it alerts are only shown.
    #[serde(default)]
    pub webhook: Option<WebhookSettings>,
    /// Too many events waiting for delivery.
    #[serde(default)]
    pub outbox_depth: Option<DepthRule>,
    /// The oldest undelivered event is too old.
    #[serde(default)]
    pub outbox_oldest_age: Option<AgeRule>,
    /// Too many inbound messages rejected or failed.
    #[serde(default)]
    pub error_rate: Option<ErrorRateRule>,
    /// An adapter's tasks are not running.
    #[serde(default)]
    pub adapter_down: Option<AdapterDownRule>,
    /// Deliveries to the central platform keep failing.
    #[serde(default)]
    pub sink_down: Option<SinkDownRule>,
    /// A TLS certificate the daemon serves expires soon.
    #[serde(default)]
    pub certificate_expiry: Option<CertificateExpiryRule>,
    /// The store nears or reached `[store] max_size_mb` (`store_nearly_full`,
    /// `store_full`, `audit_log_large`). On by default: a full store refuses
    /// intake, and nobody may learn that only from the senders.
    #[serde(default = "default_store_size")]
    pub store_size: Option<StoreSizeRule>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            interval: default_interval(),
            webhook: None,
            outbox_depth: None,
            outbox_oldest_age: None,
            error_rate: None,
            adapter_down: None,
            sink_down: None,
            certificate_expiry: None,
            store_size: default_store_size(),
        }
    }
}

impl AlertSettings {
    /// True when at least one rule is configured.
    pub fn any_rule(&self) -> bool {
        self.outbox_depth.is_some()
            || self.outbox_oldest_age.is_some()
            || self.error_rate.is_some()
            || self.adapter_down.is_some()
            || self.sink_down.is_some()
            || self.certificate_expiry.is_some()
            || self.store_size.is_some()
    }
}

/// `[alerts.webhook]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// `http://` or `https://` URL receiving one JSON POST per transition.
    pub url: String,
    /// File holding a bearer token sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Environment variable holding that token.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// Per-request timeout (default 5 s).
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Attempts per notification before it is given up (default 5).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay, doubled per attempt (default 1 s).
    #[serde(default = "default_backoff_initial", deserialize_with = "duration")]
    pub backoff_initial: Duration,
    /// Longest retry delay (default 60 s).
    #[serde(default = "default_backoff_max", deserialize_with = "duration")]
    pub backoff_max: Duration,
}

impl WebhookSettings {
    /// Where the bearer token lives.
    pub fn token_source(&self) -> SecretSource {
        SecretSource {
            file: self.bearer_token_file.clone(),
            env: self.bearer_token_env.clone(),
        }
    }
}

/// `[alerts.outbox_depth]`: fires when pending events ≥ `threshold`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepthRule {
    /// Pending events.
    pub threshold: u64,
    /// How long the condition must hold.
    #[serde(rename = "for", default = "default_for", deserialize_with = "duration")]
    pub hold: Duration,
}

/// `[alerts.outbox_oldest_age]`: fires when the oldest pending event is at
/// least `threshold` old.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeRule {
    /// Age, e.g. `"15m"`.
    #[serde(deserialize_with = "duration")]
    pub threshold: Duration,
    /// How long the condition must hold.
    #[serde(rename = "for", default = "default_for", deserialize_with = "duration")]
    pub hold: Duration,
}

/// `[alerts.error_rate]`: fires when, over `window`, the share of inbound
/// messages stored as rejected or error is ≥ `threshold` (and at least
/// `min_messages` arrived).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRateRule {
    /// A share in (0, 1].
    pub threshold: f64,
    /// The sliding window (default 15 min).
    #[serde(default = "default_window", deserialize_with = "duration")]
    pub window: Duration,
    /// Fewer messages than this in the window never fire (default 10).
    #[serde(default = "default_min_messages")]
    pub min_messages: u64,
    /// How long the condition must hold.
    #[serde(rename = "for", default = "default_for", deserialize_with = "duration")]
    pub hold: Duration,
}

/// `[alerts.adapter_down]`: fires per configured adapter whose tasks stopped.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterDownRule {
    /// How long the condition must hold.
    #[serde(rename = "for", default = "default_for", deserialize_with = "duration")]
    pub hold: Duration,
}

/// `[alerts.sink_down]`: fires when the latest `failures` delivery attempts
/// all failed transiently (no answer, 5xx, 429).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkDownRule {
    /// Consecutive failed attempts (default 3).
    #[serde(default = "default_failures")]
    pub failures: u64,
    /// How long the condition must hold.
    #[serde(rename = "for", default = "default_for", deserialize_with = "duration")]
    pub hold: Duration,
}

/// `[alerts.certificate_expiry]`: fires per TLS listener whose served
/// certificate expires within `threshold` (or has expired).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateExpiryRule {
    /// Time left before `notAfter`, e.g. `"720h"` (the default: 30 days).
    #[serde(default = "default_expiry_threshold", deserialize_with = "duration")]
    pub threshold: Duration,
    /// How long the condition must hold.
    #[serde(rename = "for", default = "default_for", deserialize_with = "duration")]
    pub hold: Duration,
}

/// `[alerts.store_size]`: fires `store_nearly_full` when undelivered data
/// holds the store above `[store] warn_fraction` of `max_size_mb`,
/// `store_full` when intake is being refused, and `audit_log_large` when the
/// audit log alone passes `warn_fraction` of the budget (it is never pruned
/// for size). The thresholds live with the budget in `[store]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSizeRule {
    /// How long the condition must hold (default 0 s: a full store is news
    /// at once).
    #[serde(rename = "for", default, deserialize_with = "duration")]
    pub hold: Duration,
}

fn default_store_size() -> Option<StoreSizeRule> {
    Some(StoreSizeRule {
        hold: Duration::ZERO,
    })
}

fn default_expiry_threshold() -> Duration {
    Duration::from_secs(30 * 86_400)
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_attempts() -> u32 {
    5
}
fn default_backoff_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(60)
}
fn default_for() -> Duration {
    Duration::from_secs(60)
}
fn default_window() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_min_messages() -> u64 {
    10
}
fn default_failures() -> u64 {
    3
}

/// Parses `"30s"`, `"5m"`, `"1h 30m"`, `"250ms"` into a non-negative duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let parsed: jiff::SignedDuration = text.trim().parse().map_err(|_| {
        format!("`{text}` is not a duration; write e.g. \"30s\", \"5m\" or \"1h 30m\"")
    })?;
    if parsed.is_negative() {
        return Err(format!("`{text}` is negative"));
    }
    Ok(parsed.unsigned_abs())
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Semantic checks of `[alerts]`: `(key, message)` per problem.
pub fn check_settings(alerts: &AlertSettings) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: &str| {
        problems.push((format!("alerts.{key}"), message.to_owned()));
    };
    if alerts.interval.is_zero() {
        problem("interval", "must be longer than 0s");
    }
    if let Some(webhook) = &alerts.webhook {
        if url::Url::parse(&webhook.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .is_none()
        {
            problem(
                "webhook.url",
                "must be an http:// or https:// URL with a host",
            );
        }
        if let Err(message) = webhook.token_source().read() {
            problem("webhook.bearer_token_file", &message);
        }
        if webhook.max_attempts == 0 {
            problem("webhook.max_attempts", "must be at least 1");
        }
        if webhook.timeout.is_zero() {
            problem("webhook.timeout", "must be longer than 0s");
        }
        if webhook.backoff_initial.is_zero() {
            problem("webhook.backoff_initial", "must be longer than 0s");
        }
        if webhook.backoff_max < webhook.backoff_initial {
            problem("webhook.backoff_max", "must not be below backoff_initial");
        }
    }
    if let Some(rule) = &alerts.outbox_depth
        && rule.threshold == 0
    {
        problem("outbox_depth.threshold", "must be at least 1");
    }
    if let Some(rule) = &alerts.outbox_oldest_age
        && rule.threshold.is_zero()
    {
        problem("outbox_oldest_age.threshold", "must be longer than 0s");
    }
    if let Some(rule) = &alerts.error_rate {
        if !(rule.threshold > 0.0 && rule.threshold <= 1.0) {
            problem(
                "error_rate.threshold",
                "must be a share in (0, 1], e.g. 0.2",
            );
        }
        if rule.window.is_zero() {
            problem("error_rate.window", "must be longer than 0s");
        }
    }
    if let Some(rule) = &alerts.sink_down
        && rule.failures == 0
    {
        problem("sink_down.failures", "must be at least 1");
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_friendly_format() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn rules_parse_with_defaults() {
        let settings: AlertSettings = serde_json::from_value(serde_json::json!({
            "interval": "2s",
            "webhook": {"url": "http://127.0.0.1:9/hook"},
            "outbox_depth": {"threshold": 10},
            "sink_down": {"for": "30s"}
        }))
        .expect("parse");
        assert_eq!(settings.interval, Duration::from_secs(2));
        let depth = settings.outbox_depth.as_ref().expect("depth");
        assert_eq!(depth.hold, Duration::from_secs(60));
        let sink = settings.sink_down.as_ref().expect("sink");
        assert_eq!((sink.failures, sink.hold), (3, Duration::from_secs(30)));
        let webhook = settings.webhook.as_ref().expect("webhook");
        assert_eq!(webhook.max_attempts, 5);
        assert!(check_settings(&settings).is_empty());
    }

    #[test]
    fn problems_name_their_keys() {
        let settings: AlertSettings = serde_json::from_value(serde_json::json!({
            "webhook": {"url": "ftp://x", "max_attempts": 0},
            "error_rate": {"threshold": 1.5},
            "sink_down": {"failures": 0}
        }))
        .expect("parse");
        let keys: Vec<String> = check_settings(&settings)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            [
                "alerts.webhook.url",
                "alerts.webhook.max_attempts",
                "alerts.error_rate.threshold",
                "alerts.sink_down.failures"
            ]
        );
        let bad = serde_json::from_value::<AlertSettings>(
            serde_json::json!({"outbox_depth": {"threshold": 1, "for": "often"}}),
        );
        assert!(bad.is_err());
    }
}
