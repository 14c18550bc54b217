//! gateway-seam: the one seam between the gateway and its adapters.
//!
//! An adapter crate (`adapters/<name>`) implements [`Adapter`] for a unit
//! struct: its typed config section ([`Adapter::Section`]), its registry entry
//! ([`AdapterSpec`]: formats, transports, metrics label), its secret files,
//! its checks, and [`Adapter::start`], which gets an [`AdapterContext`] and
//! hands back a [`Started`] (tasks, write-backs, endpoints, handles). The
//! daemon hosts every adapter through this trait and nothing else; the
//! conformance runner submits through the same [`IntakePipeline`] code path.
//!
//! *Why its own crate*: `gateway-registry` lists the adapters and therefore
//! depends on every adapter crate, so the trait the adapters implement cannot
//! live there (that would be a cycle). This crate sits below the adapters
//! (it depends on `gateway-core` only, plus tokio for task handles and the
//! shutdown token); the registry re-exports it, so the daemon and the
//! conformance runner name one crate.
//!
//! Invariants:
//! - an adapter never sees the store: what it needs that must be durable
//!   (X12 control numbers, audit rows, abort evidence) it asks of the
//!   [`Host`] in its context, a trait object the daemon implements;
//! - no globals: everything a running adapter shares with the rest of the
//!   daemon (the desktop's "read now" trigger, a demo's child process) is a
//!   value in [`Started::handles`] or in the [`DemoState`] the demo owns;
//! - an endpoint's [`Transport`] must be one its [`AdapterSpec`] declares
//!   ([`check_endpoints`], run by the daemon after each start).

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use gateway_core::adapter::{BoxFuture, IntakePipeline, WriteBack};
use gateway_core::case::Case;
use gateway_core::{GatewayError, SourceFormat};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How an adapter endpoint talks to its peer (`GET /api/v1/adapters`'s
/// `transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// An MLLP listener (HL7 v2).
    Mllp,
    /// A CORE SOAP server (X12).
    Soap,
    /// A FHIR subscription rest-hook receiver.
    RestHook,
    /// A poller of a remote API.
    Poll,
    /// A watched directory.
    FileDrop,
    /// Decisions written back into the EHR.
    WriteBack,
    /// Screens of a desktop application.
    Ui,
    /// A FHIR API the gateway serves to an EHR (Da Vinci PAS `$submit`).
    FhirApi,
}

impl Transport {
    /// Every transport.
    pub const ALL: [Transport; 8] = [
        Transport::Mllp,
        Transport::Soap,
        Transport::RestHook,
        Transport::Poll,
        Transport::FileDrop,
        Transport::WriteBack,
        Transport::Ui,
        Transport::FhirApi,
    ];

