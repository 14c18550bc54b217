//! The `http` sink: CloudEvents 1.0 structured JSON POSTed to the central platform.
//!
//! Each attempt POSTs the stored event body with `Content-Type:
//! application/cloudevents+json`, the event id as `ce-id` and `Idempotency-Key`
//! (the platform de-duplicates re-deliveries by it) — or, with `batch = true`,
//! several events as one `application/cloudevents-batch+json` array (the
//! platform de-duplicates by each event's `id`), an optional bearer token,
//! over rustls with an optional client certificate and extra CA (all passed
//! in as values: this crate reads no secret file and no environment). Answers are
//! classified: 2xx delivered; 400, 413 and 422 — the event itself is bad — are
//! permanent refusals, dead-lettered with the status and a capped excerpt of
//! the body (the receiver's error text, never our payload); every other
//! status (401, 403, 404, 409, 408, 429, 5xx, …), timeouts and connection
//! errors retry with capped backoff (honouring `Retry-After` on 429/503): one
//! token rotation or a platform deploy must not park the backlog.

use std::fmt;
use std::time::Duration;

use gateway_core::adapter::BoxFuture;
use gateway_store::OutboxEvent;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};

use crate::sink::{Sink, SinkResult};
use crate::{ForwardError, Result};

/// Longest excerpt of an error body kept with a dead letter.
const BODY_EXCERPT: usize = 200;

/// The default per-request timeout, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// A client certificate (chain) and its private key, both PEM, for mutual TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// PEM certificate chain.
    pub cert_pem: Vec<u8>,
    /// PEM private key of the certificate.
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientIdentity([redacted])")
    }
}

/// Settings of the HTTP sink, as values: whoever builds it (the daemon) has
/// already read the certificate, key and token from their files or variables.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpSinkConfig {
    /// Endpoint events are POSTed to (`https://platform.example/api/events`).
    pub url: String,
    /// Per-request timeout in milliseconds (default [`DEFAULT_TIMEOUT_MS`]).
    pub timeout_ms: u64,
    /// Client certificate and key for mutual TLS.
    pub client_identity: Option<ClientIdentity>,
    /// Extra PEM CA certificate to trust (a private platform CA).
    pub ca_cert_pem: Option<Vec<u8>>,
    /// The bearer token (already trimmed).
    pub bearer_token: Option<String>,
    /// POST several events at once as a CloudEvents JSON batch
    /// (`application/cloudevents-batch+json`, up to the forwarder's
    /// `batch_max`) when the platform accepts that mode (default false: one
    /// structured event per POST).
    pub batch: bool,
}

impl fmt::Debug for HttpSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSinkConfig")
            .field("url", &self.url)
            .field("timeout_ms", &self.timeout_ms)
            .field("client_identity", &self.client_identity)
            .field("ca_cert_pem", &self.ca_cert_pem.as_ref().map(Vec::len))
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "[redacted]"),
            )
            .field("batch", &self.batch)
            .finish()
    }
}

