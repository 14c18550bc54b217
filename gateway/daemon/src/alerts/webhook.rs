//! Posts alert transitions to the configured webhook, one JSON object per
//! transition, in order, with retries.
//!
//! One task drains a queue so a `resolved` never overtakes its `firing`. A
//! 2xx answer delivers; no answer, 408, 429 and 5xx are retried with doubling
//! delays up to `max_attempts`; any other 4xx is a configuration problem on
//! the receiver's side and is given up at once (logged). The bearer token, if
//! any, comes from a file or environment variable and is never logged.
//!
//! Body (`Content-Type: application/json`):
//! ```json
//! {"status": "firing", "alert": "sink_down", "labels": {"sink": "http"},
//!  "value": 3.0, "threshold": 3.0, "started_at": "2026-11-23T10:00:00Z",
//!  "ended_at": null, "summary": "the last 3 deliveries to the http sink failed",
//!  "gateway": {"tenant": "mso-demo", "practice": "cardio-north", "site": "main"}}
//! ```

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::AlertEvent;
use super::config::WebhookSettings;
use crate::settings::Secret;

/// Counter of webhook posts by `result` (`delivered`, `retry`, `failed`).
pub use gateway_core::metrics::ALERT_NOTIFICATIONS_TOTAL as NOTIFICATIONS_TOTAL;

/// Which gateway sent the alert (no PHI: configuration names only).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GatewayIdentity {
    /// The MSO tenant.
    pub tenant: String,
    /// The practice.
    pub practice: Option<String>,
    /// The site.
    pub site: Option<String>,
}

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(flatten)]
    event: &'a AlertEvent,
    gateway: &'a GatewayIdentity,
}

/// Transitions waiting for the sender at most; past that, new ones are
/// dropped and counted (`ehr_gateway_alert_notifications_dropped_total`)
/// rather than growing memory while a webhook stays down.
pub const QUEUE_CAPACITY: usize = 256;

/// The metric counting transitions dropped because the queue was full.
pub use gateway_core::metrics::ALERT_NOTIFICATIONS_DROPPED_TOTAL as DROPPED_METRIC;

/// The queue into the sender task.
#[derive(Debug, Clone)]
pub struct Webhook {
    queue: mpsc::Sender<AlertEvent>,
}

impl Webhook {
    /// Starts the sender task; it ends when `stop` is cancelled (a
    /// notification still being retried then is given up, logged).
    pub fn spawn(
        settings: WebhookSettings,
        token: Option<Secret>,
        identity: GatewayIdentity,
        stop: CancellationToken,
    ) -> anyhow::Result<(Webhook, tokio::task::JoinHandle<()>)> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the alert webhook client: {e}"))?;
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let sender = Sender {
            client,
            settings,
            token,
            identity,
        };
        let task = tokio::spawn(sender.run(rx, stop));
        Ok((Webhook { queue }, task))
    }

    /// Queues one transition; drops (and counts) it when the queue is full.
    /// Returns whether it was queued.
    pub fn send(&self, event: AlertEvent) -> bool {
        match self.queue.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!(DROPPED_METRIC).increment(1);
                tracing::warn!(
                    capacity = QUEUE_CAPACITY,
                    "Alert webhook queue full; a transition was dropped."
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::warn!("Alert webhook sender stopped; a transition was not sent.");
                false
            }
        }
    }
}

struct Sender {
    client: reqwest::Client,
    settings: WebhookSettings,
    token: Option<Secret>,
    identity: GatewayIdentity,
}

enum Attempt {
    Delivered,
    Retry(String),
    GiveUp(String),
}