    /// The name the admin API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Mllp => "mllp",
            Transport::Soap => "soap",
            Transport::RestHook => "rest-hook",
            Transport::Poll => "poll",
            Transport::FileDrop => "file-drop",
            Transport::WriteBack => "write-back",
            Transport::Ui => "ui",
            Transport::FhirApi => "fhir-api",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rest of the system needs to know about one adapter (its entry
/// in `gateway_registry::ADAPTERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdapterSpec {
    /// The adapter name (`hl7v2`, …): case sources, logs, `--version`.
    pub name: &'static str,
    /// Its top-level config section (`[hl7v2]`).
    pub section: &'static str,
    /// The `adapter` label of its metrics.
    pub metrics_label: &'static str,
    /// The formats it brings (each has a format entry in the registry).
    pub formats: &'static [SourceFormat],
    /// The transports its endpoints may use; an endpoint with another one is
    /// refused at start.
    pub transports: &'static [Transport],
    /// Whether it acknowledges what it receives (MLLP ACK; X12 999/TA1): it
    /// then has an `ehr_gateway_ack_latency_seconds` series.
    pub acknowledges: bool,
}

/// One configuration problem: where it came from, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file path, or `environment variable GATEWAY__…`.
    pub origin: String,
    /// Dotted key path (`admin.listen`, `hl7v2.listeners[0].port`), when known.
    pub key: Option<String>,
    /// What is wrong (never a secret value).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: key `{key}`: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

/// Where a section came from and where its profile names resolve, for
/// [`Adapter::check`] and [`Adapter::start`].
#[derive(Debug, Clone)]
pub struct Paths {
    /// The config file (the origin of [`Problem`]s).
    pub config_file: PathBuf,
    /// The mapping profiles' folder (`mappings_dir`).
    pub mappings_dir: PathBuf,
}

impl Paths {
    /// A [`Problem`] about `key` of this config file.
    pub fn problem(&self, key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            origin: self.config_file.display().to_string(),
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

/// An audit row an adapter asks the host to keep (no PHI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Who (`x12-soap:<peer>`).
    pub actor: String,
    /// What (`x12.soap.refused`).
    pub action: String,
    /// On what, when it is not a case.
    pub target: Option<String>,
    /// Details without PHI.
    pub detail: Option<String>,
    /// The case, when the action concerns one.
    pub case_id: Option<String>,
}

/// Evidence an adapter asks the host to keep (an abort screenshot), read
/// back only through the audited admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceRecord {
    /// The adapter that produced it.
    pub adapter: String,
    /// `abort-screenshot`, `abort-note`.
    pub kind: String,
    /// The case it belongs to, when known.
    pub case_id: Option<String>,
    /// MIME type of `body`.
    pub content_type: String,
    /// The evidence itself.
    pub body: Vec<u8>,
    /// A PHI-free description (JSON).
    pub detail: Option<String>,
}

/// What the daemon offers a running adapter beyond the intake pipeline:
/// durable state it must not lose (the daemon implements it over the store;
/// adapters never see the store itself).
pub trait Host: Send + Sync {
    /// Allocates `count` consecutive numbers of the durable counter `scope`
    /// (wrapping after `max`), committed before they are returned so none is
    /// reused after a crash.
    fn allocate(
        &self,
        scope: &str,
        count: u32,
        max: u64,
    ) -> BoxFuture<'_, Result<Vec<u64>, GatewayError>>;

    /// [`Host::allocate`] for several counters at once, the numbers of each
    /// `(scope, count)` in the order asked. A host with a store commits them
    /// together (one durable write instead of one per counter); the default
    /// asks for each in turn.
    fn allocate_many<'a>(
        &'a self,
        requests: &'a [(String, u32)],
        max: u64,
    ) -> BoxFuture<'a, Result<Vec<Vec<u64>>, GatewayError>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(requests.len());
            for (scope, count) in requests {
                out.push(self.allocate(scope, *count, max).await?);
            }
            Ok(out)
        })
    }

    /// Appends an audit row.
    fn audit(&self, record: AuditRecord) -> BoxFuture<'_, Result<(), GatewayError>>;

    /// Keeps evidence; returns its id.
    fn keep_evidence(&self, evidence: EvidenceRecord) -> BoxFuture<'_, Result<i64, GatewayError>>;

    /// The stored case `case_id` (the demo writes a decision back for it;
    /// the PAS server answers from it).
    fn case(&self, case_id: &str) -> BoxFuture<'_, Result<Option<Case>, GatewayError>>;

    /// The most recently updated case owned by `adapter` whose
    /// `references[name]` is `value` (the PAS server finds a request's case
    /// by its Claim identifier). `name` is `[a-z0-9_]`.
    fn case_by_reference<'a>(
        &'a self,
        adapter: &'a str,
        name: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Option<Case>, GatewayError>>;

    /// The case the stored message `message_id` produced an event for (a
    /// duplicate's outcome names the original message).
    fn case_of_message(&self, message_id: i64)
    -> BoxFuture<'_, Result<Option<Case>, GatewayError>>;
}

/// What a starting adapter gets from its host.
#[derive(Clone)]
pub struct AdapterContext {
    /// Where inbound messages go; acknowledge only from its outcome.
    pub pipeline: Arc<dyn IntakePipeline>,
    /// Cancelled when the daemon stops accepting work (SIGTERM drain or
    /// SIGINT): stop listening/polling, finish what is in flight, then let
    /// the tasks in [`Started::tasks`] end.
    pub shutdown: CancellationToken,
    /// Config file and mappings directory.
    pub paths: Paths,
    /// The daemon's data directory (adapter state such as poll cursors).
    pub data_dir: PathBuf,
    /// Durable state, audit and evidence (see [`Host`]).
    pub host: Arc<dyn Host>,
}

