//! The desktop adapter's facade on the seam ([`Desktop`], a
//! [`gateway_seam::Adapter`]): the `[desktop]` config section, starting the
//! bridge (scheduled reads into the pipeline, write-back of decisions for
//! cases whose source adapter is `desktop`), the host-backed evidence sink,
//! the operator's "read now" trigger, and the demo against the legacy-EHR
//! test application when an X display is available.
//!
//! *Evidence:* an aborted playbook's screenshot can show a chart, so it goes
//! to the host ([`gateway_seam::Host::keep_evidence`]: the daemon's store
//! `evidence` table), read back one at a time through the audited
//! `GET /api/v1/evidence/{id}` — not into loose files. `desktop.evidence_dir`
//! is ignored by the daemon (a warning says so).
//!
//! *Read now:* [`ReadTrigger`] is a handle in [`Started::handles`]; the admin
//! server gets it from the started adapter as a value (no global).
//!
//! The demo never pretends: without `DISPLAY`, or without python3-tk for the
//! test application, it says plainly that it skipped the desktop bridge.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::SourceFormat;
use gateway_core::adapter::{BoxFuture, IntakeOutcome, IntakePipeline, WriteBack};
use gateway_seam::{
    Adapter, AdapterContext, AdapterSpec, Demo, DemoEnv, DemoState, Endpoint, EvidenceRecord, Host,
    Paths, Problem, StartError, Started, Transport,
};

use crate::bridge::{AbortEvidence, DesktopBridge, DesktopConfig, EvidenceSink, ReadNow};

/// This adapter's registry entry.
pub const SPEC: AdapterSpec = AdapterSpec {
    name: crate::ADAPTER,
    section: "desktop",
    metrics_label: crate::ADAPTER,
    formats: &[SourceFormat::Desktop],
    transports: &[Transport::Ui, Transport::WriteBack],
    acknowledges: false,
};

/// The `[desktop]` section: see [`DesktopConfig`].
pub type Section = DesktopConfig;

/// The desktop adapter.
pub struct Desktop;

/// What the demo keeps between configuring and sending traffic: the test
/// application (stopped when this is dropped) and the file it saves to.
struct DesktopDemo {
    app: Child,
    saved: PathBuf,
}

impl Drop for DesktopDemo {
    fn drop(&mut self) {
        let _ = self.app.kill();
        let _ = self.app.wait();
    }
}

impl Adapter for Desktop {
    type Section = Section;

