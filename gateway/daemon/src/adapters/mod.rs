//! Adapter wiring: how `run` and `demo` start each adapter the daemon hosts.
//!
//! Each adapter has one file here (`hl7v2.rs`, `fhir.rs`, `x12.rs`,
//! `desktop.rs`, written by that adapter's owner) holding its config section
//! type and a unit struct implementing [`Adapter`]. What the rest of the
//! system knows about an adapter — its formats, transports, config section
//! and metrics label — is its entry in `gateway_registry` ([`Adapter::spec`]);
//! its secret files are [`Adapter::secret_files`]. Those methods have no
//! default, so an adapter that does not declare them does not compile, and
//! [`check_registry`] (run first thing at start) refuses a build whose wired
//! adapters and registry entries disagree, or an endpoint whose transport its
//! adapter did not declare. **Registering an adapter**:
//! 1. its [`gateway_registry::AdapterSpec`] in `gateway_registry::ADAPTERS`
//!    and its formats in `gateway_registry::FORMATS`;
//! 2. `pub mod <name>;` below and `&<name>::<Struct>` in [`all`];
//! 3. one field on `crate::settings::Settings`:
//!    `#[serde(default)] pub <name>: Option<crate::adapters::<name>::Section>,`.
//!
//! `run` calls [`Adapter::start`] for every adapter whose section is present;
//! `demo` first lets each adapter fill its section for loopback
//! ([`Adapter::demo_configure`], or say why it is skipped), starts the daemon,
//! then calls [`Adapter::demo_traffic`] to send the sample traffic.

pub mod davinci_pas;
pub mod desktop;
pub mod fhir;
pub mod hl7v2;
pub mod x12;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gateway_core::adapter::{BoxFuture, IntakePipeline, WriteBack};
use gateway_registry::{AdapterSpec, Transport};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::{Problem, Settings};

/// What a starting adapter gets from the daemon.
#[derive(Clone)]
pub struct AdapterContext {
    /// Where inbound messages go; acknowledge only from its outcome.
    pub pipeline: Arc<dyn IntakePipeline>,
    /// Cancelled when the daemon stops accepting work (SIGTERM drain or
    /// SIGINT): stop listening/polling, finish what is in flight, then let
    /// the tasks in [`Started::tasks`] end.
    pub shutdown: CancellationToken,
    /// The daemon's data directory (for adapter state such as poll cursors).
    pub data_dir: PathBuf,
    /// The store, for adapter state that must be durable and atomic (X12
    /// control numbers). Adapters' own crates never see it: the wiring here
    /// implements their traits over it.
    pub store: gateway_store::Store,
}

/// One thing an adapter listens on or polls, for logs and the demo.
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

/// What a started adapter hands back.
#[derive(Default)]
pub struct Started {
    /// Tasks that end after [`AdapterContext::shutdown`] is cancelled and
    /// their in-flight work is done. The daemon waits for them (bounded by
    /// the grace period) before stopping the store.
    pub tasks: Vec<JoinHandle<()>>,
    /// Write-backs for cases this adapter owns, optionally per profile.
    pub writebacks: Vec<(Arc<dyn WriteBack>, Option<String>)>,
    /// Listeners and pollers, for logs and the demo.
    pub endpoints: Vec<Endpoint>,
    /// Reads on an operator's request (`POST /api/v1/adapters/desktop/read`),
    /// when the adapter runs a read playbook. Handed to the admin server as a
    /// value: no process-global registry.
    pub read_trigger: Option<desktop::ReadTrigger>,
}

/// What the demo knows when configuring adapters and sending traffic.
#[derive(Debug, Clone)]
pub struct DemoEnv {
    /// The repository root (holds `sample-messages/` and `mappings/`).
    pub repo_root: PathBuf,
    /// A temporary directory the demo owns (deleted at exit).
    pub temp_dir: PathBuf,
}

/// An adapter the daemon can host.
pub trait Adapter: Sync {
    /// This adapter's registry entry (formats, transports, config section,
    /// metrics label).
    fn spec(&self) -> &'static AdapterSpec;

    /// The adapter name (`hl7v2`, …), as used in metrics and case sources.
    fn name(&self) -> &'static str {
        self.spec().name
    }

    /// The secret files `settings` configures for this adapter, each with
    /// the config key that names it (checked for loose permissions at start).
    fn secret_files(&self, settings: &Settings) -> Vec<(String, PathBuf)>;

    /// Keys of secrets written inline in this adapter's section.
    fn inline_secrets(&self, settings: &Settings) -> Vec<&'static str>;

    /// True when `settings` has this adapter's section.
    fn configured(&self, settings: &Settings) -> bool;

    /// Names of the mapping profiles the section refers to (must load).
    fn profiles(&self, _settings: &Settings) -> Vec<String> {
        Vec::new()
    }

    /// Semantic checks of the section beyond serde (ports, files), pushing one
    /// [`Problem`] per finding.
    fn check(&self, _settings: &Settings, _config_file: &Path, _problems: &mut Vec<Problem>) {}

    /// Starts every configured instance.
    fn start<'a>(
        &'a self,
        settings: &'a Settings,
        context: AdapterContext,
    ) -> BoxFuture<'a, anyhow::Result<Started>>;

    /// Fills this adapter's section for a loopback demo, or returns why the
    /// demo skips it (e.g. "no X display").
    fn demo_configure(&self, _settings: &mut Settings, _env: &DemoEnv) -> Result<(), String> {
        Err("no demo wired for this adapter".to_owned())
    }

    /// Sends the demo's sample traffic to the started adapter; returns a
    /// one-line summary, or why it failed.
    fn demo_traffic<'a>(
        &'a self,
        _started: &'a Started,
        _env: &'a DemoEnv,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async { Err("no demo traffic wired for this adapter".to_owned()) })
    }
}

