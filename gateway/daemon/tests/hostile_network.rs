//! The gateway on a network an attacker can reach: the real daemon binary,
//! real TLS sockets on loopback, certificates generated here with rcgen, the
//! real store file read back with SQLite.
//!
//! * CORE SOAP refuses a 278 posted without a client certificate, with a
//!   certificate (from the trusted CA) that is on no partner's allowlist,
//!   with one from an unknown CA, and with an allowlisted certificate but
//!   another partner's SenderID — each with nothing stored but an audit row —
//!   while the allowlisted partner under its own SenderID is served.
//! * A 278 response carrying an HL7 case's id (BHT03) with a trace this
//!   gateway never wrote is rejected (G003) and kept, the case unchanged; a
//!   response to the request the platform obtained through
//!   `POST /api/v1/cases/{id}/x12-request` is adopted: the decision lands on
//!   the case.
//! * `check-config` refuses a non-loopback SOAP address without partners.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gateway_x12::soap::envelope::{CoreFields, write_request};
use gateway_x12::soap::{PAYLOAD_278_REQUEST, PAYLOAD_278_RESPONSE};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value;
use support::{Daemon, TOKEN, get_json, repo_root, write_config};

/// A client identity: certificate and key PEM.
struct Identity {
    cert: String,
    key: String,
}

/// The partners' CA, and client certificates it issued (plus one it did not).
struct Pki {
    ca_pem: String,
    payer_a: Identity,
    payer_b: Identity,
    rogue: Identity,
    foreign: Identity,
}

fn client_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Synthetic Partner CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let issue = |name: &str| {
        let key = KeyPair::generate().expect("key");
        let cert = client_params(name)
            .signed_by(&key, &issuer)
            .expect("signed");
        Identity {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    };
    let foreign_key = KeyPair::generate().expect("key");
    let foreign = client_params("payer-a.test")
        .self_signed(&foreign_key)
        .expect("self-signed");
    Pki {
        ca_pem: ca_cert.pem(),
        payer_a: issue("payer-a.test"),
        payer_b: issue("payer-b.test"),
        rogue: issue("rogue.test"),
        foreign: Identity {
            cert: foreign.pem(),
            key: foreign_key.serialize_pem(),
        },
    }
}

/// A daemon with the CORE SOAP server behind partner authentication.
struct Gateway {
    daemon: Daemon,
    dir: tempfile::TempDir,
    server_cert: String,
    soap_port: u16,
    pki: Pki,
}

/// Listener limits of a test daemon.
struct Limits {
    max_connections: usize,
    handshake_timeout_ms: u64,
}

const LIMITS: Limits = Limits {
    max_connections: 8,
    handshake_timeout_ms: 5000,
};

/// The UsernameToken password of partner `payer-c` (a file the daemon reads).
const PAYER_C_PASSWORD: &str = "synthetic-ws-security-secret-0001";

impl Gateway {
    fn start(seed_hl7_case: bool) -> Gateway {
        Gateway::start_with(seed_hl7_case, LIMITS)
    }

