//! Scheduled desktop reads in the real daemon under a private Xvfb: with
//! `[desktop] read_interval_secs` set, the daemon reads the legacy EHR's order
//! screen on its own — no trigger — and the order becomes one case whose
//! later reads are recognised as the same case (no second case), and the
//! screen is never written to.
//!
//! Needs Xvfb and python3-tk (`.ci/install.d/50-desktop.sh`): skipped with a
//! printed reason when missing, failed when `CI` is set.

#![cfg(unix)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::Daemon;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reads_the_order_screen_on_its_schedule() {
    let Some(display) = support::desktop::display("desktop schedule test") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let app = support::desktop::App::start(display.display(), dir.path());
    let playbook = support::repo_root().join("mappings/legacy-desktop/playbooks/read-order.toml");
    let config = support::write_config(
        dir.path(),
        &format!(
            "[desktop]\nread_playbook = \"{}\"\nread_interval_secs = 1\n",
            playbook.display()
        ),
    );
    let daemon = Daemon::start_with_env(&config, &[("DISPLAY", display.display())]);
    let http = reqwest::Client::new();
    let messages = async || -> Value {
        let url = daemon.url("/api/v1/messages?adapter=desktop&limit=100");
        support::get_json(&http, url, support::TOKEN).await
    };

    // Two scheduled reads (each ~1.4 s), nobody asked for either.
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let listed = messages().await;
        if listed["total"].as_u64().unwrap_or(0) >= 2 {
            break listed;
        }
        assert!(Instant::now() < deadline, "no scheduled reads: {listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rows = listed["messages"].as_array().expect("messages");
    let expected_case = gateway_core::ids::case_id("mso-test", "legacy-desktop:ORD-70001");
    for row in rows {
        assert_eq!(row["adapter"], "desktop", "{row}");
        assert_eq!(row["case_id"], expected_case.as_str(), "{row}");
        assert!(
            row["state"] == "accepted" || row["state"] == "duplicate",
            "{row}"
        );
    }
    let url = daemon.url(&format!("/api/v1/cases/{expected_case}"));
    let case = support::get_json(&http, url, support::TOKEN).await;
    assert_eq!(case["case"]["source"]["adapter"], "desktop", "{case}");
    assert_eq!(case["case"]["services"][0]["code"]["code"], "78452");
    // Reading never saves anything into the chart.
    assert!(!app.saved.exists(), "a read playbook wrote to the EHR");
    drop(daemon);
}
