//! Desktop helpers for the daemon's tests: a private Xvfb and the legacy-EHR
//! test application (`adapters/desktop/tests/legacy_ehr_app.py`). Needs Xvfb
//! and python3-tk (`.ci/install.d/50-desktop.sh`): a test skips with a printed
//! reason when they are missing, and fails when `CI` is set.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_desktop::xvfb::{VirtualDisplay, XvfbError};

/// `true` when `ok`; otherwise prints why `test` is skipped (or fails under CI).
pub fn require(ok: bool, what: &str, test: &str) -> bool {
    if ok {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is missing and CI is set: .ci/install.d/50-desktop.sh installs it"
    );
    eprintln!("SKIPPED {test}: {what} is missing");
    false
}

/// A private Xvfb when Xvfb and python3-tk are installed; `None` (skip)
/// otherwise, a failure under CI.
pub fn display(test: &str) -> Option<VirtualDisplay> {
    let tk = gateway_desktop::legacy_app::python_tk_available();
    if !require(tk, "python3 with tkinter (python3-tk)", test) {
        return None;
    }
    match VirtualDisplay::start(1280, 800, Duration::from_secs(10)) {
        Ok(d) => Some(d),
        Err(XvfbError::NotInstalled) => {
            require(false, "Xvfb", test);
            None
        }
        Err(e) => panic!("Xvfb is installed but did not start: {e}"),
    }
}

/// The legacy-EHR test application showing the synthetic order screen;
/// killed on drop.
pub struct App {
    child: Child,
    /// Where the application saves what was typed into its authorization
    /// screen (JSON) when Save is clicked.
    pub saved: PathBuf,
    /// Every key and button event the application received: kind, window
    /// title, tab, widget name (`banner_mrn`, `note`, `save`, …).
    pub keylog: PathBuf,
}

impl App {
    /// Starts it on `display` and waits until its windows are up.
    pub fn start(display: &str, dir: &Path) -> App {
        App::start_with(display, dir, &[])
    }

    /// Like [`App::start`] with the application's test hooks in `args`
    /// (`--auth-on-other-patient`, `--switch-patient-on-key-in note`).
    pub fn start_with(display: &str, dir: &Path, args: &[&str]) -> App {
        let ready = dir.join("app-ready");
        let saved = dir.join("auth-saved.json");
        let keylog = dir.join("app-keylog.txt");
        let root = super::repo_root();
        let child = Command::new("python3")
            .arg(root.join("adapters/desktop/tests/legacy_ehr_app.py"))
            .arg("--order")
            .arg(root.join("sample-messages/desktop/legacy-desktop/order-screen.json"))
            .arg("--out")
            .arg(&saved)
            .arg("--ready")
            .arg(&ready)
            .arg("--keylog")
            .arg(&keylog)
            .args(args)
            .env("DISPLAY", display)
            .stdin(Stdio::null())
            .spawn()
            .expect("start legacy_ehr_app.py");
        let app = App {
            child,
            saved,
            keylog,
        };
        let until = Instant::now() + Duration::from_secs(15);
        while !ready.exists() {
            assert!(Instant::now() < until, "legacy app did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        app
    }
}

impl App {
    /// The widget names of the events the application's window whose title
    /// contains `window` received so far.
    pub fn event_widgets(&self, window: &str) -> Vec<String> {
        std::fs::read_to_string(&self.keylog)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(head, _)| head.contains(window))
            .map(|(_, widget)| widget.to_owned())
            .collect()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
