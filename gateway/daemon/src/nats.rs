//! `[forward.nats]`: the daemon's side of NATS JetStream (issue #20) — the
//! settings and their checks, reading the credentials and certificates named
//! there, and the decision handler that feeds decisions arriving over
//! JetStream into the same intake the admin API uses.
//!
//! *Why here*: the sink, the consumer loop and the stream definitions live in
//! `gateway-forward` and take values; the daemon owns files, variables and
//! the decision intake (with its `decision_keys` idempotency table and audit).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::adapter::BoxFuture;
use gateway_core::case::Decision;
use gateway_forward::nats::{
    self, DecisionHandler, DecisionOutcome, NatsAuth, NatsConnectConfig, StreamPlan, Subjects,
};
use gateway_pipeline::{DecisionError, DecisionIntake};
use gateway_store::{AuditEntry, DecisionKey};
use serde::Deserialize;

use crate::settings::{SecretSource, Settings};

/// The channel decision keys from JetStream are stored under (apart from the
/// admin API's, so one key space cannot answer for the other).
pub const DECISION_CHANNEL: &str = "nats";

/// `[forward.nats]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// Server URLs: `tls://host:4222` (or `nats://` to loopback, or with
    /// `forward.allow_plaintext = true`).
    pub servers: Vec<String>,
    /// First subject token (default `ehr`).
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// The events stream (default `EHR_EVENTS`).
    #[serde(default = "default_events_stream")]
    pub events_stream: String,
    /// The decisions stream (default `EHR_DECISIONS`).
    #[serde(default = "default_decisions_stream")]
    pub decisions_stream: String,
    /// Consume this practice's decisions (default true).
    #[serde(default = "default_true")]
    pub decisions: bool,
    /// Time to wait for a publish acknowledgement, in ms (default 10 000).
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    /// A `.creds` file (user JWT + NKey seed).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// A file holding an NKey user seed.
    #[serde(default)]
    pub nkey_seed_file: Option<PathBuf>,
    /// An environment variable holding an NKey user seed.
    #[serde(default)]
    pub nkey_seed_env: Option<String>,
    /// User name (with `password_file` or `password_env`).
    #[serde(default)]
    pub user: Option<String>,
    /// A file holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// PEM CA of the cluster (turns TLS on).
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate (mutual TLS; with `client_key` and `ca_cert`).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// `nats provision`: replicas of both streams (default 3).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// `nats provision`: duplicate window in seconds (default 120).
    #[serde(default = "default_duplicate_window_secs")]
    pub duplicate_window_secs: u64,
    /// `nats provision`: how long events stay, in days (default 7).
    #[serde(default = "default_max_age_days")]
    pub max_age_days: u64,
}

fn default_prefix() -> String {
    nats::DEFAULT_PREFIX.to_owned()
}
fn default_events_stream() -> String {
    nats::DEFAULT_EVENTS_STREAM.to_owned()
}
fn default_decisions_stream() -> String {
    nats::DEFAULT_DECISIONS_STREAM.to_owned()
}
fn default_true() -> bool {
    true
}
fn default_ack_timeout_ms() -> u64 {
    nats::DEFAULT_ACK_TIMEOUT_MS
}
fn default_replicas() -> usize {
    3
}
fn default_duplicate_window_secs() -> u64 {
    120
}
fn default_max_age_days() -> u64 {
    7
}

impl NatsSettings {
    fn nkey(&self) -> SecretSource {
        SecretSource {
            file: self.nkey_seed_file.clone(),
            env: self.nkey_seed_env.clone(),
        }
    }

    fn password(&self) -> SecretSource {
        SecretSource {
            file: self.password_file.clone(),
            env: self.password_env.clone(),
        }
    }

    /// This gateway's subjects.
    pub fn subjects(&self, settings: &Settings) -> Result<Subjects, String> {
        let practice = settings
            .gateway
            .practice
            .as_deref()
            .ok_or("gateway.practice: the nats sink needs a practice id")?;
        Subjects::new(&self.subject_prefix, &settings.gateway.tenant, practice)
            .map_err(|e| e.to_string())
    }

    /// The stream definitions `nats provision` creates or checks.
    pub fn plan(&self) -> StreamPlan {
        let mut plan = StreamPlan::new(&self.subject_prefix, self.replicas);
        plan.events_stream = self.events_stream.clone();
        plan.decisions_stream = self.decisions_stream.clone();
        plan.duplicate_window = Duration::from_secs(self.duplicate_window_secs);
        plan.events_max_age = Duration::from_secs(self.max_age_days.saturating_mul(86_400));
        plan.decisions_max_age = plan.events_max_age;
        plan
    }

