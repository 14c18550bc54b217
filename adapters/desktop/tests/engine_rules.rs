//! Engine rules that need no display, against an in-memory stand-in for a
//! desktop (the real X11 behaviour is covered by `x11_end_to_end.rs`): templates
//! are rendered before any input, branches on captured values, retries, the
//! global one-run-at-a-time lock, and the focused-window guard.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use gateway_core::Case;
use gateway_desktop::driver::{MouseButton, Screenshot, WindowId, WindowInfo};
use gateway_desktop::keys::{Chord, Key, Modifier};
use gateway_desktop::{AbortReason, Driver, DriverError, Playbook, RunOptions, run_playbook};

/// Windows with text fields at coordinates; clicking a field makes it current.
#[derive(Default)]
struct MemoryDesktop {
    windows: Vec<WindowInfo>,
    /// Windows that appear only after this many `windows()` calls.
    appear_after: usize,
    calls: usize,
    focused: Option<WindowId>,
    /// A window that takes the focus back whenever another gets it.
    modal: Option<WindowId>,
    fields: HashMap<(u64, i32, i32), String>,
    current: Option<(u64, i32, i32)>,
    clipboard: Option<String>,
    typed: Vec<String>,
    /// When set, the first `windows()` call says so on the first channel and
    /// then blocks until the second one releases it: a run that provably
    /// holds the global lock for as long as the test needs.
    hold: Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>,
}

impl MemoryDesktop {
    fn with_windows(titles: &[&str]) -> Self {
        let windows = titles
            .iter()
            .enumerate()
            .map(|(i, t)| WindowInfo {
                id: WindowId(i as u64 + 1),
                title: (*t).to_owned(),
                x: 0,
                y: 0,
                width: 600,
                height: 400,
            })
            .collect();
        MemoryDesktop {
            windows,
            ..Default::default()
        }
    }
}

impl Driver for MemoryDesktop {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn windows(&mut self) -> Result<Vec<WindowInfo>, DriverError> {
        if let Some((started, release)) = self.hold.take() {
            let _ = started.send(());
            let _ = release.recv();
        }
        self.calls += 1;
        Ok(if self.calls > self.appear_after {
            self.windows.clone()
        } else {
            Vec::new()
        })
    }
    fn active_window(&mut self) -> Result<Option<WindowInfo>, DriverError> {
        Ok(self
            .focused
            .and_then(|id| self.windows.iter().find(|w| w.id == id).cloned()))
    }
    fn focus(&mut self, window: WindowId) -> Result<(), DriverError> {
        self.focused = Some(self.modal.unwrap_or(window));
        Ok(())
    }
    fn type_text(&mut self, text: &str) -> Result<(), DriverError> {
        self.typed.push(text.to_owned());
        if let Some(f) = self.current {
            self.fields.entry(f).or_default().push_str(text);
        }
        Ok(())
    }
    fn key_chord(&mut self, chord: &Chord) -> Result<(), DriverError> {
        if chord.modifiers == [Modifier::Ctrl]
            && chord.key == Key::Char('c')
            && let Some(f) = self.current
        {
            let text = self.fields.get(&f).cloned().unwrap_or_default();
            if !text.is_empty() {
                self.clipboard = Some(text);
            }
        }
        Ok(())
    }
    fn click(
        &mut self,
        window: WindowId,
        x: i32,
        y: i32,
        _button: MouseButton,
        _clicks: u8,
    ) -> Result<(), DriverError> {
        self.current = Some((window.0, x, y));
        Ok(())
    }
    fn clipboard_get(&mut self) -> Result<Option<String>, DriverError> {
        Ok(self.clipboard.clone())
    }
    fn clipboard_set(&mut self, text: &str) -> Result<(), DriverError> {
        self.clipboard = Some(text.to_owned());
        Ok(())
    }
    fn screenshot(&mut self, _window: Option<WindowId>) -> Result<Screenshot, DriverError> {
        let png = gateway_desktop::png::encode_rgb(2, 2, &[0; 12]).map_err(DriverError::new)?;
        Ok(Screenshot {
            width: 2,
            height: 2,
            png,
        })
    }
}

fn parse(text: &str) -> Playbook {
    Playbook::parse(Path::new("test.toml"), text).expect("test playbook parses")
}

fn fast() -> RunOptions {
    RunOptions {
        poll: Duration::from_millis(1),
        empty_field_wait: Duration::from_millis(20),
    }
}

