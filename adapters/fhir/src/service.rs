//! The adapter as the daemon runs it: config, poll loop, rest-hook, write-back.
//!
//! [`FhirAdapter::new`] loads the vendor file and the credentials (so a bad key
//! or profile fails at startup, not at the first poll); [`FhirAdapter::serve`]
//! polls on an interval, or sooner when a subscription notification arrives,
//! until `shutdown` resolves. A failed pass (EHR down, 5xx after retries) is
//! logged and retried at the next tick; the watermark only moves after commits.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gateway_core::adapter::IntakePipeline;
use serde::Deserialize;
use tokio::sync::Notify;
use url::Url;

use crate::auth::{AuthConfig, TokenProvider};
use crate::client::{ClientSettings, FhirClient, http_client};
use crate::error::FhirError;
use crate::poll::{PollReport, PollSettings, Poller, WatermarkStore};
use crate::profile::VendorProfile;
use crate::writeback::FhirWriteBack;

fn default_poll_interval() -> u64 {
    60
}

fn default_timeout() -> u64 {
    30
}
fn default_max_response_mb() -> u64 {
    32
}

fn default_hook_path() -> String {
    "/fhir/notify".to_owned()
}

/// The `[fhir]` section of the daemon config (one EHR).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirConfig {
    /// The mapping profile folder (`mappings/athenahealth`); its
    /// `adapter/fhir.toml` holds the vendor facts.
    pub profile: PathBuf,
    /// FHIR base URL of the practice's EHR.
    pub base_url: String,
    /// How to authenticate.
    pub auth: AuthConfig,
    /// Seconds between polls.
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: u64,
    /// Re-read window in seconds (see `poll` docs); default 0.
    #[serde(default)]
    pub overlap_secs: u64,
    /// Overrides the vendor's concurrency limit.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Overrides the vendor's page size.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Per-request timeout in seconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// Largest response body read, in MiB (default 32): a larger one fails
    /// the request with an error naming this key.
    #[serde(default = "default_max_response_mb")]
    pub max_response_mb: u64,
    /// Optional rest-hook listener.
    #[serde(default)]
    pub subscription: Option<SubscriptionConfig>,
}

/// The `[fhir.subscription]` section: the rest-hook listener.
///
/// A bearer token is required (`token_file`, or inline `token`), because
/// anyone who reaches the listener could otherwise trigger polls; it is
/// compared in constant time. `[fhir.subscription.tls]` serves HTTPS and
/// `[fhir.subscription.limits]` bounds connections and timeouts (see
/// `gateway_http_listener::Limits` for the defaults).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Address to listen on for notifications.
    pub listen: SocketAddr,
    /// Route path.
    #[serde(default = "default_hook_path")]
    pub path: String,
    /// Bearer token the EHR sends (set in `Subscription.channel.header`),
    /// written in the config itself; prefer `token_file`.
    #[serde(default)]
    pub token: Option<String>,
    /// File holding that bearer token (whitespace trimmed; mode 0600).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Serve HTTPS with these certificate and key files (optionally
    /// requiring client certificates from `client_ca`).
    #[serde(default)]
    pub tls: Option<gateway_http_listener::tls::TlsFiles>,
    /// Connection cap and timeouts of the listener.
    #[serde(default)]
    pub limits: gateway_http_listener::Limits,
}

/// Shortest rest-hook token accepted.
pub const MIN_HOOK_TOKEN_LEN: usize = 32;

impl SubscriptionConfig {
    /// The bearer token: exactly one of `token` and `token_file`, at least
    /// [`MIN_HOOK_TOKEN_LEN`] characters. Errors name the key, never the value.
    pub fn read_token(&self) -> Result<String, FhirError> {
        let token = match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => {
                return Err(FhirError::Config(
                    "subscription: set either token or token_file, not both".to_owned(),
                ));
            }
            (Some(token), None) => token.trim().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| {
                    FhirError::Config(format!(
                        "subscription.token_file: cannot read {}: {}",
                        path.display(),
                        e.kind()
                    ))
                })?
                .trim()
                .to_owned(),
            (None, None) => {
                return Err(FhirError::Config(
                    "subscription: the rest-hook needs a bearer token (token_file)".to_owned(),
                ));
            }
        };
        if token.chars().count() < MIN_HOOK_TOKEN_LEN {
            return Err(FhirError::Config(format!(
                "subscription: the bearer token must be at least {MIN_HOOK_TOKEN_LEN} characters"
            )));
        }
        Ok(token)
    }
}

/// The rest-hook's resolved secret and TLS.
#[derive(Clone)]
struct Hook {
    token: String,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// A configured FHIR adapter for one EHR.
pub struct FhirAdapter {
    config: FhirConfig,
    profile_name: String,
    vendor: Arc<VendorProfile>,
    client: Arc<FhirClient>,
    hook: Option<Hook>,
}

impl std::fmt::Debug for FhirAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirAdapter")
            .field("profile", &self.profile_name)
            .field("base_url", &self.config.base_url)
            .finish_non_exhaustive()
    }
}

/// The profile name of a profile folder (its last path component).
pub fn profile_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "fhir".to_owned())
}

