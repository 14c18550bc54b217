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
//!
//! The messages page (`/messages`) in the same browser, against known MLLP
//! traffic (three orders, one resent — a duplicate —, one unmappable): no
//! session → the login, which returns to the search; search by control id,
//! state and time with exact rows and totals; keyset paging; a message's
//! detail as a viewer-only token (no raw HL7 anywhere in the DOM), as a
//! `phi:read` token (the raw message, audited as `phi.read`), and **Replay**
//! of the rejected message as an operator (audited as `message.replay`).
//!
//! Needs `chromium` and `chromedriver` (`.ci/install.d/70-chromium.sh`): fails
//! without them when `CI` is set, otherwise skips with a printed reason.

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_testkit::platform::{PlatformReceiver, Reply};
use serde_json::{Value, json};

/// One browser test at a time: each runs a daemon, chromedriver and Chromium,
/// which on a small CI machine is plenty.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    support::mllp_exchange(&mut stream, message)
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
    /// Clicks the element `css` selects.
    async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Replaces the text of the input `css` selects with `text`.
    async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await;
        if !text.is_empty() {
            self.call(
                reqwest::Method::POST,
                &format!("/element/{element}/value"),
                Some(json!({ "text": text })),
            )
            .await;
        }
    }

    /// On the login page: types `token` and presses Enter.
    async fn log_in(&self, token: &str) {
        self.wait_for(
            "return location.pathname === '/login' && document.getElementById('token') !== null",
            "the login page",
        )
        .await;
        self.type_into("#token", &format!("{token}\u{E007}")).await;
    }

    /// Ends the Chromium session and waits for the login page.
    async fn log_out(&self) {
        self.click("#logout").await;
        self.wait_for("return location.pathname === '/login'", "the logout")
            .await;
    }

    /// The browser's screenshot as PNG bytes.
    async fn screenshot(&self) -> Vec<u8> {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64_decode(png.as_str().expect("screenshot base64"));
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "not a PNG signature"
        );
        bytes
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

/// Chromium and chromedriver, or `None` (skip) when either is missing —
/// a failure under `CI`, which installs both.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
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
        return None;
    };
    Some((chromium, chromedriver))
}

