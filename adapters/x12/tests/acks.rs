//! 999/TA1: our acknowledgment of every sample is accepted by our own 999
//! parser and says exactly what was hand-checked; received 999s and TA1s parse.

mod common;

use gateway_x12::ack::{AckIdentity, acknowledge, parse_acks};
use gateway_x12::write::MemoryControlNumbers;

fn ack_text(bytes: &[u8]) -> (Option<String>, Option<String>) {
    let a = acknowledge(
        bytes,
        &AckIdentity::default(),
        &MemoryControlNumbers::new(),
        &common::stamp(),
    )
    .expect("acknowledged");
    let s = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8(b).expect("ascii"));
    (s(a.functional), s(a.ta1))
}

#[test]
fn the_999_for_a_request_is_exactly_right() {
    let (functional, ta1) = ack_text(&common::sample("request.x12"));
    assert_eq!(ta1, None);
    let expected = "\
ISA*00*          *00*          *ZZ*DEMOPAYER      *ZZ*CARDIONORTH    *261124*1100*^*00501*000000001*0*T*:~
GS*FA*DEMOPAYER*CARDIONORTH*20261124*1100*1*X*005010X231A1~
ST*999*0001*005010X231A1~
AK1*HI*101*005010X217~
AK2*278*0001*005010X217~
IK5*A~
AK9*A*1*1*1~
SE*6*0001~
GE*1*1~
IEA*1*000000001~
";
    assert_eq!(functional.as_deref(), Some(expected));
}

/// (sample, GS06 acknowledged, ST02s acknowledged)
const EXPECTED: &[(&str, &str, &[&str])] = &[
    ("request.x12", "101", &["0001"]),
    ("request-two-lines.x12", "102", &["0001"]),
    ("multi-transaction.x12", "103", &["0001", "0002"]),
    ("request-institutional.x12", "106", &["0001"]),
    ("request-dental.x12", "107", &["0001"]),
    ("response-approved.x12", "201", &["0001"]),
    ("response-partial.x12", "202", &["0001"]),
    ("response-denied.x12", "203", &["0001"]),
    ("response-pended.x12", "204", &["0001"]),
    ("response-modified.x12", "205", &["0001"]),
    ("response-cancelled.x12", "206", &["0001"]),
    ("response-contact-payer.x12", "207", &["0001"]),
    ("response-aaa-subscriber.x12", "208", &["0001"]),
    ("response-aaa-payer.x12", "209", &["0001"]),
    ("request-service-type.x12", "121", &["0001"]),
    ("response-service-type-pended.x12", "221", &["0001"]),
    ("response-service-type-modified.x12", "222", &["0001"]),
    ("response-modified-event-level.x12", "223", &["0001"]),
    ("request-icd9.x12", "124", &["0001"]),
];

#[test]
fn every_278_sample_is_accepted_by_our_999() {
    let names = common::sample_names();
    for (name, gs06, sets) in EXPECTED {
        assert!(names.iter().any(|n| n == name), "{name} missing");
        let (functional, ta1) = ack_text(&common::sample(name));
        assert!(ta1.is_none(), "{name}: unexpected TA1");
        let functional = functional.expect("a 999");
        let acks = parse_acks(functional.as_bytes()).expect("our 999 parses");
        assert!(acks.findings.is_empty(), "{name}: {:?}", acks.findings);
        assert_eq!(acks.functional.len(), 1, "{name}");
        let g = &acks.functional[0];
        assert_eq!(
            (g.functional_id.as_str(), g.control_number.as_str()),
            ("HI", *gs06),
            "{name}"
        );
        assert_eq!(g.version.as_deref(), Some("005010X217"));
        assert_eq!(g.status, "A", "{name}");
        let n = u32::try_from(sets.len()).expect("small");
        assert_eq!(
            (g.included, g.received, g.accepted),
            (Some(n), Some(n), Some(n)),
            "{name}"
        );
        let got: Vec<&str> = g.sets.iter().map(|s| s.control_number.as_str()).collect();
        assert_eq!(got, *sets, "{name}");
        assert!(
            g.sets
                .iter()
                .all(|s| s.status == "A" && s.segments.is_empty()),
            "{name}"
        );
    }
    // Every 278 sample is covered above.
    let covered = names
        .iter()
        .filter(|n| !n.starts_with("999") && !n.starts_with("ta1"))
        .count();
    assert_eq!(covered, EXPECTED.len());
}

#[test]
fn acknowledgments_are_not_acknowledged() {
    for name in ["999-accept.x12", "999-reject.x12", "ta1-reject.x12"] {
        let (functional, ta1) = ack_text(&common::sample(name));
        assert_eq!((functional, ta1), (None, None), "{name}");
    }
}

#[test]
fn received_999s_and_ta1s_parse() {
    let accept = parse_acks(&common::sample("999-accept.x12")).expect("parses");
    assert!(accept.findings.is_empty());
    let g = &accept.functional[0];
    assert!(g.is_accepted());
    assert_eq!(
        (g.control_number.as_str(), g.sets[0].control_number.as_str()),
        ("101", "0001")
    );

    let reject = parse_acks(&common::sample("999-reject.x12")).expect("parses");
    let g = &reject.functional[0];
    assert!(!g.is_accepted());
    assert_eq!(g.status, "R");
    assert_eq!((g.received, g.accepted), (Some(1), Some(0)));
    let set = &g.sets[0];
    assert_eq!(set.status, "R");
    assert_eq!(set.codes, ["5"]);
    assert_eq!(set.segments.len(), 2);
    let hi = &set.segments[0];
    assert_eq!(
        (
            hi.segment_id.as_str(),
            hi.position.as_str(),
            hi.loop_id.as_deref(),
            hi.code.as_str()
        ),
        ("HI", "22", Some("2000E"), "8")
    );
    let e = &hi.elements[0];
    assert_eq!(
        (
            e.position.as_str(),
            e.component.as_deref(),
            e.reference.as_deref(),
            e.code.as_str(),
            e.bad_value.as_deref()
        ),
        ("1", Some("1"), Some("1270"), "7", Some("ABX"))
    );
    assert_eq!(set.segments[1].elements[0].reference, None);

    let ta1 = parse_acks(&common::sample("ta1-reject.x12")).expect("parses");
    assert!(ta1.findings.is_empty(), "{:?}", ta1.findings);
    assert!(ta1.functional.is_empty());
    assert_eq!(ta1.ta1.len(), 1);
    let t = &ta1.ta1[0];
    assert_eq!(
        (
            t.control_number.as_str(),
            t.ack_code.as_str(),
            t.note_code.as_str()
        ),
        ("000000101", "R", "001")
    );
}
