//! Malformed inputs each get the specific 999/TA1 code, and every finding's
//! span points into the raw input, which is kept unchanged.

mod common;

use gateway_x12::ack::{AckIdentity, acknowledge, parse_acks};
use gateway_x12::parse_interchange;
use gateway_x12::write::MemoryControlNumbers;

fn request() -> String {
    String::from_utf8(common::sample("request.x12")).expect("ascii")
}

fn mutate(from: &str, to: &str) -> String {
    let r = request();
    assert!(r.contains(from), "sample lacks {from}");
    r.replacen(from, to, 1)
}

struct Acked {
    ta1: Option<String>,
    functional: Option<String>,
}

fn ack(raw: &str) -> Acked {
    let before = raw.as_bytes().to_vec();
    let a = acknowledge(
        raw.as_bytes(),
        &AckIdentity::default(),
        &MemoryControlNumbers::new(),
        &common::stamp(),
    )
    .expect("acknowledged");
    assert_eq!(before, raw.as_bytes(), "raw input unchanged");
    let s = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8(b).expect("ascii"));
    Acked {
        ta1: s(a.ta1),
        functional: s(a.functional),
    }
}

/// The text a finding with diagnostic `code` points at.
fn span_text(raw: &str, code: &str) -> String {
    let parsed = parse_interchange(raw.as_bytes()).expect("tokenizes");
    let f = parsed
        .findings
        .iter()
        .find(|f| f.diagnostic.code == code)
        .unwrap_or_else(|| panic!("no {code} in {:#?}", parsed.findings));
    let span = f.diagnostic.span.expect("span");
    raw[span.start..span.end].to_owned()
}