    fn start_with(seed_hl7_case: bool, limits: Limits) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        if seed_hl7_case {
            support::seed(&dir.path().join("data"));
        }
        let pki = pki();
        let (server_cert, server_key) =
            gateway_x12::soap::tls::self_signed(&["localhost", "127.0.0.1"]).expect("server cert");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        let cert = write("soap-cert.pem", &server_cert);
        let key = write("soap-key.pem", &server_key);
        let ca = write("partners-ca.pem", &pki.ca_pem);
        let password = write("payer-c.password", &format!("{PAYER_C_PASSWORD}\n"));
        let config = write_config(
            dir.path(),
            &format!(
                r#"[x12]
profile = "x12-278"
[x12.identity]
id = "EHRGATEWAY"
[x12.soap_server]
listen = "127.0.0.1:0"
client_ca = "{ca}"
max_connections = {max_connections}
handshake_timeout_ms = {handshake_timeout_ms}
[x12.soap_server.tls]
cert = "{cert}"
key = "{key}"
[[x12.soap_server.partners]]
name = "payer-a"
sender_ids = ["PAYERA"]
certificate_names = ["payer-a.test"]
[[x12.soap_server.partners]]
name = "payer-b"
sender_ids = ["PAYERB"]
certificate_names = ["payer-b.test"]
[[x12.soap_server.partners]]
name = "payer-c"
sender_ids = ["PAYERC"]
username = "payer-c"
password_file = "{password}"
"#,
                max_connections = limits.max_connections,
                handshake_timeout_ms = limits.handshake_timeout_ms,
                password = password.display(),
                ca = ca.display(),
                cert = cert.display(),
                key = key.display(),
            ),
        );
        let daemon = Daemon::start(&config);
        let soap_port = soap_port(&daemon);
        Gateway {
            daemon,
            dir,
            server_cert,
            soap_port,
            pki,
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("data/gateway.sqlite")
    }

    /// A client presenting `identity` (none: no client certificate).
    fn client(&self, identity: Option<&Identity>) -> reqwest::Client {
        let trust = reqwest::Certificate::from_pem(self.server_cert.as_bytes()).expect("trust");
        let mut builder = reqwest::Client::builder()
            .tls_certs_only(vec![trust])
            .timeout(Duration::from_secs(30));
        if let Some(identity) = identity {
            let pem = format!("{}\n{}", identity.cert, identity.key);
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("id"));
        }
        builder.build().expect("client")
    }

    /// Posts `x12` in a CORE envelope with `sender_id`; the status and body,
    /// or the transport error.
    async fn post(
        &self,
        identity: Option<&Identity>,
        sender_id: &str,
        payload_type: &str,
        x12: &str,
    ) -> Result<(u16, String), reqwest::Error> {
        self.post_with_token(identity, None, sender_id, payload_type, x12)
            .await
    }

    /// [`Gateway::post`] with a WS-Security UsernameToken (user, password)
    /// in the SOAP header.
    async fn post_with_token(
        &self,
        identity: Option<&Identity>,
        token: Option<(&str, &str)>,
        sender_id: &str,
        payload_type: &str,
        x12: &str,
    ) -> Result<(u16, String), reqwest::Error> {
        let mut envelope = write_request(&CoreFields {
            payload_type: payload_type.into(),
            processing_mode: "RealTime".into(),
            payload_id: uuid_like(),
            timestamp: "2026-12-06T10:00:00Z".into(),
            sender_id: sender_id.into(),
            receiver_id: "EHRGATEWAY".into(),
            core_rule_version: "2.2.0".into(),
            payload: x12.into(),
            error_code: None,
            error_message: None,
        })
        .expect("envelope");
        if let Some((user, password)) = token {
            let header = format!(
                r#"<soapenv:Header><wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"><wsse:UsernameToken><wsse:Username>{user}</wsse:Username><wsse:Password Type="{kind}">{password}</wsse:Password></wsse:UsernameToken></wsse:Security></soapenv:Header>"#,
                kind = gateway_x12::soap::auth::PASSWORD_TEXT,
            );
            assert!(envelope.contains("<soapenv:Header/>"), "{envelope}");
            envelope = envelope.replace("<soapenv:Header/>", &header);
        }
        let response = self
            .client(identity)
            .post(format!(
                "https://localhost:{}/core/realtime",
                self.soap_port
            ))
            .header("content-type", "application/soap+xml; charset=utf-8")
            .body(envelope)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    format!(
        "f81d4fae-7dec-11d0-a765-{:012x}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The bound SOAP port, from `GET /api/v1/adapters`.
fn soap_port(daemon: &Daemon) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = daemon.url("/api/v1/adapters");
    let body = std::thread::spawn(move || {
        runtime.block_on(async { get_json(&reqwest::Client::new(), url, TOKEN).await })
    })
    .join()
    .expect("adapters");
    body["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["transport"] == "soap")
        .and_then(|e| e["address"].as_str())
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.port())
        .expect("the SOAP endpoint in /api/v1/adapters")
}

fn count(store: &Path, sql: &str) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open store");
    conn.query_row(sql, [], |r| r.get(0)).expect("count")
}