/// One thing an adapter listens on or polls, for logs, the admin API's
/// adapter list and the demo.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// What it is: `MLLP listener (profile epic)`.
    pub description: String,
    /// How it talks to its peer; one of its adapter's declared transports.
    pub transport: Transport,
    /// The bound address, when it is a listener.
    pub addr: Option<SocketAddr>,
    /// The profile this instance maps with.
    pub profile: Option<String>,
}

/// A handle a started adapter shares with the rest of the daemon (the
/// desktop's read trigger); found by type with [`Started::handle`].
pub type Handle = Arc<dyn Any + Send + Sync>;

/// What a started adapter hands back.
#[derive(Default)]
pub struct Started {
    /// Tasks that end after [`AdapterContext::shutdown`] is cancelled and
    /// their in-flight work is done. The daemon waits for them (bounded by
    /// the grace period) before stopping the store.
    pub tasks: Vec<JoinHandle<()>>,
    /// Write-backs for cases this adapter owns, optionally per profile.
    pub writebacks: Vec<(Arc<dyn WriteBack>, Option<String>)>,
    /// Listeners and pollers, for logs, the admin API and the demo.
    pub endpoints: Vec<Endpoint>,
    /// Values the rest of the daemon may use while the adapter runs (the
    /// admin server's "read now" finds the desktop's trigger here): no
    /// process-global registry.
    pub handles: Vec<Handle>,
}

impl Started {
    /// The first handle of type `T`.
    pub fn handle<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.handles
            .iter()
            .find_map(|h| Arc::clone(h).downcast::<T>().ok())
    }
}

/// Why an adapter did not start (no PHI). Its `Display` is the context
/// only; the cause is its [`std::error::Error::source`], so a chain printer
/// (`anyhow`'s `{:#}`) shows each once.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `source` while doing `context`.
    #[error("{context}")]
    Context {
        /// What was being started (`starting the MLLP listener on 0.0.0.0:2575`).
        context: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An error that already says what was being started.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl StartError {
    /// `source` while doing `context`.
    pub fn new(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StartError::Context {
            context: context.into(),
            source: source.into(),
        }
    }

    /// An error that already carries its context.
    pub fn other(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StartError::Other(source.into())
    }
}

/// What the demo knows when configuring adapters and sending traffic.
#[derive(Debug, Clone)]
pub struct DemoEnv {
    /// The repository root (holds `sample-messages/` and `mappings/`).
    pub repo_root: PathBuf,
    /// A temporary directory the demo owns (deleted at exit).
    pub temp_dir: PathBuf,
    /// The mapping profiles' folder of the demo's settings.
    pub mappings_dir: PathBuf,
}

/// Whatever an adapter's demo keeps between configuring and sending traffic
/// (a child process to stop, folders to drop files into). Owned by the demo
/// command until it exits; dropping it must release what it holds.
pub type DemoState = Box<dyn Any + Send>;

/// A configured demo: the section to start with and the adapter's state.
pub struct Demo<S> {
    /// The section the demo starts the adapter with.
    pub section: S,
    /// Handed back to [`Adapter::demo_traffic`].
    pub state: DemoState,
}

/// An adapter the gateway can host. Implemented by a unit struct in each
/// adapter crate; listed once in `gateway_registry` and wired into the
/// daemon's settings by one field.
pub trait Adapter: Send + Sync + 'static {
    /// The adapter's config section (`[hl7v2]`), strictly deserialized
    /// (`deny_unknown_fields`).
    type Section: DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;

    /// This adapter's registry entry (formats, transports, config section,
    /// metrics label).
    fn spec(&self) -> &'static AdapterSpec;

    /// The secret files `section` configures, each with the config key that
    /// names it (checked for loose permissions at start).
    fn secret_files(&self, section: &Self::Section) -> Vec<(String, PathBuf)>;

    /// Keys of secrets written inline in `section` (a warning each).
    fn inline_secrets(&self, section: &Self::Section) -> Vec<&'static str>;

    /// Names of the mapping profiles the section refers to (must load).
    fn profiles(&self, section: &Self::Section) -> Vec<String>;

    /// Semantic checks of the section beyond serde (ports, files), pushing
    /// one [`Problem`] per finding.
    fn check(&self, section: &Self::Section, paths: &Paths, problems: &mut Vec<Problem>);

    /// Starts every configured instance.
    fn start<'a>(
        &'a self,
        section: &'a Self::Section,
        context: AdapterContext,
    ) -> BoxFuture<'a, Result<Started, StartError>>;

    /// A section for a loopback demo with the state the demo keeps, or why
    /// the demo skips this adapter (e.g. "no X display").
    fn demo_configure(&self, _env: &DemoEnv) -> Result<Demo<Self::Section>, String> {
        Err("no demo wired for this adapter".to_owned())
    }

    /// Sends the demo's sample traffic to the started adapter; returns a
    /// one-line summary, or why it failed.
    fn demo_traffic<'a>(
        &'a self,
        _started: &'a Started,
        _state: &'a mut DemoState,
        _host: Arc<dyn Host>,
        _env: &'a DemoEnv,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async { Err("no demo traffic wired for this adapter".to_owned()) })
    }
}

