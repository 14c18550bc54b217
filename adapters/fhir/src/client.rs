//! A small FHIR R4 REST client with the manners a cloud EHR expects.
//!
//! * **Concurrency limit per EHR**: every request holds a semaphore permit, so
//!   polling, follow-up reads and write-backs together never exceed what the
//!   vendor allows. The permit is released while backing off.
//! * **Retries**: 429 and 503 honour `Retry-After` (seconds or an HTTP date,
//!   capped); other 5xx, 408, timeouts and connection failures back off
//!   exponentially. Only idempotent requests are retried after the server may
//!   have acted (GET, PUT, conditional create); a 429 is always safe to retry.
//! * **401** drops the cached token and retries once with a fresh one.
//! * **Errors** carry the OperationOutcome (summarized by the private
//!   `outcome` module); logs carry only method, resource type, status and
//!   issue codes — never bodies or queries.
//! * **Paging** follows `Bundle.link[relation=next]`, but only to URLs under the
//!   configured base: a bearer token is never sent to another origin.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::Semaphore;
use url::Url;

use crate::auth::{TokenProvider, describe_reqwest};
use crate::error::FhirError;
use crate::outcome::OutcomeSummary;

/// Transport settings for one EHR.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// FHIR base URL, e.g. `https://ehr.example/fhir/r4` (no trailing slash needed).
    pub base_url: Url,
    /// Most requests in flight at once.
    pub max_concurrency: usize,
    /// Timeout of one request attempt.
    pub request_timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay; doubles per retry.
    pub backoff: Duration,
    /// Upper bound on any single wait (also caps `Retry-After`).
    pub max_wait: Duration,
    /// Largest response body read; a larger one fails the request with
    /// [`FhirError::TooLarge`] instead of growing memory without bound.
    pub max_response_bytes: usize,
}

impl ClientSettings {
    /// Defaults suitable for a vendor cloud API: 4 in flight, 30 s timeout,
    /// 4 retries from 500 ms, waits capped at 60 s.
    pub fn new(base_url: Url) -> Self {
        ClientSettings {
            base_url,
            max_concurrency: 4,
            request_timeout: Duration::from_secs(30),
            max_retries: 4,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
            max_response_bytes: 32 * 1024 * 1024,
        }
    }
}

/// A FHIR R4 client bound to one EHR base URL.
#[derive(Debug, Clone)]
pub struct FhirClient {
    http: reqwest::Client,
    base: Url,
    auth: Arc<TokenProvider>,
    limit: Arc<Semaphore>,
    settings: ClientSettings,
}

