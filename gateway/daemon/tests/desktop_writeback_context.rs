//! The daemon writes a decision back through the legacy EHR's screens only on
//! the case's patient. Under a private Xvfb with the legacy-EHR test
//! application whose authorization screen was left open on another patient:
//! the write playbook's first context check aborts before any input reaches
//! the form; the decision's write-back is `failed` (not retried) with a reason
//! naming the fields that disagree and the evidence it left; the screenshot is
//! listed in `/api/v1/evidence` for the case; the case counts as touched by
//! hand and the abort is listed with its reason on the dashboard (in headless
//! Chromium over WebDriver); no patient value reaches the daemon's log. Once
//! the screen is right, an operator's re-posted decision is saved.
//!
//! Needs Xvfb and python3-tk (`.ci/install.d/50-desktop.sh`), and for the
//! dashboard part chromium + chromedriver (`.ci/install.d/70-chromium.sh`):
//! skipped with a printed reason when missing, failed when `CI` is set.

#![cfg(unix)]

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_store::{Reader, WriteBackState};
use serde_json::{Value, json};
use support::{Daemon, TOKEN, wait_for};

const AUTH: &str = "PA-CTX-0001";

async fn post_decision(http: &reqwest::Client, daemon: &Daemon, case_id: &str) -> i64 {
    let response = http
        .post(daemon.url(&format!("/api/v1/cases/{case_id}/decision")))
        .bearer_auth(TOKEN)
        .json(&json!({
            "status": "approved", "authorization_number": AUTH,
            "effective": {"start": "2026-12-01", "end": "2027-02-28"},
            "note": "Approved (synthetic)"
        }))
        .send()
        .await
        .expect("post decision");
    assert_eq!(response.status(), 202);
    let posted: Value = response.json().await.expect("json");
    posted["decision_id"].as_i64().expect("decision id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_patient_on_screen_fails_the_write_back_with_evidence_and_no_input() {
    let Some(display) = support::desktop::display("desktop write-back context test") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let first_dir = dir.path().join("app-wrong-patient");
    std::fs::create_dir_all(&first_dir).expect("app dir");
    let app = support::desktop::App::start_with(
        display.display(),
        &first_dir,
        &["--auth-on-other-patient"],
    );
    let playbooks = support::repo_root().join("mappings/legacy-desktop/playbooks");
    let config = support::write_config(
        dir.path(),
        &format!(
            "[desktop]\nread_playbook = \"{}\"\nwrite_playbook = \"{}\"\n",
            playbooks.join("read-order.toml").display(),
            playbooks.join("write-decision.toml").display()
        ),
    );
    let daemon = Daemon::start_with_env(&config, &[("DISPLAY", display.display())]);
    let http = reqwest::Client::new();

    // The order screen becomes a case (the order's own patient).
    let read = http
        .post(daemon.url("/api/v1/adapters/desktop/read"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(read.status(), 200);
    let read: Value = read.json().await.expect("json");
    assert_eq!(read["outcome"], "accepted", "{read}");
    let case_id = read["case_id"].as_str().expect("case id").to_owned();

    // The decision comes back; the authorization screen shows someone else.
    let decision_id = post_decision(&http, &daemon, &case_id).await;
    let reader = Reader::open(dir.path().join("data").join("gateway.sqlite")).expect("reader");
    let (state, error) = wait_for("the write-back to end", Duration::from_secs(60), || {
        reader
            .writeback_state(decision_id)
            .expect("state")
            .filter(|(s, _)| *s != WriteBackState::Pending)
    });
    assert_eq!(state, WriteBackState::Failed, "{error:?}");
    let error = error.expect("the reason");
    for part in [
        "step 3 `check-patient-before-typing`",
        "wrong patient or record on screen",
        "field `mrn` differs from the case",
        "field `patient_name` differs from the case",
        "field `birth_date` differs from the case",
        "field `order_number` differs from the case",
        "evidence kept as evidence:",
    ] {
        assert!(error.contains(part), "`{part}` not in {error}");
    }
    let phi = [
        "E10001", "E20002", "Müller", "MÜLLER", "OKAFOR", "Okafor", "1970", "1982",
    ];
    for value in phi {
        assert!(!error.contains(value), "{value} in {error}");
    }

    // Nothing reached the form: the only events on the authorization screen
    // were the banner reads.
    let widgets = app.event_widgets("Prior Authorization");
    assert!(!widgets.is_empty(), "the check read the banner");
    assert!(
        widgets.iter().all(|w| w.starts_with("banner_")),
        "input reached the form: {widgets:?}"
    );
    assert!(!app.saved.exists(), "nothing may be saved");

    // The evidence, for this case, with the reason.
    let listed = support::get_json(
        &http,
        daemon.url(&format!("/api/v1/evidence?case_id={case_id}")),
        TOKEN,
    )
    .await;
    let items = listed["evidence"].as_array().expect("evidence");
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["kind"], "abort-screenshot");
    assert_eq!(items[0]["detail"]["reason"], "context_mismatch");
    assert_eq!(items[0]["detail"]["playbook"], "write-decision");
    assert_eq!(
        items[0]["detail"]["step"],
        "step 3 `check-patient-before-typing`"
    );
    let evidence_id = items[0]["id"].as_i64().expect("id");
    assert!(
        error.ends_with(&format!("evidence kept as evidence:{evidence_id}")),
        "{error}"
    );

    // The dashboard counts the case as touched by hand.
    let stats = support::get_json(&http, daemon.url("/api/v1/stats"), TOKEN).await;
    assert_eq!(stats["automation"]["cases"], 1, "{stats}");
    assert_eq!(stats["automation"]["touched"], 1, "{stats}");

    dashboard_lists_the_abort(&daemon, &case_id, dir.path()).await;

    // Not retried by itself: still failed, still nothing saved.
    let again = reader
        .writeback_state(decision_id)
        .expect("state")
        .map(|s| s.0);
    assert_eq!(again, Some(WriteBackState::Failed));

    // The screen is put right; the operator posts the decision again.
    drop(app);
    let second_dir = dir.path().join("app-right-patient");
    std::fs::create_dir_all(&second_dir).expect("app dir");
    let app = support::desktop::App::start(display.display(), &second_dir);
    // A keystroke the busy X server lost is caught by the playbook's own
    // read-back (`verify`) and fails that write-back like any other; the
    // operator posts again. Only that reason earns another try, and at most
    // three: a context mismatch here would fail the test at once.
    let mut tries = 0;
    let (state, error) = loop {
        tries += 1;
        let retry_id = post_decision(&http, &daemon, &case_id).await;
        assert_ne!(retry_id, decision_id);
        let (state, error) = wait_for("the operator's retry", Duration::from_secs(60), || {
            reader
                .writeback_state(retry_id)
                .expect("state")
                .filter(|(s, _)| *s != WriteBackState::Pending)
        });
        let lost_keystroke = error
            .as_deref()
            .is_some_and(|e| e.contains("(verify): verification failed"));
        if state == WriteBackState::Failed && lost_keystroke && tries < 3 {
            continue;
        }
        break (state, error);
    };
    assert_eq!(state, WriteBackState::Done, "{error:?}");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&app.saved).expect("saved")).expect("saved json");
    assert_eq!(saved["auth_number"], AUTH);
    assert_eq!(saved["status"], "APPROVED");

    // No patient value in the daemon's log.
    for line in daemon.drain_lines() {
        for value in phi {
            assert!(!line.contains(value), "{value} logged: {line}");
        }
    }
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// chromedriver, killed on drop.
struct WebDriver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl WebDriver {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let r = self
            .http
            .request(method, url)
            .json(&body)
            .send()
            .await
            .expect("webdriver");
        r.json::<Value>().await.expect("webdriver json")["value"].take()
    }

    async fn goto(&self, url: String) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn wait_for(&self, script: &str, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.script(script).await;
            if !v.is_null() && v != false {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Signs in to the dashboard in headless Chromium and reads the desktop
/// aborts table: the case, the step and `context_mismatch` are shown.
async fn dashboard_lists_the_abort(daemon: &Daemon, case_id: &str, dir: &std::path::Path) {
    let (Some(chromium), Some(chromedriver)) = (find_tool("chromium"), find_tool("chromedriver"))
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium or chromedriver is missing (CI runs .ci/install.d/70-chromium.sh)"
        );
        eprintln!("dashboard part skipped: chromium and chromedriver are not installed");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let mut driver = WebDriver {
        child,
        base: format!("http://127.0.0.1:{port}"),
        session: String::new(),
        http: reqwest::Client::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = match driver
            .http
            .get(format!("{}/status", driver.base))
            .send()
            .await
        {
            Ok(r) => r
                .json::<Value>()
                .await
                .is_ok_and(|v| v["value"]["ready"] == true),
            Err(_) => false,
        };
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver did not get ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = dir.join("chromium-profile");
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--no-first-run",
                     format!("--user-data-dir={}", profile.display())]
        }
    }}});
    let created: Value = driver
        .http
        .post(format!("{}/session", driver.base))
        .json(&caps)
        .send()
        .await
        .expect("new session")
        .json()
        .await
        .expect("session json");
    driver.session = created["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {created}"))
        .to_owned();

    driver.goto(daemon.url("/login?next=/")).await;
    driver
        .wait_for(
            "return document.getElementById('token') !== null",
            "the login page",
        )
        .await;
    driver
        .script(&format!(
            "var t = document.getElementById('token'); t.value = '{TOKEN}'; t.form.submit(); return true;"
        ))
        .await;
    driver
        .wait_for(
            "return location.pathname === '/' && document.readyState === 'complete'",
            "the dashboard",
        )
        .await;
    let table = driver
        .wait_for(
            "var b = document.querySelector('#desktop-aborts tbody'); \
             return b && b.innerText.indexOf('context_mismatch') >= 0 ? b.innerText : null;",
            "the desktop abort on the dashboard",
        )
        .await;
    let table = table.as_str().expect("text").to_owned();
    for part in [
        case_id,
        "write-decision",
        "check-patient-before-typing",
        "field `mrn` differs from the case",
    ] {
        assert!(
            table.contains(part),
            "`{part}` not on the dashboard: {table}"
        );
    }
    let touched = driver
        .script("return document.getElementById('touched').textContent")
        .await;
    assert_eq!(touched, "1", "touched by hand");
    driver.call(reqwest::Method::DELETE, "", json!({})).await;
}
