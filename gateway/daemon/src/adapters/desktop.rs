//! Desktop bridge wiring: the `[desktop]` config section, starting the bridge
//! (scheduled reads into the pipeline, write-back of decisions for cases whose
//! source adapter is `desktop`), the store-backed evidence sink, the operator's
//! "read now" trigger, and the demo against the legacy-EHR test application
//! when an X display is available.
//!
//! *Evidence:* an aborted playbook's screenshot can show a chart, so it goes
//! into the store's `evidence` table ([`StoreSink`]), read back one at a time
//! through the audited `GET /api/v1/evidence/{id}` — not into loose files.
//! `desktop.evidence_dir` is ignored by the daemon (a warning says so).
//!
//! *Read now:* the admin server finds the running bridge by the daemon's store
//! file ([`read_trigger`]); one daemon per data directory is enforced by the
//! instance lock, so the store path names exactly one daemon in a process.
//!
//! The demo never pretends: without `DISPLAY`, or without python3-tk for the
//! test application, it says plainly that it skipped the desktop bridge.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_core::adapter::{BoxFuture, IntakeOutcome, WriteBack};
use gateway_desktop::bridge::{AbortEvidence, DesktopBridge, DesktopConfig, EvidenceSink, ReadNow};

use super::{Adapter, AdapterContext, DemoEnv, Endpoint, Started};
use crate::settings::{Problem, Settings};

/// The `[desktop]` section: see [`DesktopConfig`].
pub type Section = DesktopConfig;

/// The desktop adapter.
pub struct Desktop;

/// What the demo keeps between configuring, starting and sending traffic.
struct DemoState {
    app: Child,
    saved: PathBuf,
    bridge: Option<DesktopBridge>,
    pipeline: Option<Arc<dyn gateway_core::adapter::IntakePipeline>>,
    store: Option<gateway_store::Store>,
}

static DEMO: Mutex<Option<DemoState>> = Mutex::new(None);

fn demo_state() -> std::sync::MutexGuard<'static, Option<DemoState>> {
    DEMO.lock().unwrap_or_else(|p| p.into_inner())
}