impl FhirAdapter {
    /// Loads the vendor file and credentials and builds the client.
    pub fn new(config: FhirConfig) -> Result<Self, FhirError> {
        let vendor =
            VendorProfile::load(&config.profile).map_err(|e| FhirError::Config(e.to_string()))?;
        let base = Url::parse(&config.base_url)
            .map_err(|e| FhirError::Config(format!("base_url: {e}")))?;
        let timeout = Duration::from_secs(config.request_timeout_secs.max(1));
        let http = http_client(timeout)?;
        let auth = TokenProvider::new(&config.auth, &vendor.auth.scopes, http.clone())?;
        let mut settings = ClientSettings::new(base);
        settings.request_timeout = timeout;
        settings.max_response_bytes =
            usize::try_from(config.max_response_mb.max(1).saturating_mul(1024 * 1024))
                .unwrap_or(usize::MAX);
        settings.max_concurrency = config
            .max_concurrency
            .unwrap_or(vendor.limits.max_concurrency);
        let client = Arc::new(FhirClient::new(http, settings, Arc::new(auth)));
        if config.subscription.is_some() && !vendor.subscription.rest_hook {
            return Err(FhirError::Config(format!(
                "{} does not support rest-hook subscriptions (profile [subscription])",
                vendor.vendor
            )));
        }
        let hook = match &config.subscription {
            Some(sub) => {
                let token = sub.read_token()?;
                let tls = match &sub.tls {
                    Some(files) => Some(
                        gateway_http_listener::tls::server_config(files)
                            .map_err(|e| FhirError::Config(format!("subscription.tls: {e}")))?,
                    ),
                    None => None,
                };
                if let Some((field, message)) = sub.limits.problems().into_iter().next() {
                    return Err(FhirError::Config(format!(
                        "subscription.limits.{field}: {message}"
                    )));
                }
                Some(Hook { token, tls })
            }
            None => None,
        };
        Ok(FhirAdapter {
            profile_name: profile_name(&config.profile),
            config,
            vendor: Arc::new(vendor),
            client,
            hook,
        })
    }

    /// The mapping profile name.
    pub fn profile_name(&self) -> &str {
        &self.profile_name
    }

    /// The vendor facts.
    pub fn vendor(&self) -> &Arc<VendorProfile> {
        &self.vendor
    }

    /// The FHIR client (shared by polling and write-back).
    pub fn client(&self) -> &Arc<FhirClient> {
        &self.client
    }

    /// The write-back for this EHR.
    pub fn write_back(&self) -> FhirWriteBack {
        FhirWriteBack::new(self.client.clone(), self.vendor.clone())
    }

    /// A poller feeding `pipeline`, with its watermark in `store`.
    pub fn poller(
        &self,
        pipeline: Arc<dyn IntakePipeline>,
        store: Arc<dyn WatermarkStore>,
    ) -> Poller {
        Poller::new(
            self.client.clone(),
            self.vendor.clone(),
            self.profile_name.clone(),
            pipeline,
            store,
            PollSettings {
                overlap: Duration::from_secs(self.config.overlap_secs),
                max_pages: 1000,
                page_size: self
                    .config
                    .page_size
                    .unwrap_or(self.vendor.limits.page_size),
            },
        )
    }

    /// Polls until `shutdown` resolves; serves the rest-hook when configured.
    /// Returns the address the rest-hook listens on through `on_listen`.
    pub async fn serve(
        &self,
        pipeline: Arc<dyn IntakePipeline>,
        store: Arc<dyn WatermarkStore>,
        shutdown: impl Future<Output = ()> + Send,
        on_listen: impl FnOnce(Option<SocketAddr>) + Send,
    ) -> Result<(), FhirError> {
        let poller = self.poller(pipeline, store);
        let trigger = Arc::new(Notify::new());
        let stop = Arc::new(Notify::new());
        let mut hook_task = None;
        if let (Some(sub), Some(hook)) = (&self.config.subscription, &self.hook) {
            let listener = tokio::net::TcpListener::bind(sub.listen)
                .await
                .map_err(|e| {
                    FhirError::Config(format!("subscription listen {}: {}", sub.listen, e.kind()))
                })?;
            let addr = listener.local_addr().ok();
            on_listen(addr);
            let app = crate::subscription::router(&sub.path, trigger.clone(), &hook.token);
            let stop_hook = stop.clone();
            let options = gateway_http_listener::Options {
                name: "fhir-rest-hook",
                tls: hook.tls.clone(),
                limits: sub.limits,
            };
            hook_task = Some(tokio::spawn(async move {
                let served = gateway_http_listener::serve(listener, app, options, async move {
                    stop_hook.notified().await
                })
                .await;
                if served.is_err() {
                    tracing::error!("subscription listener failed");
                }
            }));
        } else {
            on_listen(None);
        }
        let interval = Duration::from_secs(self.config.poll_interval_secs.max(1));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                result = poller.poll_once() => log_pass(&self.profile_name, result),
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = trigger.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
        }
        stop.notify_one();
        if let Some(task) = hook_task {
            let _ = task.await;
        }
        Ok(())
    }
}

fn log_pass(profile: &str, result: Result<PollReport, gateway_core::GatewayError>) {
    if let Err(e) = result {
        tracing::warn!(
            profile,
            kind = e.kind.as_str(),
            retryable = e.retryable,
            "FHIR poll pass failed; will retry"
        );
    }
}
