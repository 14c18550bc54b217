//! The outbound 278 request path through the real binary (`[x12.requests]`):
//! a case routed to a payer leaves the gateway as a 278 request over CAQH CORE
//! SOAP to a loopback payer, whose synchronous 278 response lands on the case
//! as the decision; a folder route writes a file our own X12 intake accepts;
//! a case the writer cannot make a valid 278 of is refused by name and never
//! sent.
//!
//! The payer is `support::core_payer`: our real CORE SOAP server (HTTPS,
//! CORE envelope, our 999 check on what it receives) with a responder
//! written for tests that answers a 278 response echoing the request's BHT03
//! and TRN trace, here approving with `HCR*A1*<number>`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use gateway_store::Reader;
use gateway_x12::ack::AckIdentity;
use gateway_x12::write::{MemoryControlNumbers, Stamp};
use support::core_payer::{CorePayer, PayerAnswer, PayerTls, segments};
use support::{Daemon, files_with_prefix as files, repo_root, wait_for, write_config};

/// The authorization number the test payer approves with.
const AUTH: &str = "PAYERAUTH7781";

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    probe.local_addr().expect("addr").port()
}

/// Drops the sample `name` into `inbound` atomically and waits until archived.
fn drop_sample(inbound: &Path, name: &str) {
    let bytes =
        std::fs::read(repo_root().join("sample-messages/x12/x12-278").join(name)).expect("sample");
    let part = inbound.join(format!(".{name}.part"));
    std::fs::write(&part, bytes).expect("write");
    std::fs::rename(&part, inbound.join(name)).expect("rename");
    let archive = inbound.join("archive");
    wait_for(&format!("{name} archived"), Duration::from_secs(30), || {
        files(&archive, name).into_iter().next()
    });
}

/// The case the x12 file drop made (the only x12 case).
fn x12_case_id(reader: &Reader) -> String {
    wait_for("the x12 case", Duration::from_secs(30), || {
        reader
            .list_messages(&Default::default())
            .ok()?
            .into_iter()
            .find(|m| m.adapter == "x12")
            .and_then(|m| m.case_id)
    })
}