/// An HTTP client that shows redirects (to the login) instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
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
    let _browser = BROWSER.lock().await;
    let Some((chromium, chromedriver)) = browser_tools() else {
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
    let http = no_redirects();

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
                     held: t('held-cases'), waiting: t('held-events'),
                     depth: t('queue-depth'), coverage: t('coverage'), cases: t('cases'),
                     delivered: t('queue-delivered'), rf: t('cycle-rf-n'),
                     adapters: row,
                     chart: document.querySelector('#chart path[data-series=received]').getAttribute('data-total'),
                     replay: document.querySelectorAll('button.replay').length};",
        )
        .await;
    let expected = json!({
        "received": "5", "completed": "3", "backlog": "2", "rejected": "1", "total": "5",
        "rate": "20.0%", "dead": "1", "held": "1", "waiting": "0", "depth": "0", "coverage": "100.0%", "cases": "4",
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

const VIEWER: &str = "viewer-token-synthetic-000000000101";
const PHI: &str = "phi-token-synthetic-00000000000103";

/// What of the sample order's raw HL7 would betray that the raw message (or
/// its parsed tree) reached the page: segment starts and patient values.
const RAW_MARKERS: [&str; 9] = [
    "MSH|",
    "PID|",
    "ORC|",
    "TESTPATIENT",
    "EMMA",
    "E20001",
    "19580309",
    "DEMO ST",
    "5550100",
];

/// The cells of the messages table's rows.
const ROWS: &str = "return Array.from(document.querySelectorAll('#messages tbody tr[data-id]'))
     .map(function (r) { return Array.from(r.cells).map(function (c) { return c.textContent; }); });";

/// The page's row for a message of `GET /api/v1/messages` ("—" for nothing).
fn expected_row(m: &Value) -> Value {
    let text = |v: &Value| match v {
        Value::Null => "—".to_owned(),
        Value::String(s) if s.is_empty() => "—".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    json!([
        text(&m["id"]),
        text(&m["received_at"]),
        text(&m["adapter"]),
        text(&m["profile"]),
        text(&m["message_type"]),
        text(&m["control_id"]),
        text(&m["state"]),
        text(&m["case_id"]),
        text(&m["error_reason"]),
    ])
}

impl Driver {
    /// Number of searches the messages page has finished.
    async fn searches(&self) -> u64 {
        self.script("return Number(document.body.getAttribute('data-searches'))")
            .await
            .as_u64()
            .expect("data-searches")
    }

    /// Waits for the messages page to finish a search after `before`.
    async fn searched_after(&self, before: u64) {
        self.wait_for(
            &format!("return Number(document.body.getAttribute('data-searches')) > {before}"),
            "the search to finish",
        )
        .await;
        let error = self
            .script("var e = document.getElementById('results-status'); return e.className === 'error' ? e.textContent : '';")
            .await;
        assert_eq!(error, "", "the search failed");
    }

    /// Loads `/messages?query` (already signed in) and waits for its search.
    async fn messages_page(&self, base: &str, query: &str) {
        self.goto(&format!("{base}/messages{query}")).await;
        self.searched_after(0).await;
    }

    /// The rows shown and the total.
    async fn results(&self) -> (Value, String) {
        let rows = self.script(ROWS).await;
        let total = self
            .script("return document.getElementById('total').textContent")
            .await;
        (rows, total.as_str().unwrap_or("").to_owned())
    }

    /// Clicks message `id`'s row and waits for its detail.
    async fn open_detail(&self, id: i64) {
        self.click(&format!("#messages tbody tr[data-id=\"{id}\"]"))
            .await;
        self.wait_for(
            &format!("return document.body.getAttribute('data-detail') === '{id}'"),
            "the message detail",
        )
        .await;
    }

    /// The whole document as markup and as rendered text.
    async fn whole_dom(&self) -> String {
        self.script("return document.documentElement.outerHTML + '\\n' + document.body.innerText")
            .await
            .as_str()
            .expect("dom text")
            .to_owned()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_page_searches_shows_details_by_role_and_replays() {
    let _browser = BROWSER.lock().await;
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };

    // A viewer-only token and a phi:read token next to the full-access one.
    let dir = tempfile::tempdir().expect("tmp");
    let mllp = free_port();
    let mut extra =
        format!("[[hl7v2.listeners]]\nlisten = \"127.0.0.1:{mllp}\"\nprofile = \"epic\"\n");
    for (name, token, roles) in [
        ("view-desk", VIEWER, r#"["viewer"]"#),
        ("chart-reader", PHI, r#"["phi:read"]"#),
    ] {
        let file = dir.path().join(format!("{name}.token"));
        std::fs::write(&file, format!("{token}\n")).expect("token file");
        extra.push_str(&format!(
            "[[admin.tokens]]\nname = \"{name}\"\ntoken_file = \"{}\"\nroles = {roles}\n",
            file.display()
        ));
    }
    let config = support::write_config(dir.path(), &extra);
    let daemon = support::Daemon::start(&config);
    let base = format!("http://localhost:{}", daemon.admin.port());
    let http = no_redirects();

    // Known traffic: DASH0011..13 accepted, DASH0012 again (a duplicate),
    // DASH0019 rejected (no mapping for its type).
    for n in [11, 12, 13, 12] {
        assert_eq!(send_mllp(mllp, &order(n)), "AA", "order {n}");
    }
    let unmappable = b"MSH|^~\\&|EPIC|CARDIO-NORTH|EHR-GATEWAY|MSO|20261122093000||ZZZ^Z99|DASH0019|P|2.5.1\rPID|1||E20001^^^CARDIO-NORTH^MRN||TESTPATIENT^EMMA\r";
    let code = send_mllp(mllp, unmappable);
    assert!(code == "AE" || code == "AR", "unmappable answered {code}");
    let all = api(&http, format!("{base}/api/v1/messages?limit=100")).await;
    assert_eq!(all["total"], 5, "{all}");
    let listed = all["messages"].as_array().expect("messages").clone();
    let find = |control: &str, state: &str| -> Value {
        listed
            .iter()
            .find(|m| m["control_id"] == control && m["state"] == state)
            .unwrap_or_else(|| panic!("no {state} {control}: {all}"))
            .clone()
    };
    let order_11 = find("DASH0011", "accepted");
    let order_12 = find("DASH0012", "accepted");
    let resent_12 = find("DASH0012", "duplicate");
    let rejected = find("DASH0019", "rejected");
    let id_of = |m: &Value| m["id"].as_i64().expect("id");

    // Without a session: /messages sends to the login, keeping the search.
    let r = http
        .get(format!("{base}/messages"))
        .send()
        .await
        .expect("get /messages");
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=/messages");
    let r = http
        .get(format!("{base}/messages?control_id=DASH0012"))
        .send()
        .await
        .expect("get /messages?");
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        "/login?next=%2Fmessages%3Fcontrol_id%3DDASH0012"
    );

    let mut driver = Driver::start(&chromedriver).await;
    driver
        .new_session(&chromium, &dir.path().join("chromium-profile"))
        .await;

    // The browser is sent to the login and, signed in as the viewer, comes
    // back to the search it asked for: both DASH0012 messages, newest first.
    driver
        .goto(&format!("{base}/messages?control_id=DASH0012"))
        .await;
    let url = driver.current_url().await;
    assert!(
        url.ends_with("/login?next=%2Fmessages%3Fcontrol_id%3DDASH0012"),
        "not sent to login: {url}"
    );
    driver.log_in(VIEWER).await;
    driver
        .wait_for(
            "return location.pathname === '/messages' && Number(document.body.getAttribute('data-searches')) >= 1",
            "the messages page after login",
        )
        .await;
    let (rows, total) = driver.results().await;
    assert_eq!(
        rows,
        json!([expected_row(&resent_12), expected_row(&order_12)])
    );
    assert_eq!(total, "2");
    assert_eq!(
        driver
            .script("return document.getElementById('f-control-id').value")
            .await,
        "DASH0012",
        "the form shows the search"
    );
    // Both pages link each other.
    assert_eq!(
        driver
            .script("return Array.from(document.querySelectorAll('header nav a')).map(function (a) { return a.getAttribute('href'); })")
            .await,
        json!(["/", "/messages"])
    );

    // Search by control id through the form.
    let before = driver.searches().await;
    driver.type_into("#f-control-id", "DASH0011").await;
    driver.click("#search-button").await;
    driver.searched_after(before).await;
    let (rows, total) = driver.results().await;
    assert_eq!(rows, json!([expected_row(&order_11)]));
    assert_eq!(total, "1");
    assert!(
        driver
            .current_url()
            .await
            .ends_with("/messages?control_id=DASH0011"),
        "the URL holds the search"
    );

    // By state: only the rejected message, with its reason.
    let before = driver.searches().await;
    driver.type_into("#f-control-id", "").await;
    driver
        .script("document.getElementById('f-state').value = 'rejected'; return true;")
        .await;
    driver.click("#search-button").await;
    driver.searched_after(before).await;
    let (rows, total) = driver.results().await;
    assert_eq!(rows, json!([expected_row(&rejected)]));
    assert_eq!(total, "1");
    assert_ne!(rows[0][8], "—", "the rejection reason is shown");

    // By time: nothing received since 2099, everything before it.
    driver.messages_page(&base, "?since=2099-01-01T00:00").await;
    let (rows, total) = driver.results().await;
    assert_eq!((rows, total.as_str()), (json!([]), "0"));
    driver.messages_page(&base, "?until=2099-01-01T00:00").await;
    assert_eq!(driver.results().await.1, "5");

    // Keyset paging, two rows a page: 5 4 | 3 2 | 1, and back.
    let page_of = |ids: &[usize]| -> Value {
        Value::Array(ids.iter().map(|i| expected_row(&listed[*i])).collect())
    };
    driver.messages_page(&base, "?limit=2").await;
    assert_eq!(driver.results().await, (page_of(&[0, 1]), "5".to_owned()));
    for (ids, info, more) in [
        (&[2usize, 3][..], "3–4 of 5", true),
        (&[4][..], "5–5 of 5", false),
    ] {
        let before = driver.searches().await;
        driver.click("#next").await;
        driver.searched_after(before).await;
        assert_eq!(driver.results().await, (page_of(ids), "5".to_owned()));
        let pager = driver
            .script("return [document.getElementById('page-info').textContent, !document.getElementById('next').disabled]")
            .await;
        assert_eq!(pager, json!([info, more]));
    }
    let before = driver.searches().await;
    driver.click("#prev").await;
    driver.searched_after(before).await;
    assert_eq!(driver.results().await.0, page_of(&[2, 3]));

    // Detail as the viewer: metadata, events, no raw message anywhere.
    driver.messages_page(&base, "?control_id=DASH0011").await;
    driver.open_detail(id_of(&order_11)).await;
    let detail = driver
        .script(
            "return {note: (document.getElementById('raw-note') || {}).textContent || null,
                     raw: document.getElementById('raw-text') !== null,
                     events: document.querySelectorAll('#events tbody tr').length,
                     replay: !document.getElementById('replay-box').hidden};",
        )
        .await;
    assert_eq!(
        detail,
        json!({"note": "The raw message is not shown: reading it needs the phi:read role, which this session's token does not have.",
               "raw": false, "events": 1, "replay": false}),
    );
    let dom = driver.whole_dom().await;
    for marker in RAW_MARKERS {
        assert!(
            !dom.contains(marker),
            "raw HL7 `{marker}` in the viewer's page"
        );
    }
    // The rejected message: its Replay needs the operator role.
    driver.messages_page(&base, "?state=rejected").await;
    driver.open_detail(id_of(&rejected)).await;
    let replay = driver
        .script("var b = document.getElementById('replay'); return [document.getElementById('replay-box').hidden, b.disabled, b.title];")
        .await;
    assert_eq!(replay, json!([false, true, "needs the operator role"]));
    let dom = driver.whole_dom().await;
    for marker in RAW_MARKERS {
        assert!(
            !dom.contains(marker),
            "raw HL7 `{marker}` in the viewer's page"
        );
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("messages.png");
    std::fs::write(&out, driver.screenshot().await).expect("write screenshot");
    println!("messages page screenshot: {}", out.display());

    // As the phi:read token: the raw message is shown, and the read audited.
    driver.log_out().await;
    driver.log_in(PHI).await;
    driver
        .wait_for("return location.pathname === '/'", "the dashboard")
        .await;
    driver.click("header nav a[href=\"/messages\"]").await;
    driver
        .wait_for(
            "return location.pathname === '/messages' && Number(document.body.getAttribute('data-searches')) >= 1",
            "the messages page from the dashboard's link",
        )
        .await;
    assert_eq!(driver.results().await.1, "5");
    driver.messages_page(&base, "?control_id=DASH0011").await;
    driver.open_detail(id_of(&order_11)).await;
    let raw = driver
        .script("return [document.getElementById('raw-note') === null, document.getElementById('raw-text').textContent]")
        .await;
    assert_eq!(raw[0], true, "the redaction note next to the raw message");
    let raw = raw[1].as_str().expect("raw text");
    assert!(
        raw.starts_with("MSH|^~\\&|EPIC|CARDIO-NORTH|EHR-GATEWAY|MSO|")
            && raw.contains("|DASH0011|")
            && raw.contains("\nPID|1||E20001")
            && raw.contains("TESTPATIENT^EMMA"),
        "not the stored message: {raw}"
    );
    // phi:read is not operator.
    driver.messages_page(&base, "?state=rejected").await;
    driver.open_detail(id_of(&rejected)).await;
    assert_eq!(
        driver
            .script("return document.getElementById('replay').disabled")
            .await,
        true
    );

    // As the operator (the full-access token): Replay the rejected message.
    driver.log_out().await;
    driver.log_in(support::TOKEN).await;
    driver
        .wait_for("return location.pathname === '/'", "the dashboard")
        .await;
    driver.messages_page(&base, "?state=rejected").await;
    driver.open_detail(id_of(&rejected)).await;
    driver.click("#replay").await;
    driver
        .wait_for(
            "return document.getElementById('replay-result').textContent.indexOf('replay accepted') === 0",
            "the replay to be accepted",
        )
        .await;
    assert_eq!(
        driver
            .script("return document.getElementById('replay-result').textContent")
            .await,
        format!(
            "replay accepted: message {} queued for re-processing",
            id_of(&rejected)
        )
    );

    // The audit log: the phi:read token's view, none by the viewer, the replay.
    let store = dir.path().join("data/gateway.sqlite");
    let audit = gateway_store::Reader::open(&store)
        .expect("reader")
        .audit_log(100)
        .expect("audit");
    let has = |actor: &str, action: &str, target: String| {
        audit.iter().any(|a| {
            a.entry.actor == actor
                && a.entry.action == action
                && a.entry.target.as_deref() == Some(target.as_str())
        })
    };
    assert!(
        has(
            "chart-reader",
            "phi.read",
            format!("message:{}", id_of(&order_11))
        ),
        "no phi.read by chart-reader: {audit:?}"
    );
    assert!(
        !audit
            .iter()
            .any(|a| a.entry.actor == "view-desk" && a.entry.action == "phi.read"),
        "a phi.read by the viewer: {audit:?}"
    );
    assert!(
        has(
            "admin",
            "message.replay",
            format!("message:{}", id_of(&rejected))
        ),
        "no message.replay by admin: {audit:?}"
    );
    driver.quit().await;
    drop(daemon);
}
