//! Shared harness for the desktop end-to-end tests and the timing bench: a
//! private Xvfb per test binary, the test program re-run inside it with
//! `DISPLAY` set (the clipboard library reads only `DISPLAY`, and setting
//! environment variables in a running multi-threaded process is unsound), and
//! the legacy-EHR test application started per scenario.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[cfg(unix)]
use gateway_desktop::xvfb::{VirtualDisplay, XvfbError};

/// Set in the child process that runs the scenarios.
pub const CHILD_ENV: &str = "GATEWAY_DESKTOP_E2E_CHILD";

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// Skips (prints why and returns `None`) when a tool is missing, unless `CI`
/// is set, in which case a missing tool fails the test.
pub fn require(ok: bool, what: &str) -> Option<()> {
    if ok {
        return Some(());
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} is missing and CI is set: .ci/install.d/50-desktop.sh installs it");
    }
    eprintln!("SKIPPED desktop end-to-end test: {what} is missing (install xvfb, python3-tk)");
    None
}

/// True when `python3` can import tkinter.
#[allow(unused_imports)] // only the Unix harness calls it
pub use gateway_desktop::legacy_app::python_tk_available;

/// Starts Xvfb, or explains why not (None = skip).
#[cfg(unix)]
pub fn start_display() -> Option<VirtualDisplay> {
    require(python_tk_available(), "python3 with tkinter (python3-tk)")?;
    match VirtualDisplay::start(1280, 800, Duration::from_secs(10)) {
        Ok(d) => Some(d),
        Err(XvfbError::NotInstalled) => {
            require(false, "Xvfb")?;
            None
        }
        Err(e) => panic!("Xvfb is installed but did not start: {e}"),
    }
}

/// Set in the child process: the Xvfb server's pid (to SIGSTOP it).
pub const XVFB_PID_ENV: &str = "GATEWAY_DESKTOP_E2E_XVFB_PID";