    /// Reads the credentials and certificates into the connection settings.
    /// Errors name the key and the file or variable, never a secret.
    pub fn resolve(&self, settings: &Settings) -> Result<NatsConnectConfig, String> {
        let read = |key: &str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| format!("forward.nats.{key}: cannot read {}: {e}", path.display()))
        };
        let subjects = self.subjects(settings)?;
        let mut auth = NatsAuth::None;
        if let Some(path) = &self.credentials_file {
            let bytes = read("credentials_file", path)?;
            auth = NatsAuth::Credentials(String::from_utf8(bytes).map_err(|_| {
                format!(
                    "forward.nats.credentials_file: {} is not text",
                    path.display()
                )
            })?);
        }
        if let Some(seed) = self
            .nkey()
            .read()
            .map_err(|e| format!("forward.nats.nkey_seed_file: {e}"))?
        {
            auth = NatsAuth::NkeySeed(seed.expose().to_owned());
        }
        if let Some(user) = &self.user {
            let password = self
                .password()
                .read()
                .map_err(|e| format!("forward.nats.password_file: {e}"))?
                .ok_or("forward.nats.password_file: `user` needs password_file or password_env")?;
            auth = NatsAuth::UserPassword {
                user: user.clone(),
                password: password.expose().to_owned(),
            };
        }
        let crate::settings::SinkTls {
            client_identity,
            ca_cert_pem,
        } = crate::settings::SinkTls::read(
            "nats",
            self.client_cert.as_deref(),
            self.client_key.as_deref(),
            self.ca_cert.as_deref(),
        )?;
        Ok(NatsConnectConfig {
            servers: self.servers.clone(),
            auth,
            ca_cert_pem,
            client_identity,
            require_tls: self.servers.iter().any(|s| s.starts_with("tls://")),
            name: format!("ehr-gateway {}/{}", subjects.tenant, subjects.practice),
            inbox_prefix: Some(subjects.inbox_prefix()),
            ack_timeout_ms: self.ack_timeout_ms,
        })
    }
}

/// `check-config` for `[forward.nats]`: every problem as (key, message).
pub fn check(settings: &Settings, nats: &NatsSettings) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut problem =
        |key: &str, message: String| out.push((format!("forward.nats.{key}"), message));
    if nats.servers.is_empty() {
        problem("servers", "give at least one server URL".to_owned());
    }
    for (i, server) in nats.servers.iter().enumerate() {
        if let Err(message) = nats::check_server_url(server) {
            problem(&format!("servers[{i}]"), message);
        }
    }
    let tls = nats.ca_cert.is_some() || nats.servers.iter().any(|s| s.starts_with("tls://"));
    if !tls
        && !settings.forward.allow_plaintext
        && !nats.servers.is_empty()
        && !nats::all_loopback(&nats.servers)
    {
        problem(
            "servers",
            "nats:// without TLS to a host other than loopback sends case events (PHI) and \
             credentials in clear: use tls:// or ca_cert, or set forward.allow_plaintext = true"
                .to_owned(),
        );
    }
    if let Err(message) = nats::check_token(&nats.subject_prefix) {
        problem("subject_prefix", message);
    }
    match settings.gateway.practice.as_deref() {
        None => out.push((
            "gateway.practice".to_owned(),
            "the nats sink needs a practice id (a subject token)".to_owned(),
        )),
        Some(practice) => {
            if let Err(message) = nats::check_token(practice) {
                out.push(("gateway.practice".to_owned(), message));
            }
        }
    }
    let mut problem =
        |key: &str, message: String| out.push((format!("forward.nats.{key}"), message));
    if let Err(message) = nats::check_token(&settings.gateway.tenant) {
        problem(
            "servers",
            format!("gateway.tenant is not a subject token: {message}"),
        );
    }
    let methods = [
        nats.credentials_file.is_some(),
        nats.nkey_seed_file.is_some() || nats.nkey_seed_env.is_some(),
        nats.user.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if methods > 1 {
        problem(
            "credentials_file",
            "give one of credentials_file, nkey_seed_file/nkey_seed_env, user".to_owned(),
        );
    }
    if let Err(message) = nats.nkey().read() {
        problem("nkey_seed_file", message);
    }
    if nats.user.is_some() {
        match nats.password().read() {
            Ok(Some(_)) => {}
            Ok(None) => problem(
                "password_file",
                "`user` needs password_file or password_env".to_owned(),
            ),
            Err(message) => problem("password_file", message),
        }
    } else if nats.password_file.is_some() || nats.password_env.is_some() {
        problem("user", "a password needs `user`".to_owned());
    }
    if nats.client_cert.is_some() != nats.client_key.is_some() {
        problem(
            "client_cert",
            "client_cert and client_key go together".to_owned(),
        );
    }
    if nats.client_cert.is_some() && nats.ca_cert.is_none() {
        problem(
            "ca_cert",
            "a client certificate needs ca_cert (the cluster's CA)".to_owned(),
        );
    }
    for (key, path) in [
        ("credentials_file", &nats.credentials_file),
        ("client_cert", &nats.client_cert),
        ("client_key", &nats.client_key),
        ("ca_cert", &nats.ca_cert),
    ] {
        if let Some(path) = path
            && !path.is_file()
        {
            problem(key, format!("file {} does not exist", path.display()));
        }
    }
    if nats.ack_timeout_ms == 0 {
        problem("ack_timeout_ms", "must be at least 1".to_owned());
    }
    if !matches!(nats.replicas, 1 | 3 | 5) {
        problem("replicas", "must be 1, 3 or 5".to_owned());
    }
    if nats.duplicate_window_secs == 0 {
        problem("duplicate_window_secs", "must be at least 1".to_owned());
    }
    for (key, name) in [
        ("events_stream", &nats.events_stream),
        ("decisions_stream", &nats.decisions_stream),
    ] {
        if let Err(message) = nats::check_token(name) {
            problem(key, message);
        }
    }
    out
}

