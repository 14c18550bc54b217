//! The daemon's configuration: one TOML file plus `GATEWAY__SECTION__KEY`
//! environment overrides, deserialized into the typed [`Settings`].
//!
//! Why this module exists rather than a bare `try_deserialize`: operators need
//! *every* problem at once, each naming the file (or environment variable) and
//! the key, and the `config` crate stops at the first error and silently
//! ignores misspelt environment variables. So loading is done in three steps:
//!
//! 1. the `config` crate layers the file and the `GATEWAY__*` variables into one
//!    value tree (each leaf remembers where it came from);
//! 2. [`Settings`] is deserialized from that tree repeatedly: each failure is
//!    recorded with its key path (via `serde_path_to_error`) and the offending
//!    node is removed, so the next attempt finds the next problem;
//! 3. semantic checks (secrets readable, the chosen sink configured, …) run on
//!    the typed value.
//!
//! Every struct is `deny_unknown_fields`. **Adding an adapter section is one
//! field** on [`Settings`] (`pub hl7v2: Option<gateway_hl7v2::Section>`), with
//! the section type defined in the adapter's crate (its `gateway_seam::Adapter`
//! impl's `Section`).
//!
//! Secrets are never stored here: only the file or variable that holds them.
//! They are read by [`SecretSource::read`] into a [`Secret`] whose `Debug`
//! prints `[redacted]`.

pub mod admin_tokens;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Prefix of environment overrides: `GATEWAY__ADMIN__LISTEN=127.0.0.1:9000`.
pub const ENV_PREFIX: &str = "GATEWAY";
/// Separator between the prefix, sections and keys.
pub const ENV_SEPARATOR: &str = "__";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Who this gateway is: tenant, practice, site.
    pub gateway: GatewaySettings,
    /// The admin HTTP server (health, metrics, decision intake, admin API).
    #[serde(default)]
    pub admin: AdminSettings,
    /// The SQLite message store.
    #[serde(default)]
    pub store: StoreSettings,
    /// Where case events go.
    #[serde(default)]
    pub forward: ForwardSettings,
    /// Log format and level.
    #[serde(default)]
    pub logging: LoggingSettings,
    /// Shutdown behaviour.
    #[serde(default)]
    pub shutdown: ShutdownSettings,
    /// Alert rules, their debounce and the webhook (`[alerts]`); no rule = no alerts.
    #[serde(default)]
    pub alerts: crate::alerts::AlertSettings,
    /// Directory holding one folder per mapping profile (`mappings/epic/profile.toml`).
    #[serde(default = "default_mappings_dir")]
    pub mappings_dir: PathBuf,
    // Adapter sections: one field each, the type its crate's `Adapter::Section`.
    /// HL7 v2 over MLLP: listeners and decision write-back (`[hl7v2]`).
    #[serde(default)]
    pub hl7v2: Option<gateway_hl7v2::Section>,
    /// The desktop bridge for a legacy EHR (`[desktop]`).
    #[serde(default)]
    pub desktop: Option<gateway_desktop::bridge::DesktopConfig>,
    /// One cloud EHR over FHIR R4 (`[fhir]`).
    #[serde(default)]
    pub fhir: Option<gateway_fhir::FhirConfig>,
    /// The X12 278 adapter: file drop, CORE SOAP server, partners (`[x12]`).
    #[serde(default)]
    pub x12: Option<gateway_x12::config::X12Config>,
    /// The Da Vinci PAS server for the practice's EHR (`[davinci_pas]`).
    #[serde(default)]
    pub davinci_pas: Option<gateway_davinci_pas::Section>,
}

fn default_mappings_dir() -> PathBuf {
    PathBuf::from("mappings")
}

/// `[gateway]`: identity stamped on every case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// The MSO tenant, e.g. `mso-demo`. Part of every case id.
    pub tenant: String,
    /// The practice this daemon serves, e.g. `cardio-north`.
    #[serde(default)]
    pub practice: Option<String>,
    /// The site within the practice, e.g. `main`.
    #[serde(default)]
    pub site: Option<String>,
}

/// `[admin]`: the admin HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Listen address; keep it on loopback or a management network.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// File holding the bearer token for `/api/v1/*` (whitespace trimmed).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Name of an environment variable holding the bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// `[[admin.tokens]]`: named tokens, each with its roles (`viewer`,
    /// `operator`, `phi:read`). The single `token_file`/`token_env` above is
    /// the full-access token named `admin` (all three roles).
    #[serde(default)]
    pub tokens: Vec<AdminToken>,
    /// File holding an optional token for `/metrics` (open when unset).
    #[serde(default)]
    pub metrics_token_file: Option<PathBuf>,
    /// Environment variable holding the optional `/metrics` token.
    #[serde(default)]
    pub metrics_token_env: Option<String>,
    /// Lifetime of a browser session started at `/login`, in seconds.
    #[serde(default = "default_session_ttl_secs")]
    pub session_ttl_secs: u64,
    /// Failed logins allowed per client address per minute before `/login`
    /// answers 429.
    #[serde(default = "default_login_failures_per_minute")]
    pub login_failures_per_minute: u32,
    /// `[admin.tls]`: serve HTTPS with `cert` and `key` (PEM files); with
    /// `client_ca`, every client must present a certificate from that CA.
    #[serde(default)]
    pub tls: Option<gateway_http_listener::tls::TlsFiles>,
    /// Serve plain HTTP on a non-loopback `listen` address. Off by default:
    /// tokens, session cookies and PHI would cross the network in clear.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// `[admin.limits]`: connection cap and timeouts of the listener
    /// (`max_connections` 256, `tls_handshake_timeout_secs` 10,
    /// `header_read_timeout_secs` 10, `body_timeout_secs` 30,
    /// `idle_timeout_secs` 60).
    #[serde(default)]
    pub limits: gateway_http_listener::Limits,
}

