//! Issue #19's end-to-end path through the real binary over real sockets:
//! the practice's EHR (the test's PAS client, mutual TLS) registers a
//! rest-hook subscription and `$submit`s a PAS Request Bundle → pended (A4);
//! an `[x12.requests]` route sends the case as an X12 278 request over CAQH
//! CORE SOAP to a loopback payer (`support::core_payer`), which answers
//! approved with an authorization number; that 278 response is adopted onto
//! the case, the decision reaches the EHR's subscription endpoint as a PAS
//! notification, and `$inquire` answers A1 with the number as `preAuthRef`.
//! A second `$submit` of the same Claim creates nothing new (no message, no
//! case event, no second 278 request) and answers the decision.
//!
//! The decision here arrives from the payer side, not through the admin
//! API: what makes it reach the PAS notification is the store queueing the
//! owning adapter's write-back when an adopted reply brings a decision
//! (`Store::commit_inbound_adopted`).

mod support;

use std::path::Path;
use std::time::Duration;

use gateway_store::{MessageFilter, Reader};
use gateway_x12::ack::AckIdentity;
use gateway_x12::write::{MemoryControlNumbers, Stamp};
use serde_json::{Value, json};
use support::core_payer::{CorePayer, PAYER_ID, PayerAnswer, PayerTls};
use support::pas::{
    PasClient, PasPki, SubscriptionEndpoint, actions, claim_response, free_port, pas_section,
};
use support::{Daemon, repo_root, wait_until, write_config};

const CLIENT_SAN: &str = "ehr.cardio-north.example.test";
/// The payer's authorization number.
const AUTH: &str = "SYNPAYER-278-0042";
/// The Claim identifier of the sample.
const CLAIM: &str = "PA-HOME-0001";

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join(format!("sample-messages/fhir/davinci-pas/{name}.json")))
        .expect("sample")
}

/// The inquiry sample pointed at `claim_id`.
fn inquiry_for(claim_id: &str) -> Vec<u8> {
    let mut inquiry: Value = serde_json::from_slice(&sample("inquiry")).expect("json");
    inquiry["entry"][0]["resource"]["identifier"][0]["value"] = json!(claim_id);
    serde_json::to_vec(&inquiry).expect("json")
}