/// Decisions from JetStream into the decision intake: the same validation,
/// idempotency table and audit as `POST /api/v1/cases/{id}/decision`, with
/// the consumer's identity as the audit actor.
pub struct IntakeHandler {
    /// The intake the admin API uses.
    pub decisions: DecisionIntake,
    /// `nats:<consumer name>`.
    pub actor: String,
}

impl IntakeHandler {
    /// A handler for `subjects`' consumer.
    pub fn new(decisions: DecisionIntake, subjects: &Subjects) -> Arc<IntakeHandler> {
        Arc::new(IntakeHandler {
            decisions,
            actor: format!("nats:{}", subjects.consumer_name()),
        })
    }
}

fn refused(slug: &str, detail: impl std::fmt::Display) -> DecisionOutcome {
    DecisionOutcome::Refused {
        reason: format!("{slug}: {detail}"),
    }
}

impl DecisionHandler for IntakeHandler {
    fn handle<'a>(
        &'a self,
        case_id: &'a str,
        key: &'a str,
        body: &'a [u8],
    ) -> BoxFuture<'a, DecisionOutcome> {
        Box::pin(async move {
            if key.len() > 255 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                return refused("bad-idempotency-key", "1 to 255 visible ASCII characters");
            }
            let decision: Decision = match serde_json::from_slice(body) {
                Ok(decision) => decision,
                Err(e) if e.is_syntax() || e.is_eof() => {
                    return refused(
                        "malformed-json",
                        format!("line {} column {}", e.line(), e.column()),
                    );
                }
                Err(e) => {
                    return refused(
                        "invalid-decision",
                        format!("not a Case v1 decision object ({:?})", e.classify()),
                    );
                }
            };
            let entry = AuditEntry {
                actor: self.actor.clone(),
                action: "decision.record".to_owned(),
                target: None,
                detail: Some(format!(
                    "{} over NATS with an idempotency key",
                    decision.status.case_status().as_str()
                )),
                case_id: Some(case_id.to_owned()),
            };
            let key = DecisionKey {
                channel: DECISION_CHANNEL.to_owned(),
                key: key.to_owned(),
            };
            match self
                .decisions
                .submit_once(case_id, decision, Some(key), Some(entry))
                .await
            {
                Ok(recorded) => DecisionOutcome::Committed {
                    replayed: recorded.replayed(),
                },
                Err(DecisionError::UnknownCase(_)) => refused("unknown-case", case_id),
                Err(DecisionError::Invalid { pointer, .. }) => {
                    refused("invalid-decision", format!("at {pointer}"))
                }
                Err(DecisionError::KeyReused) => refused(
                    "idempotency-key-reused",
                    "the key was used for a different decision or case",
                ),
                Err(DecisionError::Store(e)) => DecisionOutcome::Retry {
                    reason: format!("store: {e}"),
                },
            }
        })
    }
}
