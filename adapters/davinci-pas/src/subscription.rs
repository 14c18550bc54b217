//! Subscriptions for pended requests (PAS, R4 Subscriptions Backport):
//! topic-based, rest-hook, `id-only` or `full-resource` payloads.
//!
//! The EHR registers a Subscription (`POST [base]/Subscription`) on the PAS
//! topic; when a decision lands on a case that EHR submitted, the gateway
//! POSTs a notification Bundle (`type = history`, a backport
//! `SubscriptionStatus` Parameters first, then the ClaimResponse entry — with
//! the resource for `full-resource`, without it for `id-only`). Sending is
//! driven by the adapter's `WriteBack` (see [`crate::writeback`]), so the
//! daemon's write-back worker retries a failed notification durably with
//! backoff, like every other delivery.
//!
//! Registrations are adapter state kept in one JSON file in the daemon's
//! data directory (written to a temporary file, synced and renamed, mode
//! 0600 — `channel.header` may carry the EHR's bearer token). The handshake
//! of the backport (`requested` → `active`) is not performed: a valid
//! registration is `active` at once. The event counter of each subscription
//! is persisted before a notification is sent, so event numbers never repeat.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gateway_core::{Case, GatewayError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::request::{Refusal, codes};
use crate::urls;

/// What a notification carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadContent {
    /// Only the status Parameters.
    Empty,
    /// The ClaimResponse's URL, no resource.
    IdOnly,
    /// The ClaimResponse itself.
    FullResource,
}

impl PayloadContent {
    fn parse(code: &str) -> Option<Self> {
        match code {
            "empty" => Some(PayloadContent::Empty),
            "id-only" => Some(PayloadContent::IdOnly),
            "full-resource" => Some(PayloadContent::FullResource),
            _ => None,
        }
    }

    /// The backport code.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadContent::Empty => "empty",
            PayloadContent::IdOnly => "id-only",
            PayloadContent::FullResource => "full-resource",
        }
    }
}

/// One registered subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    /// Our id (`Subscription/{id}`).
    pub id: String,
    /// The client that registered it (only its cases notify it).
    pub client: String,
    /// `channel.endpoint`.
    pub endpoint: String,
    /// `channel.header` lines (`Name: value`), sent with each notification.
    #[serde(default)]
    pub headers: Vec<String>,
    /// The payload content.
    pub payload: PayloadContent,
    /// Notifications numbered so far.
    #[serde(default)]
    pub events: u64,
}

impl SubscriptionRecord {
    /// The Subscription resource as the EHR reads it back (headers omitted:
    /// they may hold its token).
    pub fn resource(&self) -> Value {
        json!({
            "resourceType": "Subscription",
            "id": self.id,
            "meta": {"profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"]},
            "status": "active",
            "reason": "Da Vinci PAS: decisions on pended prior-authorization requests",
            "criteria": urls::TOPIC,
            "channel": {
                "type": "rest-hook",
                "endpoint": self.endpoint,
                "payload": "application/fhir+json",
                "_payload": {"extension": [{"url": urls::BACKPORT_PAYLOAD, "valueCode": self.payload.as_str()}]}
            }
        })
    }
}

/// A Subscription the EHR posted, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// `channel.endpoint`.
    pub endpoint: String,
    /// `channel.header`.
    pub headers: Vec<String>,
    /// Payload content (default `id-only`).
    pub payload: PayloadContent,
}