/// One `[[admin.tokens]]` entry: a named bearer token and its roles. The
/// token itself lives in a file or an environment variable, never here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminToken {
    /// Who presents it (audit actor, e.g. `ops-desk`); `[A-Za-z0-9._-]`.
    pub name: String,
    /// File holding the token (whitespace trimmed).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Its roles: `viewer`, `operator` (replay, decisions; implies viewer),
    /// `phi:read` (raw messages and patient fields).
    pub roles: Vec<admin_tokens::Role>,
}

impl AdminToken {
    /// Where this token comes from.
    pub fn token_source(&self) -> SecretSource {
        SecretSource {
            file: self.token_file.clone(),
            env: self.token_env.clone(),
        }
    }
}

fn default_session_ttl_secs() -> u64 {
    8 * 3600
}
fn default_login_failures_per_minute() -> u32 {
    5
}

impl AdminSettings {
    /// Where the admin token comes from.
    pub fn token_source(&self) -> SecretSource {
        SecretSource {
            file: self.token_file.clone(),
            env: self.token_env.clone(),
        }
    }
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            listen: default_admin_listen(),
            token_file: None,
            token_env: None,
            tokens: Vec::new(),
            metrics_token_file: None,
            metrics_token_env: None,
            session_ttl_secs: default_session_ttl_secs(),
            login_failures_per_minute: default_login_failures_per_minute(),
            tls: None,
            allow_plaintext: false,
            limits: gateway_http_listener::Limits::default(),
        }
    }
}

/// Where a secret lives. At most one of `file` and `env` may be set.
#[derive(Debug, Clone, Default)]
pub struct SecretSource {
    /// A file whose content (trimmed) is the secret.
    pub file: Option<PathBuf>,
    /// The name of an environment variable holding the secret.
    pub env: Option<String>,
}

/// A secret value. `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; use only where it is sent or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl SecretSource {
    /// Reads the secret. `Ok(None)` when unset; the error names the file or
    /// variable, never the value.
    pub fn read(&self) -> Result<Option<Secret>, String> {
        match (&self.file, &self.env) {
            (Some(_), Some(_)) => Err("set either `file` or `env`, not both".to_owned()),
            (Some(path), None) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
                let value = text.trim();
                if value.is_empty() {
                    return Err(format!("secret file {} is empty", path.display()));
                }
                Ok(Some(Secret::new(value)))
            }
            (None, Some(var)) => match std::env::var(var) {
                Ok(value) if !value.trim().is_empty() => Ok(Some(Secret::new(value.trim()))),
                Ok(_) => Err(format!("environment variable {var} is empty")),
                Err(_) => Err(format!("environment variable {var} is not set")),
            },
            (None, None) => Ok(None),
        }
    }
}

/// `[store]`: the SQLite message store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Data directory holding the store file; `--data-dir` overrides it.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// Delivered messages older than this many days are pruned.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Size budget in MiB. Delivered data is pruned (oldest first) to keep
    /// the store below `warn_fraction` of it; undelivered data is never
    /// pruned, and when it alone reaches the budget intake is refused with a
    /// retryable answer until delivery frees space (the audit log does not
    /// count).
    #[serde(default = "default_max_size_mb")]
    pub max_size_mb: u64,
    /// The share of `max_size_mb` above which the store prunes delivered data
    /// and, when undelivered data alone stays above it, raises the
    /// `store_nearly_full` alert (default 0.8; between 0 and 1, exclusive).
    #[serde(default = "default_warn_fraction")]
    pub warn_fraction: f64,
    /// Audit entries older than this many days are pruned (default 2 190:
    /// six years); apart from `retention_days`, and never for size.
    #[serde(default = "default_audit_retention_days")]
    pub audit_retention_days: u32,
}

fn default_store_path() -> PathBuf {
    PathBuf::from("data")
}
fn default_retention_days() -> u32 {
    30
}
fn default_max_size_mb() -> u64 {
    1024
}
fn default_warn_fraction() -> f64 {
    0.8
}
fn default_audit_retention_days() -> u32 {
    2_190
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            path: default_store_path(),
            retention_days: default_retention_days(),
            max_size_mb: default_max_size_mb(),
            warn_fraction: default_warn_fraction(),
            audit_retention_days: default_audit_retention_days(),
        }
    }
}

