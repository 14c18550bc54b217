//! Adapter hosting: the daemon's side of the seam (`gateway_registry::seam`).
//!
//! Every adapter implements [`gateway_seam::Adapter`] in its own crate
//! (`gateway_hl7v2::Hl7v2`, `gateway_fhir::Fhir`, `gateway_desktop::Desktop`,
//! `gateway_x12::X12`, `gateway_davinci_pas::DavinciPas`). This module only
//! connects each one to its field on [`Settings`] ([`Wiring`]), so the rest
//! of the daemon can treat them alike through [`Hosted`] (`run`,
//! `check-config`, the secrets check, `demo`), implements the seam's
//! [`Host`] over the store ([`StoreHost`]), and runs what an adapter hands
//! back that needs the store itself ([`store_tasks`]: the x12 outbound
//! request path's submission worker, [`x12_requests`]).
//!
//! What the rest of the system knows about an adapter — formats, transports,
//! config section, metrics label — is its entry in `gateway_registry`; its
//! secret files are [`gateway_seam::Adapter::secret_files`]. Those methods
//! have no default, so an adapter that does not declare them does not
//! compile, and [`check_registry`] (run first thing at start) refuses a
//! build whose wired adapters and registry entries disagree, or an endpoint
//! whose transport its adapter did not declare. **Registering an adapter**:
//! 1. its `SPEC` in `gateway_registry::ADAPTERS` and its formats in
//!    `gateway_registry::FORMATS`;
//! 2. one field on `crate::settings::Settings`:
//!    `#[serde(default)] pub <name>: Option<gateway_<name>::Section>,`;
//! 3. one [`Wiring`] line in [`all`].
//!
//! `run` calls [`Hosted::start`] for every adapter whose section is present;
//! `demo` first lets each adapter produce a loopback section
//! ([`Hosted::demo_configure`], or say why it is skipped), starts the daemon,
//! then calls [`Hosted::demo_traffic`] with the state its configure returned.

pub mod x12_requests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gateway_core::GatewayError;
use gateway_core::adapter::BoxFuture;
use gateway_core::case::Case;
use gateway_registry::AdapterSpec;
pub use gateway_registry::seam::{
    Adapter, AdapterContext, AuditRecord, DemoEnv, DemoState, Endpoint, EvidenceRecord, Host,
    Paths, Started,
};

use crate::settings::{Problem, Settings};

/// An adapter of the seam tied to its field on [`Settings`].
pub struct Wiring<A: Adapter> {
    /// The adapter.
    pub adapter: A,
    /// Its section, when configured.
    pub section: fn(&Settings) -> Option<&A::Section>,
    /// Where the demo puts the section it configures.
    pub section_mut: fn(&mut Settings) -> &mut Option<A::Section>,
}

/// An adapter as the daemon hosts it (a [`Wiring`] with the section type
/// erased).
pub trait Hosted: Sync {
    /// This adapter's registry entry.
    fn spec(&self) -> &'static AdapterSpec;

    /// The adapter name (`hl7v2`, …), as used in metrics and case sources.
    fn name(&self) -> &'static str {
        self.spec().name
    }

    /// True when `settings` has this adapter's section.
    fn configured(&self, settings: &Settings) -> bool;

    /// The secret files the section configures, each with its config key.
    fn secret_files(&self, settings: &Settings) -> Vec<(String, PathBuf)>;

    /// Keys of secrets written inline in the section.
    fn inline_secrets(&self, settings: &Settings) -> Vec<&'static str>;

    /// Names of the mapping profiles the section refers to.
    fn profiles(&self, settings: &Settings) -> Vec<String>;

    /// Semantic checks of the section, one [`Problem`] per finding.
    fn check(&self, settings: &Settings, config_file: &Path, problems: &mut Vec<Problem>);

    /// Starts every configured instance (nothing when not configured).
    fn start<'a>(
        &'a self,
        settings: &'a Settings,
        context: AdapterContext,
    ) -> BoxFuture<'a, anyhow::Result<Started>>;

    /// Fills the section for a loopback demo; returns the demo's state, or
    /// why the demo skips this adapter.
    fn demo_configure(&self, settings: &mut Settings, env: &DemoEnv) -> Result<DemoState, String>;

    /// Sends the demo's traffic to the started adapter.
    fn demo_traffic<'a>(
        &'a self,
        started: &'a Started,
        state: &'a mut DemoState,
        host: Arc<dyn Host>,
        env: &'a DemoEnv,
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// The [`Paths`] of `settings` read from `config_file`.
pub fn paths(settings: &Settings, config_file: &Path) -> Paths {
    Paths {
        config_file: config_file.to_owned(),
        mappings_dir: settings.mappings_dir.clone(),
    }
}

