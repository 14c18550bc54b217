//! TR3-level 999s: every sample in `sample-messages/x12/x12-278-tr3` breaks one
//! rule of `gateway_x12::tr3` and is answered with exactly the checked-in 999
//! body next to it (`<sample>.999`: AK1..AK9 with IK3/IK4 and IK5/AK9 `R`).
//! `BLESS=1 cargo test -p gateway-x12 --test tr3` rewrites the expectations
//! (review the diff before committing).

mod common;

use gateway_x12::ack::{AckIdentity, acknowledge, parse_acks};
use gateway_x12::parse_interchange;
use gateway_x12::write::MemoryControlNumbers;

fn dir() -> std::path::PathBuf {
    common::repo().join("sample-messages/x12/x12-278-tr3")
}

/// The 999 body (AK1..AK9) for `raw`, after checking it is a valid 999.
fn body_999(raw: &[u8]) -> (String, char) {
    let a = acknowledge(
        raw,
        &AckIdentity::default(),
        &MemoryControlNumbers::new(),
        &common::stamp(),
    )
    .expect("acknowledged");
    let text = String::from_utf8(a.functional.expect("a 999")).expect("ascii");
    let acks = parse_acks(text.as_bytes()).expect("999 parses");
    assert!(acks.findings.is_empty(), "{:?}", acks.findings);
    let body = text
        .lines()
        .filter(|l| ["AK1", "AK2", "IK3", "IK4", "IK5", "AK9"].contains(&&l[..3]))
        .collect::<Vec<_>>()
        .join("\n");
    (body + "\n", a.verdict)
}

#[test]
fn each_tr3_sample_gets_its_golden_999() {
    let bless = std::env::var_os("BLESS").is_some();
    assert!(
        !(bless && std::env::var_os("CI").is_some()),
        "BLESS is refused when CI is set"
    );
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".x12"))
        .collect();
    names.sort();
    assert!(names.len() >= 9, "{names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let raw = std::fs::read(dir().join(name)).expect("sample");
        let (body, verdict) = body_999(&raw);
        assert_eq!(verdict, 'R', "{name}: {body}");
        assert!(body.contains("IK5*R*5"), "{name}: {body}");
        // Exactly one TR3 rule per sample, and it names what is missing.
        let parsed = parse_interchange(&raw).expect("tokenizes");
        let tr3: Vec<_> = parsed
            .findings
            .iter()
            .filter(|f| f.diagnostic.message.starts_with("TR3: "))
            .collect();
        assert_eq!(tr3.len(), 1, "{name}: {tr3:#?}");
        let path = dir().join(name.replace(".x12", ".999"));
        if bless {
            std::fs::write(&path, &body).expect("write golden");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == body => {}
            Ok(expected) => failures.push(format!(
                "{name}: differs\n--- expected\n{expected}--- actual\n{body}"
            )),
            Err(_) => failures.push(format!("{name}: no {} (BLESS=1)", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The issue's shapes, spelled out (independent of the golden files).
#[test]
fn the_issue_shapes_are_rejected_with_the_right_codes() {
    let read = |n: &str| std::fs::read(dir().join(n)).expect("sample");
    // No 2010A NM1: IK3 code 3 (required segment missing) in loop 2010A,
    // at the position of its 2000A HL.
    let (b, _) = body_999(&read("request-no-payer-nm1.x12"));
    assert!(b.contains("IK3*NM1*3*2010A*3"), "{b}");
    // NM108 without NM109 (requester): IK4 element 9 required (code 1).
    let (b, _) = body_999(&read("request-requester-xx-without-npi.x12"));
    assert!(b.contains("*2010B*8~\nIK4*9*67*1"), "{b}");
    // NM109 without NM108 (event provider): IK4 element 8, conditional (code 2).
    let (b, _) = body_999(&read("request-nm109-without-nm108.x12"));
    assert!(b.contains("*2010EA*8~\nIK4*8*66*2"), "{b}");
    // NM108 = QQ: IK4 code 7 with the code echoed.
    let (b, _) = body_999(&read("request-payer-qualifier-qq.x12"));
    assert!(b.contains("IK4*8*66*7*QQ"), "{b}");
    // `SV1*:24725-4*0`: the procedure qualifier is missing.
    let (b, _) = body_999(&read("request-loinc-in-sv1.x12"));
    assert!(b.contains("*2000F*8~\nIK4*1:1*235*1"), "{b}");
    // A reviewed response without any HCR.
    let (b, _) = body_999(&read("response-pended-no-hcr.x12"));
    assert!(b.contains("IK3*HCR*"), "{b}");
}