/// Which sink the forwarder delivers case events to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// JSON lines in a directory (the demo and small sites).
    #[default]
    File,
    /// CloudEvents over HTTPS to the central platform.
    Http,
    /// CloudEvents to a NATS JetStream cluster (`[forward.nats]`).
    Nats,
}

impl SinkKind {
    /// The sink's name in config, metrics and the attempts table.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::File => "file",
            SinkKind::Http => "http",
            SinkKind::Nats => "nats",
        }
    }
}

/// `[forward]`: the forwarder and its sink. The sinks (crate `gateway-forward`)
/// take values; [`HttpSinkSettings::resolve`] reads the files and variables
/// named here into them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSettings {
    /// `file` or `http`.
    #[serde(default)]
    pub sink: SinkKind,
    /// `[forward.file]`: options of the file sink.
    #[serde(default)]
    pub file: FileSinkSettings,
    /// `[forward.http]`: the central platform endpoint (required when `sink = "http"`):
    /// `url`, `timeout_ms`, `client_cert`, `client_key`, `ca_cert`,
    /// `bearer_token_file` or `bearer_token_env`.
    #[serde(default)]
    pub http: Option<HttpSinkSettings>,
    /// `[forward.nats]`: the JetStream cluster (required when `sink = "nats"`);
    /// see `crate::nats::NatsSettings`.
    #[serde(default)]
    pub nats: Option<crate::nats::NatsSettings>,
    /// `[forward.delivery]`: `concurrency`, `poll_interval_ms`,
    /// `max_retry_after_secs` and `[forward.delivery.backoff]`
    /// (`initial_ms`, `max_ms`, `multiplier`).
    #[serde(default)]
    pub delivery: gateway_forward::ForwarderOptions,
    /// Allow an `http://` platform URL to a host other than loopback. Off by
    /// default: case events carry PHI and the bearer token would cross the
    /// network in clear.
    #[serde(default)]
    pub allow_plaintext: bool,
}

/// `[forward.file]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkSettings {
    /// Directory for the JSONL files; defaults to `<data dir>/outbox`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// `[forward.http]`: the central platform endpoint. Secrets are named by
/// file or variable here and read by [`HttpSinkSettings::resolve`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkSettings {
    /// Endpoint events are POSTed to (`https://platform.example/api/events`).
    pub url: String,
    /// Per-request timeout in milliseconds (default 10 000).
    #[serde(default = "default_sink_timeout_ms")]
    pub timeout_ms: u64,
    /// PEM client certificate (chain) for mutual TLS; needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Extra PEM CA certificate to trust (a private platform CA).
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// File holding the bearer token (whitespace trimmed).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Name of an environment variable holding the bearer token.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// POST several events at once as a CloudEvents JSON batch when the
    /// platform accepts that mode (default false).
    #[serde(default)]
    pub batch: bool,
}

fn default_sink_timeout_ms() -> u64 {
    gateway_forward::http::DEFAULT_TIMEOUT_MS
}

/// A sink's TLS files as bytes: the client identity (certificate and key go
/// together) and the CA to trust. Shared by the HTTP and JetStream sinks.
pub(crate) struct SinkTls {
    pub client_identity: Option<gateway_forward::ClientIdentity>,
    pub ca_cert_pem: Option<Vec<u8>>,
}

impl SinkTls {
    /// Reads the files named under `[forward.<section>]`; errors name the key
    /// and the file.
    pub(crate) fn read(
        section: &str,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
        ca_cert: Option<&Path>,
    ) -> Result<SinkTls, String> {
        let read = |key: &str, path: &Path| {
            std::fs::read(path).map_err(|e| {
                format!(
                    "forward.{section}.{key}: cannot read {}: {e}",
                    path.display()
                )
            })
        };
        let client_identity = match (client_cert, client_key) {
            (Some(cert), Some(key)) => Some(gateway_forward::ClientIdentity {
                cert_pem: read("client_cert", cert)?,
                key_pem: read("client_key", key)?,
            }),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "forward.{section}.client_cert: client_cert and client_key go together"
                ));
            }
        };
        let ca_cert_pem = ca_cert.map(|ca| read("ca_cert", ca)).transpose()?;
        Ok(SinkTls {
            client_identity,
            ca_cert_pem,
        })
    }
}

impl HttpSinkSettings {
    /// Reads the token, certificate, key and CA files (or the token's
    /// variable) into the sink's configuration. The error names the key and
    /// the file or variable, never a secret.
    pub fn resolve(&self) -> Result<gateway_forward::HttpSinkConfig, String> {
        let token = SecretSource {
            file: self.bearer_token_file.clone(),
            env: self.bearer_token_env.clone(),
        }
        .read()
        .map_err(|e| format!("forward.http.bearer_token_file: {e}"))?;
        let SinkTls {
            client_identity,
            ca_cert_pem,
        } = SinkTls::read(
            "http",
            self.client_cert.as_deref(),
            self.client_key.as_deref(),
            self.ca_cert.as_deref(),
        )?;
        Ok(gateway_forward::HttpSinkConfig {
            url: self.url.clone(),
            timeout_ms: self.timeout_ms,
            client_identity,
            ca_cert_pem,
            bearer_token: token.map(|t| t.expose().to_owned()),
            batch: self.batch,
        })
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines (a terminal).
    #[default]
    Pretty,
}

/// `[logging]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSettings {
    /// `json` or `pretty`.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `ehr_gateway=debug,info`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_log_level() -> String {
    "info".to_owned()
}