/// `(route, state, attempts, reason)` of the case's submissions, read from
/// the store file.
fn submissions(store: &Path, case_id: &str) -> Vec<(String, String, i64, Option<String>)> {
    let conn =
        rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("store");
    let mut st = conn
        .prepare(
            "SELECT route, state, attempts, reason FROM x12_submissions WHERE case_id = ?1 ORDER BY id",
        )
        .expect("query");
    st.query_map([case_id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .expect("rows")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// The TRN*1 trace of a 278 request.
fn trace(x12: &[u8]) -> String {
    let text = String::from_utf8_lossy(x12);
    segments(&text)
        .into_iter()
        .find(|s| s[0] == "TRN" && s.get(1).is_some_and(|v| v == "1"))
        .and_then(|s| s.get(2).cloned())
        .expect("TRN*1")
}

/// MSH-10 of [`order_without_providers`].
const NO_PROVIDER_CONTROL_ID: &str = "EPIC0002";

/// The epic sample order as another order (MSH-10, ORC-2/OBR-2) that names no
/// provider: PV1-8 (referring), ORC-12 and OBR-16 (ordering) emptied.
fn order_without_providers() -> Vec<u8> {
    let text = String::from_utf8(support::epic_order()).expect("ascii sample");
    let segments: Vec<String> = text
        .split('\r')
        .map(|seg| {
            let mut fields: Vec<String> = seg.split('|').map(str::to_owned).collect();
            let mut set = |i: usize, v: &str| {
                if let Some(f) = fields.get_mut(i) {
                    *f = v.to_owned();
                }
            };
            match seg.get(..3) {
                Some("MSH") => set(9, NO_PROVIDER_CONTROL_ID),
                Some("PV1") => set(8, ""),
                Some("ORC") => {
                    set(2, "EP5002");
                    set(12, "");
                }
                Some("OBR") => {
                    set(2, "EP5002");
                    set(16, "");
                }
                _ => {}
            }
            fields.join("|")
        })
        .collect();
    segments.join("\r").into_bytes()
}

fn config_head(dir: &Path, inbound: &Path) -> String {
    format!(
        r#"[x12]
profile = "x12-278"
[x12.identity]
id = "EHRGATEWAY"
[x12.file_drop]
inbound = "{inbound}"
poll_interval_ms = 100
settle_ms = 0
[x12.requests]
poll_interval_ms = 100
retry_initial_ms = 200
retry_max_ms = 400
"#,
        inbound = inbound.display(),
    ) + &format!("# {}\n", dir.display())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_routed_case_goes_to_the_core_payer_survives_kill_9_and_comes_back_approved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inbound = dir.path().join("inbound");
    std::fs::create_dir_all(&inbound).expect("inbound");
    let tls = PayerTls::new(dir.path());
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{head}
[[x12.requests.routes]]
name = "demo-payer"
payer_ids = ["60054"]
adapters = ["x12"]
partner = "demo-payer-core"
{partner}"#,
            head = config_head(dir.path(), &inbound),
            partner = tls.partner_toml("demo-payer-core", port),
        ),
    );
    let store_file = dir.path().join("data/gateway.sqlite");

    // The payer is down: the request is written and recorded, its delivery
    // fails and is retried.
    let mut daemon = Daemon::start(&config);
    drop_sample(&inbound, "request-two-lines.x12");
    let reader = Reader::open(&store_file).expect("reader");
    let case_id = x12_case_id(&reader);
    wait_for(
        "a recorded request whose delivery failed",
        Duration::from_secs(30),
        || {
            submissions(&store_file, &case_id)
                .into_iter()
                .find(|(_, state, attempts, _)| state == "recorded" && *attempts >= 1)
        },
    );
    let recorded = reader.get_case(&case_id).expect("case").expect("stored");
    assert_eq!(recorded.case.status.as_str(), "requested");

    // kill -9 between record and send.
    daemon.child.kill().expect("kill -9");
    daemon.child.wait().expect("reaped");
    drop(daemon);

    let store = gateway_store::Store::open(&store_file, Default::default())
        .await
        .expect("store");
    let requests = store.case_requests(&case_id).await.expect("requests");
    store.close().await;
    assert_eq!(requests.len(), 1, "one request recorded");
    let recorded_trace = requests[0].request.references["x12_trace"].clone();
    assert_eq!(requests[0].request.actor, "x12-route:demo-payer");

    // The payer comes up; the restarted daemon sends the recorded request.
    let payer = CorePayer::start(port, &tls, PayerAnswer::approved(AUTH)).await;
    let daemon = Daemon::start(&config);
    let decided = wait_for("the approved case", Duration::from_secs(60), || {
        reader
            .get_case(&case_id)
            .ok()
            .flatten()
            .filter(|r| r.case.status.as_str() == "approved")
    });
    let decision = decided.case.decision.expect("decision");
    assert_eq!(decision.authorization_number.as_deref(), Some(AUTH));

    // Exactly one request reached the payer: valid by our own 999 (its
    // intake parsed it clean), with the recorded trace and our case id.
    let received = payer.received();
    assert_eq!(received.len(), 1, "sent once");
    let raw = &received[0].raw;
    let parsed = gateway_x12::parse_interchange(raw).expect("parses");
    assert!(
        parsed.is_clean(),
        "{:?}\n{}",
        parsed.findings,
        String::from_utf8_lossy(raw)
    );
    assert!(received[0].parsed.is_ok(), "our 999 accepts it");
    assert!(gateway_x12::outbound::refusals(raw).is_empty());
    let ack = gateway_x12::ack::acknowledge(
        raw,
        &AckIdentity::default(),
        &MemoryControlNumbers::new(),
        &Stamp::now(),
    )
    .expect("999");
    assert_eq!(ack.verdict, 'A');
    assert_eq!(trace(raw), recorded_trace, "the recorded trace was sent");
    let text = String::from_utf8_lossy(raw);
    assert!(text.contains(&format!("BHT*0007*13*{case_id}*")), "{text}");
    assert_eq!(parsed.interchange.header.receiver_id, "DEMOPAYER");
    wait_for("the submission sent", Duration::from_secs(30), || {
        submissions(&store_file, &case_id)
            .into_iter()
            .find(|(_, state, _, _)| state == "sent")
    });

    payer.stop().await;
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_route_writes_a_request_our_intake_accepts_and_an_incomplete_case_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inbound = dir.path().join("inbound");
    let outbound = dir.path().join("to-payer");
    std::fs::create_dir_all(&inbound).expect("inbound");
    let mllp = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            r#"[[hl7v2.listeners]]
listen = "127.0.0.1:{mllp}"
profile = "epic"
{head}
[[x12.requests.routes]]
name = "payer-folder"
payer_ids = ["60054"]
outbound = "{outbound}"
"#,
            head = config_head(dir.path(), &inbound),
            outbound = outbound.display(),
        ),
    );
    let store_file = dir.path().join("data/gateway.sqlite");
    let daemon = Daemon::start(&config);
    let reader = Reader::open(&store_file).expect("reader");

    // Two HL7 orders for payer 60054. The epic profile maps ORC-12/OBR-16 as
    // the `ordering` provider and PV1-8 as `referring`, never a `requester`:
    // the writer takes the ordering provider as the 2010B requester, so the
    // first order is sent. The second names no provider at all (synthetic
    // variant of the same order): no valid 278 can be written for it.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", mllp)).expect("mllp");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    assert_eq!(
        support::mllp_exchange(&mut stream, &support::epic_order()),
        "AA"
    );
    assert_eq!(
        support::mllp_exchange(&mut stream, &order_without_providers()),
        "AA"
    );
    let hl7_case = |control: &'static str| {
        wait_for(
            &format!("the hl7 case of {control}"),
            Duration::from_secs(30),
            || {
                reader
                    .list_messages(&Default::default())
                    .ok()?
                    .into_iter()
                    .find(|m| m.adapter == "hl7v2" && m.control_id.as_deref() == Some(control))
                    .and_then(|m| m.case_id)
            },
        )
    };
    let ordered_case = hl7_case("EPIC0001");
    let bare_case = hl7_case(NO_PROVIDER_CONTROL_ID);
    assert_ne!(ordered_case, bare_case);

    let (_, _, _, reason) = wait_for("the refusal", Duration::from_secs(30), || {
        submissions(&store_file, &bare_case)
            .into_iter()
            .find(|(_, state, _, _)| state == "refused")
    });
    let reason = reason.expect("reason");
    assert!(
        reason.contains("case has no requesting provider (2010B NM1)"),
        "{reason}"
    );
    let store = gateway_store::Store::open(&store_file, Default::default())
        .await
        .expect("store");
    assert!(
        store
            .case_requests(&bare_case)
            .await
            .expect("requests")
            .is_empty(),
        "nothing recorded for a refused case"
    );
    store.close().await;

    // The ordered HL7 case is written for the payer, its ordering provider
    // (ORC-12, NPI 1234567893) as the requester in 2010B, and not a second
    // time as a 2010EA event provider; the PV1-8 referring doctor stays one.
    let hl7_file = wait_for("the hl7 278 request file", Duration::from_secs(30), || {
        files(&outbound, &format!("278-request-{ordered_case}-"))
            .into_iter()
            .next()
    });
    let hl7_bytes = std::fs::read(&hl7_file).expect("file");
    // Written for the payer: the case is `submitted` now (the row ends
    // `sent` just after the file is in place).
    wait_for("the case submitted", Duration::from_secs(30), || {
        reader
            .get_case(&ordered_case)
            .ok()
            .flatten()
            .filter(|r| r.case.status.as_str() == "submitted")
    });
    let hl7_ack = gateway_x12::ack::acknowledge(
        &hl7_bytes,
        &AckIdentity::default(),
        &MemoryControlNumbers::new(),
        &Stamp::now(),
    )
    .expect("999");
    let hl7_text = String::from_utf8_lossy(&hl7_bytes).into_owned();
    assert_eq!(hl7_ack.verdict, 'A', "{hl7_text}");
    let mut level = String::new();
    let mut nm1s: Vec<(String, Vec<String>)> = Vec::new();
    for seg in segments(&hl7_text) {
        if seg[0] == "HL" {
            level = seg.get(3).cloned().unwrap_or_default();
        } else if seg[0] == "NM1" {
            nm1s.push((level.clone(), seg));
        }
    }
    let requester: Vec<&Vec<String>> = nm1s
        .iter()
        .filter(|(l, _)| l == "21")
        .map(|(_, s)| s)
        .collect();
    assert_eq!(requester.len(), 1, "{hl7_text}");
    assert_eq!(
        requester[0][..10],
        [
            "NM1",
            "1P",
            "1",
            "HEARTDOC",
            "ANN",
            "",
            "",
            "",
            "XX",
            "1234567893"
        ]
    );
    let event: Vec<(&str, &str)> = nm1s
        .iter()
        .filter(|(l, _)| l == "EV")
        .map(|(_, s)| (s[1].as_str(), s.get(9).map_or("", String::as_str)))
        .collect();
    assert_eq!(event, [("DN", "1987654328")], "{hl7_text}");

    // An X12 request for the same payer: written into the folder, once.
    drop_sample(&inbound, "request-two-lines.x12");
    let case_id = x12_case_id(&reader);
    let file = wait_for("the 278 request file", Duration::from_secs(30), || {
        files(&outbound, &format!("278-request-{case_id}-"))
            .into_iter()
            .next()
    });
    assert!(
        files(&outbound, &format!("278-request-{bare_case}")).is_empty(),
        "the refused case was not written"
    );
    assert!(
        files(&outbound, ".").is_empty(),
        "no temporary file left behind"
    );
    let bytes = std::fs::read(&file).expect("file");
    let ack = gateway_x12::ack::acknowledge(
        &bytes,
        &AckIdentity::default(),
        &MemoryControlNumbers::new(),
        &Stamp::now(),
    )
    .expect("999");
    assert_eq!(ack.verdict, 'A', "{}", String::from_utf8_lossy(&bytes));

    // Our X12 intake accepts it: dropped into the gateway's own inbound
    // folder it is archived (not in error/) and maps onto the same case id
    // (BHT03 is the case id), adopted because its trace is the recorded one.
    let name = file
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let part = inbound.join(format!(".{name}.part"));
    std::fs::copy(&file, &part).expect("copy");
    std::fs::rename(&part, inbound.join(&name)).expect("rename");
    wait_for("the request archived", Duration::from_secs(30), || {
        files(&inbound.join("archive"), &name).into_iter().next()
    });
    assert!(files(&inbound.join("error"), &name).is_empty());

    // One refused (the HL7 order without providers), two sent (the HL7 order
    // and the X12 request); the other outcomes exist at 0.
    // The counter moves just after the store does: scrape until it shows.
    let expected = [("refused", 1), ("sent", 2), ("failed", 0), ("retried", 0)];
    let value = |metrics: &str, outcome: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("ehr_gateway_x12_requests_total")
                    && l.contains(&format!("outcome=\"{outcome}\""))
                    && l.contains("route=\"payer-folder\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(daemon.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if expected
            .iter()
            .all(|(outcome, count)| value(&metrics, outcome) == Some(*count))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expected {expected:?} in:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(daemon);
}

