//! A day-like mixed HL7 feed over real MLLP against the real `ehr-gateway run`
//! binary (epic profile, which extends hl7v2-base): orders new and cancelled,
//! ADT A01/A04/A08/A02, ORU, SIU S12/S14/S15, DFT and MDM — the traffic an
//! interface engine sends when pointed at the gateway. Every message must be
//! acknowledged AA; the right cases are opened, updated and cancelled (read
//! back through the admin API); the kinds no case needs are kept and counted
//! by message type on `/metrics`.
//!
//! The messages are the synthetic samples of `sample-messages/hl7v2/hl7v2-base/`
//! (each with a golden Case in `adapters/hl7v2/tests/golden/`), plus three ADT
//! variants derived from the A01 sample here (MSH-9/MSH-10 and one field).

mod support;

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use support::{Daemon, TOKEN};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The messages of one sample file, each as sent on the wire.
fn sample(name: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(
        support::repo_root()
            .join("sample-messages/hl7v2/hl7v2-base")
            .join(name),
    )
    .expect("sample");
    gateway_hl7v2::mllp::files::split_messages(&bytes)
}

/// `message` with MSH-9 = `kind`, MSH-10 = `id` and `from` replaced by `to`.
fn variant(message: &[u8], kind: &str, id: &str, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(message).replace(from, to);
    let (msh, rest) = text.split_once('\r').expect("segments end with CR");
    let mut fields: Vec<&str> = msh.split('|').collect();
    fields[8] = kind;
    fields[9] = id;
    format!("{}\r{}", fields.join("|"), rest).into_bytes()
}

use support::mllp_exchange as exchange;

/// The value of one Prometheus series (exact label set), if present.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let got: BTreeMap<&str, &str> = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k, v.trim_matches('"')))
                })
                .collect();
            (got == want).then(|| value.parse().ok()).flatten()
        })
        .next()
}

#[test]
fn a_day_of_mixed_hl7_traffic_is_acknowledged_and_has_its_fates() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let config = support::write_config(
        dir.path(),
        &format!(
            r#"[[hl7v2.listeners]]
listen = "127.0.0.1:{port}"
profile = "epic"
"#
        ),
    );
    let daemon = Daemon::start(&config);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < deadline, "listener not up: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");

    let one = |name: &str| sample(name).remove(0);
    let admit = one("adt-a01-admit.hl7");
    let siu_changes = sample("siu-s14-s15-update-cancel.hl7");
    let kept = sample("dft-p03-mdm-t02-kept.hl7");
    let oru = std::fs::read(
        support::repo_root().join("sample-messages/hl7v2/hl7v2-base/oru-r01-unsupported.hl7"),
    )
    .expect("oru sample");
    // The day, in order: (what, message).
    let feed: Vec<(&str, Vec<u8>)> = vec![
        ("ORM new ORD2001", one("orm-o01-provider-ids.hl7")),
        ("ADT A01 admit", admit.clone()),
        (
            "ADT A04 register",
            variant(
                &admit,
                "ADT^A04^ADT_A01",
                "FEED0004",
                "99 MOVED AVE",
                "7 THIRD ST",
            ),
        ),
        ("ORU R01 result", oru),
        (
            "ADT A02 transfer",
            variant(
                &admit,
                "ADT^A02^ADT_A02",
                "FEED0002",
                "PV1|1|I",
                "PV1|1|I|W2",
            ),
        ),
        ("SIU S12 new", one("siu-s12-tq1-urgency.hl7")),
        ("SIU S14 modify", siu_changes[0].clone()),
        ("ORM new ORD2004", one("orm-o01-demographics-insurance.hl7")),
        ("DFT P03 charge", kept[0].clone()),
        (
            "ADT A08 update",
            variant(
                &admit,
                "ADT^A08^ADT_A01",
                "FEED0008",
                "99 MOVED AVE",
                "8 FINAL ST",
            ),
        ),
        ("ORM cancel ORD2004", one("orm-o01-cancel-oc.hl7")),
        ("SIU S15 cancel", siu_changes[1].clone()),
        ("MDM T02 document", kept[1].clone()),
        ("SIU S12 no service", one("siu-s12-no-service.hl7")),
    ];
    for (what, message) in &feed {
        assert_eq!(exchange(&mut stream, message), "AA", "{what}");
    }

    // Cases, read back through the admin API.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let http = reqwest::Client::new();
    let case = |key: &str| {
        let id = gateway_core::ids::case_id("mso-test", key);
        let body = rt.block_on(support::get_json(
            &http,
            daemon.url(&format!("/api/v1/cases/{id}")),
            TOKEN,
        ));
        body.get("case")
            .cloned()
            .unwrap_or_else(|| panic!("{key}: {body}"))
    };
    let order = case("epic:ORD2001");
    assert_eq!(order["status"], "requested");
    // The last ADT of that patient (A08) wins the address; A01 brought the HMO.
    assert_eq!(
        order["patient"]["address"]["lines"][0], "8 FINAL ST",
        "{order}"
    );
    assert_eq!(order["coverages"][0]["payer"]["id"], "87726", "{order}");
    assert_eq!(order["providers"][0]["npi"], "1234567893", "{order}");
    assert_eq!(
        order["providers"][0]["identifiers"][0]["type"], "SL",
        "{order}"
    );
    let cancelled_order = case("epic:ORD2004");
    assert_eq!(cancelled_order["status"], "cancelled", "{cancelled_order}");
    let appointment = case("epic:ORD5001");
    assert_eq!(appointment["status"], "cancelled", "{appointment}");
    assert_eq!(
        appointment["services"][0]["service_date"]["start"], "2026-12-15",
        "S14 moved the appointment: {appointment}"
    );

    // Kept kinds, counted by message type (the sink-less daemon commits
    // before it acknowledges, so the counters are final once all ACKs came).
    let text = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = rt.block_on(async {
                http.get(daemon.url("/metrics"))
                    .send()
                    .await
                    .expect("scrape")
                    .text()
                    .await
                    .expect("body")
            });
            let accepted = metric(
                &text,
                "ehr_gateway_messages_total",
                &[
                    ("adapter", "hl7v2"),
                    ("profile", "epic"),
                    ("outcome", "accepted"),
                ],
            );
            if accepted == Some(feed.len() as f64) || Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(
        metric(
            &text,
            "ehr_gateway_messages_total",
            &[
                ("adapter", "hl7v2"),
                ("profile", "epic"),
                ("outcome", "accepted"),
            ],
        ),
        Some(feed.len() as f64),
        "{text}"
    );
    for kind in ["ORU^R01", "ADT^A02", "DFT^P03", "MDM^T02", "SIU^S12"] {
        assert_eq!(
            metric(
                &text,
                "ehr_gateway_ignored_messages_total",
                &[
                    ("adapter", "hl7v2"),
                    ("profile", "epic"),
                    ("message_type", kind),
                    ("rule", "ignore.toml"),
                ],
            ),
            Some(1.0),
            "{kind}:\n{text}"
        );
    }
    for outcome in ["rejected", "error"] {
        let n = metric(
            &text,
            "ehr_gateway_messages_total",
            &[
                ("adapter", "hl7v2"),
                ("profile", "epic"),
                ("outcome", outcome),
            ],
        );
        assert!(n.is_none_or(|n| n == 0.0), "{outcome}: {n:?}");
    }
}