    fn spec(&self) -> &'static AdapterSpec {
        &SPEC
    }

    /// The desktop adapter reads no secret file: it drives the screen.
    fn secret_files(&self, _section: &Section) -> Vec<(String, PathBuf)> {
        Vec::new()
    }

    fn inline_secrets(&self, _section: &Section) -> Vec<&'static str> {
        Vec::new()
    }

    fn profiles(&self, section: &Section) -> Vec<String> {
        vec![section.profile.clone()]
    }

    fn check(&self, section: &Section, paths: &Paths, problems: &mut Vec<Problem>) {
        for (key, path) in [
            ("desktop.read_playbook", &section.read_playbook),
            ("desktop.write_playbook", &section.write_playbook),
        ] {
            let Some(path) = path else { continue };
            if let Err(e) = crate::Playbook::load(path) {
                problems.push(paths.problem(key, e.to_string()));
            }
        }
        if section.read_playbook.is_none() && section.write_playbook.is_none() {
            problems.push(paths.problem(
                "desktop",
                "configure `read_playbook`, `write_playbook` or both",
            ));
        }
    }

    fn start<'a>(
        &'a self,
        section: &'a Section,
        context: AdapterContext,
    ) -> BoxFuture<'a, Result<Started, StartError>> {
        Box::pin(async move {
            let section = section.clone();
            if section.evidence_dir.is_some() {
                tracing::warn!(
                    "desktop.evidence_dir is ignored: abort screenshots are kept in the store (GET /api/v1/evidence/{{id}})"
                );
            }
            let sink: Arc<dyn EvidenceSink> = Arc::new(HostSink {
                host: Arc::clone(&context.host),
                runtime: tokio::runtime::Handle::current(),
            });
            let bridge = x11_bridge(section.clone(), sink)?;
            let mut started = Started::default();
            if bridge.read_playbook().is_some() {
                let trigger = Arc::new(tokio::sync::Notify::new());
                let reads = bridge.clone().serve_reads(
                    Arc::clone(&context.pipeline),
                    trigger,
                    context.shutdown.clone().cancelled_owned(),
                );
                started.handles.push(Arc::new(ReadTrigger {
                    bridge: bridge.clone(),
                    pipeline: Arc::clone(&context.pipeline),
                }));
                started.tasks.push(tokio::spawn(reads));
                started.endpoints.push(Endpoint {
                    transport: Transport::Ui,
                    description: format!(
                        "desktop read playbook {} ({})",
                        section
                            .read_playbook
                            .as_deref()
                            .map(Path::display)
                            .map(|d| d.to_string())
                            .unwrap_or_default(),
                        match section.read_interval_secs.filter(|s| *s > 0) {
                            Some(s) => format!("every {s} s"),
                            None => "on trigger".to_owned(),
                        }
                    ),
                    addr: None,
                    profile: Some(section.profile.clone()),
                });
            }
            if bridge.write_playbook().is_some() {
                started.writebacks.push((
                    Arc::new(bridge.clone()) as Arc<dyn WriteBack>,
                    Some(section.profile.clone()),
                ));
            }
            Ok(started)
        })
    }

    fn demo_configure(&self, env: &DemoEnv) -> Result<Demo<Section>, String> {
        let skipped = "skipped the desktop bridge";
        let display = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty());
        let Some(display) = display else {
            return Err(format!(
                "{skipped}: DISPLAY is not set (no X display; run the demo under `xvfb-run -a` with xvfb and python3-tk installed to include it)"
            ));
        };
        let tk = crate::legacy_app::python_tk_available();
        if !tk {
            return Err(format!(
                "{skipped}: python3 with tkinter (python3-tk) is missing for the legacy-EHR test application"
            ));
        }
        let app_script = env
            .repo_root
            .join("adapters/desktop/tests/legacy_ehr_app.py");
        let order = env
            .repo_root
            .join("sample-messages/desktop/legacy-desktop/order-screen.json");
        let saved = env.temp_dir.join("desktop-auth-saved.json");
        let ready = env.temp_dir.join("desktop-app-ready");
        let app = Command::new("python3")
            .arg(&app_script)
            .arg("--order")
            .arg(&order)
            .arg("--out")
            .arg(&saved)
            .arg("--ready")
            .arg(&ready)
            .arg("--parent-pid")
            .arg(std::process::id().to_string())
            .env("DISPLAY", &display)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{skipped}: cannot start the legacy-EHR test application: {e}"))?;
        let mut state = DesktopDemo { app, saved };
        let until = Instant::now() + Duration::from_secs(15);
        while !ready.exists() {
            if Instant::now() > until || state.app.try_wait().ok().flatten().is_some() {
                // Dropping the state stops the application.
                return Err(format!(
                    "{skipped}: the legacy-EHR test application did not start on DISPLAY={display}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let playbooks = env.repo_root.join("mappings/legacy-desktop/playbooks");
        let mut section = DesktopConfig::new(
            Some(playbooks.join("read-order.toml")),
            Some(playbooks.join("write-decision.toml")),
        );
        section.display = Some(display);
        Ok(Demo {
            section,
            state: Box::new(state),
        })
    }

    fn demo_traffic<'a>(
        &'a self,
        started: &'a Started,
        state: &'a mut DemoState,
        host: Arc<dyn Host>,
        _env: &'a DemoEnv,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let Some(state) = state.downcast_mut::<DesktopDemo>() else {
                return Err("the desktop demo was not configured".to_owned());
            };
            let result = demo_run(state, started, host.as_ref()).await;
            let _ = state.app.kill();
            let _ = state.app.wait();
            result
        })
    }
}