fn messages(store: &Path) -> i64 {
    count(store, "SELECT count(*) FROM messages")
}

fn refusals(store: &Path) -> i64 {
    count(
        store,
        "SELECT count(*) FROM audit_log WHERE action = 'x12.soap.refused'",
    )
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("sample-messages/x12/x12-278").join(name))
        .expect("sample")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_soap_refuses_callers_that_are_not_the_partner_they_claim_and_stores_nothing() {
    let gateway = Gateway::start(false);
    let store = gateway.store();
    let request = sample("request.x12");
    let pki = &gateway.pki;

    let cases: [(&str, Option<&Identity>, &str, u16); 3] = [
        ("no client certificate", None, "PAYERA", 401),
        (
            "a certificate of the trusted CA on no allowlist",
            Some(&pki.rogue),
            "PAYERA",
            403,
        ),
        (
            "payer A's certificate with payer B's SenderID",
            Some(&pki.payer_a),
            "PAYERB",
            403,
        ),
    ];
    for (what, identity, sender, status) in cases {
        let (before, audited) = (messages(&store), refusals(&store));
        let (got, body) = gateway
            .post(identity, sender, PAYLOAD_278_REQUEST, &request)
            .await
            .unwrap_or_else(|e| panic!("{what}: the server must answer with a fault: {e}"));
        assert_eq!(got, status, "{what}: {body}");
        assert!(
            body.contains("soapenv:Fault") && body.contains("cor:UnAuthorized"),
            "{what}: a SOAP fault with the CORE error code: {body}"
        );
        assert_eq!(messages(&store), before, "{what}: nothing stored");
        assert_eq!(refusals(&store), audited + 1, "{what}: one audit row");
    }

    // A certificate from a CA we do not trust fails the TLS handshake.
    let before = messages(&store);
    let foreign = gateway
        .post(Some(&pki.foreign), "PAYERA", PAYLOAD_278_REQUEST, &request)
        .await;
    assert!(foreign.is_err(), "unknown CA: {foreign:?}");
    assert_eq!(messages(&store), before, "unknown CA: nothing stored");

    // WS-Security: a wrong password is refused, the right one is served.
    let (before, audited) = (messages(&store), refusals(&store));
    let (status, body) = gateway
        .post_with_token(
            None,
            Some(("payer-c", "not-the-secret")),
            "PAYERC",
            PAYLOAD_278_REQUEST,
            &request,
        )
        .await
        .expect("payer C, wrong password");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("cor:UnAuthorized"), "{body}");
    assert_eq!(messages(&store), before, "wrong password: nothing stored");
    assert_eq!(refusals(&store), audited + 1);
    let (status, body) = gateway
        .post_with_token(
            None,
            Some(("payer-c", PAYER_C_PASSWORD)),
            "PAYERC",
            PAYLOAD_278_REQUEST,
            &request,
        )
        .await
        .expect("payer C");
    assert_eq!(status, 200, "{body}");
    assert_eq!(messages(&store), before + 1, "payer C's 278 is stored");

    // The partner under its own SenderID is served: the 278 is stored.
    let before = messages(&store);
    let (status, body) = gateway
        .post(Some(&pki.payer_b), "PAYERB", PAYLOAD_278_REQUEST, &request)
        .await
        .expect("payer B");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<ErrorCode>Success</ErrorCode>"), "{body}");
    assert_eq!(messages(&store), before + 1);
}