fn case(decision: serde_json::Value) -> Case {
    let mut v = serde_json::json!({
        "case_id": "case-1", "tenant": "t",
        "source": {"adapter": "desktop", "profile": "p", "received_at": "2026-11-22T10:00:00Z"},
        "status": "approved",
        "patient": {"identifiers": [{"type": "MR", "value": "E1"}]}
    });
    if !decision.is_null() {
        v["decision"] = decision;
    }
    serde_json::from_value(v).expect("case")
}

const WRITE: &str = r#"
name = "w"
kind = "write"
select_all = "ctrl+a"
step_timeout_ms = 300
[[step]]
action = "wait_window"
title = "Auth*"
timeout_ms = 200
retry = { attempts = 3, delay_ms = 1 }
[[step]]
action = "focus"
[[step]]
id = "check-before"
action = "check_context"
fields = [{ name = "mrn", x = 5, y = 5, expect = "{{patient.identifiers[0].value}}" }]
[[step]]
action = "click"
x = 10
y = 10
[[step]]
id = "type-auth"
action = "type"
text = "{{decision.authorization_number}}"
[[step]]
id = "verify-auth"
action = "verify"
x = 10
y = 10
expect = "{{decision.authorization_number}}"
[[step]]
id = "check-before-save"
action = "check_context"
fields = [{ name = "mrn", x = 5, y = 5, expect = "{{patient.identifiers[0].value}}" }]
[[step]]
id = "save"
action = "click"
x = 20
y = 20
commit = true
"#;

/// The banner field the context checks of [`WRITE`] read (window 1 at 5,5).
const BANNER: (u64, i32, i32) = (1, 5, 5);

#[test]
fn missing_case_data_aborts_before_any_input() {
    let mut desk = MemoryDesktop::with_windows(&["Auth screen"]);
    let abort = run_playbook(
        &parse(WRITE),
        &mut desk,
        Some(&case(serde_json::json!({"status": "approved"}))),
        &fast(),
    )
    .expect_err("no authorization number");
    assert!(matches!(abort.reason, AbortReason::Template(_)), "{abort}");
    assert_eq!(abort.inputs_sent, 0);
    assert!(desk.typed.is_empty() && desk.focused.is_none());
    // A write playbook without any case does not start either.
    let abort = run_playbook(&parse(WRITE), &mut desk, None, &fast()).expect_err("no case");
    assert!(matches!(abort.reason, AbortReason::Usage(_)));
}

#[test]
fn writes_verifies_and_retries_a_late_window() {
    let mut desk = MemoryDesktop::with_windows(&["Auth screen"]);
    desk.appear_after = 12; // absent for the first attempt(s) of wait_window
    desk.fields.insert(BANNER, " e1 ".into());
    let report = run_playbook(
        &parse(WRITE),
        &mut desk,
        Some(&case(
            serde_json::json!({"status": "approved", "authorization_number": "A|^~\\&Ø"}),
        )),
        &fast(),
    )
    .expect("runs");
    assert_eq!(desk.typed, vec!["A|^~\\&Ø".to_owned()]);
    assert!(report.steps[0].attempts >= 1 && report.steps.len() == 8);
    assert_eq!(desk.current, Some((1, 20, 20)), "saved last");
    // The clipboard is cleared after the run.
    assert_eq!(desk.clipboard.as_deref(), Some(""));
}

#[test]
fn another_patient_on_screen_stops_before_any_typing() {
    let mut desk = MemoryDesktop::with_windows(&["Auth screen"]);
    desk.fields.insert(BANNER, "E2".into());
    let abort = run_playbook(
        &parse(WRITE),
        &mut desk,
        Some(&case(
            serde_json::json!({"status": "approved", "authorization_number": "A1"}),
        )),
        &fast(),
    )
    .expect_err("wrong patient");
    assert_eq!(abort.reason.code(), "context_mismatch", "{abort}");
    assert_eq!(
        abort.step.as_ref().map(|s| s.1.as_str()),
        Some("check-before")
    );
    assert!(desk.typed.is_empty());
    assert_eq!(desk.current, Some(BANNER), "only the banner was clicked");
    assert!(!abort.to_string().contains("E2"), "{abort}");
    assert!(!abort.reason.retryable());
    // An empty banner is unreadable: the same stop (retryable within the step).
    let mut desk = MemoryDesktop::with_windows(&["Auth screen"]);
    let abort = run_playbook(
        &parse(WRITE),
        &mut desk,
        Some(&case(
            serde_json::json!({"status": "approved", "authorization_number": "A1"}),
        )),
        &fast(),
    )
    .expect_err("unreadable banner");
    assert!(
        abort.to_string().contains("field `mrn` is unreadable"),
        "{abort}"
    );
    assert!(desk.typed.is_empty());
}

