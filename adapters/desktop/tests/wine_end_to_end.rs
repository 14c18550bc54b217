//! End to end under Wine on a private Xvfb: the real Windows driver
//! (`src/windows/`, cross-built for `x86_64-pc-windows-gnu`) runs the shipped
//! playbooks, unchanged, against the Win32 legacy-EHR test application
//! (`examples/win_legacy_ehr_app.rs`), both as Windows processes on the same
//! Wine desktop.
//!
//! The Windows half is `examples/win_playbook_runner.rs`: it runs the engine
//! with the bounded Windows driver and writes its report as JSON; this Linux
//! half builds both programs (`cargo build --target x86_64-pc-windows-gnu`),
//! makes one Wine prefix for the whole run, and checks what came out: the read
//! captures mapped into a Case with the same facts as on X11, a decision with
//! HL7 delimiters and non-ASCII saved exactly, a focus-stealing popup that
//! aborts the write before any key reaches the application (its keylog), with
//! a screenshot file as evidence, and another patient on the authorization
//! screen aborting the write at the banner check with input only on the banner.
//!
//! Skips with a printed reason when Wine, Xvfb, the mingw-w64 linker or the
//! Rust target is missing; fails instead when `CI` is set
//! (`.ci/install.d/55-wine.sh` installs them).

#![cfg(unix)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_desktop::Playbook;
use gateway_desktop::xvfb::{VirtualDisplay, XvfbError};
use serde_json::{Value, json};

const TARGET: &str = "x86_64-pc-windows-gnu";
/// Generous bounds: Wine starts a process in well under a second once its
/// prefix exists, but CI machines are shared.
const PROCESS_BOUND: Duration = Duration::from_secs(120);
const PREFIX_BOUND: Duration = Duration::from_secs(300);

fn require(ok: bool, what: &str) -> Option<()> {
    if ok {
        return Some(());
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} is missing and CI is set: .ci/install.d/55-wine.sh installs it");
    }
    eprintln!("SKIPPED Wine end-to-end test: {what} is missing (see .ci/install.d/55-wine.sh)");
    None
}

fn on_path(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn windows_target_installed() -> bool {
    Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
                .join("lib/rustlib")
                .join(TARGET)
                .join("lib")
                .is_dir()
        })
        .unwrap_or(false)
}

