//! How long the shipped read and write playbooks take against the legacy-EHR
//! test application under a private Xvfb, against a baseline measured in the
//! same run: a three-step playbook that finds and focuses the window and copies
//! one field (the fixed cost of any run plus one field read). The read and
//! write playbooks run once on the X11 driver directly and once through the
//! [`gateway_desktop::BoundedDriver`] the daemon and CLI use.
//!
//! Run: `cargo bench -p gateway-desktop --bench playbook_timing`
//! (needs Xvfb and python3-tk; `ITERATIONS=N` to change the sample size).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use gateway_core::Case;
use gateway_desktop::x11::X11Driver;
use gateway_desktop::{Playbook, RunOptions, run_playbook};

fn main() {
    if std::env::var_os(support::CHILD_ENV).is_some() {
        measure();
        return;
    }
    let Some(display) = support::start_display() else {
        return;
    };
    let (ok, output) = support::rerun_in_display(&display, &[]);
    print!("{output}");
    assert!(ok, "benchmark failed");
}

fn stats(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(samples[samples.len() / 2]);
    let min = ms(samples[0]);
    let max = ms(samples[samples.len() - 1]);
    (median, min, max)
}

fn measure() {
    let iterations: usize = std::env::var("ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut driver = X11Driver::connect(None).expect("X11 driver");
    let options = RunOptions::default();
    let app = support::LegacyApp::start(support::AppOptions::default());
    let dir = support::repo_root().join("mappings/legacy-desktop/playbooks");
    let read = Playbook::load(&dir.join("read-order.toml")).expect("read playbook");
    let write = Playbook::load(&dir.join("write-decision.toml")).expect("write playbook");
    let baseline = Playbook::parse(
        Path::new("baseline.toml"),
        r#"
name = "baseline"
kind = "read"
select_all = "ctrl+/"
[[step]]
action = "wait_window"
title = "LegacyEHR — Order Entry*"
[[step]]
action = "focus"
[[step]]
action = "copy"
x = 300
y = 33
capture = "order.number"
"#,
    )
    .expect("baseline playbook");
    let case: Case = serde_json::from_value(serde_json::json!({
        "case_id": "case-000000000000000000000001", "tenant": "mso-demo",
        "source": {"adapter": "desktop", "profile": "legacy-desktop",
                   "received_at": "2026-11-22T10:00:00Z"},
        "status": "approved",
        // The sample order's patient: the write playbook's context checks pass.
        "patient": {"identifiers": [{"type": "MR", "value": "E10001"}],
                    "name": {"family": "Müller", "given": ["Søren"]},
                    "birth_date": "1970-01-31"},
        "references": {"placer_order": "ORD-70001"},
        "decision": {"status": "approved", "authorization_number": "PA-2026-0042",
                     "effective": {"start": "2026-12-01", "end": "2027-02-28"},
                     "note": "Approved per Dr. Müller / Søren |^~\\& ok"}
    }))
    .expect("case");
    // One warm-up of each (keymaps, clipboard connection).
    for pb in [&baseline, &read, &write] {
        let c = (pb.kind == gateway_desktop::PlaybookKind::Write).then_some(&case);
        run_playbook(pb, &mut driver, c, &options).expect("warm-up run");
    }
    let mut results = Vec::new();
    for pb in [&baseline, &read, &write] {
        let c = (pb.kind == gateway_desktop::PlaybookKind::Write).then_some(&case);
        let samples: Vec<Duration> = (0..iterations)
            .map(|_| {
                run_playbook(pb, &mut driver, c, &options)
                    .expect("run")
                    .elapsed
            })
            .collect();
        results.push((pb.name.clone(), pb.steps.len(), stats(samples)));
    }
    // The same runs through the bounded driver the daemon and CLI use (each
    // call hops to the driver thread): its overhead against the direct driver.
    drop(driver);
    let mut bounded = gateway_desktop::BoundedDriver::spawn(
        || X11Driver::connect(None).map(|d| Box::new(d) as Box<dyn gateway_desktop::Driver>),
        gateway_desktop::Bounds::default(),
    )
    .expect("bounded X11 driver");
    for pb in [&read, &write] {
        let c = (pb.kind == gateway_desktop::PlaybookKind::Write).then_some(&case);
        run_playbook(pb, &mut bounded, c, &options).expect("warm-up run");
        let samples: Vec<Duration> = (0..iterations)
            .map(|_| {
                run_playbook(pb, &mut bounded, c, &options)
                    .expect("run")
                    .elapsed
            })
            .collect();
        results.push((
            format!("{} bounded", pb.name),
            pb.steps.len(),
            stats(samples),
        ));
    }
    assert!(app.saved(Duration::from_secs(5)).is_some(), "write saved");
    let base = results[0].2.0;
    println!("desktop playbook timing, {iterations} runs each (Xvfb, python3-tk app)");
    println!(
        "{:<24} {:>6} {:>12} {:>10} {:>10} {:>12}",
        "playbook", "steps", "median ms", "min ms", "max ms", "x baseline"
    );
    for (name, steps, (median, min, max)) in &results {
        println!(
            "{name:<24} {steps:>6} {median:>12.1} {min:>10.1} {max:>10.1} {:>12.1}",
            median / base
        );
    }
}
