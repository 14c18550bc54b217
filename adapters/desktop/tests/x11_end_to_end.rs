//! End to end under a private Xvfb: the real X11 driver drives the real
//! legacy-EHR test application (python3-tk).
//!
//! Input is global, so all scenarios run serially inside one `#[test]`, in a
//! child process that has `DISPLAY` pointing at this binary's own Xvfb.

#![cfg(unix)]

mod support;

use std::path::Path;
use std::time::Duration;

use gateway_core::Case;
use gateway_desktop::x11::X11Driver;
use gateway_desktop::{AbortReason, Playbook, RunOptions, run_playbook};
use serde_json::json;
use support::{AppOptions, CHILD_ENV, LegacyApp};

fn playbook(name: &str) -> Playbook {
    let path = support::repo_root()
        .join("mappings/legacy-desktop/playbooks")
        .join(name);
    Playbook::load(&path).expect("shipped playbook loads")
}

/// The sample order's patient and order number, as the read mapping puts
/// them into a case (`sample-messages/desktop/legacy-desktop/order-screen.json`).
fn sample_patient() -> serde_json::Value {
    json!({
        "patient": {"identifiers": [{"type": "MR", "value": "E10001"}],
                    "name": {"family": "Müller", "given": ["Søren"]},
                    "birth_date": "1970-01-31", "sex": "male"},
        "references": {"placer_order": "ORD-70001"}
    })
}

fn with_sample_patient(mut case: serde_json::Value) -> Case {
    let patient = sample_patient();
    case["patient"] = patient["patient"].clone();
    case["references"] = patient["references"].clone();
    serde_json::from_value(case).expect("case JSON")
}

fn decided_case(auth: &str, note: &str) -> Case {
    with_sample_patient(json!({
        "case_id": "case-000000000000000000000001",
        "tenant": "mso-demo",
        "source": {"adapter": "desktop", "profile": "legacy-desktop",
                   "received_at": "2026-11-22T10:00:00Z"},
        "status": "approved",
        "decision": {"status": "approved", "authorization_number": auth,
                     "effective": {"start": "2026-12-01", "end": "2027-02-28"},
                     "note": note}
    }))
}

#[test]
fn desktop_end_to_end() {
    if std::env::var_os(CHILD_ENV).is_some() {
        scenarios();
        return;
    }
    let Some(display) = support::start_display() else {
        return;
    };
    let (ok, output) = support::rerun_in_display(
        &display,
        &[
            "desktop_end_to_end",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ],
    );
    println!("{output}");
    assert!(ok, "scenarios failed under Xvfb {}", display.display());
    assert!(
        output.contains("ALL DESKTOP SCENARIOS PASSED"),
        "child ran no scenarios"
    );
}

fn scenarios() {
    let mut driver = X11Driver::connect(None).expect("X11 driver connects to Xvfb");
    let options = RunOptions::default();
    read_order_into_case(&mut driver, &options);
    write_decision_exactly(&mut driver, &options);
    write_denial_without_auth_number(&mut driver, &options);
    wrong_window_aborts_without_typing(&mut driver, &options);
    wrong_patient_aborts_before_any_input(&mut driver, &options);
    patient_switched_while_typing_aborts_before_save(&mut driver, &options);
    modal_popup_aborts_without_typing(&mut driver, &options);
    verification_mismatch_aborts_with_screenshot(&mut driver, &options);
    with_window_manager(&mut driver, &options);
    drop(driver);
    // Last: it stops the X server (SIGSTOP) and leaves stuck connections behind.
    hung_x_server_aborts_within_the_bound(&options);
    println!("ALL DESKTOP SCENARIOS PASSED");
}