/// Reads the order screen into a case, then writes a made-up approval for the
/// stored case (its patient is what the write playbook's context checks
/// compare with the screen's banner) back into the authorization screen and
/// checks what the application saved.
async fn demo_run(
    state: &DesktopDemo,
    started: &Started,
    host: &dyn Host,
) -> Result<String, String> {
    let Some(trigger) = started.handle::<ReadTrigger>() else {
        return Err("the desktop bridge did not start".to_owned());
    };
    let (bridge, pipeline) = (&trigger.bridge, &trigger.pipeline);
    let outcome = bridge
        .read_once(pipeline.as_ref())
        .await
        .map_err(|e| format!("desktop read failed: {e}"))?;
    let case_id = match outcome {
        IntakeOutcome::Accepted { case_id, .. } => case_id,
        IntakeOutcome::Duplicate { .. } => return Ok("desktop: order screen already read".into()),
        IntakeOutcome::Kept { reason, .. } => return Ok(format!("desktop: read kept ({reason})")),
        IntakeOutcome::Rejected { error, .. } => {
            return Err(format!("desktop read rejected: {error}"));
        }
    };
    let mut case = host
        .case(&case_id)
        .await
        .map_err(|e| format!("demo case: {e}"))?
        .ok_or_else(|| format!("demo case {case_id} is not in the store"))?;
    case.status = gateway_core::case::CaseStatus::Approved;
    case.decision = Some(
        serde_json::from_value(serde_json::json!({
            "status": "approved", "authorization_number": "PA-DEMO-0001",
            "effective": {"start": "2026-12-01", "end": "2027-02-28"},
            "note": "demo approval (synthetic)"
        }))
        .map_err(|e| format!("demo decision: {e}"))?,
    );
    let receipt = bridge
        .apply(&case)
        .await
        .map_err(|e| format!("desktop write-back failed: {e}"))?;
    let saved = std::fs::read_to_string(&state.saved)
        .map_err(|_| "the legacy application saved nothing".to_owned())?;
    let ok = serde_json::from_str::<serde_json::Value>(&saved)
        .ok()
        .is_some_and(|v| v["auth_number"] == "PA-DEMO-0001" && v["status"] == "APPROVED");
    if !ok {
        return Err("the legacy application saved something else than was typed".to_owned());
    }
    Ok(format!(
        "desktop: read the order screen into {case_id}; {}",
        receipt.detail
    ))
}

/// The bridge over this platform's driver: X11 on Unix, Win32 on Windows
/// (where the daemon must run in the interactive session that shows the EHR,
/// see adapters/desktop/README.md).
#[cfg(any(unix, windows))]
fn x11_bridge(
    section: DesktopConfig,
    sink: Arc<dyn EvidenceSink>,
) -> Result<DesktopBridge, StartError> {
    DesktopBridge::native(section, Some(sink)).map_err(StartError::other)
}

/// No desktop driver exists for this platform.
#[cfg(not(any(unix, windows)))]
fn x11_bridge(
    _section: DesktopConfig,
    _sink: Arc<dyn EvidenceSink>,
) -> Result<DesktopBridge, StartError> {
    Err(StartError::other(
        "the desktop adapter drives X11 (Unix) or Win32 (Windows) desktops only",
    ))
}

/// Keeps abort evidence with the host (the daemon's store `evidence` table):
/// the screenshot when one was taken, else the PHI-free abort note as JSON.
struct HostSink {
    host: Arc<dyn Host>,
    /// The daemon's runtime: [`EvidenceSink::keep`] runs on the blocking pool.
    runtime: tokio::runtime::Handle,
}

impl EvidenceSink for HostSink {
    fn keep(&self, evidence: &AbortEvidence) -> Result<String, String> {
        let detail = serde_json::json!({
            "playbook": evidence.playbook,
            "step": evidence.step,
            "reason": evidence.reason,
            "message": evidence.message,
        })
        .to_string();
        let (kind, content_type, body) = match &evidence.png {
            Some(png) => ("abort-screenshot", "image/png", png.clone()),
            None => (
                "abort-note",
                "application/json",
                detail.clone().into_bytes(),
            ),
        };
        let new = EvidenceRecord {
            adapter: crate::ADAPTER.to_owned(),
            kind: kind.to_owned(),
            case_id: evidence.case_id.clone(),
            content_type: content_type.to_owned(),
            body,
            detail: Some(detail),
        };
        let host = Arc::clone(&self.host);
        self.runtime
            .block_on(async move { host.keep_evidence(new).await })
            .map(|id| format!("evidence:{id}"))
            .map_err(|e| e.to_string())
    }
}

/// Runs the read playbook of a started bridge on an operator's request.
#[derive(Clone)]
pub struct ReadTrigger {
    bridge: DesktopBridge,
    pipeline: Arc<dyn IntakePipeline>,
}

impl ReadTrigger {
    /// Reads now, or [`ReadNow::Busy`] while another playbook runs.
    pub async fn read_now(&self) -> ReadNow {
        self.bridge.read_now(self.pipeline.as_ref()).await
    }
}
