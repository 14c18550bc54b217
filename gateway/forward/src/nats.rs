//! NATS JetStream: the `nats` sink, the decisions consumer's plumbing and the
//! stream and consumer definitions (issue #20).
//!
//! *Why JetStream*: an MSO runs one gateway per practice; practices rarely
//! allow inbound connections and one HTTP endpoint is a single point every
//! gateway retries against. A JetStream cluster takes events from every
//! gateway (acknowledged only once stored, replicated) and carries decisions
//! back over the same outbound connection.
//!
//! **Subjects** (every token is checked: no `.`, `*`, `>` or whitespace):
//! * events: `<prefix>.<tenant>.<practice>.events.<type>` where `<type>` is
//!   `created`, `updated`, `decided` (case events) or `decision_refused`
//!   (a decision message the gateway terminated);
//! * decisions: `<prefix>.<tenant>.<practice>.decisions`.
//!
//! **CloudEvents binding**: the NATS protocol binding's *structured* mode —
//! the payload is the stored CloudEvent JSON, byte for byte what the HTTP sink
//! POSTs, with the header `content-type: application/cloudevents+json`. The
//! header `Nats-Msg-Id` is the CloudEvents `id`, so a re-publish after a
//! crash (the forwarder is at-least-once) falls into the stream's duplicate
//! window and is dropped by the server. `Ehr-Case-Id` and `Ehr-Sequence`
//! headers repeat the case id and position for consumers that route without
//! parsing the body.
//!
//! **Answers**: an event counts as delivered only after the stream's publish
//! acknowledgement (a duplicate acknowledgement too). Following the
//! forwarder's rules, only an answer that says *the event itself* is bad is
//! a permanent refusal (dead letter): the message exceeds the server's
//! `max_payload` or the stream's `max_msg_size` (JetStream error 10054).
//! Everything else — no stream for the subject (no responders), a timeout,
//! a lost connection, a full stream, a permissions error after a credentials
//! rotation — is retried with the forwarder's backoff: the outbox holds.
//!
//! Settings come as values (credentials, certificate and key bytes): the
//! daemon reads the files and variables; nothing here logs them.
//!
//! Metrics: `ehr_gateway_nats_publish_seconds` (histogram, publish to
//! acknowledgement), `ehr_gateway_nats_connected` (gauge, 1 when the client is
//! connected).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use async_nats;
use async_nats::HeaderMap;
use async_nats::jetstream;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use bytes::Bytes;
use gateway_core::adapter::BoxFuture;
use gateway_store::OutboxEvent;

use crate::http::ClientIdentity;
use crate::sink::{Sink, SinkResult};
use crate::{ForwardError, Result};

/// Default time to wait for a publish acknowledgement, in milliseconds.
pub const DEFAULT_ACK_TIMEOUT_MS: u64 = 10_000;
/// Default subject prefix.
pub const DEFAULT_PREFIX: &str = "ehr";
/// Default name of the events stream.
pub const DEFAULT_EVENTS_STREAM: &str = "EHR_EVENTS";
/// Default name of the decisions stream.
pub const DEFAULT_DECISIONS_STREAM: &str = "EHR_DECISIONS";

/// How the gateway proves who it is to the NATS servers.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum NatsAuth {
    /// No credentials (a loopback test server).
    #[default]
    None,
    /// The text of a `.creds` file (user JWT + NKey seed).
    Credentials(String),
    /// An NKey user seed (`SU…`).
    NkeySeed(String),
    /// A user name and password.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NatsAuth::None => "None",
            NatsAuth::Credentials(_) => "Credentials([redacted])",
            NatsAuth::NkeySeed(_) => "NkeySeed([redacted])",
            NatsAuth::UserPassword { .. } => "UserPassword([redacted])",
        })
    }
}

/// Connection settings, as values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConnectConfig {
    /// Server URLs (`nats://`, `tls://`); the client learns the rest of the
    /// cluster from them.
    pub servers: Vec<String>,
    /// Credentials.
    pub auth: NatsAuth,
    /// Extra PEM CA certificate to trust; setting it requires TLS.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Client certificate and key (mutual TLS; needs `ca_cert_pem`).
    pub client_identity: Option<ClientIdentity>,
    /// Require TLS even without a CA or client certificate (`tls://` URLs).
    pub require_tls: bool,
    /// The client's name as the servers show it (`ehr-gateway <tenant>/<practice>`).
    pub name: String,
    /// The inbox prefix for replies (acknowledgements, fetches); a per-practice
    /// prefix lets the server's permissions keep practices apart.
    pub inbox_prefix: Option<String>,
    /// Time to wait for an acknowledgement or API answer, in milliseconds.
    pub ack_timeout_ms: u64,
}

