//! The daemon's desktop adapter under a private Xvfb, driven through the
//! admin API: an operator's "read now" while no EHR window is open aborts,
//! leaves its screenshot in the store's evidence table and bumps the manual
//! interventions counter; a second trigger during that run answers 409; the
//! screenshot is served as a PNG to an operator (audited as `phi.read`) and
//! refused to a viewer; once the legacy-EHR test application runs, the trigger
//! reads its order into a case.
//!
//! Needs Xvfb and python3-tk (`.ci/install.d/50-desktop.sh`): skipped with a
//! printed reason when missing, failed when `CI` is set.

#![cfg(unix)]

mod support;

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use support::Daemon;

const VIEWER: &str = "viewer-token-synthetic-000000000101";
const OPERATOR: &str = "operator-token-synthetic-00000000102";
const PHI_READER: &str = "phi-token-synthetic-00000000000103";

fn config(dir: &Path) -> std::path::PathBuf {
    // The shipped read playbook, waiting 2.5 s (not 10) for the order screen.
    let shipped = support::repo_root().join("mappings/legacy-desktop/playbooks/read-order.toml");
    let text = std::fs::read_to_string(shipped).expect("read-order.toml");
    assert!(text.contains("timeout_ms = 10000"));
    let playbook = dir.join("read-order.toml");
    std::fs::write(
        &playbook,
        text.replacen("timeout_ms = 10000", "timeout_ms = 2500", 1),
    )
    .expect("playbook");
    let mut toml = String::new();
    for (name, token, roles) in [
        ("view-desk", VIEWER, r#"["viewer"]"#),
        ("ops-desk", OPERATOR, r#"["viewer", "operator"]"#),
        ("chart-desk", PHI_READER, r#"["viewer", "phi:read"]"#),
    ] {
        let file = dir.join(format!("{name}.token"));
        std::fs::write(&file, format!("{token}\n")).expect("token file");
        toml.push_str(&format!(
            "[[admin.tokens]]\nname = \"{name}\"\ntoken_file = \"{}\"\nroles = {roles}\n",
            file.display()
        ));
    }
    toml.push_str(&format!(
        "[desktop]\nread_playbook = \"{}\"\n",
        playbook.display()
    ));
    support::write_config(dir, &toml)
}

async fn trigger(http: &reqwest::Client, daemon: &Daemon, token: &str) -> (StatusCode, Value) {
    let r = http
        .post(daemon.url("/api/v1/adapters/desktop/read"))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_trigger_abort_evidence_and_operator_access() {
    let Some(display) = support::desktop::display("desktop evidence test") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start_with_env(&config(dir.path()), &[("DISPLAY", display.display())]);
    let http = reqwest::Client::new();

    // A viewer may not trigger reads.
    let (status, _) = trigger(&http, &daemon, VIEWER).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // No EHR window: the read waits 2.5 s, then aborts. A second trigger in
    // the meantime is answered 409 at once, nothing queued.
    let first = {
        let http = http.clone();
        let url = daemon.url("/api/v1/adapters/desktop/read");
        tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(OPERATOR)
                .send()
                .await
                .expect("send");
            (r.status(), r.json::<Value>().await.expect("problem body"))
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, busy) = trigger(&http, &daemon, OPERATOR).await;
    assert_eq!(status, StatusCode::CONFLICT, "{busy}");
    assert!(
        busy["type"].as_str().unwrap_or("").contains("desktop-busy"),
        "{busy}"
    );
    let (status, aborted) = first.await.expect("first trigger");
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{aborted}");
    assert_eq!(aborted["reason"], "window_not_found", "{aborted}");
    let evidence_id = aborted["evidence_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("evidence id in {aborted}"));
    assert_eq!(
        aborted["evidence_href"],
        format!("/api/v1/evidence/{evidence_id}")
    );

    // The listing shows it (metadata only) to a viewer.
    let list: Value = http
        .get(daemon.url("/api/v1/evidence"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let items = list["evidence"].as_array().expect("evidence array");
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["id"], evidence_id);
    assert_eq!(items[0]["kind"], "abort-screenshot");
    assert_eq!(items[0]["adapter"], "desktop");
    assert_eq!(items[0]["detail"]["reason"], "window_not_found");
    assert_eq!(items[0]["detail"]["playbook"], "read-order");

    // The screenshot itself may show a chart: refused to a viewer and to an
    // operator without `phi:read`, a PNG for a `phi:read` token.
    let url = daemon.url(&format!("/api/v1/evidence/{evidence_id}"));
    for token in [VIEWER, OPERATOR] {
        let r = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let r = http
        .get(&url)
        .bearer_auth(PHI_READER)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let png_bytes = r.bytes().await.expect("body");
    let reader = png::Decoder::new(std::io::Cursor::new(png_bytes.to_vec()))
        .read_info()
        .expect("a valid PNG");
    // No window was found: the whole 1280x800 screen.
    assert_eq!((reader.info().width, reader.info().height), (1280, 800));
    let missing = http
        .get(daemon.url("/api/v1/evidence/999999"))
        .bearer_auth(PHI_READER)
        .send()
        .await
        .expect("send");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // The abort counts as a manual intervention.
    let metrics = http
        .get(daemon.url("/metrics"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ehr_gateway_manual_interventions_total")
                && l.contains(r#"reason="desktop_abort""#)
                && l.ends_with(" 1")),
        "no desktop_abort intervention in /metrics"
    );

    // With the EHR open, the trigger reads its order into a case.
    let _app = support::desktop::App::start(display.display(), dir.path());
    let (status, done) = trigger(&http, &daemon, OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["outcome"], "accepted", "{done}");
    assert_eq!(
        done["case_id"],
        gateway_core::ids::case_id("mso-test", "legacy-desktop:ORD-70001")
    );

    // The audit trail: two triggers that ran or were refused busy by an
    // operator, one screenshot read as phi.read — nothing for refused viewers.
    let reader = gateway_store::Reader::open(dir.path().join("data").join("gateway.sqlite"))
        .expect("read the daemon's store");
    let audit = reader.audit_log(100).expect("audit");
    let phi: Vec<_> = audit
        .iter()
        .filter(|a| a.entry.action == "phi.read")
        .collect();
    assert_eq!(phi.len(), 1, "{audit:?}");
    assert_eq!(
        phi[0].entry.target.as_deref(),
        Some(format!("evidence:{evidence_id}").as_str())
    );
    assert_eq!(phi[0].entry.actor, "chart-desk");
    let reads = audit
        .iter()
        .filter(|a| a.entry.action == "desktop.read")
        .count();
    assert_eq!(reads, 3, "{audit:?}");
}