/// Builds the HTTP client the adapter uses (rustls, no proxies from env).
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, FhirError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .user_agent(concat!("ehr-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FhirError::Config(format!("HTTP client: {e}")))
}

impl FhirClient {
    /// A client for `settings.base_url`, authorizing through `auth`.
    pub fn new(http: reqwest::Client, settings: ClientSettings, auth: Arc<TokenProvider>) -> Self {
        let mut base = settings.base_url.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        FhirClient {
            http,
            base,
            auth,
            limit: Arc::new(Semaphore::new(settings.max_concurrency.max(1))),
            settings,
        }
    }

    /// The base URL (always ending in `/`).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The base URL without its trailing `/`, as used in `fullUrl`s.
    pub fn base_str(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `GET [base]/[type]/[id]`.
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<Value, FhirError> {
        let url = self.url_for(&format!("{resource_type}/{id}"))?;
        self.execute(Method::GET, url, None, &[], true, resource_type)
            .await
    }

    /// Reads a literal reference: `Type/id`, `Type/id/_history/v`, or an
    /// absolute URL under the base. Other origins and `urn:` references are
    /// not fetched (a [`FhirError::Config`]).
    pub async fn read_reference(&self, reference: &str) -> Result<Value, FhirError> {
        let relative = reference
            .strip_prefix(self.base.as_str())
            .unwrap_or(reference);
        if relative.contains("://") || relative.starts_with("urn:") || relative.starts_with('#') {
            return Err(FhirError::Config(
                "reference is not under the EHR base URL".into(),
            ));
        }
        let resource_type = relative.split('/').next().unwrap_or("resource").to_owned();
        let url = self.url_for(relative)?;
        self.execute(Method::GET, url, None, &[], true, &resource_type)
            .await
    }

    /// One search page: `GET [base]/[type]?params`.
    pub async fn search(
        &self,
        resource_type: &str,
        params: &[(String, String)],
    ) -> Result<Value, FhirError> {
        let mut url = self.url_for(resource_type)?;
        if !params.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in params {
                pairs.append_pair(k, v);
            }
        }
        self.execute(Method::GET, url, None, &[], true, resource_type)
            .await
    }

    /// The page after `bundle` (its `link[relation=next]`), if any.
    pub async fn next_page(&self, bundle: &Value) -> Result<Option<Value>, FhirError> {
        let Some(next) = next_link(bundle) else {
            return Ok(None);
        };
        let url = Url::parse(next)
            .or_else(|_| self.base.join(next))
            .map_err(|_| FhirError::Decode("next link is not a URL".into()))?;
        if url.origin() != self.base.origin() || !url.path().starts_with(self.base.path()) {
            return Err(FhirError::Decode(
                "next link points outside the FHIR base URL".into(),
            ));
        }
        let resource_type = url
            .path()
            .strip_prefix(self.base.path())
            .and_then(|p| p.split('/').next())
            .unwrap_or("Bundle")
            .to_owned();
        self.execute(Method::GET, url, None, &[], true, &resource_type)
            .await
            .map(Some)
    }

    /// Every page of a search, following next links up to `max_pages`.
    pub async fn search_all(
        &self,
        resource_type: &str,
        params: &[(String, String)],
        max_pages: usize,
    ) -> Result<Vec<Value>, FhirError> {
        let mut pages = vec![self.search(resource_type, params).await?];
        while pages.len() < max_pages {
            let Some(last) = pages.last() else { break };
            match self.next_page(last).await? {
                Some(page) => pages.push(page),
                None => break,
            }
        }
        Ok(pages)
    }

    /// `POST [base]/[type]`; with `if_none_exist` (a search query such as
    /// `identifier=sys|val`) the create is conditional, hence idempotent and
    /// retried like a read.
    pub async fn create(
        &self,
        resource: &Value,
        if_none_exist: Option<&str>,
    ) -> Result<Value, FhirError> {
        let resource_type = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or_else(|| FhirError::Config("resource without resourceType".into()))?
            .to_owned();
        let url = self.url_for(&resource_type)?;
        let headers: Vec<(&str, String)> = if_none_exist
            .map(|q| vec![("if-none-exist", q.to_owned())])
            .unwrap_or_default();
        self.execute(
            Method::POST,
            url,
            Some(resource),
            &headers,
            if_none_exist.is_some(),
            &resource_type,
        )
        .await
    }

    /// `PUT [base]/[type]/[id]` (idempotent).
    pub async fn update(&self, resource: &Value) -> Result<Value, FhirError> {
        let resource_type = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or_else(|| FhirError::Config("resource without resourceType".into()))?
            .to_owned();
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| FhirError::Config("update needs a resource id".into()))?;
        let url = self.url_for(&format!("{resource_type}/{id}"))?;
        self.execute(Method::PUT, url, Some(resource), &[], true, &resource_type)
            .await
    }

    fn url_for(&self, relative: &str) -> Result<Url, FhirError> {
        self.base
            .join(relative.trim_start_matches('/'))
            .map_err(|_| FhirError::Config("cannot build request URL".into()))
    }

    /// One logical request with auth, the concurrency limit and retries.
    async fn execute(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        headers: &[(&str, String)],
        idempotent: bool,
        resource_type: &str,
    ) -> Result<Value, FhirError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| FhirError::Config(format!("cannot serialize resource: {e}")))?;
        let mut attempt: u32 = 0;
        let mut refreshed_after_401 = false;
        loop {
            let result = self.attempt(&method, &url, body.as_deref(), headers).await;
            let error = match result {
                Ok(value) => {
                    metrics::counter!(gateway_core::metrics::FHIR_REQUESTS_TOTAL, "outcome" => "ok")
                        .increment(1);
                    return Ok(value);
                }
                Err(Attempt::Unauthorized(token)) if !refreshed_after_401 => {
                    tracing::info!(%method, resource_type, "401 from FHIR server; refreshing token");
                    refreshed_after_401 = true;
                    if let Some(token) = token {
                        self.auth.invalidate(&token).await;
                    }
                    continue;
                }
                Err(Attempt::Unauthorized(_)) => FhirError::Status {
                    status: 401,
                    outcome: None,
                    retry_after: None,
                },
                Err(Attempt::Failed(e)) => e,
            };
            let status = error.status();
            let may_retry = error.retryable()
                && attempt < self.settings.max_retries
                && (idempotent || status == Some(429));
            metrics::counter!(gateway_core::metrics::FHIR_REQUESTS_TOTAL, "outcome" => if may_retry { "retry" } else { "error" })
                .increment(1);
            if !may_retry {
                tracing::warn!(
                    %method,
                    resource_type,
                    status = status.unwrap_or(0),
                    issues = %outcome_codes(&error),
                    attempts = attempt + 1,
                    "FHIR request failed"
                );
                return Err(error);
            }
            let wait = self.wait_before_retry(&error, attempt);
            tracing::info!(
                %method,
                resource_type,
                status = status.unwrap_or(0),
                wait_ms = wait.as_millis() as u64,
                "FHIR request will be retried"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn wait_before_retry(&self, error: &FhirError, attempt: u32) -> Duration {
        let backoff = self
            .settings
            .backoff
            .saturating_mul(2u32.saturating_pow(attempt.min(16)));
        let wait = match error {
            FhirError::Status {
                retry_after: Some(after),
                ..
            } => *after,
            _ => backoff,
        };
        wait.min(self.settings.max_wait)
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&[u8]>,
        headers: &[(&str, String)],
    ) -> Result<Value, Attempt> {
        let _permit = self
            .limit
            .acquire()
            .await
            .map_err(|_| Attempt::Failed(FhirError::Config("client is shut down".into())))?;
        let token = self
            .auth
            .bearer()
            .await
            .map_err(|e| Attempt::Failed(e.into()))?;
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .timeout(self.settings.request_timeout)
            .header("accept", "application/fhir+json");
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/fhir+json")
                .body(body.to_vec());
        }
        let response = request.send().await.map_err(|e| {
            Attempt::Failed(FhirError::Transport {
                message: describe_reqwest(&e),
                timeout: e.is_timeout(),
            })
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = read_bounded(response, self.settings.max_response_bytes)
            .await
            .map_err(Attempt::Failed)?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(Attempt::Unauthorized(token));
        }
        if !status.is_success() {
            return Err(Attempt::Failed(FhirError::Status {
                status: status.as_u16(),
                outcome: OutcomeSummary::from_body(&bytes),
                retry_after,
            }));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Attempt::Failed(FhirError::Decode(format!(
                "body is not JSON (line {}, column {})",
                e.line(),
                e.column()
            )))
        })
    }
}