impl NatsConnectConfig {
    /// A plain configuration for `servers` with defaults elsewhere.
    pub fn new(servers: Vec<String>) -> Self {
        NatsConnectConfig {
            servers,
            auth: NatsAuth::None,
            ca_cert_pem: None,
            client_identity: None,
            require_tls: false,
            name: "ehr-gateway".to_owned(),
            inbox_prefix: None,
            ack_timeout_ms: DEFAULT_ACK_TIMEOUT_MS,
        }
    }
}

/// Where this gateway's subjects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    /// The prefix (`ehr`).
    pub prefix: String,
    /// The tenant (MSO) id.
    pub tenant: String,
    /// The practice id.
    pub practice: String,
}

impl Subjects {
    /// Checks that every part is one subject token.
    pub fn new(prefix: &str, tenant: &str, practice: &str) -> Result<Subjects> {
        for (what, token) in [
            ("subject prefix", prefix),
            ("tenant", tenant),
            ("practice", practice),
        ] {
            if let Err(message) = check_token(token) {
                return Err(ForwardError::Config(format!("{what} {token:?}: {message}")));
            }
        }
        Ok(Subjects {
            prefix: prefix.to_owned(),
            tenant: tenant.to_owned(),
            practice: practice.to_owned(),
        })
    }

    /// `<prefix>.<tenant>.<practice>.events.<kind>`.
    pub fn event(&self, kind: &str) -> String {
        format!(
            "{}.{}.{}.events.{kind}",
            self.prefix, self.tenant, self.practice
        )
    }

    /// `<prefix>.<tenant>.<practice>.decisions`.
    pub fn decisions(&self) -> String {
        format!(
            "{}.{}.{}.decisions",
            self.prefix, self.tenant, self.practice
        )
    }

    /// The durable decisions consumer of this practice: `gw_<tenant>_<practice>`
    /// (dots are not allowed in consumer names; tokens are checked).
    pub fn consumer_name(&self) -> String {
        format!("gw_{}_{}", self.tenant, self.practice)
    }

    /// The per-practice inbox prefix `_INBOX_<tenant>_<practice>`.
    pub fn inbox_prefix(&self) -> String {
        format!("_INBOX_{}_{}", self.tenant, self.practice)
    }
}

/// Whether `token` can stand as one NATS subject token (and in a consumer
/// name): ASCII letters, digits, `-` and `_`, at most 64 characters.
pub fn check_token(token: &str) -> std::result::Result<(), String> {
    if token.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if token.len() > 64 {
        return Err("must be at most 64 characters".to_owned());
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(
            "may hold only ASCII letters, digits, '-' and '_' (it is a NATS subject token)"
                .to_owned(),
        );
    }
    Ok(())
}

/// Whether every server URL is loopback (plaintext to loopback is always allowed).
pub fn all_loopback(servers: &[String]) -> bool {
    servers.iter().all(|s| {
        let with_scheme = if s.contains("://") {
            s.clone()
        } else {
            format!("nats://{s}")
        };
        // `nats://` is not a special scheme to `url`: its host is opaque text.
        match url::Url::parse(&with_scheme) {
            Ok(u) => match u.host_str() {
                Some(host) => {
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    host.eq_ignore_ascii_case("localhost")
                        || host
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback())
                }
                None => false,
            },
            Err(_) => false,
        }
    })
}