/// Every adapter wired into this build, in start order.
pub fn all() -> Vec<&'static dyn Adapter> {
    vec![
        &hl7v2::Hl7v2,
        &fhir::Fhir,
        &desktop::Desktop,
        &x12::X12,
        &davinci_pas::DavinciPas,
    ]
}

/// Checks that the adapters wired here are exactly the registry's, in its
/// order, and that the registry itself is complete (see
/// [`gateway_registry::check`]).
pub fn check_registry() -> Result<(), Vec<String>> {
    check_wiring(&all(), gateway_registry::ADAPTERS)
}

/// [`check_registry`] for a given wiring and registry.
pub fn check_wiring(wired: &[&dyn Adapter], registry: &[AdapterSpec]) -> Result<(), Vec<String>> {
    let mut problems = match gateway_registry::check(gateway_registry::FORMATS, registry) {
        Ok(()) => Vec::new(),
        Err(problems) => problems,
    };
    let wired_names: Vec<&str> = wired.iter().map(|a| a.name()).collect();
    let registered: Vec<&str> = registry.iter().map(|a| a.name).collect();
    if wired_names != registered {
        problems.push(format!(
            "the daemon wires adapters {wired_names:?}, the registry lists {registered:?}"
        ));
    }
    for adapter in wired {
        if !registry.contains(adapter.spec()) {
            problems.push(format!(
                "adapter {} wires a spec that is not the registry's",
                adapter.name()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Refuses an endpoint whose transport `adapter` did not declare.
pub fn check_endpoints(adapter: &dyn Adapter, started: &Started) -> Result<(), String> {
    match started
        .endpoints
        .iter()
        .find(|e| !adapter.spec().transports.contains(&e.transport))
    {
        Some(endpoint) => Err(format!(
            "adapter {} started an endpoint with transport {} that it does not declare ({})",
            adapter.name(),
            endpoint.transport,
            endpoint.description
        )),
        None => Ok(()),
    }
}

/// Pushes `(key, path)` when `path` is set.
fn add_secret(files: &mut Vec<(String, PathBuf)>, key: String, path: &Option<PathBuf>) {
    if let Some(path) = path {
        files.push((key, path.clone()));
    }
}

/// Runs every configured adapter's [`Adapter::check`].
pub fn check_all(settings: &Settings, config_file: &Path, problems: &mut Vec<Problem>) {
    for adapter in all() {
        if adapter.configured(settings) {
            adapter.check(settings, config_file, problems);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wired_adapters_are_the_registry_s() {
        assert_eq!(check_registry(), Ok(()));
    }

    #[test]
    fn a_wiring_that_disagrees_with_the_registry_refuses_the_start() {
        // x12 registered but not wired.
        let wired: Vec<&dyn Adapter> = vec![
            &hl7v2::Hl7v2,
            &fhir::Fhir,
            &desktop::Desktop,
            &davinci_pas::DavinciPas,
        ];
        let problems = check_wiring(&wired, gateway_registry::ADAPTERS).expect_err("x12 missing");
        assert!(problems[0].contains("the registry lists"), "{problems:?}");
        // x12 wired but not registered: its format names an unknown adapter.
        let registry = [
            gateway_registry::HL7V2,
            gateway_registry::FHIR,
            gateway_registry::DESKTOP,
            gateway_registry::DAVINCI_PAS,
        ];
        let problems = check_wiring(&all(), &registry).expect_err("x12 unregistered");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("adapter x12, which is not registered")),
            "{problems:?}"
        );
    }

    #[test]
    fn an_endpoint_with_an_undeclared_transport_is_refused() {
        let mut started = Started::default();
        started.endpoints.push(Endpoint {
            description: "MLLP listener (profile epic)".to_owned(),
            transport: Transport::Mllp,
            addr: None,
            profile: Some("epic".to_owned()),
        });
        assert_eq!(check_endpoints(&hl7v2::Hl7v2, &started), Ok(()));
        let error = check_endpoints(&x12::X12, &started).expect_err("x12 has no MLLP");
        assert!(error.contains("transport mllp"), "{error}");
    }
}