/// Re-runs `args` of the current executable with `DISPLAY` set to `display`'s
/// and the child marker; returns its combined output and success.
#[cfg(unix)]
pub fn rerun_in_display(display: &VirtualDisplay, args: &[&str]) -> (bool, String) {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .args(args)
        .env("DISPLAY", display.display())
        .env(XVFB_PID_ENV, display.pid().to_string())
        .env(CHILD_ENV, "1")
        .output()
        .expect("re-run the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A running legacy-EHR test application; killed on drop.
pub struct LegacyApp {
    child: Child,
    /// Where Save writes the authorization screen's content.
    pub out: PathBuf,
    /// Every key/button event the app received.
    pub keylog: PathBuf,
    _dir: tempfile::TempDir,
}

/// Options of one app instance.
#[derive(Default)]
pub struct AppOptions {
    /// Auth number entry refuses longer input.
    pub max_auth_len: Option<usize>,
    /// A modal "Session Warning" takes the focus back from the auth screen.
    pub modal_popup: bool,
    /// The authorization screen opens on another patient than the order's.
    pub auth_on_other_patient: bool,
    /// The banner switches to another patient when the first key reaches
    /// this authorization entry (`note`, …).
    pub switch_patient_on_key_in: Option<&'static str>,
}

impl LegacyApp {
    /// Starts the app with the sample order and waits until it is mapped.
    pub fn start(options: AppOptions) -> LegacyApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let order = repo_root().join("sample-messages/desktop/legacy-desktop/order-screen.json");
        let out = dir.path().join("auth-saved.json");
        let keylog = dir.path().join("keylog.txt");
        let ready = dir.path().join("ready");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/legacy_ehr_app.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg("--order")
            .arg(&order)
            .arg("--out")
            .arg(&out)
            .arg("--keylog")
            .arg(&keylog)
            .arg("--ready")
            .arg(&ready)
            .stdin(Stdio::null());
        if let Some(n) = options.max_auth_len {
            cmd.arg("--max-auth-len").arg(n.to_string());
        }
        if options.modal_popup {
            cmd.arg("--modal-popup");
        }
        if options.auth_on_other_patient {
            cmd.arg("--auth-on-other-patient");
        }
        if let Some(field) = options.switch_patient_on_key_in {
            cmd.arg("--switch-patient-on-key-in").arg(field);
        }
        let child = cmd.spawn().expect("start legacy_ehr_app.py");
        let app = LegacyApp {
            child,
            out,
            keylog,
            _dir: dir,
        };
        let until = Instant::now() + Duration::from_secs(15);
        while !ready.exists() {
            assert!(Instant::now() < until, "legacy app did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        app
    }

    /// Waits up to `timeout` for the saved authorization JSON.
    pub fn saved(&self, timeout: Duration) -> Option<serde_json::Value> {
        let until = Instant::now() + timeout;
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.out) {
                return Some(serde_json::from_str(&text).expect("saved JSON"));
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The widget names (`note`, `banner_mrn`, `save`, …) of the key/button
    /// events so far, with the event kind: `("key", "note")`.
    pub fn event_widgets(&self) -> Vec<(String, String)> {
        self.events()
            .iter()
            .map(|line| {
                let kind = line.split(' ').next().unwrap_or_default().to_owned();
                let widget = line.rsplit('\t').next().unwrap_or_default().to_owned();
                (kind, widget)
            })
            .collect()
    }

    /// Waits up to `timeout` until `n` events were logged (the app logs
    /// asynchronously from the X server's delivery).
    pub fn wait_events(&self, n: usize, timeout: Duration) -> Vec<String> {
        let until = Instant::now() + timeout;
        loop {
            let events = self.events();
            if events.len() >= n || Instant::now() >= until {
                return events;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The key/button event log lines so far.
    pub fn events(&self) -> Vec<String> {
        std::fs::read_to_string(&self.keylog)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for LegacyApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Maps a read's captures through `mappings/legacy-desktop` into a Case.
pub fn map_captures(
    playbook: &gateway_desktop::Playbook,
    captures: &std::collections::BTreeMap<String, String>,
) -> gateway_core::Case {
    struct Syntaxes;
    impl gateway_mapping::SyntaxProvider for Syntaxes {
        fn syntax(
            &self,
            format: gateway_core::SourceFormat,
        ) -> Option<&dyn gateway_core::path::PathSyntax> {
            match format {
                gateway_core::SourceFormat::Desktop => Some(&gateway_desktop::DesktopPathSyntax),
                _ => None,
            }
        }
    }
    let profile =
        gateway_mapping::Profile::load(&repo_root().join("mappings/legacy-desktop"), &Syntaxes)
            .unwrap_or_else(|e| panic!("legacy-desktop profile loads: {e}"));
    let (_raw, doc) = gateway_desktop::capture::document(
        &playbook.name,
        playbook.record_key.as_deref(),
        captures,
    );
    let mut context = gateway_mapping::MapContext::new("2026-11-22T10:00:00Z");
    context.adapter = Some("desktop".into());
    let outcome = profile.map(&doc, &context);
    outcome.case.unwrap_or_else(|| {
        panic!(
            "no case: {}",
            gateway_mapping::render_all(&outcome.diagnostics)
        )
    })
}

/// Asserts the facts of the sample order (sample-messages/desktop/legacy-desktop/order-screen.json).
pub fn assert_sample_order_case(case: &gateway_core::Case) {
    let v = serde_json::to_value(case).expect("case serializes");
    assert_eq!(v["source"]["adapter"], "desktop");
    assert_eq!(v["source"]["profile"], "legacy-desktop");
    assert_eq!(v["source"]["message_type"], "read-order");
    assert_eq!(v["source"]["control_id"], "ORD-70001");
    assert_eq!(v["status"], "requested");
    assert_eq!(v["references"]["placer_order"], "ORD-70001");
    assert_eq!(
        v["patient"]["identifiers"][0],
        serde_json::json!({"type": "MR", "value": "E10001"})
    );
    assert_eq!(v["patient"]["name"]["family"], "Müller");
    assert_eq!(v["patient"]["name"]["given"], serde_json::json!(["Søren"]));
    assert_eq!(v["patient"]["birth_date"], "1970-01-31");
    assert_eq!(v["patient"]["sex"], "male");
    assert_eq!(
        v["coverages"][0]["payer"],
        serde_json::json!({"id": "60054", "name": "Acme Health Plan"})
    );
    assert_eq!(v["coverages"][0]["member_id"], "W123456789");
    assert_eq!(
        v["services"][0]["code"],
        serde_json::json!({"system": "CPT", "code": "78452"})
    );
    assert_eq!(
        v["diagnoses"][0]["code"],
        serde_json::json!({"system": "ICD-10-CM", "code": "I25.10"})
    );
    assert_eq!(v["diagnoses"][0]["primary"], true);
    assert_eq!(
        case.case_id,
        gateway_core::ids::case_id("mso-demo", "legacy-desktop:ORD-70001")
    );
}