/// Waits for `child` at most `bound`; kills it and panics past that.
fn wait_bounded(child: &mut Child, what: &str, bound: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Cross-builds the two Windows programs; their paths from cargo's own
/// artifact messages (whatever the target directory).
fn build_windows_programs() -> (PathBuf, PathBuf) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(support::repo_root())
        .args([
            "build",
            "--quiet",
            "--locked",
            "--message-format=json",
            "-p",
            "gateway-desktop",
            "--target",
            TARGET,
            "--example",
            "win_legacy_ehr_app",
            "--example",
            "win_playbook_runner",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build for the Windows target");
    assert!(
        out.status.success(),
        "cross-building the Windows programs failed"
    );
    let mut app = None;
    let mut runner = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let exe = msg["executable"].as_str().map(PathBuf::from);
        match msg["target"]["name"].as_str() {
            Some("win_legacy_ehr_app") => app = exe,
            Some("win_playbook_runner") => runner = exe,
            _ => {}
        }
    }
    (
        app.expect("cargo reported the test application's executable"),
        runner.expect("cargo reported the runner's executable"),
    )
}

/// A Linux path as the Windows programs see it (Wine's `Z:` drive).
fn win_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// One Wine prefix for the run, on the test's Xvfb; its wineserver is
/// stopped on drop.
struct Wine {
    prefix: tempfile::TempDir,
    display: String,
}

impl Wine {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("WINEPREFIX", self.prefix.path())
            .env("WINEDEBUG", "-all")
            // No Mono/Gecko install prompts: the programs need neither.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env("DISPLAY", &self.display)
            .stdin(Stdio::null());
        cmd
    }

    fn create(display: &VirtualDisplay) -> Wine {
        let wine = Wine {
            prefix: tempfile::tempdir().expect("prefix dir"),
            display: display.display().to_owned(),
        };
        let started = Instant::now();
        // A persistent wineserver for the run: every process after the first
        // starts without waiting for a server.
        let status = wine
            .command("wineserver")
            .arg("-p")
            .status()
            .expect("start wineserver");
        assert!(status.success(), "wineserver -p failed");
        let mut boot = wine
            .command("wineboot")
            .arg("-i")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run wineboot");
        let status = wait_bounded(&mut boot, "wineboot -i", PREFIX_BOUND);
        assert!(status.success(), "wineboot -i failed: {status}");
        wine.add_process_prng_shim();
        println!(
            "wine prefix created in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        wine
    }

    /// Wine 8 lacks bcryptprimitives.dll, which Rust's std imports on
    /// Windows; a stand-in (tests/wine/bcryptprimitives.c) goes into this
    /// prefix only. Newer Wine ships the DLL and gets nothing.
    fn add_process_prng_shim(&self) {
        let system32 = self.prefix.path().join("drive_c/windows/system32");
        let builtin = [
            "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/bcryptprimitives.dll",
            "/usr/lib/wine/x86_64-windows/bcryptprimitives.dll",
            "/usr/lib64/wine/x86_64-windows/bcryptprimitives.dll",
        ];
        if builtin.iter().any(|p| Path::new(p).exists()) {
            return;
        }
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wine/bcryptprimitives.c");
        let status = Command::new("x86_64-w64-mingw32-gcc")
            .args(["-shared", "-O2", "-s", "-o"])
            .arg(system32.join("bcryptprimitives.dll"))
            .arg(source)
            .arg("-ladvapi32")
            .status()
            .expect("run x86_64-w64-mingw32-gcc");
        assert!(
            status.success(),
            "building the bcryptprimitives stand-in failed"
        );
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = self.command("wineserver").arg("-k").status();
    }
}

/// The Win32 test application, started per scenario; killed on drop.
struct WinApp {
    child: Child,
    dir: tempfile::TempDir,
}

impl WinApp {
    fn start(wine: &Wine, exe: &Path, hooks: &[&str]) -> WinApp {
        let dir = tempfile::tempdir().expect("app dir");
        let order =
            support::repo_root().join("sample-messages/desktop/legacy-desktop/order-screen.json");
        let ready = dir.path().join("ready");
        let mut cmd = wine.command("wine");
        cmd.arg(exe)
            .arg("--order")
            .arg(win_path(&order))
            .arg("--out")
            .arg(win_path(&dir.path().join("saved.json")))
            .arg("--keylog")
            .arg(win_path(&dir.path().join("keylog.txt")))
            .arg("--ready")
            .arg(win_path(&ready))
            .args(hooks)
            .stdout(Stdio::null());
        let mut child = cmd.spawn().expect("start the Win32 test application");
        let until = Instant::now() + PROCESS_BOUND;
        while !ready.exists() {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("the Win32 test application exited early: {status}");
            }
            assert!(
                Instant::now() < until,
                "the Win32 test application did not become ready"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        WinApp { child, dir }
    }

    fn saved(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("saved.json")).ok()?;
        Some(serde_json::from_str(&text).expect("saved JSON"))
    }

    fn events(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("keylog.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for WinApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one shipped playbook with the Windows driver; its JSON report.
fn run_playbook(
    wine: &Wine,
    runner: &Path,
    playbook: &str,
    case: Option<&Value>,
    work: &Path,
) -> Value {
    let playbook = support::repo_root()
        .join("mappings/legacy-desktop/playbooks")
        .join(playbook);
    let result = work.join("result.json");
    let _ = std::fs::remove_file(&result);
    let mut cmd = wine.command("wine");
    cmd.arg(runner)
        .arg("--playbook")
        .arg(win_path(&playbook))
        .arg("--result")
        .arg(win_path(&result))
        .arg("--screenshot")
        .arg(win_path(&work.join("abort.png")));
    if let Some(case) = case {
        let path = work.join("case.json");
        std::fs::write(&path, case.to_string()).expect("write case");
        cmd.arg("--case").arg(win_path(&path));
    }
    let mut child = cmd.spawn().expect("start the playbook runner");
    let status = wait_bounded(&mut child, "the playbook runner", PROCESS_BOUND);
    assert!(status.success(), "the playbook runner failed: {status}");
    serde_json::from_str(&std::fs::read_to_string(&result).expect("runner result"))
        .expect("runner result JSON")
}

fn decided_case(note: &str) -> Value {
    json!({
        "case_id": "case-000000000000000000000001",
        "tenant": "mso-demo",
        "source": {"adapter": "desktop", "profile": "legacy-desktop",
                   "received_at": "2026-11-22T10:00:00Z"},
        "status": "approved",
        "decision": {"status": "approved", "authorization_number": "PA-2026-0042",
                     "effective": {"start": "2026-12-01", "end": "2027-02-28"},
                     "note": note},
        "patient": {"identifiers": [{"type": "MR", "value": "E10001"}],
                    "name": {"family": "Müller", "given": ["Søren"]},
                    "birth_date": "1970-01-31", "sex": "male"},
        "references": {"placer_order": "ORD-70001"}
    })
}

#[test]
fn windows_driver_under_wine() {
    let started = Instant::now();
    let Some(()) = require(on_path("wine"), "wine (Debian wine + wine64)") else {
        return;
    };
    let Some(()) = require(
        on_path("x86_64-w64-mingw32-gcc"),
        "the mingw-w64 linker (gcc-mingw-w64-x86-64)",
    ) else {
        return;
    };
    let Some(()) = require(
        windows_target_installed(),
        "the Rust target x86_64-pc-windows-gnu (rustup target add)",
    ) else {
        return;
    };
    let display = match VirtualDisplay::start(1280, 800, Duration::from_secs(10)) {
        Ok(d) => d,
        Err(XvfbError::NotInstalled) => {
            let Some(()) = require(false, "Xvfb") else {
                return;
            };
            unreachable!("require(false) returns None or panics")
        }
        Err(e) => panic!("Xvfb is installed but did not start: {e}"),
    };
    let (app_exe, runner) = build_windows_programs();
    println!(
        "windows programs built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let wine = Wine::create(&display);
    let work = tempfile::tempdir().expect("work dir");

    // 1. The shipped read playbook: the order screen becomes a Case with the
    //    same facts as under X11 (the same assertions as x11_end_to_end.rs).
    {
        let app = WinApp::start(&wine, &app_exe, &[]);
        let report = run_playbook(&wine, &runner, "read-order.toml", None, work.path());
        assert_eq!(report["ok"], true, "read failed: {report}");
        assert_eq!(report["driver"], "windows");
        let captures: std::collections::BTreeMap<String, String> =
            serde_json::from_value(report["captures"].clone()).expect("captures");
        let pb = Playbook::load(
            &support::repo_root().join("mappings/legacy-desktop/playbooks/read-order.toml"),
        )
        .expect("shipped read playbook");
        let case = support::map_captures(&pb, &captures);
        support::assert_sample_order_case(&case);
        assert!(app.saved().is_none(), "reading saved something");
        println!(
            "read: {} steps in {} ms",
            report["steps"], report["elapsed_ms"]
        );
    }

    // 2. The shipped write playbook types a decision with HL7 delimiters and
    //    non-ASCII; the application saves exactly that.
    {
        let app = WinApp::start(&wine, &app_exe, &[]);
        let note = "Approved per Dr. Müller / Søren |^~\\& ok";
        let report = run_playbook(
            &wine,
            &runner,
            "write-decision.toml",
            Some(&decided_case(note)),
            work.path(),
        );
        assert_eq!(report["ok"], true, "write failed: {report}");
        let saved = app
            .saved()
            .expect("the application saved the authorization");
        assert_eq!(
            saved,
            json!({"auth_number": "PA-2026-0042", "status": "APPROVED",
                   "start_date": "12/01/2026", "end_date": "02/28/2027", "note": note})
        );
        // The clipboard does not keep the last value read back.
        assert_ne!(report["clipboard_after"].as_str(), Some(note));
        // Every key and click went to the authorization screen.
        let events = app.events();
        assert!(!events.is_empty(), "the keylog recorded the typing");
        for e in &events {
            assert!(
                e.contains("LegacyEHR \u{2014} Prior Authorization\t"),
                "input outside the authorization screen: {e}"
            );
        }
        println!(
            "write: {} steps in {} ms",
            report["steps"], report["elapsed_ms"]
        );
    }

    // 3. A focus-stealing "Session Warning": the run aborts before any
    //    keystroke reaches the wrong window, with a screenshot as evidence.
    {
        let app = WinApp::start(&wine, &app_exe, &["--modal-popup"]);
        let shot_path = work.path().join("abort.png");
        let _ = std::fs::remove_file(&shot_path);
        let report = run_playbook(
            &wine,
            &runner,
            "write-decision.toml",
            Some(&decided_case("n")),
            work.path(),
        );
        assert_eq!(
            report["ok"], false,
            "the popup must abort the write: {report}"
        );
        let reason = report["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with("UnexpectedWindow") || reason.starts_with("FocusFailed"),
            "{report}"
        );
        // The popup takes the foreground back asynchronously: at most the
        // first banner click (on the right window, checked right before it)
        // may have gone out before the guard saw the popup; never a key.
        let sent = report["inputs_sent"].as_u64().unwrap_or(u64::MAX);
        assert!(sent <= 1, "{report}");
        let completed = report["completed_actions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            completed.iter().all(|a| a != "type" && a != "key"),
            "{report}"
        );
        let events = app.events();
        let keys: Vec<&String> = events.iter().filter(|e| e.starts_with("key")).collect();
        assert!(keys.is_empty(), "keys reached the application: {keys:?}");
        assert!(
            events
                .iter()
                .all(|e| e.contains("LegacyEHR \u{2014} Prior Authorization\tbanner_")),
            "a click outside the banner: {events:?}"
        );
        assert!(app.saved().is_none());
        let png = std::fs::read(&shot_path).expect("the abort screenshot was written");
        let decoder = png::Decoder::new(std::io::Cursor::new(&png))
            .read_info()
            .expect("the screenshot is a PNG");
        let (w, h) = (decoder.info().width, decoder.info().height);
        assert_eq!(
            (u64::from(w), u64::from(h)),
            (
                report["screenshot"]["width"].as_u64().unwrap_or(0),
                report["screenshot"]["height"].as_u64().unwrap_or(0)
            )
        );
        assert!(w >= 100 && h >= 100, "a window-sized screenshot: {w}x{h}");
    }
    // 4. Another patient on the authorization screen: the write aborts at
    //    the banner check, before any input reaches the form.
    {
        let app = WinApp::start(&wine, &app_exe, &["--auth-on-other-patient"]);
        let report = run_playbook(
            &wine,
            &runner,
            "write-decision.toml",
            Some(&decided_case("n")),
            work.path(),
        );
        assert_eq!(report["ok"], false, "another patient must abort: {report}");
        assert_eq!(report["code"], "context_mismatch", "{report}");
        assert_eq!(report["step"], "check-patient-before-typing", "{report}");
        let message = report["message"].as_str().unwrap_or_default();
        for value in [
            "E10001", "E20002", "Müller", "MÜLLER", "OKAFOR", "70001", "70002",
        ] {
            assert!(!message.contains(value), "PHI in the abort: {message}");
        }
        let completed = report["completed_actions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            completed
                .iter()
                .all(|a| a != "click" && a != "type" && a != "key"),
            "{report}"
        );
        // The last input was the copy chord on the last banner field; the
        // application logs events as it processes them.
        let until = Instant::now() + PROCESS_BOUND;
        while !app
            .events()
            .iter()
            .any(|e| e.starts_with("key ") && e.ends_with("\tbanner_order_number"))
        {
            assert!(Instant::now() < until, "{:?}", app.events());
            std::thread::sleep(Duration::from_millis(25));
        }
        let events = app.events();
        assert!(
            events.iter().all(|e| e.contains("\tbanner_")),
            "input reached the form: {events:?}"
        );
        assert!(app.saved().is_none());
    }
    drop(wine);
    println!(
        "ALL WINE SCENARIOS PASSED in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