/// Reads a response body of at most `limit` bytes: refuses at once when
/// `Content-Length` says more, and stops reading as soon as more arrived.
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, FhirError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(FhirError::TooLarge { limit });
    }
    let mut body = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|e| FhirError::Transport {
            message: describe_reqwest(&e),
            timeout: e.is_timeout(),
        })?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if body.len() + chunk.len() > limit {
            return Err(FhirError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
}

enum Attempt {
    /// 401, with the token that was refused.
    Unauthorized(Option<String>),
    Failed(FhirError),
}

fn outcome_codes(error: &FhirError) -> String {
    match error {
        FhirError::Status {
            outcome: Some(o), ..
        } => o.codes(),
        _ => String::new(),
    }
}

/// `Bundle.link[relation=next].url`, if present.
pub fn next_link(bundle: &Value) -> Option<&str> {
    bundle
        .get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()
}

/// `Retry-After`: delay seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = jiff::fmt::rfc2822::parse(value).ok()?;
    let now = jiff::Timestamp::now();
    let delta = date.timestamp().duration_since(now);
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: Vec<u8>, declared: Option<usize>) -> reqwest::Response {
        let mut builder = axum::http::Response::builder().status(200);
        if let Some(n) = declared {
            builder = builder.header("content-length", n.to_string());
        }
        reqwest::Response::from(builder.body(body).expect("response"))
    }

    #[tokio::test]
    async fn response_bodies_are_read_up_to_the_bound_and_no_further() {
        let ok = read_bounded(response(vec![b'x'; 1024], None), 1024).await;
        assert_eq!(ok.expect("at the bound").len(), 1024);
        let over = read_bounded(response(vec![b'x'; 1025], None), 1024).await;
        assert!(
            matches!(over, Err(FhirError::TooLarge { limit: 1024 })),
            "{over:?}"
        );
        // A declared length over the bound is refused before reading.
        let declared = read_bounded(response(vec![b'x'; 10], Some(10)), 5).await;
        assert!(matches!(declared, Err(FhirError::TooLarge { .. })));
        let text = FhirError::TooLarge { limit: 5 }.to_string();
        assert!(text.contains("fhir.max_response_mb"), "{text}");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn finds_next_link() {
        let b = serde_json::json!({"link": [
            {"relation": "self", "url": "http://x/a"},
            {"relation": "next", "url": "http://x/b"}]});
        assert_eq!(next_link(&b), Some("http://x/b"));
        assert_eq!(next_link(&serde_json::json!({})), None);
    }
}