/// `(route, state)` of the case's outbound 278 submissions, from the store file.
fn submissions(store: &Path, case_id: &str) -> Vec<(String, String)> {
    let conn =
        rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("store");
    let mut st = conn
        .prepare("SELECT route, state FROM x12_submissions WHERE case_id = ?1 ORDER BY id")
        .expect("query");
    st.query_map([case_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pas_request_goes_out_as_a_278_and_the_payer_s_approval_reaches_the_ehr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = PasPki::generate(CLIENT_SAN);
    let pas_files = pki.write_to(dir.path());
    let pas_port = free_port();
    let payer_tls = PayerTls::new(dir.path());
    let payer_port = free_port();
    let payer = CorePayer::start(payer_port, &payer_tls, PayerAnswer::approved(AUTH)).await;
    let config = write_config(
        dir.path(),
        &format!(
            r#"[forward]
sink = "file"
[forward.delivery.backoff]
initial_ms = 200
max_ms = 400
{pas}
[x12]
profile = "x12-278"
[x12.identity]
id = "EHRGATEWAY"
[x12.requests]
poll_interval_ms = 100
retry_initial_ms = 200
retry_max_ms = 400
[[x12.requests.routes]]
name = "synthetic-payer"
payer_ids = ["SYN01"]
adapters = ["davinci-pas"]
partner = "synthetic-payer-core"
{partner}"#,
            pas = pas_section(pas_port, &pas_files, CLIENT_SAN, 1024),
            partner = payer_tls.partner_toml("synthetic-payer-core", payer_port),
        ),
    );
    let daemon = Daemon::start(&config);
    let store_file = dir.path().join("data/gateway.sqlite");
    let reader = Reader::open(&store_file).expect("reader");
    let ehr = PasClient::new(
        &format!("https://127.0.0.1:{pas_port}/fhir"),
        &pki.ca,
        Some((&pki.client_cert, &pki.client_key)),
    );
    let endpoint = SubscriptionEndpoint::start().await;
    let subscribed = ehr
        .subscribe(&endpoint.url("/hooks/pas"), "full-resource", "hook-token")
        .await;
    assert_eq!(subscribed.status, 201, "{:?}", subscribed.body);

    // $submit → pended.
    let answer = ehr.submit(&sample("home-care")).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(claim_response(&answer.body)["outcome"], "queued");
    assert_eq!(
        actions(&answer.body),
        [(1, "A4".to_owned(), None), (2, "A4".to_owned(), None)]
    );
    let case_id = claim_response(&answer.body)["id"]
        .as_str()
        .expect("case id")
        .to_owned();

    // The route sends it to the payer as a 278 request over CORE SOAP; the
    // payer's approval comes back and is adopted onto the case, which stays
    // the PAS adapter's.
    let stored = wait_until("the approved case", Duration::from_secs(60), || {
        reader
            .get_case(&case_id)
            .ok()
            .flatten()
            .filter(|r| r.case.status.as_str() == "approved")
    })
    .await;
    assert_eq!(stored.case.source.adapter, "davinci-pas");
    assert_eq!(
        stored
            .case
            .decision
            .as_ref()
            .and_then(|d| d.authorization_number.as_deref()),
        Some(AUTH)
    );

    // Exactly one 278 request reached the payer: addressed to it, clean by
    // our own 999, carrying our case id as BHT03.
    let received = payer.received();
    assert_eq!(received.len(), 1, "one request sent");
    let raw = &received[0].raw;
    let parsed = gateway_x12::parse_interchange(raw).expect("parses");
    assert!(parsed.is_clean(), "{:?}", parsed.findings);
    assert_eq!(parsed.interchange.header.receiver_id, PAYER_ID);
    let ack = gateway_x12::ack::acknowledge(
        raw,
        &AckIdentity::default(),
        &MemoryControlNumbers::new(),
        &Stamp::now(),
    )
    .expect("999");
    assert_eq!(ack.verdict, 'A', "{}", String::from_utf8_lossy(raw));
    assert!(
        String::from_utf8_lossy(raw).contains(&format!("BHT*0007*13*{case_id}*")),
        "the case id is the 278's BHT03"
    );

    // The decision reaches the EHR's subscription endpoint.
    let notes = endpoint.wait_for(1, Duration::from_secs(60)).await;
    let note = &notes[0];
    assert_eq!(note.path, "/hooks/pas");
    assert_eq!(note.authorization.as_deref(), Some("Bearer hook-token"));
    let focus = &note.body["entry"][1]["resource"];
    assert_eq!(focus["resourceType"], "ClaimResponse", "{}", note.body);
    assert_eq!(focus["id"], case_id.as_str());
    assert_eq!(focus["preAuthRef"], AUTH, "{}", note.body);

    // $inquire answers A1 with the payer's number as preAuthRef.
    let inquiry = ehr.inquire(&inquiry_for(CLAIM)).await;
    assert_eq!(inquiry.status, 200, "{:?}", inquiry.body);
    assert_eq!(claim_response(&inquiry.body)["preAuthRef"], AUTH);
    assert_eq!(
        actions(&inquiry.body),
        [
            (1, "A1".to_owned(), Some(AUTH.to_owned())),
            (2, "A1".to_owned(), Some(AUTH.to_owned()))
        ]
    );

    // The same Claim again: answered with the decision, nothing new.
    let pas_messages = || {
        reader
            .list_messages(&MessageFilter::default())
            .expect("messages")
            .into_iter()
            .filter(|m| m.adapter == "davinci-pas")
            .count()
    };
    let events_before = reader.case_events(&case_id).expect("events").len();
    assert_eq!(pas_messages(), 1);
    let again = ehr.submit(&sample("home-care")).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(claim_response(&again.body)["id"], case_id.as_str());
    assert_eq!(claim_response(&again.body)["preAuthRef"], AUTH);
    assert_eq!(pas_messages(), 1, "a repeated $submit stores nothing");
    assert_eq!(
        reader.case_events(&case_id).expect("events").len(),
        events_before,
        "no new case event"
    );
    let sent = wait_until("the submission sent", Duration::from_secs(30), || {
        let rows = submissions(&store_file, &case_id);
        rows.iter()
            .all(|(_, state)| state == "sent")
            .then_some(rows)
    })
    .await;
    assert_eq!(
        sent,
        [("synthetic-payer".to_owned(), "sent".to_owned())],
        "one 278 request for the case"
    );
    assert_eq!(payer.received().len(), 1, "no second 278 request");
    assert_eq!(endpoint.received().len(), 1, "one notification");

    payer.stop().await;
    drop(daemon);
}