impl HttpSinkConfig {
    /// A plain configuration for `url` with defaults elsewhere.
    pub fn new(url: impl Into<String>) -> Self {
        HttpSinkConfig {
            url: url.into(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            client_identity: None,
            ca_cert_pem: None,
            bearer_token: None,
            batch: false,
        }
    }
}

/// POSTs events to the central platform.
#[derive(Debug, Clone)]
pub struct HttpSink {
    client: reqwest::Client,
    url: reqwest::Url,
    batch: bool,
}

fn config_error(message: String) -> ForwardError {
    ForwardError::Config(message)
}

impl HttpSink {
    /// Builds the client, so configuration mistakes (a bad URL, certificate,
    /// key or token) surface at startup.
    pub fn new(config: &HttpSinkConfig) -> Result<HttpSink> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| config_error(format!("invalid sink url {:?}: {e}", config.url)))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/cloudevents+json; charset=utf-8"),
        );
        if let Some(token) = &config.bearer_token {
            if token.is_empty() {
                return Err(config_error("the bearer token is empty".to_owned()));
            }
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| config_error("the bearer token has invalid characters".to_owned()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms.max(1)))
            .connect_timeout(Duration::from_millis(config.timeout_ms.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers);
        if let Some(identity) = &config.client_identity {
            let mut pem = identity.cert_pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(&identity.key_pem);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| config_error(format!("invalid client certificate/key: {e}")))?;
            builder = builder.identity(identity);
        }
        if let Some(ca) = &config.ca_cert_pem {
            let cert = reqwest::Certificate::from_pem(ca)
                .map_err(|e| config_error(format!("invalid CA certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder
            .build()
            .map_err(|e| config_error(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpSink {
            client,
            url,
            batch: config.batch,
        })
    }

    async fn attempt(&self, event: &OutboxEvent) -> SinkResult {
        let id = match HeaderValue::from_str(&event.id) {
            Ok(v) => v,
            Err(_) => {
                return SinkResult::Reject {
                    error: "event id is not a valid header value".to_owned(),
                    http_status: None,
                };
            }
        };
        let request = self
            .client
            .post(self.url.clone())
            .header("ce-id", id.clone())
            .header("Idempotency-Key", id)
            .body(event.body.clone());
        self.exchange(request).await
    }

    /// One POST of several events as a CloudEvents JSON batch: a JSON array of
    /// the structured events. The platform de-duplicates by each event's `id`;
    /// one answer classifies them all.
    async fn attempt_batch(&self, events: &[OutboxEvent]) -> SinkResult {
        let mut body =
            String::with_capacity(events.iter().map(|e| e.body.len() + 1).sum::<usize>() + 2);
        body.push('[');
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&event.body);
        }
        body.push(']');
        let request = self
            .client
            .post(self.url.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/cloudevents-batch+json; charset=utf-8"),
            )
            .body(body);
        self.exchange(request).await
    }

    /// Sends `request` and classifies the answer.
    async fn exchange(&self, request: reqwest::RequestBuilder) -> SinkResult {
        let response = request.send().await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                return SinkResult::Retry {
                    error: format!("{kind}: {}", error_chain(&e)),
                    http_status: None,
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        let code = status.as_u16();
        if status.is_success() {
            return SinkResult::Delivered {
                http_status: Some(code),
            };
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let excerpt = body_excerpt(&mut response).await;
        let error = if excerpt.is_empty() {
            format!("HTTP {code}")
        } else {
            format!("HTTP {code}: {excerpt}")
        };
        if !event_itself_is_bad(code) {
            SinkResult::Retry {
                error,
                http_status: Some(code),
                retry_after: if code == 429 || code == 503 {
                    retry_after
                } else {
                    None
                },
            }
        } else {
            SinkResult::Reject {
                error,
                http_status: Some(code),
            }
        }
    }
}

impl Sink for HttpSink {
    fn name(&self) -> &str {
        "http"
    }

    fn deliver<'a>(&'a self, event: &'a OutboxEvent) -> BoxFuture<'a, SinkResult> {
        Box::pin(self.attempt(event))
    }

    fn takes_batches(&self) -> bool {
        self.batch
    }

    fn deliver_batch<'a>(&'a self, events: &'a [OutboxEvent]) -> BoxFuture<'a, Vec<SinkResult>> {
        Box::pin(async move {
            match events {
                [] => Vec::new(),
                [one] => vec![self.attempt(one).await],
                many if self.batch => vec![self.attempt_batch(many).await; many.len()],
                many => {
                    let mut results = Vec::with_capacity(many.len());
                    for event in many {
                        results.push(self.attempt(event).await);
                    }
                    results
                }
            }
        })
    }
}

/// Whether an HTTP answer says the event itself is bad (400 Bad Request, 413
/// Content Too Large, 422 Unprocessable Content): sending it again cannot
/// help, so it is dead-lettered. Every other refusal — 401/403 after a token
/// rotation, 404 or 409 during a platform deploy, 408, 429, 5xx — says
/// something about the platform or our credentials, is fixed without touching
/// the event, and is retried with capped backoff.
pub fn event_itself_is_bad(status: u16) -> bool {
    matches!(status, 400 | 413 | 422)
}

/// `Retry-After`: delay-seconds or an HTTP-date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let now = jiff::Timestamp::now();
    let ms = (when.as_millisecond() - now.as_millisecond()).max(0);
    Some(Duration::from_millis(ms as u64))
}

/// Reads at most a small prefix of the body and makes it one printable line.
async fn body_excerpt(response: &mut reqwest::Response) -> String {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < BODY_EXCERPT * 4 {
        match tokio::time::timeout(Duration::from_secs(2), response.chunk()).await {
            Ok(Ok(Some(chunk))) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(BODY_EXCERPT)
        .collect();
    if text.chars().count() > BODY_EXCERPT {
        out.push('…');
    }
    out.trim().to_owned()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