impl<A: Adapter> Hosted for Wiring<A> {
    fn spec(&self) -> &'static AdapterSpec {
        self.adapter.spec()
    }

    fn configured(&self, settings: &Settings) -> bool {
        (self.section)(settings).is_some()
    }

    fn secret_files(&self, settings: &Settings) -> Vec<(String, PathBuf)> {
        (self.section)(settings)
            .map(|s| self.adapter.secret_files(s))
            .unwrap_or_default()
    }

    fn inline_secrets(&self, settings: &Settings) -> Vec<&'static str> {
        (self.section)(settings)
            .map(|s| self.adapter.inline_secrets(s))
            .unwrap_or_default()
    }

    fn profiles(&self, settings: &Settings) -> Vec<String> {
        (self.section)(settings)
            .map(|s| self.adapter.profiles(s))
            .unwrap_or_default()
    }

    fn check(&self, settings: &Settings, config_file: &Path, problems: &mut Vec<Problem>) {
        if let Some(section) = (self.section)(settings) {
            let paths = paths(settings, config_file);
            self.adapter.check(section, &paths, problems);
        }
    }

    fn start<'a>(
        &'a self,
        settings: &'a Settings,
        context: AdapterContext,
    ) -> BoxFuture<'a, anyhow::Result<Started>> {
        Box::pin(async move {
            match (self.section)(settings) {
                Some(section) => Ok(self.adapter.start(section, context).await?),
                None => Ok(Started::default()),
            }
        })
    }

    fn demo_configure(&self, settings: &mut Settings, env: &DemoEnv) -> Result<DemoState, String> {
        let demo = self.adapter.demo_configure(env)?;
        *(self.section_mut)(settings) = Some(demo.section);
        Ok(demo.state)
    }

    fn demo_traffic<'a>(
        &'a self,
        started: &'a Started,
        state: &'a mut DemoState,
        host: Arc<dyn Host>,
        env: &'a DemoEnv,
    ) -> BoxFuture<'a, Result<String, String>> {
        self.adapter.demo_traffic(started, state, host, env)
    }
}

static HL7V2: Wiring<gateway_hl7v2::Hl7v2> = Wiring {
    adapter: gateway_hl7v2::Hl7v2,
    section: |s| s.hl7v2.as_ref(),
    section_mut: |s| &mut s.hl7v2,
};
static FHIR: Wiring<gateway_fhir::Fhir> = Wiring {
    adapter: gateway_fhir::Fhir,
    section: |s| s.fhir.as_ref(),
    section_mut: |s| &mut s.fhir,
};
static DESKTOP: Wiring<gateway_desktop::Desktop> = Wiring {
    adapter: gateway_desktop::Desktop,
    section: |s| s.desktop.as_ref(),
    section_mut: |s| &mut s.desktop,
};
static X12: Wiring<gateway_x12::X12> = Wiring {
    adapter: gateway_x12::X12,
    section: |s| s.x12.as_ref(),
    section_mut: |s| &mut s.x12,
};
static DAVINCI_PAS: Wiring<gateway_davinci_pas::DavinciPas> = Wiring {
    adapter: gateway_davinci_pas::DavinciPas,
    section: |s| s.davinci_pas.as_ref(),
    section_mut: |s| &mut s.davinci_pas,
};

/// Every adapter wired into this build, in start order.
pub fn all() -> Vec<&'static dyn Hosted> {
    vec![&HL7V2, &FHIR, &DESKTOP, &X12, &DAVINCI_PAS]
}

/// Checks that the adapters wired here are exactly the registry's, in its
/// order, and that the registry itself is complete (see
/// [`gateway_registry::check`]).
pub fn check_registry() -> Result<(), Vec<String>> {
    check_wiring(&all(), gateway_registry::ADAPTERS)
}

