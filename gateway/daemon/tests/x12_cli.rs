//! The X12 command-line tools through the real binary: `x12 ack`, `x12
//! request`, and `inspect` / `map --profile mappings/x12-278` on X12 samples.

mod support;

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use support::repo_root;

fn run(args: &[&str]) -> Output {
    std::process::Command::new(support::bin())
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("ehr-gateway runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sample(name: &str) -> String {
    format!("sample-messages/x12/x12-278/{name}")
}

/// The segments of an interchange, without the terminator.
fn segments(text: &str) -> Vec<&str> {
    text.split('~')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn x12_ack_accepts_a_sample_with_a_999() {
    let out = run(&["x12", "ack", &sample("request.x12")]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}\n{text}", stderr(&out));
    let segs = segments(&text);
    assert!(segs[0].starts_with("ISA*"), "{text}");
    assert!(segs.contains(&"ST*999*0001*005010X231A1"), "{text}");
    assert!(segs.contains(&"AK1*HI*101*005010X217"), "GS06 101\n{text}");
    assert!(segs.contains(&"AK2*278*0001*005010X217"), "{text}");
    assert!(segs.contains(&"IK5*A"), "{text}");
    assert!(segs.contains(&"AK9*A*1*1*1"), "{text}");
    assert!(stderr(&out).is_empty(), "no findings: {}", stderr(&out));
    // Our own parser reads the 999 back.
    let acks = gateway_x12::ack::parse_acks(text.as_bytes()).expect("999 parses");
    assert_eq!(acks.functional[0].status, "A");
}

#[test]
fn x12_ack_rejects_malformed_input_with_the_ik5_and_ak9_codes() {
    // SE01 counts the wrong number of segments: IK5*R*4, the group rejected.
    let out = run(&[
        "x12",
        "ack",
        "conformance/suites/x12-278/malformed-se01/input.x12",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let segs = segments(&text);
    assert!(segs.contains(&"IK5*R*4"), "{text}");
    assert!(segs.contains(&"AK9*R*1*1*0"), "{text}");
    let err = stderr(&out);
    assert!(
        err.contains("error[X018]") && err.contains("IK502=4"),
        "{err}"
    );

    // An HL parent that does not exist: the segment and element behind IK5*R*5.
    let out = run(&[
        "x12",
        "ack",
        "conformance/suites/x12-278/malformed-hl-parent/input.x12",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let segs = segments(&text);
    assert!(segs.contains(&"IK3*HL*8*2000C*8"), "{text}");
    assert!(segs.contains(&"IK4*2*734*7"), "{text}");
    assert!(segs.contains(&"IK5*R*5"), "{text}");
    assert!(segs.contains(&"AK9*R*1*1*0"), "{text}");

    // No readable ISA: a TA1 with the note code instead of a 999.
    let out = run(&[
        "x12",
        "ack",
        "conformance/suites/x12-278/malformed-truncated-isa/input.x12",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        segments(&text)
            .iter()
            .any(|s| s.starts_with("TA1*") && s.ends_with("*R*023")),
        "{text}"
    );
    assert!(!text.contains("ST*999"), "{text}");
}

#[test]
fn x12_request_prints_a_278_our_parser_and_profile_read_back() {
    let input = "conformance/suites/x12-278/writeback-request/input.json";
    let case: Value =
        serde_json::from_slice(&std::fs::read(repo_root().join(input)).expect("case"))
            .expect("json");
    let out = run(&["x12", "request", input]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("BHT*0007*13*"), "{text}");
    let parsed = gateway_x12::parse_interchange(text.as_bytes()).expect("parses");
    assert!(parsed.is_clean(), "{:#?}\n{text}", parsed.findings);
    assert_eq!(parsed.sets.len(), 1);

    // And the profile maps it back to the same request.
    let dir = tempfile::tempdir().expect("tempdir");
    let file: PathBuf = dir.path().join("request.x12");
    std::fs::write(&file, &text).expect("write");
    let out = run(&[
        "map",
        "--profile",
        "mappings/x12-278",
        file.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let back: Value = serde_json::from_slice(&out.stdout).expect("case json");
    assert_eq!(back["status"], "requested");
    assert_eq!(back["patient"]["name"], case["patient"]["name"]);
    assert_eq!(back["services"].as_array().map(Vec::len), Some(1));
    assert_eq!(back["services"][0]["code"], case["services"][0]["code"]);
    assert_eq!(
        back["references"]["x12_bht_reference"],
        case["references"]["x12_bht_reference"]
    );
}

#[test]
fn inspect_prints_the_x12_tree_with_positions_and_correlation() {
    let out = run(&["inspect", &sample("response-approved.x12")]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("format: x12"), "{text}");
    assert!(text.contains("message type: 278"), "{text}");
    assert!(text.contains("trigger: 11"), "{text}");
    assert!(text.contains("ISA  @0..105"), "{text}");
    assert!(
        text.contains("13  @90..99 = \"000000201\""),
        "ISA13\n{text}"
    );
    // BHT03 at its bytes, and the correlation the case key is made of.
    assert!(text.contains("key  @203..211 = \"REQ-0001\""), "{text}");
    assert!(text.contains("key_source = \"BHT03\""), "{text}");
    assert!(text.contains("trace  @439..448 = \"TRACE0001\""), "{text}");
    assert!(text.contains("HCR  @"), "{text}");
}

#[test]
fn map_with_the_x12_profile_correlates_a_response_to_its_request() {
    let map = |name: &str| {
        let out = run(&["map", "--profile", "mappings/x12-278", &sample(name)]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout).expect("case json")
    };
    let request = map("request.x12");
    let response = map("response-approved.x12");
    assert_eq!(request["status"], "requested");
    assert_eq!(response["status"], "approved");
    assert_eq!(response["decision"]["authorization_number"], "AUTH0001");
    assert_eq!(response["case_id"], request["case_id"], "BHT03 correlates");
    assert_eq!(response["references"]["x12_trace"], "TRACE0001");

    // --explain names the rule and source of the case id.
    let out = run(&[
        "map",
        "--profile",
        "mappings/x12-278",
        &sample("response-approved.x12"),
        "--explain",
    ]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{all}");
    assert!(all.contains("case_id"), "{all}");
    assert!(all.contains("x12-278:REQ-0001"), "{all}");

    // A response with neither identifier is unmappable: exit 1, X042.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = std::fs::read_to_string(repo_root().join(sample("response-aaa-subscriber.x12")))
        .expect("sample")
        .replace("BHT*0007*11*REQ-0001*", "BHT*0007*11* *");
    let file = dir.path().join("uncorrelated.x12");
    std::fs::write(&file, bad).expect("write");
    let out = run(&[
        "map",
        "--profile",
        "mappings/x12-278",
        file.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("X042"), "{}", stderr(&out));
}

/// `map` answers like intake: the 999 verdict on stderr, no case and exit 1
/// for a set our 999 rejects — TR3 rules (a missing 2010A NM1), segment count
/// (SE01) and HL structure alike.
#[test]
fn map_shows_the_999_verdict_and_fails_when_the_set_would_be_rejected() {
    for (file, ik) in [
        (
            "sample-messages/x12/x12-278-tr3/request-no-payer-nm1.x12",
            "IK3*NM1*3*2010A*3",
        ),
        (
            "sample-messages/x12/x12-278-tr3/request-requester-xx-without-npi.x12",
            "IK4*9*67*1",
        ),
        (
            "conformance/suites/x12-278/malformed-se01/input.x12",
            "IK5*R*4",
        ),
        (
            "conformance/suites/x12-278/malformed-hl-parent/input.x12",
            "IK4*2*734*7",
        ),
    ] {
        let out = run(&["map", "--profile", "mappings/x12-278", file]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{file}: {err}");
        assert!(err.contains("999: rejected (AK9 R)"), "{file}: {err}");
        assert!(err.contains(ik), "{file}: {err}");
        assert!(stdout(&out).is_empty(), "{file}: no case\n{}", stdout(&out));
        // `inspect` tells the same: the verdict, exit 1.
        let out = run(&["inspect", file]);
        assert_eq!(out.status.code(), Some(1), "inspect {file}");
        assert!(stderr(&out).contains("999: rejected (AK9 R)"), "{file}");
    }
    // An accepted set says so and maps.
    let out = run(&[
        "map",
        "--profile",
        "mappings/x12-278",
        &sample("request.x12"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("999: accepted (AK9 A)"),
        "{}",
        stderr(&out)
    );
}

/// Every set of an interchange is its own document, as intake submits them.
#[test]
fn map_gives_one_case_per_transaction_set() {
    let out = run(&[
        "map",
        "--profile",
        "mappings/x12-278",
        &sample("multi-transaction.x12"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cases: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("a stream of case JSON");
    assert_eq!(cases.len(), 2, "{}", stdout(&out));
    assert_ne!(cases[0]["case_id"], cases[1]["case_id"]);
    assert!(stderr(&out).contains("--- transaction set 2 of 2 ---"));
}

/// An HL7 batch (BHS … BTS) is split the way `send mllp` and the listener
/// split it, and each message maps exactly as it does on its own.
#[test]
fn map_splits_an_hl7_batch_and_maps_each_message() {
    let batch = "sample-messages/hl7v2/epic/batch-bhs-orders.hl7";
    let at = "--received-at=2026-11-24T10:00:00Z";
    let out = run(&["map", "--profile", "mappings/epic", batch, at]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cases: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("a stream of case JSON");
    let messages = gateway_hl7v2::mllp::files::split_messages(
        &std::fs::read(repo_root().join(batch)).expect("batch"),
    );
    assert!(messages.len() >= 2, "a batch");
    assert_eq!(cases.len(), messages.len(), "{}", stderr(&out));
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, message) in messages.iter().enumerate() {
        let file = dir.path().join(format!("m{i}.hl7"));
        std::fs::write(&file, message).expect("write");
        let one = run(&[
            "map",
            "--profile",
            "mappings/epic",
            file.to_str().expect("utf-8"),
            at,
        ]);
        assert!(one.status.success(), "{}", stderr(&one));
        let alone: Value = serde_json::from_slice(&one.stdout).expect("case json");
        assert_eq!(cases[i], alone, "message {}", i + 1);
    }
    // `inspect` shows each message's tree instead of refusing the batch.
    let out = run(&["inspect", batch]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("--- message 2 of"),
        "{}",
        stdout(&out)
    );
}

/// A change to a case.
type Edit = dyn Fn(&mut Value);

/// `x12 request` refuses a case whose 278 would break a TR3 rule and names
/// the missing fact; it never writes an empty `XX`, a LOINC code in SV1 or an
/// invalid NPI.
#[test]
fn x12_request_refuses_incomplete_cases_naming_the_missing_fact() {
    let input = "conformance/suites/x12-278/writeback-request/input.json";
    let case: Value =
        serde_json::from_slice(&std::fs::read(repo_root().join(input)).expect("case"))
            .expect("json");
    let dir = tempfile::tempdir().expect("tempdir");
    let attempt = |name: &str, edit: &dyn Fn(&mut Value)| {
        let mut c = case.clone();
        edit(&mut c);
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec(&c).expect("json")).expect("write");
        run(&["x12", "request", file.to_str().expect("utf-8")])
    };
    fn requester(c: &Value) -> usize {
        c["providers"]
            .as_array()
            .and_then(|p| p.iter().position(|p| p["role"] == "requester"))
            .expect("a requester")
    }
    let cases: [(&str, &Edit, &str); 4] = [
        (
            // The requester rule falls back to the ordering, then the
            // referring provider: with none of the three there is none.
            "no-requester-ordering-or-referring",
            &|c| {
                c["providers"].as_array_mut().expect("list").retain(|p| {
                    !matches!(
                        p["role"].as_str(),
                        Some("requester" | "ordering" | "referring")
                    )
                });
            },
            "case has no requesting provider (2010B NM1)",
        ),
        (
            "requester-without-npi",
            &|c| {
                let i = requester(c);
                c["providers"][i]
                    .as_object_mut()
                    .expect("obj")
                    .remove("npi");
            },
            "case has no requesting provider NPI (2010B NM109)",
        ),
        (
            "requester-invalid-npi",
            &|c| {
                let i = requester(c);
                c["providers"][i]["npi"] = "1234567890".into();
            },
            "case has no requesting provider NPI (2010B NM109)",
        ),
        (
            "loinc-service",
            &|c| {
                c["services"][0]["code"] = serde_json::json!({"system": "LOINC", "code": "24725-4"})
            },
            "on service line 1",
        ),
    ];
    for (name, edit, fact) in cases {
        let out = attempt(name, edit);
        let err = stderr(&out);
        assert!(!out.status.success(), "{name}: written\n{}", stdout(&out));
        assert!(err.contains(fact), "{name}: {err}");
        assert!(stdout(&out).is_empty(), "{name}: nothing written");
    }
    // A CDT line goes out as SV3*AD, an X12 service type as the line's UM03.
    let out = attempt("dental", &|c| {
        c["services"][0]["code"] = serde_json::json!({"system": "CDT", "code": "D2740"});
    });
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("SV3*AD:D2740*0*"), "{}", stdout(&out));
    let out = attempt("service-type", &|c| {
        c["services"][0]["code"] = serde_json::json!({"system": "X12-service-type", "code": "PT"});
    });
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("UM*HS*I*PT~"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("SV1*"), "{}", stdout(&out));
}