#[test]
fn route_problems_name_the_file_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        r#"[x12]
profile = "x12-278"
[x12.requests]
[[x12.requests.routes]]
name = "both"
payer_ids = ["60054"]
partner = "nobody"
outbound = "/tmp/x"
[[x12.requests.routes]]
name = "unknown-partner"
payer_ids = ["60054"]
partner = "nobody"
[[x12.requests.routes]]
name = "unknown-partner"
payer_ids = []
outbound = "/tmp/y"
receiver_id = "FAR-TOO-LONG-FOR-ISA08"
"#,
    );
    let out = std::process::Command::new(support::bin())
        .current_dir(repo_root())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in [
        "x12.requests.routes[0]",
        "x12.requests.routes[1].partner",
        "x12.requests.routes[2].name",
        "x12.requests.routes[2].payer_ids",
        "x12.requests.routes[2].receiver_id",
    ] {
        assert!(
            stderr.contains(&format!("{}: key `{key}`", config.display())),
            "{key} missing in {stderr}"
        );
    }
    // An unknown key in a route is refused by serde, with its path.
    let config = write_config(
        dir.path(),
        "[x12]\n[x12.requests]\n[[x12.requests.routes]]\nname = \"r\"\npayer_ids = [\"1\"]\noutbound = \"/tmp/z\"\npayer = \"typo\"\n",
    );
    let out = std::process::Command::new(support::bin())
        .current_dir(repo_root())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown field `payer`"), "{stderr}");
    assert!(stderr.contains("x12.requests.routes"), "{stderr}");
}
