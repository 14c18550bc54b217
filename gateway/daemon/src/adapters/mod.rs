//! Adapter wiring: how `run` and `demo` start each adapter the daemon hosts.
//!
//! Each adapter has one file here (`hl7v2.rs`, `fhir.rs`, `x12.rs`,
//! `desktop.rs`, written by that adapter's owner) holding its config section
//! type and a unit struct implementing [`Adapter`]. **Registering an adapter**:
//! 1. `pub mod <name>;` below and `&<name>::<Struct>` in [`all`];
//! 2. one field on `crate::settings::Settings`:
//!    `#[serde(default)] pub <name>: Option<crate::adapters::<name>::Section>,`.
//!
//! `run` calls [`Adapter::start`] for every adapter whose section is present;
//! `demo` first lets each adapter fill its section for loopback
//! ([`Adapter::demo_configure`], or say why it is skipped), starts the daemon,
//! then calls [`Adapter::demo_traffic`] to send the sample traffic.

pub mod desktop;
pub mod fhir;
pub mod hl7v2;
pub mod x12;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gateway_core::adapter::{BoxFuture, IntakePipeline, WriteBack};
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
    /// The adapter name (`hl7v2`, …), as used in metrics and case sources.
    fn name(&self) -> &'static str;

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
    vec![&hl7v2::Hl7v2, &fhir::Fhir, &desktop::Desktop, &x12::X12]
}

/// Runs every configured adapter's [`Adapter::check`].
pub fn check_all(settings: &Settings, config_file: &Path, problems: &mut Vec<Problem>) {
    for adapter in all() {
        if adapter.configured(settings) {
            adapter.check(settings, config_file, problems);
        }
    }
}