/// [`check_registry`] for a given wiring and registry.
pub fn check_wiring(wired: &[&dyn Hosted], registry: &[AdapterSpec]) -> Result<(), Vec<String>> {
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

/// The tasks the daemon runs over `store` for what a started adapter handed
/// back in its handles (found by type): the x12 outbound request path's
/// submission worker, whose queue is a store table. They stop with
/// `shutdown` (the adapters' stop) and count as the adapter's tasks.
pub fn store_tasks(
    started: &Started,
    store: &gateway_store::Store,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    x12_requests::spawn(started, store, shutdown)
        .into_iter()
        .collect()
}

/// Refuses an endpoint whose transport `adapter` did not declare.
pub fn check_endpoints(adapter: &dyn Hosted, started: &Started) -> Result<(), String> {
    gateway_registry::seam::check_endpoints(adapter.spec(), started)
}

/// Runs every configured adapter's [`Hosted::check`].
pub fn check_all(settings: &Settings, config_file: &Path, problems: &mut Vec<Problem>) {
    for adapter in all() {
        if adapter.configured(settings) {
            adapter.check(settings, config_file, problems);
        }
    }
}

/// The seam's [`Host`] over the daemon's store: durable counters (X12
/// control numbers), audit rows and evidence. Adapters never see the store.
#[derive(Clone)]
pub struct StoreHost {
    store: gateway_store::Store,
}

impl StoreHost {
    /// A host over `store`.
    pub fn new(store: gateway_store::Store) -> Self {
        StoreHost { store }
    }
}

impl Host for StoreHost {
    fn allocate(
        &self,
        scope: &str,
        count: u32,
        max: u64,
    ) -> BoxFuture<'_, Result<Vec<u64>, GatewayError>> {
        let scope = scope.to_owned();
        Box::pin(async move {
            self.store
                .allocate_control_numbers(&scope, count, max)
                .await
                .map_err(GatewayError::from)
        })
    }

    fn allocate_many<'a>(
        &'a self,
        requests: &'a [(String, u32)],
        max: u64,
    ) -> BoxFuture<'a, Result<Vec<Vec<u64>>, GatewayError>> {
        Box::pin(async move {
            self.store
                .allocate_control_numbers_many(requests.to_vec(), max)
                .await
                .map_err(GatewayError::from)
        })
    }

    fn audit(&self, record: AuditRecord) -> BoxFuture<'_, Result<(), GatewayError>> {
        Box::pin(async move {
            let entry = gateway_store::AuditEntry {
                actor: record.actor,
                action: record.action,
                target: record.target,
                detail: record.detail,
                case_id: record.case_id,
            };
            self.store
                .audit(entry)
                .await
                .map(|_| ())
                .map_err(GatewayError::from)
        })
    }

    fn keep_evidence(&self, evidence: EvidenceRecord) -> BoxFuture<'_, Result<i64, GatewayError>> {
        Box::pin(async move {
            let new = gateway_store::NewEvidence {
                adapter: evidence.adapter,
                kind: evidence.kind,
                case_id: evidence.case_id,
                content_type: evidence.content_type,
                body: evidence.body,
                detail: evidence.detail,
            };
            self.store
                .put_evidence(new)
                .await
                .map_err(GatewayError::from)
        })
    }

    fn case(&self, case_id: &str) -> BoxFuture<'_, Result<Option<Case>, GatewayError>> {
        let case_id = case_id.to_owned();
        Box::pin(async move {
            self.store
                .get_case(&case_id)
                .await
                .map(|record| record.map(|r| r.case))
                .map_err(GatewayError::from)
        })
    }
    fn case_by_reference<'a>(
        &'a self,
        adapter: &'a str,
        name: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Option<Case>, GatewayError>> {
        Box::pin(async move {
            self.store
                .case_by_reference(adapter, name, value)
                .await
                .map(|record| record.map(|r| r.case))
                .map_err(GatewayError::from)
        })
    }

    fn case_of_message(
        &self,
        message_id: i64,
    ) -> BoxFuture<'_, Result<Option<Case>, GatewayError>> {
        Box::pin(async move {
            self.store
                .case_of_message(message_id)
                .await
                .map(|record| record.map(|r| r.case))
                .map_err(GatewayError::from)
        })
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
        let wired: Vec<&dyn Hosted> = vec![&HL7V2, &FHIR, &DESKTOP, &DAVINCI_PAS];
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
    fn each_adapter_s_settings_field_is_its_registry_section() {
        let dir = tempfile::tempdir().expect("tmp");
        for adapter in all() {
            let section = adapter.spec().section;
            let path = dir.path().join(format!("{section}.toml"));
            std::fs::write(
                &path,
                format!(
                    "[gateway]\ntenant = \"t\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[{section}]\n"
                ),
            )
            .expect("write");
            let loaded = crate::settings::load_with_env(&path, Vec::<(String, String)>::new());
            // Either the empty section is this adapter's (configured), or it is
            // refused for a key *inside* it — never as an unknown field.
            let configured = loaded
                .settings
                .as_ref()
                .is_some_and(|s| adapter.configured(s));
            let inside = loaded.problems.iter().any(|p| {
                p.key
                    .as_deref()
                    .is_some_and(|k| k.starts_with(&format!("{section}.")))
            });
            assert!(
                configured || inside,
                "[{section}] is not {}'s section: {:?}",
                adapter.name(),
                loaded.problems
            );
            assert!(
                !loaded
                    .problems
                    .iter()
                    .any(|p| p.message.contains("unknown field")),
                "{:?}",
                loaded.problems
            );
        }
    }

    #[test]
    fn an_endpoint_with_an_undeclared_transport_is_refused() {
        let mut started = Started::default();
        started.endpoints.push(Endpoint {
            description: "MLLP listener (profile epic)".to_owned(),
            transport: gateway_registry::Transport::Mllp,
            addr: None,
            profile: Some("epic".to_owned()),
        });
        assert_eq!(check_endpoints(&HL7V2, &started), Ok(()));
        let error = check_endpoints(&X12, &started).expect_err("x12 has no MLLP");
        assert!(error.contains("transport mllp"), "{error}");
    }
}
