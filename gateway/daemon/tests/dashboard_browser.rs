//! The dashboard in a real browser: the real daemon with an MLLP listener and
//! an HTTP sink (gateway-testkit's loopback platform, which answers 400 to one
//! case's first event so it becomes a dead letter) receives known traffic —
//! four orders and one message that cannot be mapped. Headless Debian
//! Chromium, driven over WebDriver (`chromedriver`, plain JSON over HTTP),
//! then: loads `/` without a session (sent to `/login`), logs in with the
//! token, checks the figures shown equal the traffic, clicks **Replay** on the
//! dead letter, verifies through the API that the event was re-queued and
//! delivered and that the audit log names the case, waits for the page to
//! refresh itself, and saves a screenshot under the cargo target dir.
//!
//! Needs `chromium` and `chromedriver` (`.ci/install.d/70-chromium.sh`): fails
//! without them when `CI` is set, otherwise skips with a printed reason.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_testkit::platform::{PlatformReceiver, Reply};
use serde_json::{Value, json};

fn find_tool(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The sample Epic order with its control id and order number replaced.
fn order(n: u32) -> Vec<u8> {
    let text = String::from_utf8(support::epic_order()).expect("utf-8 sample");
    text.replace("EPIC0001", &format!("DASH{n:04}"))
        .replace("EP5001", &format!("EP61{n:02}"))
        .into_bytes()
}

/// Sends one MLLP frame and returns the ACK's MSA-1 code.
fn send_mllp(port: u16, message: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect MLLP");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut frame = vec![0x0b];
    frame.extend_from_slice(message);
    frame.extend_from_slice(&[0x1c, 0x0d]);
    stream.write_all(&frame).expect("send");
    let mut ack = Vec::new();
    let mut buf = [0u8; 4096];
    while !ack.ends_with(&[0x1c, 0x0d]) {
        let n = stream.read(&mut buf).expect("read ACK");
        assert!(n > 0, "connection closed before the ACK");
        ack.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&ack);
    text.split(['\r', '\n'])
        .find_map(|seg| seg.strip_prefix("MSA|"))
        .and_then(|msa| msa.split('|').next())
        .unwrap_or("")
        .to_owned()
}

/// A chromedriver child, killed on drop.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: Option<String>,
}