impl Sender {
    async fn run(self, mut rx: mpsc::Receiver<AlertEvent>, stop: CancellationToken) {
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => return,
                event = rx.recv() => match event {
                    Some(event) => event,
                    None => return,
                },
            };
            self.deliver(&event, &stop).await;
        }
    }

    async fn deliver(&self, event: &AlertEvent, stop: &CancellationToken) {
        let max = self.settings.max_attempts.max(1);
        let waits = delays(&self.settings);
        for attempt in 1..=max {
            let error = match self.attempt(event).await {
                Attempt::Delivered => {
                    metrics::counter!(NOTIFICATIONS_TOTAL, "result" => "delivered").increment(1);
                    tracing::info!(alert = %event.alert, status = event.status.as_str(), attempt,
                        "Alert notification delivered.");
                    return;
                }
                Attempt::Retry(error) if attempt < max => error,
                Attempt::Retry(error) | Attempt::GiveUp(error) => {
                    metrics::counter!(NOTIFICATIONS_TOTAL, "result" => "failed").increment(1);
                    tracing::error!(alert = %event.alert, status = event.status.as_str(), attempt,
                        error = %error, "Alert notification given up.");
                    return;
                }
            };
            metrics::counter!(NOTIFICATIONS_TOTAL, "result" => "retry").increment(1);
            tracing::warn!(alert = %event.alert, status = event.status.as_str(), attempt,
                error = %error, "Alert notification failed; will retry.");
            let wait = waits
                .get(attempt as usize - 1)
                .copied()
                .unwrap_or(self.settings.backoff_max);
            tokio::select! {
                () = stop.cancelled() => {
                    tracing::warn!(alert = %event.alert, "Stopping; alert notification not delivered.");
                    return;
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn attempt(&self, event: &AlertEvent) -> Attempt {
        let payload = Payload {
            event,
            gateway: &self.identity,
        };
        let mut request = self.client.post(&self.settings.url).json(&payload);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    Attempt::Delivered
                } else if status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT
                {
                    Attempt::Retry(format!("HTTP {}", status.as_u16()))
                } else {
                    Attempt::GiveUp(format!("HTTP {}", status.as_u16()))
                }
            }
            // The error text names the URL and the failure, never the token.
            Err(e) => Attempt::Retry(describe(&e)),
        }
    }
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    }
}

/// The waits between a notification's attempts: `backoff_initial`, doubling,
/// capped at `backoff_max` (one fewer than `max_attempts`).
pub fn delays(settings: &WebhookSettings) -> Vec<Duration> {
    let mut out = Vec::new();
    let mut delay = settings.backoff_initial;
    for _ in 1..settings.max_attempts.max(1) {
        out.push(delay);
        delay = (delay * 2).min(settings.backoff_max);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A webhook that never answers holds one notification in its retries;
    /// the queue behind it takes `QUEUE_CAPACITY` more and drops the rest.
    #[tokio::test]
    async fn a_stuck_webhook_queue_is_bounded() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/", silent.local_addr().expect("addr"));
        let settings = WebhookSettings {
            url,
            bearer_token_file: None,
            bearer_token_env: None,
            timeout: Duration::from_secs(600),
            max_attempts: 5,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
        };
        let stop = CancellationToken::new();
        let (hook, task) = Webhook::spawn(settings, None, GatewayIdentity::default(), stop.clone())
            .expect("spawn");
        let event = || AlertEvent {
            status: super::super::AlertStatus::Firing,
            alert: "sink_down".to_owned(),
            labels: Default::default(),
            value: 1.0,
            threshold: 1.0,
            started_at: "2026-12-06T00:00:00Z".to_owned(),
            ended_at: None,
            summary: "test".to_owned(),
        };
        let queued = (0..QUEUE_CAPACITY * 2)
            .filter(|_| hook.send(event()))
            .count();
        assert!(
            (QUEUE_CAPACITY..=QUEUE_CAPACITY + 1).contains(&queued),
            "queued {queued} of {}",
            QUEUE_CAPACITY * 2
        );
        // The sender is stuck in its request to the silent webhook (that is
        // the point); end it without waiting for the request's timeout.
        stop.cancel();
        task.abort();
        let _ = task.await;
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let settings = WebhookSettings {
            url: "http://127.0.0.1:9/".to_owned(),
            bearer_token_file: None,
            bearer_token_env: None,
            timeout: Duration::from_secs(1),
            max_attempts: 5,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
        };
        assert_eq!(
            delays(&settings),
            [100, 200, 300, 300].map(Duration::from_millis)
        );
    }
}