fn body(functional: &Option<String>) -> String {
    let text = functional.clone().expect("a 999");
    // The 999 must itself be a valid 999.
    let acks = parse_acks(text.as_bytes()).expect("999 parses");
    assert!(acks.findings.is_empty(), "{:?}", acks.findings);
    text.lines()
        .filter(|l| {
            !l.starts_with("ISA")
                && !l.starts_with("GS")
                && !l.starts_with("GE")
                && !l.starts_with("IEA")
                && !l.starts_with("ST")
                && !l.starts_with("SE")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn wrong_se01_is_ik502_4() {
    let raw = mutate("SE*26*0001~", "SE*25*0001~");
    let a = ack(&raw);
    assert_eq!(
        body(&a.functional),
        "AK1*HI*101*005010X217~\nAK2*278*0001*005010X217~\nIK5*R*4~\nAK9*R*1*1*0~"
    );
    assert_eq!(span_text(&raw, "X018"), "SE*25*0001");
}

#[test]
fn se02_not_st02_is_ik502_3() {
    let raw = mutate("SE*26*0001~", "SE*26*0009~");
    assert_eq!(
        body(&ack(&raw).functional),
        "AK1*HI*101*005010X217~\nAK2*278*0001*005010X217~\nIK5*R*3~\nAK9*R*1*1*0~"
    );
}

#[test]
fn ge02_not_gs06_is_ak905_4() {
    let raw = mutate("GE*1*101~", "GE*1*102~");
    assert_eq!(
        body(&ack(&raw).functional),
        "AK1*HI*101*005010X217~\nAK2*278*0001*005010X217~\nIK5*A~\nAK9*R*1*1*0*4~"
    );
    assert_eq!(span_text(&raw, "X014"), "GE*1*102");
}

#[test]
fn ge01_wrong_count_is_ak905_5() {
    let raw = mutate("GE*1*101~", "GE*2*101~");
    assert_eq!(
        body(&ack(&raw).functional),
        "AK1*HI*101*005010X217~\nAK2*278*0001*005010X217~\nIK5*A~\nAK9*R*2*1*0*5~"
    );
}

#[test]
fn iea02_not_isa13_is_ta1_001() {
    let raw = mutate("IEA*1*000000101~", "IEA*1*000000999~");
    let a = ack(&raw);
    assert_eq!(a.functional, None, "a rejected interchange gets no 999");
    let ta1 = a.ta1.expect("TA1");
    assert!(
        ta1.contains("\nTA1*000000101*261123*0900*R*001~\nIEA*0*000000001~"),
        "{ta1}"
    );
    assert_eq!(span_text(&raw, "X011"), "IEA*1*000000999");
    let parsed = parse_acks(ta1.as_bytes()).expect("TA1 parses");
    assert_eq!(parsed.ta1[0].note_code, "001");
}

#[test]
fn iea01_wrong_is_ta1_021() {
    let raw = mutate("IEA*1*000000101~", "IEA*2*000000101~");
    assert!(
        ack(&raw)
            .ta1
            .expect("TA1")
            .contains("TA1*000000101*261123*0900*R*021~")
    );
}

#[test]
fn missing_iea_is_ta1_023() {
    let raw = mutate("IEA*1*000000101~\n", "");
    assert!(ack(&raw).ta1.expect("TA1").contains("*R*023~"));
}

#[test]
fn truncated_isa_is_ta1_023_with_what_could_be_read() {
    let raw: String = request().chars().take(95).collect();
    let a = ack(&raw);
    let ta1 = a.ta1.expect("TA1");
    assert!(ta1.contains("TA1*000000000*"), "{ta1}");
    assert!(ta1.contains("*R*023~"), "{ta1}");
    // Addressed back to the sender named in the readable part of the ISA.
    assert!(ta1.contains("*ZZ*CARDIONORTH    *"), "{ta1}");
    let err = parse_interchange(raw.as_bytes()).expect_err("no delimiters");
    assert_eq!(err[0].diagnostic.code, "X002");
}

#[test]
fn not_an_interchange_is_ta1_024() {
    let a = ack("GS*HI*A*B~");
    assert!(a.ta1.expect("TA1").contains("*R*024~"));
}

#[test]
fn missing_hl_parent_is_ik4_734() {
    let raw = mutate("HL*3*2*22*1~", "HL*3*9*22*1~");
    assert_eq!(
        body(&ack(&raw).functional),
        "AK1*HI*101*005010X217~\nAK2*278*0001*005010X217~\nIK3*HL*8*2000C*8~\nIK4*2*734*7~\nIK5*R*5~\nAK9*R*1*1*0~"
    );
    assert_eq!(span_text(&raw, "X032"), "9");
    let raw = mutate("HL*3*2*22*1~", "HL*3**22*1~");
    assert!(body(&ack(&raw).functional).contains("IK3*HL*8*2000C*8~\nIK4*2*734*1~"));
}

#[test]
fn hl_parent_at_the_wrong_level_is_rejected() {
    // A service (SS) whose parent is the subscriber instead of the event.
    let raw = mutate("HL*5*4*SS*0~", "HL*5*3*SS*0~");
    assert!(body(&ack(&raw).functional).contains("IK3*HL*22*2000F*8~\nIK4*2*734*7~"));
}

#[test]
fn unknown_entity_qualifier_is_ik4_98_with_the_code() {
    let raw = mutate("NM1*IL*1*", "NM1*ZZ*1*");
    assert!(body(&ack(&raw).functional).contains("IK3*NM1*9*2010C*8~\nIK4*1*98*7*ZZ~\nIK5*R*5~"));
}

#[test]
fn unknown_diagnosis_qualifier_is_ik4_1270() {
    let raw = mutate("HI*ABK:I2510*ABF:E119~", "HI*ABK:I2510*ABX:E119~");
    assert!(body(&ack(&raw).functional).contains("IK3*HI*19*2000E*8~\nIK4*2:1*1270*7*ABX~"));
}

#[test]
fn bad_dates_and_unknown_segments() {
    let raw = mutate(
        "DTP*472*RD8*20261201-20261231~",
        "DTP*472*RD8*20261231-20261201~",
    );
    assert!(body(&ack(&raw).functional).contains("IK3*DTP*24*2000F*8~\nIK4*3*1251*8~"));
    let raw = mutate("MSG*STRESS TEST INCONCLUSIVE~", "ZZZ*X~");
    assert!(body(&ack(&raw).functional).contains("IK3*ZZZ*20*2000E*6~"));
}

#[test]
fn isa_requesting_a_ta1_gets_an_accepting_one_too() {
    let raw = mutate("*000000101*0*T*:~", "*000000101*1*T*:~");
    let a = ack(&raw);
    assert!(
        a.ta1
            .expect("TA1")
            .contains("TA1*000000101*261123*0900*A*000~")
    );
    assert!(a.functional.expect("999").contains("AK9*A*1*1*1~"));
}

#[test]
fn partial_acceptance_in_a_multi_transaction_interchange() {
    let raw = String::from_utf8(common::sample("multi-transaction.x12")).expect("ascii");
    let raw = raw.replacen("SE*24*0002~", "SE*23*0002~", 1);
    let a = ack(&raw);
    let b = body(&a.functional);
    assert!(
        b.contains(
            "AK2*278*0001*005010X217~\nIK5*A~\nAK2*278*0002*005010X217~\nIK5*R*4~\nAK9*P*2*2*1~"
        ),
        "{b}"
    );
}