impl Default for LoggingSettings {
    fn default() -> Self {
        LoggingSettings {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

/// `[shutdown]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// On SIGTERM, how long in-flight work and the forwarder may take to drain.
    #[serde(default = "default_grace_period_ms")]
    pub grace_period_ms: u64,
}

fn default_grace_period_ms() -> u64 {
    10_000
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        ShutdownSettings {
            grace_period_ms: default_grace_period_ms(),
        }
    }
}

impl ShutdownSettings {
    /// The grace period as a duration.
    pub fn grace_period(&self) -> Duration {
        Duration::from_millis(self.grace_period_ms)
    }
}

/// One configuration problem: where it came from, which key, what is wrong
/// (the seam's type: adapters report their sections' problems with it).
pub use gateway_registry::seam::Problem;

/// The configuration could not be used; carries every problem found.
#[derive(Debug)]
pub struct ConfigError {
    /// All problems, in the order found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// What loading produced: the settings (if usable), problems and warnings.
#[derive(Debug)]
pub struct Loaded {
    /// The settings, when there was no problem at all.
    pub settings: Option<Settings>,
    /// Every problem found.
    pub problems: Vec<Problem>,
    /// Things that are not errors but probably mistakes (e.g. `GATEWAY_X` with
    /// one underscore, which is not an override).
    pub warnings: Vec<String>,
}

impl Loaded {
    /// The settings, or a [`ConfigError`] with every problem.
    pub fn into_result(self) -> Result<Settings, ConfigError> {
        match self.settings {
            Some(settings) if self.problems.is_empty() => Ok(settings),
            _ => Err(ConfigError {
                problems: self.problems,
            }),
        }
    }
}

/// Loads `path` with overrides from the process environment.
pub fn load(path: &Path) -> Loaded {
    load_with_env(path, std::env::vars())
}

/// Loads `path` with overrides from `env` (all variables; non-`GATEWAY` ones
/// are ignored). Separate from [`load`] so tests need not touch the process
/// environment.
pub fn load_with_env(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> Loaded {
    let file_origin = path.display().to_string();
    let mut warnings = Vec::new();
    let mut overrides = BTreeMap::new();
    // dotted key → variable name, to name the variable in problems.
    let mut env_names = BTreeMap::new();
    let full_prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    for (name, value) in env {
        if let Some(rest) = name.strip_prefix(&full_prefix) {
            if rest.is_empty() || rest.split(ENV_SEPARATOR).any(str::is_empty) {
                warnings.push(format!(
                    "environment variable {name} is ignored: expected GATEWAY__SECTION__KEY"
                ));
                continue;
            }
            let key = rest.to_lowercase().replace(ENV_SEPARATOR, ".");
            env_names.insert(key, name.clone());
            overrides.insert(name, value);
        } else if name.starts_with("GATEWAY_") {
            warnings.push(format!(
                "environment variable {name} is ignored: overrides are spelt GATEWAY__SECTION__KEY (two underscores)"
            ));
        }
    }

    let not_found = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => None,
        Ok(_) => Some("is not a file".to_owned()),
        Err(e) => Some(format!("cannot read config file: {e}")),
    };
    if let Some(message) = not_found {
        return Loaded {
            settings: None,
            problems: vec![Problem {
                origin: file_origin,
                key: None,
                message,
            }],
            warnings,
        };
    }

    let built = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .source(Some(overrides.into_iter().collect())),
        )
        .build();
    let tree = match built {
        Ok(config) => config.cache,
        Err(error) => {
            return Loaded {
                settings: None,
                problems: vec![Problem {
                    origin: file_origin,
                    key: None,
                    message: file_error_message(&error),
                }],
                warnings,
            };
        }
    };

    let origin_of = |key: &str, value_origin: Option<&str>| -> String {
        if let Some(name) = env_names.get(key) {
            return format!("environment variable {name}");
        }
        match value_origin {
            Some("the environment") => "the environment".to_owned(),
            _ => file_origin.clone(),
        }
    };