fn read_order_into_case(driver: &mut X11Driver, options: &RunOptions) {
    let app = LegacyApp::start(AppOptions::default());
    let pb = playbook("read-order.toml");
    let report = run_playbook(&pb, driver, None, options).unwrap_or_else(|abort| {
        keep_screenshot(&abort);
        panic!("read playbook failed: {abort}")
    });
    let order: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            support::repo_root().join("sample-messages/desktop/legacy-desktop/order-screen.json"),
        )
        .expect("order json"),
    )
    .expect("order json parses");
    let expect = |capture: &str, key: &str| {
        assert_eq!(
            report.captures.get(capture).map(String::as_str),
            order[key].as_str(),
            "capture {capture}"
        );
    };
    expect("order.number", "order_number");
    expect("patient.name", "patient_name");
    expect("patient.mrn", "mrn");
    expect("patient.birth_date", "dob");
    expect("insurance.member_id", "member_id");
    expect("order.procedure_code", "procedure_code");
    expect("order.diagnosis_code", "diagnosis_code");
    let case = support::map_captures(&pb, &report.captures);
    support::assert_sample_order_case(&case);
    // Reading sends no keys into the chart that change it: the app saved nothing.
    assert!(app.saved(Duration::from_millis(0)).is_none());
    println!("read: {} steps in {:?}", report.steps.len(), report.elapsed);
}

fn write_decision_exactly(driver: &mut X11Driver, options: &RunOptions) {
    let app = LegacyApp::start(AppOptions::default());
    let note = "Approved per Dr. Müller / Søren |^~\\& ok";
    let case = decided_case("PA-2026-0042", note);
    let report = run_playbook(
        &playbook("write-decision.toml"),
        driver,
        Some(&case),
        options,
    )
    .unwrap_or_else(|abort| {
        keep_screenshot(&abort);
        panic!("write playbook failed: {abort}")
    });
    let saved = app
        .saved(Duration::from_secs(5))
        .expect("the app saved the authorization");
    assert_eq!(
        saved,
        json!({"auth_number": "PA-2026-0042", "status": "APPROVED",
               "start_date": "12/01/2026", "end_date": "02/28/2027", "note": note})
    );
    // The clipboard does not keep the last value read back.
    assert_ne!(driver_clipboard(driver).as_deref(), Some(note));
    println!(
        "write: {} steps in {:?}",
        report.steps.len(),
        report.elapsed
    );
}

/// A denial has no authorization number or dates: the fields are cleared,
/// verified empty, and the status is written.
fn write_denial_without_auth_number(driver: &mut X11Driver, options: &RunOptions) {
    let app = LegacyApp::start(AppOptions::default());
    let case = with_sample_patient(json!({
        "case_id": "case-000000000000000000000002", "tenant": "mso-demo",
        "source": {"adapter": "desktop", "profile": "legacy-desktop",
                   "received_at": "2026-11-22T10:00:00Z"},
        "status": "denied",
        "decision": {"status": "denied", "reason_codes": ["N"], "note": "Not medically necessary"}
    }));
    run_playbook(
        &playbook("write-decision.toml"),
        driver,
        Some(&case),
        options,
    )
    .unwrap_or_else(|abort| {
        keep_screenshot(&abort);
        panic!("denial write failed: {abort}")
    });
    let saved = app
        .saved(Duration::from_secs(5))
        .expect("the app saved the denial");
    assert_eq!(
        saved,
        json!({"auth_number": "", "status": "DENIED", "start_date": "", "end_date": "",
               "note": "Not medically necessary"})
    );
}

fn driver_clipboard(driver: &mut X11Driver) -> Option<String> {
    use gateway_desktop::Driver as _;
    driver.clipboard_get().expect("clipboard readable")
}