/// Validates a posted Subscription: the PAS topic, a rest-hook channel with
/// an `https` endpoint (`http` only on loopback when `allow_http`), FHIR JSON
/// payloads.
pub fn parse_registration(raw: &[u8], allow_http: bool) -> Result<Registration, Refusal> {
    let value = gateway_fhir_model::parse_json(raw).map_err(|d| Refusal {
        status: 400,
        diagnostics: vec![d],
    })?;
    if value.get("resourceType").and_then(Value::as_str) != Some("Subscription") {
        return Err(Refusal::one(
            400,
            codes::NOT_A_BUNDLE,
            "the body must be a Subscription",
            "Subscription",
        ));
    }
    let mut problems = Vec::new();
    let refuse = |problems: &mut Vec<gateway_core::Diagnostic>, code: &str, msg: &str, at: &str| {
        problems.push(gateway_core::Diagnostic::error(code, msg).at(at));
    };
    if value.get("criteria").and_then(Value::as_str) != Some(urls::TOPIC) {
        refuse(
            &mut problems,
            codes::BAD_VALUE,
            "criteria must be the PAS subscription topic",
            "Subscription.criteria",
        );
    }
    if value.pointer("/channel/type").and_then(Value::as_str) != Some("rest-hook") {
        refuse(
            &mut problems,
            codes::BAD_VALUE,
            "channel.type must be rest-hook",
            "Subscription.channel.type",
        );
    }
    let endpoint = value
        .pointer("/channel/endpoint")
        .and_then(Value::as_str)
        .unwrap_or("");
    match url::Url::parse(endpoint) {
        Err(_) => refuse(
            &mut problems,
            codes::REQUIRED,
            "channel.endpoint must be an absolute URL",
            "Subscription.channel.endpoint",
        ),
        Ok(u) => {
            let loopback = u.host_str().is_some_and(|h| {
                h == "localhost"
                    || h.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
                    || h.trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            });
            let ok = u.scheme() == "https" || (u.scheme() == "http" && allow_http && loopback);
            if !ok {
                refuse(
                    &mut problems,
                    codes::BAD_VALUE,
                    "channel.endpoint must be https",
                    "Subscription.channel.endpoint",
                );
            }
        }
    }
    match value.pointer("/channel/payload").and_then(Value::as_str) {
        None | Some("application/fhir+json") | Some("application/json") => {}
        Some(_) => refuse(
            &mut problems,
            codes::BAD_VALUE,
            "channel.payload must be application/fhir+json",
            "Subscription.channel.payload",
        ),
    }
    let content = value
        .pointer("/channel/_payload/extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|e| e.get("url").and_then(Value::as_str) == Some(urls::BACKPORT_PAYLOAD))
        .and_then(|e| e.get("valueCode"))
        .and_then(Value::as_str);
    let payload = match content {
        None => PayloadContent::IdOnly,
        Some(code) => match PayloadContent::parse(code) {
            Some(p) => p,
            None => {
                refuse(
                    &mut problems,
                    codes::BAD_VALUE,
                    "payload content must be empty, id-only or full-resource",
                    "Subscription.channel.payload.extension",
                );
                PayloadContent::IdOnly
            }
        },
    };
    let headers: Vec<String> = value
        .pointer("/channel/header")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if headers
        .iter()
        .any(|h| !h.contains(':') || h.contains(['\r', '\n']))
    {
        refuse(
            &mut problems,
            codes::BAD_VALUE,
            "channel.header entries are `Name: value`",
            "Subscription.channel.header",
        );
    }
    if !problems.is_empty() {
        return Err(Refusal {
            status: 422,
            diagnostics: problems,
        });
    }
    Ok(Registration {
        endpoint: endpoint.to_owned(),
        headers,
        payload,
    })
}

/// Why the subscription file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("subscription store {path}: {message}")]
pub struct StoreError {
    path: String,
    message: String,
}

/// The registered subscriptions, kept in one JSON file.
#[derive(Debug)]
pub struct SubscriptionStore {
    path: PathBuf,
    records: Mutex<Vec<SubscriptionRecord>>,
}

impl SubscriptionStore {
    /// Opens (or starts) the store at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let records = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError {
                path: path.display().to_string(),
                message: format!("not readable: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(StoreError {
                    path: path.display().to_string(),
                    message: e.to_string(),
                });
            }
        };
        Ok(SubscriptionStore {
            path,
            records: Mutex::new(records),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SubscriptionRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(path: &Path, records: &[SubscriptionRecord]) -> Result<(), StoreError> {
        let err = |e: std::io::Error| StoreError {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(records).map_err(|e| StoreError {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        {
            use std::io::Write as _;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            let mut file = options.open(&tmp).map_err(err)?;
            file.write_all(&bytes).map_err(err)?;
            file.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)?;
        Ok(())
    }

    /// Adds a registration for `client`; returns the record.
    pub fn add(
        &self,
        client: &str,
        registration: Registration,
    ) -> Result<SubscriptionRecord, StoreError> {
        let mut records = self.lock();
        let record = SubscriptionRecord {
            id: format!("pas-sub-{}", uuid::Uuid::new_v4().simple()),
            client: client.to_owned(),
            endpoint: registration.endpoint,
            headers: registration.headers,
            payload: registration.payload,
            events: 0,
        };
        let mut next = records.clone();
        next.push(record.clone());
        Self::save(&self.path, &next)?;
        *records = next;
        Ok(record)
    }

    /// The subscription `id` of `client`.
    pub fn get(&self, client: &str, id: &str) -> Option<SubscriptionRecord> {
        self.lock()
            .iter()
            .find(|r| r.client == client && r.id == id)
            .cloned()
    }

    /// Every subscription of `client`.
    pub fn of_client(&self, client: &str) -> Vec<SubscriptionRecord> {
        self.lock()
            .iter()
            .filter(|r| r.client == client)
            .cloned()
            .collect()
    }

    /// Takes the next event number of subscription `id`, persisted first.
    pub fn next_event(&self, id: &str) -> Result<u64, StoreError> {
        let mut records = self.lock();
        let mut next = records.clone();
        let Some(record) = next.iter_mut().find(|r| r.id == id) else {
            return Err(StoreError {
                path: self.path.display().to_string(),
                message: "subscription vanished".to_owned(),
            });
        };
        record.events += 1;
        let number = record.events;
        Self::save(&self.path, &next)?;
        *records = next;
        Ok(number)
    }
}

/// The notification Bundle for `case` to `subscription`.
pub fn notification_bundle(
    subscription: &SubscriptionRecord,
    case: &Case,
    event_number: u64,
    timestamp: &str,
    base_url: &str,
) -> Value {
    let focus = format!("{base_url}/ClaimResponse/{}", case.case_id);
    let mut event = vec![
        json!({"name": "event-number", "valueString": event_number.to_string()}),
        json!({"name": "timestamp", "valueInstant": timestamp}),
    ];
    if subscription.payload != PayloadContent::Empty {
        event.push(json!({"name": "focus", "valueReference": {"reference": focus}}));
    }
    let status = json!({
        "resourceType": "Parameters",
        "id": format!("{}-{event_number}", subscription.id),
        "meta": {"profile": [urls::BACKPORT_STATUS]},
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": format!("{base_url}/Subscription/{}", subscription.id)}},
            {"name": "topic", "valueCanonical": urls::TOPIC},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": "event-notification"},
            {"name": "events-since-subscription-start", "valueString": event_number.to_string()},
            {"name": "notification-event", "part": event}
        ]
    });
    let mut entry = vec![json!({
        "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "resource": status,
        "request": {"method": "GET", "url": format!("{base_url}/Subscription/{}/$status", subscription.id)},
        "response": {"status": "200"}
    })];
    match subscription.payload {
        PayloadContent::Empty => {}
        PayloadContent::IdOnly => entry.push(json!({
            "fullUrl": focus,
            "request": {"method": "PUT", "url": format!("ClaimResponse/{}", case.case_id)},
            "response": {"status": "200"}
        })),
        PayloadContent::FullResource => {
            let bundle = crate::response::response_bundle(case, &[]);
            let claim_response = bundle
                .pointer("/entry/0/resource")
                .cloned()
                .unwrap_or(Value::Null);
            entry.push(json!({
                "fullUrl": focus,
                "resource": claim_response,
                "request": {"method": "PUT", "url": format!("ClaimResponse/{}", case.case_id)},
                "response": {"status": "200"}
            }));
        }
    }
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"profile": [urls::BACKPORT_NOTIFICATION]},
        "type": "history",
        "timestamp": timestamp,
        "entry": entry
    })
}