/// `response-approved.x12` as a reply with BHT03 `bht` and TRN*2 `trace`.
fn reply(bht: &str, trace: &str) -> String {
    let text = sample("response-approved.x12");
    assert!(text.contains("*REQ-0001*") && text.contains("TRN*2*TRACE0001*"));
    text.replace("*REQ-0001*", &format!("*{bht}*"))
        .replace("TRN*2*TRACE0001*", &format!("TRN*2*{trace}*"))
}

/// The stored case, as JSON, read through the store's own reader (the
/// store packs snapshots and raw bytes on disk).
fn case_row(store: &Path, case_id: &str) -> String {
    let reader = gateway_store::Reader::open(store).expect("open store");
    let record = reader
        .get_case(case_id)
        .expect("case row")
        .expect("case stored");
    serde_json::to_string(&record.case).expect("case json")
}

/// The newest message: its state, its diagnostics as JSON and its raw text.
fn last_message(store: &Path) -> (String, String, String) {
    let reader = gateway_store::Reader::open(store).expect("open store");
    let newest = reader
        .list_messages(&gateway_store::MessageFilter {
            limit: Some(1),
            ..Default::default()
        })
        .expect("list messages");
    let summary = newest.first().expect("a message");
    let message = reader
        .get_message(summary.id)
        .expect("last message")
        .expect("stored");
    (
        summary.state.as_str().to_owned(),
        serde_json::to_string(&message.diagnostics).expect("diagnostics json"),
        String::from_utf8_lossy(&message.raw).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_lands_on_a_case_only_when_it_answers_a_request_the_gateway_wrote() {
    let gateway = Gateway::start(true);
    let store = gateway.store();
    let case_id = "case-0123456789abcdef01234567";
    let http = reqwest::Client::new();
    let case_url = gateway.daemon.url(&format!("/api/v1/cases/{case_id}"));
    let hl7_case = get_json(&http, case_url.clone(), TOKEN).await;
    assert_eq!(hl7_case["case"]["source"]["adapter"], "hl7v2", "{hl7_case}");
    assert_eq!(hl7_case["case"]["status"], "requested");

    // A forged decision: the case id is computable, the trace is made up.
    let snapshot = case_row(&store, case_id);
    let before = messages(&store);
    let forged = reply(case_id, "FORGEDTRACE0001");
    let (status, body) = gateway
        .post(
            Some(&gateway.pki.payer_a),
            "PAYERA",
            PAYLOAD_278_RESPONSE,
            &forged,
        )
        .await
        .expect("posted");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("X12_999_Response"),
        "answered with the 999: {body}"
    );
    assert_eq!(messages(&store), before + 1, "kept");
    let (state, diagnostics, raw) = last_message(&store);
    assert_eq!(state, "rejected");
    assert!(diagnostics.contains("G003"), "{diagnostics}");
    assert!(raw.contains("FORGEDTRACE0001"), "the raw reply is kept");
    assert_eq!(case_row(&store, case_id), snapshot, "the case is unchanged");

    // The platform obtains the 278 request for the case through the gateway.
    let written: Value = http
        .post(
            gateway
                .daemon
                .url(&format!("/api/v1/cases/{case_id}/x12-request")),
        )
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"receiver_id": "DEMOPAYER"}))
        .send()
        .await
        .expect("x12-request")
        .json()
        .await
        .expect("json");
    assert_eq!(written["bht_reference"], case_id, "{written}");
    let trace = written["trace"].as_str().expect("trace").to_owned();
    assert_eq!(trace.len(), 32, "{written}");
    let x12 = written["x12"].as_str().expect("x12");
    assert!(
        x12.contains(&format!("BHT*0007*13*{case_id}*"))
            && x12.contains(&format!("TRN*1*{trace}*")),
        "{x12}"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM audit_log WHERE action = 'x12.request'"
        ),
        1
    );

    // The payer's response to that request is adopted: the decision is on
    // the HL7 case, which keeps its source.
    let (status, body) = gateway
        .post(
            Some(&gateway.pki.payer_a),
            "PAYERA",
            PAYLOAD_278_RESPONSE,
            &reply(case_id, &trace),
        )
        .await
        .expect("posted");
    assert_eq!(status, 200, "{body}");
    let (state, diagnostics, _) = last_message(&store);
    assert_eq!(state, "accepted", "{diagnostics}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let decided = loop {
        let case = get_json(&http, case_url.clone(), TOKEN).await;
        if case["case"]["status"] == "approved" {
            break case;
        }
        assert!(Instant::now() < deadline, "never decided: {case}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(decided["case"]["source"]["adapter"], "hl7v2", "{decided}");
    assert_eq!(
        decided["case"]["decision"]["authorization_number"], "AUTH0001",
        "{decided}"
    );
    assert_eq!(decided["case"]["references"]["x12_trace"], trace.as_str());
}

#[test]
fn a_public_soap_address_without_partner_authentication_does_not_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = gateway_x12::soap::tls::self_signed(&["localhost"]).expect("server cert");
    std::fs::write(dir.path().join("c.pem"), cert).expect("cert");
    std::fs::write(dir.path().join("k.pem"), key).expect("key");
    let config = write_config(
        dir.path(),
        &format!(
            r#"[x12]
[x12.soap_server]
listen = "0.0.0.0:0"
[x12.soap_server.tls]
cert = "{cert}"
key = "{key}"
"#,
            cert = dir.path().join("c.pem").display(),
            key = dir.path().join("k.pem").display(),
        ),
    );
    for command in ["check-config", "run"] {
        let mut child = std::process::Command::new(support::bin())
            .args([command, "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("runs");
        // Hang guard: a daemon that starts anyway is killed and fails here.
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{command} started on a public address without partner authentication");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("x12.soap_server.partners"),
            "{command}: names the key: {stderr}"
        );
    }
}

/// Waits (hang guard `limit`) until the server closes `socket`: true when it
/// did (EOF or reset), false when the guard ran out.
fn closed_by_server(socket: &mut std::net::TcpStream, limit: Duration) -> bool {
    use std::io::Read as _;
    socket.set_read_timeout(Some(limit)).expect("read timeout");
    let mut byte = [0u8; 1];
    match socket.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_connections_over_the_cap_are_closed_and_idle_handshakes_time_out() {
    // Cap 4, handshakes may take long: the idle connections hold every slot.
    let capped = Gateway::start_with(
        false,
        Limits {
            max_connections: 4,
            handshake_timeout_ms: 600_000,
        },
    );
    let addr = format!("127.0.0.1:{}", capped.soap_port);
    let mut idle: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    let mut over = std::net::TcpStream::connect(&addr).expect("connect over the cap");
    assert!(
        closed_by_server(&mut over, Duration::from_secs(60)),
        "a connection over the cap is closed"
    );
    // The ones under the cap are still open (their handshake may take long).
    idle[0].set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let still_open = matches!(
        std::io::Read::read(&mut idle[0], &mut byte),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    );
    assert!(still_open, "a connection under the cap stays open");
    // Freed slots serve partners again.
    idle.clear();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match capped
            .post(
                Some(&capped.pki.payer_a),
                "PAYERA",
                PAYLOAD_278_REQUEST,
                &sample("request.x12"),
            )
            .await
        {
            Ok((200, _)) => break,
            other => {
                assert!(Instant::now() < deadline, "never served again: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(capped);

    // A client that never finishes its handshake is dropped by the server.
    let timed = Gateway::start_with(
        false,
        Limits {
            max_connections: 4,
            handshake_timeout_ms: 500,
        },
    );
    let mut silent =
        std::net::TcpStream::connect(format!("127.0.0.1:{}", timed.soap_port)).expect("connect");
    assert!(
        closed_by_server(&mut silent, Duration::from_secs(60)),
        "an idle handshake is closed after handshake_timeout_ms"
    );
}