fn wrong_window_aborts_without_typing(driver: &mut X11Driver, options: &RunOptions) {
    let app = LegacyApp::start(AppOptions::default());
    // The focus lands on the order screen; the typing step is for the
    // authorization screen: the guard must refuse before any input.
    let pb = Playbook::parse(
        Path::new("wrong-window.toml"),
        r#"
name = "wrong-window"
kind = "write"
[[step]]
action = "wait_window"
title = "LegacyEHR — Prior Authorization*"
[[step]]
action = "focus"
title = "LegacyEHR — Order Entry*"
[[step]]
id = "check-patient"
action = "check_context"
title = "LegacyEHR — Prior Authorization*"
fields = [{ name = "mrn", x = 495, y = 23, expect = "{{patient.identifiers[0].value}}" }]
[[step]]
action = "type"
title = "LegacyEHR — Prior Authorization*"
text = "{{decision.authorization_number}}"
[[step]]
action = "verify"
expect = "{{decision.authorization_number}}"
[[step]]
action = "check_context"
title = "LegacyEHR — Prior Authorization*"
fields = [{ name = "mrn", x = 495, y = 23, expect = "{{patient.identifiers[0].value}}" }]
[[step]]
action = "click"
x = 230
y = 325
commit = true
"#,
    )
    .expect("test playbook parses");
    let case = decided_case("PA-2026-0042", "n");
    let abort = run_playbook(&pb, driver, Some(&case), options).expect_err("must abort");
    assert!(
        matches!(abort.reason, AbortReason::UnexpectedWindow { .. }),
        "{abort}"
    );
    // The check reads with clicks and keys: its guard refuses first.
    assert_eq!(
        abort.step.as_ref().map(|s| s.1.as_str()),
        Some("check-patient")
    );
    assert_eq!(abort.inputs_sent, 0);
    let text = abort.to_string();
    assert!(
        !text.contains("Order Entry —") && !text.contains("PA-2026"),
        "{text}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        app.events().is_empty(),
        "the app received input: {:?}",
        app.events()
    );
    assert!(app.saved(Duration::from_millis(0)).is_none());
    assert_png(abort.screenshot.as_ref());
}

/// The identifying fields of the shipped write playbook's context checks.
const CONTEXT_FIELDS: [&str; 4] = ["mrn", "patient_name", "birth_date", "order_number"];

fn assert_wrong_patient(abort: &gateway_desktop::Abort, step: &str) {
    match &abort.reason {
        AbortReason::ContextMismatch { faults } => {
            let names: Vec<&str> = faults.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, CONTEXT_FIELDS, "{abort}");
            assert!(
                faults
                    .iter()
                    .all(|(_, f)| *f == gateway_desktop::context::FieldFault::Differs),
                "{abort}"
            );
        }
        other => panic!("expected a context mismatch, got {other}"),
    }
    assert_eq!(abort.reason.code(), "context_mismatch");
    assert_eq!(abort.step.as_ref().map(|s| s.1.as_str()), Some(step));
    let text = abort.to_string();
    assert!(text.contains("field `mrn` differs from the case"), "{text}");
    // Neither patient's values appear in the reason.
    for value in [
        "E10001", "E20002", "Müller", "MÜLLER", "OKAFOR", "Okafor", "1970", "1982", "70001",
        "70002",
    ] {
        assert!(!text.contains(value), "{value} in {text}");
    }
    assert_png(abort.screenshot.as_ref());
}