impl Driver {
    async fn start(chromedriver: &PathBuf) -> Driver {
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            session: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let session = self.session.as_deref().unwrap_or("");
        let url = format!("{}/session/{session}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("webdriver request");
        let status = response.status();
        let value: Value = response.json().await.expect("webdriver json");
        assert!(status.is_success(), "{url}: {status} {value}");
        value["value"].clone()
    }

    async fn new_session(&mut self, chromium: &PathBuf, profile: &std::path::Path) {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--window-size=1280,1400",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let response = self
            .http
            .post(format!("{}/session", self.base))
            .json(&caps)
            .send()
            .await
            .expect("new session");
        let value: Value = response.json().await.expect("session json");
        let id = value["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {value}"))
            .to_owned();
        self.session = Some(id);
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        // A web element reference: an object with one member, the W3C
        // identifier key, whose value is the element id.
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Polls `script` until it returns `true`.
    async fn wait_for(&self, script: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.script(script).await != Value::Bool(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Driver {
    /// Ends the session: the browser exits before the driver is killed.
    async fn quit(mut self) {
        if let Some(session) = self.session.take() {
            let _ = self
                .http
                .delete(format!("{}/session/{session}", self.base))
                .send()
                .await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (the WebDriver screenshot encoding).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let data: Vec<u8> = chunk.iter().copied().filter(|c| *c != b'=').collect();
        let mut acc = 0u32;
        for (i, c) in data.iter().enumerate() {
            acc |= value(*c) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..data.len()]);
    }
    out
}

async fn api(http: &reqwest::Client, url: String) -> Value {
    let r = http
        .get(url)
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .expect("api");
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_shows_known_traffic_and_replays_a_dead_letter() {
    let tools = (
        find_tool(&["chromium", "chromium-browser"]),
        find_tool(&["chromedriver"]),
    );
    let (Some(chromium), Some(chromedriver)) = tools else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium or chromedriver is missing (CI runs .ci/install.d/70-chromium.sh)"
        );
        eprintln!("skipped: chromium and chromium-driver are not installed");
        return;
    };

    // The platform refuses the third order's first event with 400: a dead letter.
    let platform = PlatformReceiver::start().await;
    platform.set_rule(|request| {
        let placer = request
            .event
            .as_ref()
            .and_then(|e| e["data"]["references"]["placer_order"].as_str());
        (placer == Some("EP6103") && request.attempt == 1)
            .then(|| Reply::status(400, "case refused by the platform"))
    });
    let dir = tempfile::tempdir().expect("tmp");
    let mllp = free_port();
    let config = support::write_config(
        dir.path(),
        &format!(
            "[forward]\nsink = \"http\"\n[forward.http]\nurl = \"{}\"\n\
             [[hl7v2.listeners]]\nlisten = \"127.0.0.1:{mllp}\"\nprofile = \"epic\"\n",
            platform.url()
        ),
    );
    let daemon = support::Daemon::start(&config);
    let port = daemon.admin.port();
    let base = format!("http://localhost:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // Known traffic: four orders, one message no mapping accepts.
    for n in 1..=4 {
        assert_eq!(send_mllp(mllp, &order(n)), "AA", "order {n}");
    }
    let unmappable = b"MSH|^~\\&|EPIC|CARDIO-NORTH|EHR-GATEWAY|MSO|20261122093000||ZZZ^Z99|DASH0005|P|2.5.1\rPID|1\r";
    let code = send_mllp(mllp, unmappable);
    assert!(code == "AE" || code == "AR", "unmappable answered {code}");

    // Without a session: the page sends to the login, the API answers 401.
    let r = http.get(format!("{base}/")).send().await.expect("get /");
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=/");
    let r = http
        .get(format!("{base}/api/v1/stats"))
        .send()
        .await
        .expect("stats");
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);

    // Wait for the forwarder: three delivered, one dead.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let s = api(&http, format!("{base}/api/v1/stats")).await;
        if s["dead_letters"]["count"] == 1 && s["volume"]["completed"] == 3 {
            break s;
        }
        assert!(Instant::now() < deadline, "traffic not settled: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stats["volume"]["received"], 5, "{stats}");
    assert_eq!(stats["exceptions"]["rejected"], 1, "{stats}");
    let dead_event = stats["dead_letters"]["items"][0]["event_id"]
        .as_str()
        .expect("dead event id")
        .to_owned();
    let dead_case = stats["dead_letters"]["items"][0]["case_id"]
        .as_str()
        .expect("dead case id")
        .to_owned();

    let mut driver = Driver::start(&chromedriver).await;
    driver
        .new_session(&chromium, &dir.path().join("chromium-profile"))
        .await;

    // No session: refused, sent to the login page.
    driver.goto(&format!("{base}/")).await;
    let url = driver.current_url().await;
    assert!(url.ends_with("/login?next=/"), "not sent to login: {url}");
    // Log in by typing the token (Enter submits).
    let token = driver.element("#token").await;
    driver
        .call(
            reqwest::Method::POST,
            &format!("/element/{token}/value"),
            Some(json!({ "text": format!("{}\u{E007}", support::TOKEN) })),
        )
        .await;
    driver
        .wait_for(
            "return location.pathname === '/' && document.body.getAttribute('data-loaded') !== null && Number(document.body.getAttribute('data-loaded')) >= 1",
            "the dashboard to load its figures",
        )
        .await;

    // Adapter health: the MLLP listener's adapter is reported up.
    driver
        .wait_for(
            "var c = document.querySelector('#adapters tbody td.up'); \
             return c !== null && c.parentNode.cells[0].textContent === 'hl7v2';",
            "the hl7v2 adapter to show as up",
        )
        .await;
    let shown = driver
        .script(
            "var t = function (id) { return document.getElementById(id).textContent; };
             var row = Array.from(document.querySelectorAll('#by-adapter tbody tr'))
                 .map(function (r) { return r.textContent.trim(); });
             return {received: t('total-received'), completed: t('total-completed'),
                     backlog: t('total-backlog'), rejected: t('exc-rejected'),
                     total: t('exc-total'), rate: t('exc-rate'), dead: t('dead-count'),
                     depth: t('queue-depth'), coverage: t('coverage'), cases: t('cases'),
                     delivered: t('queue-delivered'), rf: t('cycle-rf-n'),
                     adapters: row,
                     chart: document.querySelector('#chart path[data-series=received]').getAttribute('data-total'),
                     replay: document.querySelectorAll('button.replay').length};",
        )
        .await;
    let expected = json!({
        "received": "5", "completed": "3", "backlog": "2", "rejected": "1", "total": "5",
        "rate": "20.0%", "dead": "1", "depth": "0", "coverage": "100.0%", "cases": "4",
        "delivered": "3", "rf": "3",
        // adapter, received, completed, rejected, duplicates
        "adapters": ["hl7v25310"], "chart": "5", "replay": 1
    });
    assert_eq!(shown, expected, "figures shown on the dashboard");

    // Replay the dead letter from the page.
    let button = driver
        .element(&format!("button.replay[data-event=\"{dead_event}\"]"))
        .await;
    driver
        .call(
            reqwest::Method::POST,
            &format!("/element/{button}/click"),
            Some(json!({})),
        )
        .await;
    driver
        .wait_for(
            "return document.getElementById('replay-status').textContent.indexOf('re-queued') === 0",
            "the replay to be accepted",
        )
        .await;

    // Through the API: re-queued and delivered (the platform accepts the
    // second attempt), no dead letters left.
    assert_eq!(platform.wait_accepted(4, Duration::from_secs(30)).await, 4);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = api(&http, format!("{base}/api/v1/stats")).await;
        if s["dead_letters"]["count"] == 0 && s["volume"]["completed"] == 4 {
            assert_eq!(s["automation"]["touched"], 1, "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "replay not delivered: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The audit log names the replay and its case.
    let store = dir.path().join("data/gateway.sqlite");
    let audit = gateway_store::Reader::open(&store)
        .expect("reader")
        .audit_log(50)
        .expect("audit");
    assert!(
        audit.iter().any(|a| a.entry.action == "event.replay"
            && a.entry.case_id.as_deref() == Some(dead_case.as_str())),
        "no event.replay audit entry for {dead_case}: {audit:?}"
    );

    // The page refreshes itself: the dead letter is gone, coverage drops.
    driver
        .wait_for(
            "return document.getElementById('dead-count').textContent === '0' && document.getElementById('coverage').textContent === '75.0%' && document.getElementById('total-completed').textContent === '4'",
            "the dashboard to refresh after the replay",
        )
        .await;

    let png = driver.call(reqwest::Method::GET, "/screenshot", None).await;
    let bytes = base64_decode(png.as_str().expect("screenshot base64"));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG signature"
    );
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&out, &bytes).expect("write screenshot");
    println!("dashboard screenshot: {}", out.display());
    driver.quit().await;
    drop(daemon);
}