/// Pushes `(key, path)` when `path` is set (for [`Adapter::secret_files`]).
pub fn add_secret(files: &mut Vec<(String, PathBuf)>, key: String, path: Option<&Path>) {
    if let Some(path) = path {
        files.push((key, path.to_path_buf()));
    }
}

/// Refuses an endpoint whose transport `spec` does not declare.
pub fn check_endpoints(spec: &AdapterSpec, started: &Started) -> Result<(), String> {
    match started
        .endpoints
        .iter()
        .find(|e| !spec.transports.contains(&e.transport))
    {
        Some(endpoint) => Err(format!(
            "adapter {} started an endpoint with transport {} that it does not declare ({})",
            spec.name, endpoint.transport, endpoint.description
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: AdapterSpec = AdapterSpec {
        name: "example",
        section: "example",
        metrics_label: "example",
        formats: &[],
        transports: &[Transport::Mllp],
        acknowledges: false,
    };

    #[test]
    fn an_endpoint_with_an_undeclared_transport_is_refused() {
        let mut started = Started::default();
        started.endpoints.push(Endpoint {
            description: "MLLP listener (profile epic)".to_owned(),
            transport: Transport::Mllp,
            addr: None,
            profile: Some("epic".to_owned()),
        });
        assert_eq!(check_endpoints(&SPEC, &started), Ok(()));
        started.endpoints.push(Endpoint {
            description: "file drop".to_owned(),
            transport: Transport::FileDrop,
            addr: None,
            profile: None,
        });
        let error = check_endpoints(&SPEC, &started).expect_err("no file drop declared");
        assert!(error.contains("transport file-drop"), "{error}");
    }

    #[test]
    fn handles_are_found_by_type() {
        let mut started = Started::default();
        started.handles.push(Arc::new(7_u32));
        started.handles.push(Arc::new("trigger".to_owned()));
        assert_eq!(
            started.handle::<String>().as_deref(),
            Some(&"trigger".to_owned())
        );
        assert_eq!(started.handle::<u32>().as_deref(), Some(&7));
        assert!(started.handle::<i64>().is_none());
    }

    #[test]
    fn transports_have_distinct_names() {
        let mut names: Vec<&str> = Transport::ALL.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Transport::ALL.len());
    }

    #[test]
    fn a_start_error_shows_its_cause_once_in_a_chain() {
        let error = StartError::new(
            "starting the MLLP listener on 127.0.0.1:2575",
            std::io::Error::other("address in use"),
        );
        assert_eq!(
            error.to_string(),
            "starting the MLLP listener on 127.0.0.1:2575"
        );
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("address in use"));
        let other = StartError::other("x12 partner `p` is not configured");
        assert_eq!(other.to_string(), "x12 partner `p` is not configured");
    }
}
