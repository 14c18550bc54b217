//! What the seam facade ([`crate::X12`]) assembles: [`start`] turns the
//! `[x12]` section and plain trait objects ([`Context`]) into running
//! transports and values ([`Started`]); [`problems`] checks the section
//! beyond serde; [`secret_files`] names its secret files.
//!
//! Why apart from the facade: the facade builds the [`Context`] from the
//! seam's host (control numbers through `Host::allocate`, refusals as audit
//! rows), while this layer takes the traits themselves, so the crate's own
//! tests start the adapter with in-memory control numbers and no host. The
//! host never assembles this crate's internals — the file drop, the CORE
//! SOAP server with its authenticator and limits, the write-back with its
//! CORE client, the outbound request routes — nor knows their argument
//! lists. What the host owns and this crate must not (the store: durable
//! control numbers, audit rows, the submission queue of the outbound 278
//! request path) comes in through the traits in [`Context`], or goes out as
//! a value in [`Started`] ([`RequestPath`], for the host's submission
//! worker). No globals: two [`start`] calls give two independent adapters.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gateway_core::adapter::{IntakePipeline, WriteBack};
use gateway_seam::{Endpoint, Transport};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ack::AckIdentity;
use crate::config::{SoapServerConfig, X12Config};
use crate::control::ControlNumberAllocator;
use crate::filedrop::FileDrop;
use crate::outbound::{RequestTemplate, ResponseTemplate};
use crate::requests::{RequestWriter, Routes};
use crate::soap::auth::{self, Authenticator};
use crate::soap::client::CoreClient;
use crate::soap::server::{
    ListenerTls, RefusalAudit, SoapServerState, limit_problems, listener_limits, serve_with,
};
use crate::writeback::X12WriteBack;

/// What the host gives a starting X12 adapter.
#[derive(Clone)]
pub struct Context {
    /// Where received interchanges go; acknowledge only from its outcome.
    pub pipeline: Arc<dyn IntakePipeline>,
    /// Cancelled when the host stops accepting work: listeners and pollers
    /// stop, then the tasks in [`Started::tasks`] end.
    pub shutdown: CancellationToken,
    /// Durable control numbers (the daemon's are in the store).
    pub numbers: Arc<dyn ControlNumberAllocator>,
    /// Where refused CORE SOAP requests are recorded.
    pub audit: Option<Arc<dyn RefusalAudit>>,
    /// The mapping profiles folder (default templates live under
    /// `<mappings_dir>/<profile>/outbound/`).
    pub mappings_dir: PathBuf,
}

/// The outbound 278 request path, ready for the host's durable submission
/// worker (which owns the queue, the recording and the retries): everything
/// the adapter knows that the worker needs, so the host adds only its store.
#[derive(Clone)]
pub struct RequestPath {
    /// The payer routes.
    pub routes: Routes,
    /// The request writer.
    pub writer: RequestWriter,
    /// Durable control numbers for the requests (and for the acknowledgment
    /// of a payer's answer).
    pub numbers: Arc<dyn ControlNumberAllocator>,
    /// Where a payer's synchronous 278 response goes.
    pub pipeline: Arc<dyn IntakePipeline>,
    /// The profile a received 278 is mapped with.
    pub profile: String,
    /// Our identity for the acknowledgment of a received 278.
    pub ack_identity: AckIdentity,
    /// How often to look for due requests.
    pub poll: Duration,
    /// First retry delay of a failed delivery, in milliseconds.
    pub retry_initial_ms: u64,
    /// Longest retry delay, in milliseconds.
    pub retry_max_ms: u64,
}

impl std::fmt::Debug for RequestPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestPath")
            .field("routes", &self.routes)
            .field("profile", &self.profile)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

