//! Desktop bridge wiring: the `[desktop]` config section, starting the bridge
//! (scheduled reads into the pipeline, write-back of decisions for cases whose
//! source adapter is `desktop`), and the demo against the legacy-EHR test
//! application when an X display is available.
//!
//! The demo never pretends: without `DISPLAY`, or without python3-tk for the
//! test application, it says plainly that it skipped the desktop bridge.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_core::adapter::{BoxFuture, IntakeOutcome, WriteBack};
use gateway_desktop::bridge::{DesktopBridge, DesktopConfig, DirectorySink, EvidenceSink};

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
}

static DEMO: Mutex<Option<DemoState>> = Mutex::new(None);

fn demo_state() -> std::sync::MutexGuard<'static, Option<DemoState>> {
    DEMO.lock().unwrap_or_else(|p| p.into_inner())
}

impl Adapter for Desktop {
    fn name(&self) -> &'static str {
        gateway_desktop::ADAPTER
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
            let evidence_dir = section
                .evidence_dir
                .clone()
                .unwrap_or_else(|| context.data_dir.join("desktop-evidence"));
            let sink: Arc<dyn EvidenceSink> = Arc::new(DirectorySink::new(evidence_dir));
            let bridge = x11_bridge(section.clone(), sink)?;
            let mut started = Started::default();
            if bridge.read_playbook().is_some() {
                let trigger = Arc::new(tokio::sync::Notify::new());
                let reads = bridge.clone().serve_reads(
                    Arc::clone(&context.pipeline),
                    trigger,
                    context.shutdown.clone().cancelled_owned(),
                );
                started.tasks.push(tokio::spawn(reads));
                started.endpoints.push(Endpoint {
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
        let tk = Command::new("python3")
            .args(["-c", "import tkinter"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
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
        section.evidence_dir = Some(env.temp_dir.join("desktop-evidence"));
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

/// Reads the order screen into a case, then writes a made-up approval for it
/// back into the authorization screen and checks what the application saved.
async fn demo_run(state: &DemoState) -> Result<String, String> {
    let (Some(bridge), Some(pipeline)) = (&state.bridge, &state.pipeline) else {
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
    let case: gateway_core::Case = serde_json::from_value(serde_json::json!({
        "case_id": case_id,
        "tenant": "mso-demo",
        "source": {"adapter": "desktop", "profile": "legacy-desktop",
                   "received_at": jiff::Timestamp::now().to_string()},
        "status": "approved",
        "decision": {"status": "approved", "authorization_number": "PA-DEMO-0001",
                     "effective": {"start": "2026-12-01", "end": "2027-02-28"},
                     "note": "demo approval (synthetic)"}
    }))
    .map_err(|e| format!("demo case: {e}"))?;
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

/// The bridge over the X11 driver, which exists only on Unix systems.
#[cfg(unix)]
fn x11_bridge(
    section: DesktopConfig,
    sink: Arc<dyn EvidenceSink>,
) -> anyhow::Result<DesktopBridge> {
    Ok(DesktopBridge::x11(section, Some(sink))?)
}

/// The bridge over the X11 driver, which exists only on Unix systems.
#[cfg(not(unix))]
fn x11_bridge(
    _section: DesktopConfig,
    _sink: Arc<dyn EvidenceSink>,
) -> anyhow::Result<DesktopBridge> {
    anyhow::bail!("the desktop adapter drives an X11 display, which exists only on Unix systems")
}