/// Sends notifications for decided cases.
#[derive(Debug)]
pub struct Notifier {
    http: reqwest::Client,
    store: std::sync::Arc<SubscriptionStore>,
    base_url: String,
}

impl Notifier {
    /// A notifier over `store`; `timeout_secs` bounds each POST.
    pub fn new(
        store: std::sync::Arc<SubscriptionStore>,
        base_url: String,
        timeout_secs: u64,
    ) -> Result<Self, GatewayError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(timeout_secs.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GatewayError::internal(false, format!("notification client: {e}")))?;
        Ok(Notifier {
            http,
            store,
            base_url,
        })
    }

    /// Notifies every subscription of the client that submitted `case`.
    /// Returns how many were notified; a failed POST is a retryable error
    /// (the write-back worker tries again later).
    pub async fn notify(&self, case: &Case) -> Result<usize, GatewayError> {
        let Some(client) = case.source.sender.as_deref() else {
            return Ok(0);
        };
        let subscriptions = self.store.of_client(client);
        let mut failures = Vec::new();
        for subscription in &subscriptions {
            let number = self
                .store
                .next_event(&subscription.id)
                .map_err(|e| GatewayError::internal(true, e.to_string()))?;
            let timestamp = jiff::Timestamp::now().to_string();
            let bundle =
                notification_bundle(subscription, case, number, &timestamp, &self.base_url);
            let mut request = self
                .http
                .post(&subscription.endpoint)
                .header("Content-Type", "application/fhir+json")
                .body(bundle.to_string());
            for header in &subscription.headers {
                if let Some((name, value)) = header.split_once(':') {
                    request = request.header(name.trim(), value.trim());
                }
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    tracing::info!(subscription = %subscription.id, case_id = %case.case_id, event = number, "PAS notification delivered");
                }
                Ok(response) => failures.push(format!(
                    "{} answered {}",
                    subscription.id,
                    response.status().as_u16()
                )),
                Err(e) => failures.push(format!("{}: {}", subscription.id, transport_kind(&e))),
            }
        }
        if failures.is_empty() {
            Ok(subscriptions.len())
        } else {
            Err(GatewayError::downstream(
                true,
                format!("PAS notification failed: {}", failures.join("; ")),
            ))
        }
    }
}

fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(payload: &str, endpoint: &str) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"resourceType": "Subscription", "status": "requested",
            "criteria": urls::TOPIC, "channel": {"type": "rest-hook", "endpoint": endpoint,
            "payload": "application/fhir+json", "header": ["Authorization: Bearer abc"],
            "_payload": {"extension": [{"url": urls::BACKPORT_PAYLOAD, "valueCode": payload}]}}}),
        )
        .expect("json")
    }

    #[test]
    fn registrations_are_validated_and_persisted() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("subs.json");
        let reg = parse_registration(
            &registration("full-resource", "https://ehr.example.test/hook"),
            false,
        )
        .expect("valid");
        assert_eq!(reg.payload, PayloadContent::FullResource);
        let http = parse_registration(&registration("id-only", "http://127.0.0.1:9/hook"), false)
            .expect_err("http");
        assert_eq!(
            http.diagnostics[0].location.as_deref(),
            Some("Subscription.channel.endpoint")
        );
        assert!(
            parse_registration(&registration("id-only", "http://127.0.0.1:9/hook"), true).is_ok()
        );
        assert!(parse_registration(&registration("everything", "https://x.test/"), false).is_err());

        let store = SubscriptionStore::open(&path).expect("open");
        let record = store.add("ehr-one", reg).expect("add");
        assert_eq!(store.next_event(&record.id).expect("n"), 1);
        let reopened = SubscriptionStore::open(&path).expect("reopen");
        assert_eq!(reopened.of_client("ehr-one")[0].events, 1);
        assert!(reopened.of_client("ehr-two").is_empty());
        assert_eq!(reopened.next_event(&record.id).expect("n"), 2);
    }
}