/// The authorization screen was left open on another patient: the first
/// context check reads the banner and aborts; the only events the app got are
/// the banner reads — nothing typed into or clicked on the form, no Save.
fn wrong_patient_aborts_before_any_input(driver: &mut X11Driver, options: &RunOptions) {
    let app = LegacyApp::start(AppOptions {
        auth_on_other_patient: true,
        ..AppOptions::default()
    });
    let case = decided_case("PA-2026-0042", "n");
    let abort = run_playbook(
        &playbook("write-decision.toml"),
        driver,
        Some(&case),
        options,
    )
    .expect_err("another patient on screen must abort the write");
    assert_wrong_patient(&abort, "check-patient-before-typing");
    assert!(
        abort
            .completed
            .iter()
            .all(|s| s.action != "click" && s.action != "type" && s.action != "key"),
        "{:?}",
        abort.completed
    );
    // The last thing sent was the copy chord on the last banner field.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while !app
        .event_widgets()
        .iter()
        .any(|(k, w)| k == "key" && w == "banner_order_number")
    {
        assert!(std::time::Instant::now() < until, "{:?}", app.events());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let widgets = app.event_widgets();
    assert!(!widgets.is_empty());
    assert!(
        widgets.iter().all(|(_, w)| w.starts_with("banner_")),
        "input reached the form: {widgets:?}"
    );
    assert!(app.saved(Duration::from_millis(500)).is_none());
    println!(
        "wrong patient: aborted at {}, {} app events, all on the banner",
        abort.location_label(),
        widgets.len()
    );
}

/// The chart switches to another patient when the first key reaches the Note
/// field: the fields are typed and verified, the check before Save aborts,
/// Save is never clicked and nothing reaches `--out`.
fn patient_switched_while_typing_aborts_before_save(driver: &mut X11Driver, options: &RunOptions) {
    let app = LegacyApp::start(AppOptions {
        switch_patient_on_key_in: Some("note"),
        ..AppOptions::default()
    });
    let case = decided_case("PA-2026-0042", "Approved");
    let abort = run_playbook(
        &playbook("write-decision.toml"),
        driver,
        Some(&case),
        options,
    )
    .expect_err("a patient switch while typing must abort before Save");
    assert_wrong_patient(&abort, "check-patient-before-save");
    let done: Vec<&str> = abort.completed.iter().map(|s| s.id.as_str()).collect();
    assert!(
        done.contains(&"check-patient-before-typing") && done.contains(&"verify-note"),
        "{done:?}"
    );
    assert!(!done.contains(&"save"), "{done:?}");
    std::thread::sleep(Duration::from_millis(300));
    let widgets = app.event_widgets();
    assert!(
        widgets.iter().any(|(k, w)| k == "key" && w == "note"),
        "the note was typed: {widgets:?}"
    );
    assert!(
        !widgets.iter().any(|(_, w)| w == "save"),
        "Save was clicked: {widgets:?}"
    );
    assert!(
        app.saved(Duration::from_millis(500)).is_none(),
        "nothing may be written to --out"
    );
    assert!(!app.out.exists());
    println!(
        "patient switched while typing: aborted at {}, Save never clicked",
        abort.location_label()
    );
}

fn modal_popup_aborts_without_typing(driver: &mut X11Driver, options: &RunOptions) {
    let app = LegacyApp::start(AppOptions {
        modal_popup: true,
        ..AppOptions::default()
    });
    let case = decided_case("PA-2026-0042", "n");
    let abort = run_playbook(
        &playbook("write-decision.toml"),
        driver,
        Some(&case),
        options,
    )
    .expect_err("a popup holding the focus must abort the write");
    assert!(
        matches!(
            abort.reason,
            AbortReason::UnexpectedWindow { .. } | AbortReason::FocusFailed(_)
        ),
        "{abort}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let keys: Vec<String> = app
        .events()
        .into_iter()
        .filter(|e| e.starts_with("key"))
        .collect();
    assert!(keys.is_empty(), "keys reached the app: {keys:?}");
    assert!(app.saved(Duration::from_millis(0)).is_none());
    assert_png(abort.screenshot.as_ref());
}

fn verification_mismatch_aborts_with_screenshot(driver: &mut X11Driver, options: &RunOptions) {
    // The EHR silently truncates auth numbers longer than 8 characters.
    let app = LegacyApp::start(AppOptions {
        max_auth_len: Some(8),
        ..AppOptions::default()
    });
    let case = decided_case("PA-2026-0042", "n");
    let abort = run_playbook(
        &playbook("write-decision.toml"),
        driver,
        Some(&case),
        options,
    )
    .expect_err("a truncated auth number must fail verification");
    match &abort.reason {
        AbortReason::VerifyMismatch {
            expected_chars,
            found_chars,
            ..
        } => assert_eq!((*expected_chars, *found_chars), (12, 8)),
        other => panic!("expected a verification mismatch, got {other}"),
    }
    assert_eq!(
        abort.step.as_ref().map(|s| s.1.as_str()),
        Some("verify-auth-number")
    );
    assert!(
        app.saved(Duration::from_millis(500)).is_none(),
        "Save must not be clicked after a failed verification"
    );
    assert_png(abort.screenshot.as_ref());
}

/// The EWMH path: windows from `_NET_CLIENT_LIST`, focus via `_NET_ACTIVE_WINDOW`.
fn with_window_manager(driver: &mut X11Driver, options: &RunOptions) {
    let wm = std::process::Command::new("openbox")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut wm) = wm else {
        support::require(false, "openbox (EWMH window manager)");
        return;
    };
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !driver.has_window_manager().expect("query _NET_SUPPORTED") {
        assert!(std::time::Instant::now() < until, "openbox did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    read_order_into_case(driver, options);
    write_decision_exactly(driver, options);
    let _ = wm.kill();
    let _ = wm.wait();
    println!("EWMH scenarios passed");
}

/// A hung X server (SIGSTOP) mid-run: the bounded driver aborts the run with a
/// driver timeout shortly after the bound, not after the 30 s step timeout.
fn hung_x_server_aborts_within_the_bound(options: &RunOptions) {
    let pid = std::env::var(support::XVFB_PID_ENV).expect("the parent passes the Xvfb pid");
    let _app = LegacyApp::start(AppOptions::default());
    let bounds = gateway_desktop::Bounds {
        call: Duration::from_millis(1000),
        ..gateway_desktop::Bounds::default()
    };
    let mut driver = gateway_desktop::BoundedDriver::spawn(
        || X11Driver::connect(None).map(|d| Box::new(d) as Box<dyn gateway_desktop::Driver>),
        bounds,
    )
    .expect("bounded X11 driver connects");
    // Polls the window list until a window that never appears does: the X
    // server is queried all along.
    let pb = Playbook::parse(
        Path::new("hang.toml"),
        r#"
name = "hang"
kind = "read"
timeout_ms = 60000
[[step]]
id = "wait-never"
action = "wait_window"
title = "Never Appears*"
timeout_ms = 30000
[[step]]
action = "copy"
capture = "order.number"
"#,
    )
    .expect("test playbook parses");
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    };
    let stop_pid = pid.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        let ok = std::process::Command::new("kill")
            .args(["-STOP", &stop_pid])
            .status()
            .is_ok_and(|s| s.success());
        (ok, std::time::Instant::now())
    });
    let abort = run_playbook(&pb, &mut driver, None, options).expect_err("must abort");
    let ended = std::time::Instant::now();
    let (stopped, stopped_at) = stopper.join().expect("stopper");
    // Resume the server whatever happened, before asserting.
    signal("-CONT");
    assert!(stopped, "SIGSTOP the Xvfb");
    assert_eq!(abort.reason.code(), "driver_timeout", "{abort}");
    assert!(abort.to_string().contains("hung or gone"), "{abort}");
    let late = ended.saturating_duration_since(stopped_at);
    println!(
        "hung X server: run aborted {late:?} after SIGSTOP (bound {:?})",
        bounds.call
    );
    assert!(
        late < bounds.call * 3,
        "aborted {late:?} after the X server hung; bound {:?}",
        bounds.call
    );
}

/// Saves an unexpected abort's screenshot to the temp dir for debugging.
fn keep_screenshot(abort: &gateway_desktop::Abort) {
    if let Some(shot) = &abort.screenshot {
        let path = std::env::temp_dir().join(format!("desktop-abort-{}.png", abort.playbook));
        let _ = std::fs::write(&path, &shot.png);
        eprintln!("screenshot of the abort: {}", path.display());
    }
}

fn assert_png(shot: Option<&gateway_desktop::Screenshot>) {
    let shot = shot.expect("an abort carries a screenshot");
    assert!(shot.png.len() > 100, "non-empty PNG");
    let reader = png::Decoder::new(std::io::Cursor::new(&shot.png))
        .read_info()
        .expect("valid PNG");
    assert_eq!(
        (reader.info().width, reader.info().height),
        (shot.width, shot.height)
    );
    assert!(shot.width >= 100 && shot.height >= 100);
}