impl Adapter for Desktop {
    fn spec(&self) -> &'static gateway_registry::AdapterSpec {
        &gateway_registry::DESKTOP
    }

    /// The desktop adapter reads no secret file: it drives the screen.
    fn secret_files(&self, _settings: &Settings) -> Vec<(String, PathBuf)> {
        Vec::new()
    }

    fn inline_secrets(&self, _settings: &Settings) -> Vec<&'static str> {
        Vec::new()
    }

    fn configured(&self, settings: &Settings) -> bool {
        settings.desktop.is_some()
    }

    fn profiles(&self, settings: &Settings) -> Vec<String> {
        settings.desktop.iter().map(|s| s.profile.clone()).collect()
    }

    fn check(&self, settings: &Settings, config_file: &Path, problems: &mut Vec<Problem>) {
        let Some(section) = &settings.desktop else {
            return;
        };
        let origin = config_file.display().to_string();
        for (key, path) in [
            ("desktop.read_playbook", &section.read_playbook),
            ("desktop.write_playbook", &section.write_playbook),
        ] {
            let Some(path) = path else { continue };
            if let Err(e) = gateway_desktop::Playbook::load(path) {
                problems.push(Problem {
                    origin: origin.clone(),
                    key: Some(key.to_owned()),
                    message: e.to_string(),
                });
            }
        }
        if section.read_playbook.is_none() && section.write_playbook.is_none() {
            problems.push(Problem {
                origin,
                key: Some("desktop".to_owned()),
                message: "configure `read_playbook`, `write_playbook` or both".to_owned(),
            });
        }
    }

    fn start<'a>(
        &'a self,
        settings: &'a Settings,
        context: AdapterContext,
    ) -> BoxFuture<'a, anyhow::Result<Started>> {
        Box::pin(async move {
            let Some(section) = settings.desktop.clone() else {
                return Ok(Started::default());
            };
            if section.evidence_dir.is_some() {
                tracing::warn!(
                    "desktop.evidence_dir is ignored: abort screenshots are kept in the store (GET /api/v1/evidence/{{id}})"
                );
            }
            let sink: Arc<dyn EvidenceSink> = Arc::new(StoreSink {
                store: context.store.clone(),
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
                started.read_trigger = Some(ReadTrigger {
                    bridge: bridge.clone(),
                    pipeline: Arc::clone(&context.pipeline),
                });
                started.tasks.push(tokio::spawn(reads));
                started.endpoints.push(Endpoint {
                    transport: gateway_registry::Transport::Ui,
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
            if let Some(state) = demo_state().as_mut() {
                state.bridge = Some(bridge);
                state.pipeline = Some(Arc::clone(&context.pipeline));
                state.store = Some(context.store.clone());
            }
            Ok(started)
        })
    }

    fn demo_configure(&self, settings: &mut Settings, env: &DemoEnv) -> Result<(), String> {
        let skipped = "skipped the desktop bridge";
        let display = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty());
        let Some(display) = display else {
            return Err(format!(
                "{skipped}: DISPLAY is not set (no X display; run the demo under `xvfb-run -a` with xvfb and python3-tk installed to include it)"
            ));
        };
        let tk = gateway_desktop::legacy_app::python_tk_available();
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
        let mut state = DemoState {
            app,
            saved,
            bridge: None,
            pipeline: None,
            store: None,
        };
        let until = Instant::now() + Duration::from_secs(15);
        while !ready.exists() {
            if Instant::now() > until || state.app.try_wait().ok().flatten().is_some() {
                let _ = state.app.kill();
                let _ = state.app.wait();
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
        settings.desktop = Some(section);
        *demo_state() = Some(state);
        Ok(())
    }

    fn demo_traffic<'a>(
        &'a self,
        _started: &'a Started,
        _env: &'a DemoEnv,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let taken = demo_state().take();
            let Some(mut state) = taken else {
                return Err("the desktop demo was not configured".to_owned());
            };
            let result = demo_run(&state).await;
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
async fn demo_run(state: &DemoState) -> Result<String, String> {
    let (Some(bridge), Some(pipeline), Some(store)) =
        (&state.bridge, &state.pipeline, &state.store)
    else {
        return Err("the desktop bridge did not start".to_owned());
    };
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
    let mut case = store
        .get_case(&case_id)
        .await
        .map_err(|e| format!("demo case: {e}"))?
        .ok_or_else(|| format!("demo case {case_id} is not in the store"))?
        .case;
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
) -> anyhow::Result<DesktopBridge> {
    Ok(DesktopBridge::native(section, Some(sink))?)
}

/// No desktop driver exists for this platform.
#[cfg(not(any(unix, windows)))]
fn x11_bridge(
    _section: DesktopConfig,
    _sink: Arc<dyn EvidenceSink>,
) -> anyhow::Result<DesktopBridge> {
    anyhow::bail!("the desktop adapter drives X11 (Unix) or Win32 (Windows) desktops only")
}

/// Keeps abort evidence in the daemon's store (`evidence` table): the
/// screenshot when one was taken, else the PHI-free abort note as JSON.
struct StoreSink {
    store: gateway_store::Store,
    /// The daemon's runtime: [`EvidenceSink::keep`] runs on the blocking pool.
    runtime: tokio::runtime::Handle,
}

impl EvidenceSink for StoreSink {
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
        let new = gateway_store::NewEvidence {
            adapter: gateway_desktop::ADAPTER.to_owned(),
            kind: kind.to_owned(),
            case_id: evidence.case_id.clone(),
            content_type: content_type.to_owned(),
            body,
            detail: Some(detail),
        };
        let store = self.store.clone();
        self.runtime
            .block_on(async move { store.put_evidence(new).await })
            .map(|id| format!("evidence:{id}"))
            .map_err(|e| e.to_string())
    }
}

/// Runs the read playbook of a started bridge on an operator's request.
#[derive(Clone)]
pub struct ReadTrigger {
    bridge: DesktopBridge,
    pipeline: Arc<dyn gateway_core::adapter::IntakePipeline>,
}

impl ReadTrigger {
    /// Reads now, or [`ReadNow::Busy`] while another playbook runs.
    pub async fn read_now(&self) -> ReadNow {
        self.bridge.read_now(self.pipeline.as_ref()).await
    }
}