    let (settings, mut problems) = deserialize_collecting(tree, &origin_of);
    if let Some(settings) = &settings {
        check(settings, &file_origin, &mut problems);
    }
    Loaded {
        settings,
        problems,
        warnings,
    }
}

/// The message of a file-level failure (unreadable, TOML syntax), without the
/// path (the caller adds it).
fn file_error_message(error: &config::ConfigError) -> String {
    match error {
        config::ConfigError::FileParse { cause, .. } => format!("not valid TOML: {cause}"),
        other => other.to_string(),
    }
}

/// Deserializes [`Settings`] from `tree`, collecting one problem per failing
/// node: after each failure the node is removed and deserialization retried.
fn deserialize_collecting(
    mut tree: config::Value,
    origin_of: &dyn Fn(&str, Option<&str>) -> String,
) -> (Option<Settings>, Vec<Problem>) {
    let mut problems: Vec<Problem> = Vec::new();
    // Missing keys get a stand-in (first an empty table, then an empty
    // string) so that the next round can look further; problems with a
    // stand-in itself are not reported.
    let mut stand_ins: BTreeMap<String, u8> = BTreeMap::new();
    // Each round removes or fills one node, so the tree's size bounds the
    // rounds; the cap guards against a node that cannot be fixed up.
    for _ in 0..128 {
        match serde_path_to_error::deserialize::<_, Settings>(tree.clone()) {
            Ok(settings) => {
                return (problems.is_empty().then_some(settings), problems);
            }
            Err(error) => {
                let mut segments = path_segments(error.path());
                if let config::ConfigError::NotFound(missing) = innermost(error.inner()) {
                    // The path points at the parent; the message names the field.
                    let field = missing.rsplit('.').next().unwrap_or(missing).to_owned();
                    segments.push(Segment::Key(field));
                }
                let key = segments_to_key(&segments);
                if let Some(tries) = stand_ins.get_mut(&key) {
                    // A stand-in of the wrong shape: try the next one, or stop.
                    *tries += 1;
                    let next = match *tries {
                        2 => config::ValueKind::String(String::new()),
                        _ => break,
                    };
                    if !insert(&mut tree, &segments, next) {
                        break;
                    }
                    continue;
                }
                let missing = matches!(innermost(error.inner()), config::ConfigError::NotFound(_));
                let message = if missing {
                    "missing: this key is required".to_owned()
                } else {
                    describe(error.inner())
                };
                let value_origin = find(&tree, &segments).and_then(config::Value::origin);
                let problem = Problem {
                    origin: origin_of(&key, value_origin),
                    key: (!key.is_empty()).then(|| key.clone()),
                    message,
                };
                let repeated = problems.contains(&problem);
                if !repeated {
                    problems.push(problem);
                }
                if repeated {
                    break;
                }
                let fixed = if missing {
                    stand_ins.insert(key, 1);
                    insert(
                        &mut tree,
                        &segments,
                        config::ValueKind::Table(Default::default()),
                    )
                } else {
                    remove(&mut tree, &segments)
                };
                if !fixed {
                    break;
                }
            }
        }
    }
    (None, problems)
}

/// The innermost error of `config`'s `At` wrappers.
fn innermost(error: &config::ConfigError) -> &config::ConfigError {
    match error {
        config::ConfigError::At { error, .. } => innermost(error),
        other => other,
    }
}

/// Sets the node at `segments` (creating parent tables); false when a parent
/// is not a table.
fn insert(tree: &mut config::Value, segments: &[Segment], kind: config::ValueKind) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = tree;
    for segment in parents {
        node = match (&mut node.kind, segment) {
            (config::ValueKind::Table(map), Segment::Key(k)) => {
                map.entry(k.clone()).or_insert_with(|| {
                    config::Value::new(None, config::ValueKind::Table(Default::default()))
                })
            }
            (config::ValueKind::Array(items), Segment::Index(i)) => match items.get_mut(*i) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match (&mut node.kind, last) {
        (config::ValueKind::Table(map), Segment::Key(k)) => {
            map.insert(k.clone(), config::Value::new(None, kind));
            true
        }
        _ => false,
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn path_segments(path: &serde_path_to_error::Path) -> Vec<Segment> {
    use serde_path_to_error::Segment as S;
    path.iter()
        .filter_map(|segment| match segment {
            S::Map { key } => Some(Segment::Key(key.clone())),
            S::Seq { index } => Some(Segment::Index(*index)),
            S::Enum { variant } => Some(Segment::Key(variant.clone())),
            S::Unknown => None,
        })
        .collect()
}

fn segments_to_key(segments: &[Segment]) -> String {
    let mut key = String::new();
    for segment in segments {
        match segment {
            Segment::Key(name) => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            Segment::Index(i) => key.push_str(&format!("[{i}]")),
        }
    }
    key
}

/// The error text without the `config` crate's own " for key … in …" suffix
/// (we name key and origin ourselves, from the full path).
fn describe(error: &config::ConfigError) -> String {
    match error {
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        config::ConfigError::At { error, .. } => describe(error),
        config::ConfigError::NotFound(_) => "missing: this key is required".to_owned(),
        other => {
            let text = other.to_string();
            // config's wording for an unknown enum value.
            match text.split_once("does not have variant constructor ") {
                Some((_, value)) => format!("unknown value `{value}`"),
                None => text,
            }
        }
    }
}

fn find<'t>(tree: &'t config::Value, segments: &[Segment]) -> Option<&'t config::Value> {
    let mut node = tree;
    for segment in segments {
        node = match (&node.kind, segment) {
            (config::ValueKind::Table(map), Segment::Key(k)) => map.get(k)?,
            (config::ValueKind::Array(items), Segment::Index(i)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Removes the node at `segments`; false when there is nothing to remove.
fn remove(tree: &mut config::Value, segments: &[Segment]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = tree;
    for segment in parents {
        node = match (&mut node.kind, segment) {
            (config::ValueKind::Table(map), Segment::Key(k)) => match map.get_mut(k) {
                Some(child) => child,
                None => return false,
            },
            (config::ValueKind::Array(items), Segment::Index(i)) => match items.get_mut(*i) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match (&mut node.kind, last) {
        (config::ValueKind::Table(map), Segment::Key(k)) => map.remove(k).is_some(),
        (config::ValueKind::Array(items), Segment::Index(i)) if *i < items.len() => {
            // Keep indices of later items stable for their own messages.
            items[*i] = config::Value::new(None, config::ValueKind::Table(Default::default()));
            true
        }
        _ => false,
    }
}

/// Whether `url` points at this machine (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The admin listener: TLS material that loads, limits that work, and no
/// plain HTTP beyond loopback unless `allow_plaintext` says so.
fn check_admin_listener(admin: &AdminSettings, problem: &mut impl FnMut(&str, String)) {
    if let Some(tls) = &admin.tls
        && let Err(e) = gateway_http_listener::tls::server_config(tls)
    {
        problem("admin.tls", e.to_string());
    }
    if admin.tls.is_none()
        && !admin.allow_plaintext
        && !gateway_http_listener::is_loopback(&admin.listen)
    {
        problem(
            "admin.listen",
            format!(
                "{} is not a loopback address and [admin.tls] is not configured: \
                 bearer tokens, session cookies and PHI would cross the network in clear. \
                 Configure [admin.tls] (cert, key), or set admin.allow_plaintext = true \
                 when TLS is terminated in front of the gateway",
                admin.listen
            ),
        );
    }
    for (field, message) in admin.limits.problems() {
        problem(&format!("admin.limits.{field}"), message);
    }
}

/// Semantic checks on settings that deserialized.
fn check(settings: &Settings, origin: &str, problems: &mut Vec<Problem>) {
    let mut problem = |key: &str, message: String| {
        problems.push(Problem {
            origin: origin.to_owned(),
            key: Some(key.to_owned()),
            message,
        });
    };
    if settings.gateway.tenant.trim().is_empty() {
        problem("gateway.tenant", "must not be empty".to_owned());
    }
    if let Err(message) = settings.admin.token_source().read() {
        problem(
            &admin_tokens::source_key("admin.", &settings.admin.token_source()),
            message,
        );
    }
    check_admin_listener(&settings.admin, &mut problem);
    for (key, message) in admin_tokens::check_settings(&settings.admin) {
        problem(&key, message);
    }
    for (key, message) in crate::alerts::check_settings(&settings.alerts) {
        problem(&key, message);
    }
    if settings.store.max_size_mb == 0 {
        problem("store.max_size_mb", "must be at least 1".to_owned());
    }
    let warn = settings.store.warn_fraction;
    if !(warn > 0.0 && warn < 1.0) {
        problem(
            "store.warn_fraction",
            format!("must be between 0 and 1 (exclusive), e.g. 0.8; got {warn}"),
        );
    }
    let backoff = &settings.forward.delivery.backoff;
    if backoff.initial_ms == 0 {
        problem(
            "forward.delivery.backoff.initial_ms",
            "must be at least 1".to_owned(),
        );
    }
    if backoff.max_ms < backoff.initial_ms {
        problem(
            "forward.delivery.backoff.max_ms",
            "must not be below initial_ms".to_owned(),
        );
    }
    if settings.forward.delivery.concurrency == 0 {
        problem(
            "forward.delivery.concurrency",
            "must be at least 1".to_owned(),
        );
    }
    match (&settings.forward.sink, &settings.forward.http) {
        (SinkKind::Http, None) => problem(
            "forward.http",
            "sink = \"http\" needs a [forward.http] section with `url`".to_owned(),
        ),
        (_, Some(http)) => {
            if url::Url::parse(&http.url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .is_none()
            {
                problem(
                    "forward.http.url",
                    "must be an http:// or https:// URL with a host".to_owned(),
                );
            }
            if let Ok(url) = url::Url::parse(&http.url)
                && url.scheme() == "http"
                && !settings.forward.allow_plaintext
                && !is_loopback_host(&url)
            {
                problem(
                    "forward.http.url",
                    format!(
                        "http:// to {} sends case events (PHI) and the bearer token in clear: \
                         use https://, or set forward.allow_plaintext = true for a trusted network",
                        url.host_str().unwrap_or("?")
                    ),
                );
            }
            let token = SecretSource {
                file: http.bearer_token_file.clone(),
                env: http.bearer_token_env.clone(),
            };
            if let Err(message) = token.read() {
                problem("forward.http.bearer_token_file", message);
            }
            if http.client_cert.is_some() != http.client_key.is_some() {
                problem(
                    "forward.http.client_cert",
                    "client_cert and client_key go together".to_owned(),
                );
            }
            for (key, path) in [
                ("forward.http.client_cert", &http.client_cert),
                ("forward.http.client_key", &http.client_key),
                ("forward.http.ca_cert", &http.ca_cert),
            ] {
                if let Some(path) = path
                    && !path.is_file()
                {
                    problem(key, format!("file {} does not exist", path.display()));
                }
            }
        }
        (SinkKind::File | SinkKind::Nats, None) => {}
    }
    match (&settings.forward.sink, &settings.forward.nats) {
        (SinkKind::Nats, None) => problem(
            "forward.nats",
            "sink = \"nats\" needs a [forward.nats] section with `servers`".to_owned(),
        ),
        (_, Some(nats)) => {
            for (key, message) in crate::nats::check(settings, nats) {
                problem(&key, message);
            }
        }
        (_, None) => {}
    }
    if let Err(message) = settings
        .logging
        .level
        .parse::<tracing_subscriber::EnvFilter>()
    {
        problem(
            "logging.level",
            format!("not a valid log filter: {message}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str, env: &[(&str, &str)]) -> Loaded {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, toml).expect("write");
        load_with_env(
            &path,
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    fn keys(loaded: &Loaded) -> Vec<String> {
        loaded
            .problems
            .iter()
            .map(|p| p.key.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn http_sink_settings_resolve_files_and_variables_into_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = dir.path().join("token");
        std::fs::write(&token, "synthetic-token\n").expect("write");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "CA PEM").expect("write");
        let mut http: HttpSinkSettings =
            serde_json::from_str(r#"{"url": "https://platform.example.test/events"}"#)
                .expect("settings");
        assert_eq!(http.timeout_ms, gateway_forward::http::DEFAULT_TIMEOUT_MS);
        http.bearer_token_file = Some(token.clone());
        http.ca_cert = Some(ca);
        http.batch = true;
        let resolved = http.resolve().expect("resolved");
        assert_eq!(resolved.bearer_token.as_deref(), Some("synthetic-token"));
        assert_eq!(resolved.ca_cert_pem.as_deref(), Some(&b"CA PEM"[..]));
        assert!(resolved.batch && resolved.client_identity.is_none());
        assert!(
            !format!("{resolved:?}").contains("synthetic-token"),
            "Debug redacts the token"
        );

        let mut unset = http.clone();
        unset.bearer_token_file = None;
        unset.bearer_token_env = Some("GATEWAY_TEST_TOKEN_THAT_IS_NOT_SET".to_owned());
        let err = unset.resolve().expect_err("unset variable");
        assert!(err.contains("GATEWAY_TEST_TOKEN_THAT_IS_NOT_SET"), "{err}");
        let mut both = http.clone();
        both.bearer_token_env = Some("ANY".to_owned());
        assert!(both.resolve().is_err(), "file and variable");
        let mut half = http.clone();
        half.client_cert = Some(token);
        let err = half.resolve().expect_err("cert without key");
        assert!(err.contains("go together"), "{err}");
        let mut missing = http;
        missing.ca_cert = Some(dir.path().join("absent.pem"));
        let err = missing.resolve().expect_err("missing CA file");
        assert!(err.contains("forward.http.ca_cert"), "{err}");
    }

    #[test]
    fn plain_http_to_the_platform_only_to_loopback_unless_allowed() {
        let config = |url: &str, allow: bool| {
            format!(
                "[gateway]\ntenant = \"t\"\n[forward]\nsink = \"http\"\nallow_plaintext = {allow}\n\
                 [forward.http]\nurl = \"{url}\"\n"
            )
        };
        for url in [
            "https://platform.example.test/events",
            "http://127.0.0.1:9000/events",
            "http://localhost:9000/events",
            "http://[::1]:9000/events",
        ] {
            let loaded = load_str(&config(url, false), &[]);
            assert!(loaded.problems.is_empty(), "{url}: {:?}", loaded.problems);
        }
        let refused = load_str(&config("http://platform.example.test/events", false), &[]);
        assert_eq!(keys(&refused), ["forward.http.url"]);
        assert!(
            refused.problems[0]
                .message
                .contains("forward.allow_plaintext")
        );
        let allowed = load_str(&config("http://platform.example.test/events", true), &[]);
        assert!(allowed.problems.is_empty(), "{:?}", allowed.problems);
    }

    #[test]
    fn a_non_loopback_admin_listener_needs_tls_or_an_explicit_opt_in() {
        let refused = load_str(
            "[gateway]\ntenant = \"t\"\n[admin]\nlisten = \"0.0.0.0:8080\"\n",
            &[],
        );
        assert_eq!(keys(&refused), ["admin.listen"]);
        assert!(
            refused.problems[0]
                .message
                .contains("admin.allow_plaintext")
        );
        let allowed = load_str(
            "[gateway]\ntenant = \"t\"\n[admin]\nlisten = \"0.0.0.0:8080\"\nallow_plaintext = true\n",
            &[],
        );
        assert!(allowed.problems.is_empty(), "{:?}", allowed.problems);
        let missing_cert = load_str(
            "[gateway]\ntenant = \"t\"\n[admin]\nlisten = \"0.0.0.0:8080\"\n\
             [admin.tls]\ncert = \"/nonexistent/admin.pem\"\nkey = \"/nonexistent/admin.key\"\n\
             [admin.limits]\nidle_timeout_secs = 0\n",
            &[],
        );
        assert_eq!(
            keys(&missing_cert),
            ["admin.tls", "admin.limits.idle_timeout_secs"]
        );
    }

    #[test]
    fn an_unset_token_variable_is_reported_under_its_own_key() {
        let loaded = load_str(
            "[gateway]\ntenant = \"t\"\n[admin]\ntoken_env = \"EHR_GATEWAY_TEST_UNSET_TOKEN_VAR\"\n",
            &[],
        );
        assert!(
            keys(&loaded).contains(&"admin.token_env".to_owned()),
            "{:?}",
            loaded.problems
        );
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let loaded = load_str("[gateway]\ntenant = \"mso-demo\"\n", &[]);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let settings = loaded.settings.expect("settings");
        assert_eq!(settings.admin.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.forward.sink, SinkKind::File);
        assert_eq!(settings.logging.format, LogFormat::Pretty);
    }

    #[test]
    fn the_store_warning_level_is_a_share_of_the_budget() {
        let loaded = load_str("[gateway]\ntenant = \"t\"\n", &[]);
        let settings = loaded.settings.expect("settings");
        assert_eq!(settings.store.warn_fraction, 0.8);
        for bad in ["0", "1", "1.5", "-0.2"] {
            let loaded = load_str(
                &format!("[gateway]\ntenant = \"t\"\n[store]\nwarn_fraction = {bad}\n"),
                &[],
            );
            let keys: Vec<_> = loaded
                .problems
                .iter()
                .map(|p| p.key.clone().unwrap_or_default())
                .collect();
            assert_eq!(keys, ["store.warn_fraction"], "{bad}");
        }
        let loaded = load_str(
            "[gateway]\ntenant = \"t\"\n[store]\nwarn_fraction = 0.6\nmax_size_mb = 0\n",
            &[],
        );
        let keys: Vec<_> = loaded
            .problems
            .iter()
            .map(|p| p.key.clone().unwrap_or_default())
            .collect();
        assert_eq!(keys, ["store.max_size_mb"]);
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let loaded = load_str(
            "[gateway]\ntenant = \"t\"\ncolour = \"red\"\n[admin]\nlisten = 12\n[store]\nretention_days = \"x\"\n",
            &[],
        );
        let keys: Vec<_> = loaded
            .problems
            .iter()
            .map(|p| p.key.clone().unwrap_or_default())
            .collect();
        assert!(keys.iter().any(|k| k == "gateway.colour"), "{keys:?}");
        assert!(keys.iter().any(|k| k == "admin.listen"), "{keys:?}");
        assert!(keys.iter().any(|k| k == "store.retention_days"), "{keys:?}");
        assert!(loaded.settings.is_none());
    }

    #[test]
    fn env_overrides_apply_and_bad_ones_name_the_variable() {
        let loaded = load_str(
            "[gateway]\ntenant = \"t\"\n",
            &[("GATEWAY__ADMIN__LISTEN", "127.0.0.1:9999")],
        );
        let settings = loaded.into_result().expect("valid");
        assert_eq!(settings.admin.listen.port(), 9999);

        let loaded = load_str(
            "[gateway]\ntenant = \"t\"\n",
            &[("GATEWAY__ADMIN__LISTN", "127.0.0.1:9999")],
        );
        let problem = &loaded.problems[0];
        assert_eq!(problem.origin, "environment variable GATEWAY__ADMIN__LISTN");
        assert_eq!(problem.key.as_deref(), Some("admin.listn"));

        let loaded = load_str("[gateway]\ntenant = \"t\"\n", &[("GATEWAY_ADMIN", "x")]);
        assert!(loaded.problems.is_empty());
        assert_eq!(loaded.warnings.len(), 1);
    }

    #[test]
    fn missing_keys_are_named_and_do_not_hide_later_problems() {
        let loaded = load_str(
            "[gateway]\npractice = \"p\"\n[forward]\nsink = \"ftp\"\n",
            &[],
        );
        let rendered: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
        assert_eq!(loaded.problems.len(), 2, "{rendered:?}");
        assert!(
            rendered
                .iter()
                .any(|p| p.ends_with("key `gateway.tenant`: missing: this key is required")),
            "{rendered:?}"
        );
        assert!(
            rendered
                .iter()
                .any(|p| p.ends_with("key `forward.sink`: unknown value `ftp`")),
            "{rendered:?}"
        );

        let loaded = load_str(
            "mappings_dir = \"m\"\n[store]\npath = 3\n[logging]\nformat = \"xml\"\n",
            &[],
        );
        let keys: Vec<_> = loaded
            .problems
            .iter()
            .filter_map(|p| p.key.clone())
            .collect();
        assert!(keys.contains(&"gateway".to_owned()), "{keys:?}");
        assert!(keys.contains(&"logging.format".to_owned()), "{keys:?}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        assert_eq!(format!("{:?}", Secret::new("s3cret")), "[redacted]");
    }
}