#[test]
fn a_window_that_keeps_the_focus_stops_typing() {
    let mut desk = MemoryDesktop::with_windows(&["Auth screen", "Session Warning"]);
    desk.modal = Some(WindowId(2));
    let abort = run_playbook(
        &parse(WRITE),
        &mut desk,
        Some(&case(
            serde_json::json!({"status": "approved", "authorization_number": "A1"}),
        )),
        &fast(),
    )
    .expect_err("modal window");
    assert!(
        matches!(abort.reason, AbortReason::FocusFailed(_)),
        "{abort}"
    );
    assert!(desk.typed.is_empty());
    assert!(abort.screenshot.is_some());
}

#[test]
fn branches_on_a_captured_value() {
    let text = r#"
name = "r"
kind = "read"
select_all = "ctrl+a"
step_timeout_ms = 200
[[step]]
action = "wait_window"
title = "Order*"
[[step]]
action = "focus"
[[step]]
action = "copy"
x = 1
y = 1
capture = "order.number"
[[step]]
action = "branch"
value = "{{captured.order.number}}"
matches = "*-CANCELLED"
goto = "refuse"
[[step]]
action = "branch"
value = "x"
equals = "x"
goto = "end"
[[step]]
id = "refuse"
action = "fail"
message = "cancelled order"
"#;
    let pb = parse(text);
    let mut desk = MemoryDesktop::with_windows(&["Order Entry"]);
    desk.fields.insert((1, 1, 1), "ORD-9".into());
    let report = run_playbook(&pb, &mut desk, None, &fast()).expect("open order");
    assert_eq!(report.captures["order.number"], "ORD-9");
    assert_eq!(report.steps.last().map(|s| s.action), Some("branch"));

    let mut desk = MemoryDesktop::with_windows(&["Order Entry"]);
    desk.fields.insert((1, 1, 1), "ORD-9-CANCELLED".into());
    let abort = run_playbook(&pb, &mut desk, None, &fast()).expect_err("cancelled");
    assert_eq!(abort.reason, AbortReason::Failed("cancelled order".into()));
    // An empty required field fails as "nothing copied".
    let mut desk = MemoryDesktop::with_windows(&["Order Entry"]);
    let abort = run_playbook(&pb, &mut desk, None, &fast()).expect_err("empty");
    assert_eq!(abort.reason, AbortReason::NothingCopied);
}

#[test]
fn runs_are_serialized_by_the_global_lock() {
    // The first run holds the lock inside its first driver call until the
    // second run has been refused: no timing is assumed on either side.
    let slow = parse(
        "name='slow'\nkind='read'\ntimeout_ms=600000\nstep_timeout_ms=600000\n[[step]]\naction='wait_window'\ntitle='A'\n[[step]]\naction='copy'\ncapture='a'\nx=1\ny=1\noptional=true\n",
    );
    let quick = parse(
        "name='quick'\nkind='read'\ntimeout_ms=150\nstep_timeout_ms=100\n[[step]]\naction='wait_window'\ntitle='A'\n[[step]]\naction='copy'\ncapture='a'\noptional=true\n",
    );
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let holder = std::thread::spawn(move || {
        let mut desk = MemoryDesktop::with_windows(&["A"]);
        desk.focused = Some(WindowId(1));
        desk.hold = Some((started_tx, release_rx));
        run_playbook(&slow, &mut desk, None, &fast()).map(|r| r.playbook)
    });
    started
        .recv_timeout(Duration::from_secs(60))
        .expect("the first run reached its first driver call");
    let mut desk = MemoryDesktop::with_windows(&["A"]);
    let abort = run_playbook(&quick, &mut desk, None, &fast()).expect_err("busy");
    assert_eq!(abort.reason, AbortReason::Busy);
    release.send(()).expect("release the first run");
    assert_eq!(holder.join().expect("thread").expect("slow run"), "slow");
}