/// Checks one server URL: `nats://`, `tls://` (or no scheme) with a host and port.
pub fn check_server_url(server: &str) -> std::result::Result<(), String> {
    let with_scheme = if server.contains("://") {
        server.to_owned()
    } else {
        format!("nats://{server}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "nats" | "tls") {
        return Err(format!("scheme {:?}: use nats:// or tls://", url.scheme()));
    }
    if url.host().is_none() {
        return Err("needs a host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "put no user or password in the URL: use password_file / password_env".to_owned(),
        );
    }
    Ok(())
}

fn tls_config(config: &NatsConnectConfig) -> Result<Option<rustls::ClientConfig>> {
    let Some(ca) = &config.ca_cert_pem else {
        if config.client_identity.is_some() {
            return Err(ForwardError::Config(
                "a NATS client certificate needs ca_cert (the cluster's CA)".to_owned(),
            ));
        }
        return Ok(None);
    };
    let mut roots = rustls::RootCertStore::empty();
    let mut found = 0;
    for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
        let cert = cert.map_err(|e| ForwardError::Config(format!("ca_cert is not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ForwardError::Config(format!("ca_cert: {e}")))?;
        found += 1;
    }
    if found == 0 {
        return Err(ForwardError::Config(
            "ca_cert holds no PEM certificate".to_owned(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ForwardError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let tls = match &config.client_identity {
        Some(identity) => {
            let certs: std::result::Result<Vec<_>, _> =
                rustls_pemfile::certs(&mut identity.cert_pem.as_slice()).collect();
            let certs =
                certs.map_err(|e| ForwardError::Config(format!("client_cert is not PEM: {e}")))?;
            let key = rustls_pemfile::private_key(&mut identity.key_pem.as_slice())
                .map_err(|e| ForwardError::Config(format!("client_key is not PEM: {e}")))?
                .ok_or_else(|| ForwardError::Config("client_key holds no key".to_owned()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| ForwardError::Config(format!("client_cert/client_key: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Some(tls))
}

/// Backoff between reconnect attempts: 100 ms doubling to 5 s.
fn reconnect_delay(attempts: usize) -> Duration {
    let exp = attempts.min(6) as u32;
    Duration::from_millis(100u64.saturating_mul(1 << exp)).min(Duration::from_secs(5))
}

/// Connects (or keeps trying in the background: the first connection is
/// retried like every later one, so a cluster that is down at start does not
/// stop the gateway — the outbox holds). Keeps the connection gauge.
pub async fn connect(config: &NatsConnectConfig) -> Result<async_nats::Client> {
    let mut options = match &config.auth {
        NatsAuth::None => async_nats::ConnectOptions::new(),
        NatsAuth::Credentials(text) => async_nats::ConnectOptions::with_credentials(text)
            .map_err(|e| ForwardError::Config(format!("credentials file: {e}")))?,
        NatsAuth::NkeySeed(seed) => {
            nkeys_check(seed)?;
            async_nats::ConnectOptions::with_nkey(seed.clone())
        }
        NatsAuth::UserPassword { user, password } => {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
    };
    if let Some(tls) = tls_config(config)? {
        options = options.tls_client_config(tls).require_tls(true);
    } else if config.require_tls {
        options = options.require_tls(true);
    }
    if let Some(prefix) = &config.inbox_prefix {
        options = options.custom_inbox_prefix(prefix);
    }
    let servers: Vec<async_nats::ServerAddr> = config
        .servers
        .iter()
        .map(|s| {
            s.parse::<async_nats::ServerAddr>()
                .map_err(|e| ForwardError::Config(format!("server {s:?}: {e}")))
        })
        .collect::<Result<_>>()?;
    if servers.is_empty() {
        return Err(ForwardError::Config("no NATS server given".to_owned()));
    }
    metrics::gauge!(gateway_core::metrics::NATS_CONNECTED).set(0.0);
    options = options
        .name(&config.name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_millis(config.ack_timeout_ms.max(1))))
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => {
                    metrics::gauge!(gateway_core::metrics::NATS_CONNECTED).set(1.0);
                    tracing::info!("NATS connected");
                }
                async_nats::Event::Disconnected => {
                    metrics::gauge!(gateway_core::metrics::NATS_CONNECTED).set(0.0);
                    tracing::warn!(
                        "NATS disconnected; reconnecting with backoff, events wait in the outbox"
                    );
                }
                async_nats::Event::Closed => {
                    metrics::gauge!(gateway_core::metrics::NATS_CONNECTED).set(0.0);
                }
                other => tracing::warn!(event = %other, "NATS client event"),
            }
        });
    options
        .connect(servers)
        .await
        .map_err(|e| ForwardError::Config(format!("NATS connect: {e}")))
}

fn nkeys_check(seed: &str) -> Result<()> {
    if !seed.starts_with("SU") {
        return Err(ForwardError::Config(
            "the NKey seed is not a user seed (it must start with SU)".to_owned(),
        ));
    }
    Ok(())
}

/// A JetStream context with the configured acknowledgement timeout.
pub fn jetstream_context(client: async_nats::Client, ack_timeout_ms: u64) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_millis(ack_timeout_ms.max(1)));
    js
}

/// Publishes case events to JetStream.
#[derive(Debug, Clone)]
pub struct NatsSink {
    client: async_nats::Client,
    js: jetstream::Context,
    subjects: Subjects,
}

impl NatsSink {
    /// A sink publishing through `client` under `subjects`.
    pub fn new(client: async_nats::Client, subjects: Subjects, ack_timeout_ms: u64) -> NatsSink {
        let js = jetstream_context(client.clone(), ack_timeout_ms);
        NatsSink {
            client,
            js,
            subjects,
        }
    }

    /// The client (for `/readyz`: its connection state).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The subjects this sink publishes under.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    fn message(&self, event: &OutboxEvent) -> (String, HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.as_str());
        headers.insert(
            "content-type",
            "application/cloudevents+json; charset=utf-8",
        );
        headers.insert("Ehr-Case-Id", event.case_id.as_str());
        headers.insert("Ehr-Sequence", event.sequence.to_string().as_str());
        (
            self.subjects.event(event.event_type.as_str()),
            headers,
            Bytes::from(event.body.clone()),
        )
    }

    async fn start(
        &self,
        event: &OutboxEvent,
    ) -> std::result::Result<jetstream::context::PublishAckFuture, PublishError> {
        let (subject, headers, payload) = self.message(event);
        self.js
            .publish_with_headers(subject, headers, payload)
            .await
    }
}

/// Classifies a failed publish: the event itself is bad only when it is too
/// large for the server or the stream.
pub fn classify(error: &PublishError) -> SinkResult {
    let message = format!("JetStream publish: {error}");
    let too_large = match error.kind() {
        PublishErrorKind::MaxPayloadExceeded => true,
        PublishErrorKind::Other => std::error::Error::source(error)
            .and_then(|s| s.downcast_ref::<jetstream::Error>())
            .is_some_and(|e| {
                e.error_code() == jetstream::ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM
            }),
        _ => false,
    };
    if too_large {
        SinkResult::Reject {
            error: message,
            http_status: None,
        }
    } else {
        SinkResult::Retry {
            error: message,
            http_status: None,
            retry_after: None,
        }
    }
}

fn observe(started: Instant) {
    metrics::histogram!(gateway_core::metrics::NATS_PUBLISH_SECONDS)
        .record(started.elapsed().as_secs_f64());
}

impl Sink for NatsSink {
    fn name(&self) -> &str {
        "nats"
    }

    fn deliver<'a>(&'a self, event: &'a OutboxEvent) -> BoxFuture<'a, SinkResult> {
        Box::pin(async move {
            let started = Instant::now();
            let pending = match self.start(event).await {
                Ok(pending) => pending,
                Err(e) => return classify(&e),
            };
            match pending.await {
                Ok(_ack) => {
                    observe(started);
                    SinkResult::Delivered { http_status: None }
                }
                Err(e) => classify(&e),
            }
        })
    }

    /// Several events (of different cases) are published back to back and
    /// their acknowledgements awaited together: one round trip per batch
    /// instead of one per event, each event still marked delivered only on
    /// its own acknowledgement.
    fn takes_batches(&self) -> bool {
        true
    }

    fn deliver_batch<'a>(&'a self, events: &'a [OutboxEvent]) -> BoxFuture<'a, Vec<SinkResult>> {
        Box::pin(async move {
            let started = Instant::now();
            let mut pending = Vec::with_capacity(events.len());
            for event in events {
                pending.push(self.start(event).await);
            }
            let mut results = Vec::with_capacity(events.len());
            for attempt in pending {
                results.push(match attempt {
                    Ok(ack) => match ack.await {
                        Ok(_) => {
                            observe(started);
                            SinkResult::Delivered { http_status: None }
                        }
                        Err(e) => classify(&e),
                    },
                    Err(e) => classify(&e),
                });
            }
            results
        })
    }
}

/// The stream and consumer definitions (`ehr-gateway nats provision` creates
/// or checks them; `docs/fleet.md` documents them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    /// Subject prefix (`ehr`).
    pub prefix: String,
    /// Events stream name (`EHR_EVENTS`).
    pub events_stream: String,
    /// Decisions stream name (`EHR_DECISIONS`).
    pub decisions_stream: String,
    /// Replicas of both streams (1, 3 or 5).
    pub replicas: usize,
    /// The duplicate window: a re-publish of the same `Nats-Msg-Id` within it
    /// is dropped. Must cover a gateway restart (default 2 minutes).
    pub duplicate_window: Duration,
    /// How long events stay in the stream for platform consumers (default 7 days).
    pub events_max_age: Duration,
    /// How long decisions wait for their gateway (default 7 days).
    pub decisions_max_age: Duration,
    /// Largest message accepted (default 1 MiB); a larger event is dead-lettered.
    pub max_msg_size: i32,
}

impl StreamPlan {
    /// The defaults with `prefix` and `replicas`.
    pub fn new(prefix: &str, replicas: usize) -> StreamPlan {
        StreamPlan {
            prefix: prefix.to_owned(),
            events_stream: DEFAULT_EVENTS_STREAM.to_owned(),
            decisions_stream: DEFAULT_DECISIONS_STREAM.to_owned(),
            replicas,
            duplicate_window: Duration::from_secs(120),
            events_max_age: Duration::from_secs(7 * 86_400),
            decisions_max_age: Duration::from_secs(7 * 86_400),
            max_msg_size: 1 << 20,
        }
    }

    /// The events stream: every tenant's and practice's events.
    pub fn events_config(&self) -> jetstream::stream::Config {
        jetstream::stream::Config {
            name: self.events_stream.clone(),
            description: Some("ehr-gateway case events (CloudEvents, structured mode)".to_owned()),
            subjects: vec![format!("{}.*.*.events.>", self.prefix)],
            retention: jetstream::stream::RetentionPolicy::Limits,
            storage: jetstream::stream::StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            max_age: self.events_max_age,
            max_message_size: self.max_msg_size,
            discard: jetstream::stream::DiscardPolicy::Old,
            ..Default::default()
        }
    }

    /// The decisions stream: decisions for every practice.
    pub fn decisions_config(&self) -> jetstream::stream::Config {
        jetstream::stream::Config {
            name: self.decisions_stream.clone(),
            description: Some("decisions for ehr-gateway practices".to_owned()),
            subjects: vec![format!("{}.*.*.decisions", self.prefix)],
            retention: jetstream::stream::RetentionPolicy::Limits,
            storage: jetstream::stream::StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            max_age: self.decisions_max_age,
            max_message_size: self.max_msg_size,
            discard: jetstream::stream::DiscardPolicy::Old,
            ..Default::default()
        }
    }
}

/// The durable pull consumer of one practice's decisions.
pub fn decisions_consumer_config(subjects: &Subjects) -> jetstream::consumer::pull::Config {
    jetstream::consumer::pull::Config {
        durable_name: Some(subjects.consumer_name()),
        name: Some(subjects.consumer_name()),
        description: Some(format!(
            "ehr-gateway decisions for {}/{}",
            subjects.tenant, subjects.practice
        )),
        filter_subject: subjects.decisions(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 256,
        ..Default::default()
    }
}

/// What `provision` found or did for one definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionLine {
    /// `stream EHR_EVENTS`, `consumer EHR_DECISIONS/gw_t_p`.
    pub what: String,
    /// `created`, `ok`, `updated`, or what differs (check mode).
    pub outcome: String,
    /// Whether it matches the plan now.
    pub ok: bool,
}

fn differences(want: &jetstream::stream::Config, have: &jetstream::stream::Config) -> Vec<String> {
    let mut out = Vec::new();
    if want.subjects != have.subjects {
        out.push(format!(
            "subjects {:?} (want {:?})",
            have.subjects, want.subjects
        ));
    }
    if want.num_replicas != have.num_replicas {
        out.push(format!(
            "replicas {} (want {})",
            have.num_replicas, want.num_replicas
        ));
    }
    if want.duplicate_window != have.duplicate_window {
        out.push(format!(
            "duplicate_window {:?} (want {:?})",
            have.duplicate_window, want.duplicate_window
        ));
    }
    if want.max_age != have.max_age {
        out.push(format!(
            "max_age {:?} (want {:?})",
            have.max_age, want.max_age
        ));
    }
    if want.retention != have.retention {
        out.push(format!(
            "retention {:?} (want {:?})",
            have.retention, want.retention
        ));
    }
    if want.storage != have.storage {
        out.push(format!(
            "storage {:?} (want {:?})",
            have.storage, want.storage
        ));
    }
    if want.max_message_size != have.max_message_size {
        out.push(format!(
            "max_msg_size {} (want {})",
            have.max_message_size, want.max_message_size
        ));
    }
    out
}

/// Creates (or, with `check_only`, only checks) both streams and — when
/// `practice` is given — that practice's decisions consumer. An existing
/// stream that differs is updated (replicas and subjects included), or
/// reported in check mode.
pub async fn provision(
    js: &jetstream::Context,
    plan: &StreamPlan,
    practice: Option<&Subjects>,
    check_only: bool,
) -> Result<Vec<ProvisionLine>> {
    let api = |context: &str, e: &dyn fmt::Display| ForwardError::Config(format!("{context}: {e}"));
    let mut lines = Vec::new();
    for want in [plan.events_config(), plan.decisions_config()] {
        let what = format!("stream {}", want.name);
        match js.get_stream(&want.name).await {
            Ok(mut stream) => {
                let info = stream.info().await.map_err(|e| api(&what, &e))?;
                let diff = differences(&want, &info.config);
                if diff.is_empty() {
                    lines.push(ProvisionLine {
                        what,
                        outcome: "ok".to_owned(),
                        ok: true,
                    });
                } else if check_only {
                    lines.push(ProvisionLine {
                        what,
                        outcome: diff.join("; "),
                        ok: false,
                    });
                } else {
                    js.update_stream(&want).await.map_err(|e| api(&what, &e))?;
                    lines.push(ProvisionLine {
                        what,
                        outcome: format!("updated ({})", diff.join("; ")),
                        ok: true,
                    });
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(inner)
                        if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                ) =>
            {
                if check_only {
                    lines.push(ProvisionLine {
                        what,
                        outcome: "missing".to_owned(),
                        ok: false,
                    });
                } else {
                    js.create_stream(want.clone())
                        .await
                        .map_err(|e| api(&what, &e))?;
                    lines.push(ProvisionLine {
                        what,
                        outcome: "created".to_owned(),
                        ok: true,
                    });
                }
            }
            Err(e) => return Err(api(&what, &e)),
        }
    }
    if let Some(subjects) = practice {
        let want = decisions_consumer_config(subjects);
        let what = format!(
            "consumer {}/{}",
            plan.decisions_stream,
            subjects.consumer_name()
        );
        let existing = js
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
                subjects.consumer_name(),
                &plan.decisions_stream,
            )
            .await;
        match existing {
            Ok(mut consumer) => {
                let info = consumer.info().await.map_err(|e| api(&what, &e))?;
                if info.config.filter_subject == want.filter_subject
                    && info.config.ack_policy == want.ack_policy
                {
                    lines.push(ProvisionLine {
                        what,
                        outcome: "ok".to_owned(),
                        ok: true,
                    });
                } else {
                    lines.push(ProvisionLine {
                        what,
                        outcome: format!(
                            "filter {:?} ack {:?} (want {:?}, {:?}); delete it and provision again",
                            info.config.filter_subject,
                            info.config.ack_policy,
                            want.filter_subject,
                            want.ack_policy
                        ),
                        ok: false,
                    });
                }
            }
            Err(_) if check_only => {
                lines.push(ProvisionLine {
                    what,
                    outcome: "missing".to_owned(),
                    ok: false,
                });
            }
            Err(_) => {
                js.create_consumer_on_stream(want, &plan.decisions_stream)
                    .await
                    .map_err(|e| api(&what, &e))?;
                lines.push(ProvisionLine {
                    what,
                    outcome: "created".to_owned(),
                    ok: true,
                });
            }
        }
    }
    Ok(lines)
}

/// The header naming the case a decision message is for.
pub const CASE_ID_HEADER: &str = "Ehr-Case-Id";
/// The header carrying the decision API's idempotency key (#12).
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// What the daemon's decision intake made of one decision message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionOutcome {
    /// Committed (or already committed under the same key: `replayed`).
    Committed {
        /// A repeat answered with the first receipt.
        replayed: bool,
    },
    /// Refused for good (malformed, unknown case, invalid, key reused): the
    /// message is terminated and a `decision_refused` event published.
    Refused {
        /// Why (no PHI: a status slug and the member's pointer).
        reason: String,
    },
    /// Not recorded for a transient reason (the store is busy): redelivered.
    Retry {
        /// Why.
        reason: String,
    },
}

/// The daemon's side of the decisions consumer: the same intake the admin API uses.
pub trait DecisionHandler: Send + Sync + 'static {
    /// Records the decision `body` (a Case v1 `decision` object) for `case_id`
    /// under the idempotency key `key`, committed before it returns.
    fn handle<'a>(
        &'a self,
        case_id: &'a str,
        key: &'a str,
        body: &'a [u8],
    ) -> BoxFuture<'a, DecisionOutcome>;
}

/// Counts of what the consumer did (for tests and `/readyz`).
#[derive(Debug, Default)]
pub struct DecisionCounters {
    /// Decisions committed for the first time.
    pub committed: std::sync::atomic::AtomicU64,
    /// Redeliveries answered by the idempotency key.
    pub replayed: std::sync::atomic::AtomicU64,
    /// Messages terminated.
    pub refused: std::sync::atomic::AtomicU64,
}

/// A running decisions consumer.
#[derive(Debug)]
pub struct DecisionConsumer {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// What it did so far.
    pub counters: Arc<DecisionCounters>,
}

impl DecisionConsumer {
    /// Starts consuming this practice's decisions from `stream` with the
    /// durable consumer `gw_<tenant>_<practice>` (created when missing).
    /// Survives a cluster that is down: it keeps trying with backoff.
    pub fn spawn(
        client: async_nats::Client,
        subjects: Subjects,
        stream: String,
        ack_timeout_ms: u64,
        handler: Arc<dyn DecisionHandler>,
    ) -> DecisionConsumer {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let counters = Arc::new(DecisionCounters::default());
        let task = tokio::spawn(consume(
            jetstream_context(client, ack_timeout_ms),
            subjects,
            stream,
            handler,
            counters.clone(),
            stop_rx,
        ));
        DecisionConsumer {
            stop,
            task,
            counters,
        }
    }

    /// Stops after the message in hand (an unacknowledged one is redelivered).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn consume(
    js: jetstream::Context,
    subjects: Subjects,
    stream: String,
    handler: Arc<dyn DecisionHandler>,
    counters: Arc<DecisionCounters>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use futures_util::StreamExt;
    let mut failures = 0usize;
    loop {
        if *stop.borrow() {
            return;
        }
        let existing = js
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
                subjects.consumer_name(),
                &stream,
            )
            .await;
        let consumer = match existing {
            Ok(consumer) => Ok(consumer),
            Err(_) => {
                js.create_consumer_on_stream(decisions_consumer_config(&subjects), &stream)
                    .await
            }
        };
        let consumer = match consumer {
            Ok(consumer) => consumer,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, consumer = %subjects.consumer_name(), "decisions consumer not ready; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(reconnect_delay(failures)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "decisions pull failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(reconnect_delay(failures)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        failures = 0;
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = stop.changed() => return,
            };
            match next {
                Some(Ok(message)) => {
                    one_decision(&js, &subjects, handler.as_ref(), &counters, message).await;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "decisions pull interrupted; resuming");
                    break;
                }
                None => break,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(reconnect_delay(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn one_decision(
    js: &jetstream::Context,
    subjects: &Subjects,
    handler: &dyn DecisionHandler,
    counters: &DecisionCounters,
    message: jetstream::Message,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let stream_sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
    let case_id = header(CASE_ID_HEADER);
    let key = header(IDEMPOTENCY_KEY_HEADER);
    let outcome = match (&case_id, &key) {
        (None, _) => DecisionOutcome::Refused {
            reason: format!("no {CASE_ID_HEADER} header"),
        },
        (_, None) => DecisionOutcome::Refused {
            reason: format!("no {IDEMPOTENCY_KEY_HEADER} header"),
        },
        (Some(case_id), Some(key)) => handler.handle(case_id, key, &message.payload).await,
    };
    match outcome {
        DecisionOutcome::Committed { replayed } => {
            if replayed {
                counters.replayed.fetch_add(1, Relaxed);
            } else {
                counters.committed.fetch_add(1, Relaxed);
            }
            // Committed first, acknowledged after: a lost acknowledgement
            // means a redelivery, which the idempotency key answers.
            if let Err(e) = message.double_ack().await {
                tracing::warn!(error = %e, stream_sequence, "decision committed but its acknowledgement was lost; the redelivery is answered by its key");
            }
        }
        DecisionOutcome::Refused { reason } => {
            let refusal = refusal_event(
                subjects,
                stream_sequence,
                case_id.as_deref(),
                key.as_deref(),
                &reason,
            );
            let mut headers = HeaderMap::new();
            let id = format!(
                "decision-refused-{}-{stream_sequence}",
                subjects.consumer_name()
            );
            headers.insert("Nats-Msg-Id", id.as_str());
            headers.insert(
                "content-type",
                "application/cloudevents+json; charset=utf-8",
            );
            let published = match js
                .publish_with_headers(subjects.event("decision_refused"), headers, refusal.into())
                .await
            {
                Ok(ack) => ack.await.map(|_| ()),
                Err(e) => Err(e),
            };
            match published {
                Ok(()) => {
                    counters.refused.fetch_add(1, Relaxed);
                    tracing::warn!(stream_sequence, reason = %reason, "decision message refused and terminated");
                    if let Err(e) = message.ack_with(jetstream::AckKind::Term).await {
                        tracing::warn!(error = %e, stream_sequence, "terminating a refused decision failed; it comes again and is refused again");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, stream_sequence, "the refusal event could not be published; the decision comes again");
                    let _ = message
                        .ack_with(jetstream::AckKind::Nak(Some(Duration::from_secs(5))))
                        .await;
                }
            }
        }
        DecisionOutcome::Retry { reason } => {
            tracing::warn!(stream_sequence, reason = %reason, "decision not recorded; redelivered later");
            let _ = message
                .ack_with(jetstream::AckKind::Nak(Some(Duration::from_secs(5))))
                .await;
        }
    }
}

/// The `org.ehr-gateway.decision.refused` CloudEvent (structured JSON): the
/// platform sees which decision message was terminated and why.
fn refusal_event(
    subjects: &Subjects,
    stream_sequence: u64,
    case_id: Option<&str>,
    key: Option<&str>,
    reason: &str,
) -> Vec<u8> {
    let event = serde_json::json!({
        "specversion": "1.0",
        "id": format!("decision-refused-{}-{stream_sequence}", subjects.consumer_name()),
        "source": format!("urn:ehr-gateway:{}:{}", subjects.tenant, subjects.practice),
        "type": "org.ehr-gateway.decision.refused",
        "subject": case_id,
        "time": jiff::Timestamp::now().to_string(),
        "datacontenttype": "application/json",
        "data": {
            "case_id": case_id,
            "idempotency_key": key,
            "decisions_stream_sequence": stream_sequence,
            "reason": reason,
        }
    });
    serde_json::to_vec(&event).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_are_recognised() {
        assert!(all_loopback(&["nats://127.0.0.1:4222".to_owned()]));
        assert!(all_loopback(&[
            "localhost:4222".to_owned(),
            "nats://[::1]:4222".to_owned()
        ]));
        assert!(!all_loopback(&["nats://10.1.2.3:4222".to_owned()]));
        assert!(!all_loopback(&["nats://nats.mso.example:4222".to_owned()]));
    }

    #[test]
    fn subject_tokens_are_checked() {
        assert!(Subjects::new("ehr", "mso-demo", "cardio_north").is_ok());
        for bad in ["a.b", "*", ">", "with space", ""] {
            assert!(Subjects::new("ehr", "mso", bad).is_err(), "{bad:?}");
        }
        let s = Subjects::new("ehr", "t", "p").expect("subjects");
        assert_eq!(s.event("created"), "ehr.t.p.events.created");
        assert_eq!(s.decisions(), "ehr.t.p.decisions");
        assert_eq!(s.consumer_name(), "gw_t_p");
    }

    #[test]
    fn credentials_never_print() {
        let auth = NatsAuth::UserPassword {
            user: "u".to_owned(),
            password: "hunter2-synthetic".to_owned(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        let mut config = NatsConnectConfig::new(vec!["nats://127.0.0.1:1".to_owned()]);
        config.auth = NatsAuth::NkeySeed("SUSECRETSEEDSYNTHETIC".to_owned());
        assert!(!format!("{config:?}").contains("SECRETSEED"));
    }
}