/// What a started adapter hands back.
#[derive(Default)]
pub struct Started {
    /// Tasks that end after [`Context::shutdown`] is cancelled and their
    /// in-flight work is done.
    pub tasks: Vec<JoinHandle<()>>,
    /// The decision write-back (278 responses to the requester), when configured.
    pub writeback: Option<Arc<dyn WriteBack>>,
    /// Listeners and pollers (the seam's [`Endpoint`], with a transport the
    /// adapter's [`crate::SPEC`] declares).
    pub endpoints: Vec<Endpoint>,
    /// The outbound request path, when `[x12.requests]` is configured.
    pub requests: Option<RequestPath>,
}

/// Why the adapter did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is unusable (the key names it).
    #[error("{key}: {message}")]
    Config {
        /// The config key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A template did not load.
    #[error(transparent)]
    Template(#[from] crate::outbound::TemplateError),
    /// The request routes could not be built.
    #[error(transparent)]
    Routes(#[from] crate::requests::RouteSetupError),
    /// A CORE client could not be built.
    #[error(transparent)]
    Client(#[from] crate::soap::client::SoapClientError),
    /// The file drop could not be set up.
    #[error(transparent)]
    FileDrop(#[from] crate::filedrop::FileDropError),
    /// The SOAP server could not be started.
    #[error(transparent)]
    Serve(#[from] crate::soap::server::ServeError),
}

fn config_error(key: impl Into<String>, message: impl Into<String>) -> StartError {
    StartError::Config {
        key: key.into(),
        message: message.into(),
    }
}

/// The response template of `[x12.writeback]`.
fn response_template_path(section: &X12Config, mappings_dir: &Path) -> Option<PathBuf> {
    let writeback = section.writeback.as_ref()?;
    Some(writeback.template.clone().unwrap_or_else(|| {
        mappings_dir
            .join(&section.profile)
            .join("outbound/response.toml")
    }))
}

/// The request template of `[x12.requests]`.
fn request_template_path(section: &X12Config, mappings_dir: &Path) -> Option<PathBuf> {
    let requests = section.requests.as_ref()?;
    Some(requests.template.clone().unwrap_or_else(|| {
        mappings_dir
            .join(&section.profile)
            .join("outbound/request.toml")
    }))
}

/// The UsernameToken passwords of the SOAP partners, in partner order,
/// from `password_file` (first line) or `password_env`.
fn soap_passwords(soap: &SoapServerConfig) -> Result<Vec<Option<String>>, (String, String)> {
    soap.partners
        .iter()
        .enumerate()
        .map(|(i, partner)| {
            if partner.username.is_none() {
                return Ok(None);
            }
            let secret = match (&partner.password_file, &partner.password_env) {
                (Some(path), _) => std::fs::read_to_string(path)
                    .map(|text| text.lines().next().unwrap_or("").trim().to_owned())
                    .map_err(|e| {
                        (
                            format!("x12.soap_server.partners[{i}].password_file"),
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?,
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    (
                        format!("x12.soap_server.partners[{i}].password_env"),
                        format!("environment variable `{var}` is not set"),
                    )
                })?,
                (None, None) => String::new(),
            };
            if secret.is_empty() {
                return Err((
                    format!("x12.soap_server.partners[{i}]"),
                    "the UsernameToken password is empty".to_owned(),
                ));
            }
            Ok(Some(secret))
        })
        .collect()
}

/// Every problem of `section` beyond serde (ids, files, templates, routes,
/// partners), each with its config key.
pub fn problems(section: &X12Config, mappings_dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut problem = |key: &str, message: String| out.push((key.to_owned(), message));
    if section.identity.id.is_empty() || section.identity.id.len() > 15 {
        problem(
            "x12.identity.id",
            "must be 1 to 15 characters (ISA06)".into(),
        );
    }
    if !matches!(section.identity.usage, 'T' | 'P') {
        problem("x12.identity.usage", "must be T or P (ISA15)".into());
    }
    if section.file_drop.is_none()
        && section.soap_server.is_none()
        && section.partners.is_empty()
        && section.requests.is_none()
    {
        problem(
            "x12",
            "configure `file_drop`, `soap_server`, `partners` or `requests`".into(),
        );
    }
    if let Some(soap) = &section.soap_server {
        if soap.listen.parse::<SocketAddr>().is_err() {
            problem(
                "x12.soap_server.listen",
                format!("`{}` is not HOST:PORT", soap.listen),
            );
        }
        for (key, path) in [
            ("x12.soap_server.tls.cert", &soap.tls.cert),
            ("x12.soap_server.tls.key", &soap.tls.key),
        ] {
            if !path.is_file() {
                problem(key, format!("{} does not exist", path.display()));
            }
        }
        if !soap.path.starts_with('/') {
            problem("x12.soap_server.path", "must start with `/`".into());
        }
        if let Some(ca) = &soap.client_ca
            && !ca.is_file()
        {
            problem(
                "x12.soap_server.client_ca",
                format!("{} does not exist", ca.display()),
            );
        }
        for (key, message) in limit_problems(soap) {
            problem(&key, message);
        }
        for e in auth::check(soap)
            .into_iter()
            .chain(auth::check_exposure(soap))
        {
            problem(&e.key, e.message);
        }
        if let Err((key, message)) = soap_passwords(soap) {
            problem(&key, message);
        }
    }
    if let Some(writeback) = &section.writeback {
        if writeback.outbound.is_none() && writeback.partner.is_none() {
            problem(
                "x12.writeback",
                "configure `outbound` (a folder) and/or `partner`".into(),
            );
        }
        if let Some(name) = &writeback.partner
            && !section.partners.iter().any(|p| &p.name == name)
        {
            problem(
                "x12.writeback.partner",
                format!("no [[x12.partners]] entry is named `{name}`"),
            );
        }
        if let Some(path) = response_template_path(section, mappings_dir)
            && let Err(e) = ResponseTemplate::load(&path)
        {
            problem("x12.writeback.template", e.to_string());
        }
    }
    if let Some(requests) = &section.requests {
        for (key, message) in requests.problems(&section.partners) {
            problem(&key, message);
        }
        if let Some(path) = request_template_path(section, mappings_dir)
            && let Err(e) = RequestTemplate::load(&path)
        {
            problem("x12.requests.template", e.to_string());
        }
    }
    for (i, partner) in section.partners.iter().enumerate() {
        if !partner.endpoint.starts_with("https://") {
            problem(
                &format!("x12.partners[{i}].endpoint"),
                "must be an https:// URL".into(),
            );
        }
        if let Err(e) = CoreClient::new(partner.clone()) {
            problem(&format!("x12.partners[{i}]"), e.to_string());
        }
    }
    out
}

/// The secret files `section` names, each with its config key (the host
/// checks their permissions): the SOAP server's TLS key, its partners'
/// UsernameToken password files, and our client certificates for partners.
pub fn secret_files(section: &X12Config) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    if let Some(soap) = &section.soap_server {
        files.push(("x12.soap_server.tls.key".to_owned(), soap.tls.key.clone()));
        for (i, partner) in soap.partners.iter().enumerate() {
            if let Some(path) = &partner.password_file {
                files.push((
                    format!("x12.soap_server.partners[{i}].password_file"),
                    path.clone(),
                ));
            }
        }
    }
    for (i, partner) in section.partners.iter().enumerate() {
        if let Some(path) = &partner.client_identity {
            files.push((format!("x12.partners[{i}].client_identity"), path.clone()));
        }
    }
    files
}

/// Starts everything `section` configures: the decision write-back, the
/// file drop, the CORE SOAP server, and the outbound request path (handed
/// back for the host's worker).
pub async fn start(section: &X12Config, context: Context) -> Result<Started, StartError> {
    let mut started = Started::default();
    if let Some(writeback) = &section.writeback {
        let path = response_template_path(section, &context.mappings_dir)
            .ok_or_else(|| config_error("x12.writeback.template", "no template"))?;
        let template = ResponseTemplate::load(&path)?;
        let partner = match &writeback.partner {
            Some(name) => {
                let config = section
                    .partners
                    .iter()
                    .find(|p| &p.name == name)
                    .ok_or_else(|| {
                        config_error(
                            "x12.writeback.partner",
                            format!("no [[x12.partners]] entry is named `{name}`"),
                        )
                    })?;
                Some(CoreClient::new(config.clone())?)
            }
            None => None,
        };
        started.writeback = Some(Arc::new(X12WriteBack::new(
            writeback,
            template,
            section.identity.clone(),
            partner,
            Arc::clone(&context.numbers),
        )));
    }
    if let Some(requests) = &section.requests {
        let path = request_template_path(section, &context.mappings_dir)
            .ok_or_else(|| config_error("x12.requests.template", "no template"))?;
        started.requests = Some(RequestPath {
            routes: Routes::from_config(section)?,
            writer: RequestWriter::new(RequestTemplate::load(&path)?, section.identity.clone()),
            numbers: Arc::clone(&context.numbers),
            pipeline: Arc::clone(&context.pipeline),
            profile: section.profile.clone(),
            ack_identity: section.identity.ack_identity(false),
            poll: Duration::from_millis(requests.poll_interval_ms),
            retry_initial_ms: requests.retry_initial_ms,
            retry_max_ms: requests.retry_max_ms,
        });
    }
    if let Some(drop_cfg) = section.file_drop.clone() {
        let worker = FileDrop::new(
            drop_cfg.clone(),
            section.profile.clone(),
            Arc::clone(&context.pipeline),
            section.identity.ack_identity(true),
            Arc::clone(&context.numbers),
        )?;
        started.tasks.push(tokio::spawn(
            worker.run(context.shutdown.clone().cancelled_owned()),
        ));
        started.endpoints.push(Endpoint {
            transport: Transport::FileDrop,
            description: format!(
                "X12 file drop {} (every {} ms)",
                drop_cfg.inbound.display(),
                drop_cfg.poll_interval_ms
            ),
            addr: None,
            profile: Some(section.profile.clone()),
        });
    }
    if let Some(soap) = &section.soap_server {
        let read = |key: &str, path: &Path| {
            std::fs::read(path)
                .map_err(|e| config_error(key, format!("cannot read {}: {e}", path.display())))
        };
        let cert = read("x12.soap_server.tls.cert", &soap.tls.cert)?;
        let key = read("x12.soap_server.tls.key", &soap.tls.key)?;
        let client_ca = soap
            .client_ca
            .as_ref()
            .map(|ca| read("x12.soap_server.client_ca", ca))
            .transpose()?;
        let passwords =
            soap_passwords(soap).map_err(|(key, message)| config_error(key, message))?;
        let authenticator = Authenticator::new(soap, &passwords)
            .map_err(|e| config_error(e.key.clone(), e.message.clone()))?;
        if !authenticator.enforced() {
            tracing::warn!(listen = %soap.listen, "x12 CORE SOAP server without partner authentication (loopback only): any local process may post");
        }
        let state = Arc::new(SoapServerState {
            pipeline: Arc::clone(&context.pipeline),
            profile: section.profile.clone(),
            identity: section.identity.ack_identity(false),
            numbers: Arc::clone(&context.numbers),
            core_rule_version: soap.core_rule_version.clone(),
            responder: None,
            auth: Arc::new(authenticator),
            audit: context.audit.clone(),
        });
        let tls = ListenerTls {
            cert_pem: &cert,
            key_pem: &key,
            client_ca_pem: client_ca.as_deref(),
            limits: listener_limits(soap),
        };
        let server = serve_with(
            &soap.listen,
            tls,
            &soap.path,
            soap.max_body_bytes,
            state,
            context.shutdown.clone().cancelled_owned(),
        )
        .await?;
        started.endpoints.push(Endpoint {
            transport: Transport::Soap,
            description: format!(
                "X12 CORE SOAP server https://{}{}",
                server.local_addr, soap.path
            ),
            addr: Some(server.local_addr),
            profile: Some(section.profile.clone()),
        });
        started.tasks.push(tokio::spawn(server.join()));
    }
    Ok(started)
}
