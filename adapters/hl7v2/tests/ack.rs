//! ACKs with hand-checked expectations: every byte of MSH/MSA/ERR is spelled out.

use gateway_core::{Diagnostic, GatewayError};
use gateway_hl7v2::ack::{AckRequest, AckStatus, accept_ack_wanted, build_ack_at, parse_ack};
use gateway_hl7v2::parse::parse_message;

const ORM: &str =
    "MSH|^~\\&|EPIC|NORTH|GW|MSO|20261122100000||ORM^O01^ORM_O01|C100|P|2.5.1\rPID|1||E10001\r";
const NOW: &str = "20261122100001+0000";

fn ack(
    message: &[u8],
    status: AckStatus,
    error: Option<&GatewayError>,
    diagnostics: &[Diagnostic],
) -> String {
    let out = build_ack_at(
        &AckRequest {
            message,
            status,
            error,
            diagnostics,
        },
        NOW,
        "A1",
    );
    String::from_utf8(out).expect("utf-8 ack")
}

#[test]
fn original_mode_accept() {
    assert_eq!(
        ack(ORM.as_bytes(), AckStatus::Accept, None, &[]),
        "MSH|^~\\&|GW|MSO|EPIC|NORTH|20261122100001+0000||ACK^O01^ACK|A1|P|2.5.1\rMSA|AA|C100\r"
    );
}

#[test]
fn enhanced_mode_commit_codes() {
    let msg = ORM.replace("|P|2.5.1", "|T|2.5.1|||AL|NE");
    let a = ack(msg.as_bytes(), AckStatus::Accept, None, &[]);
    assert_eq!(
        a,
        "MSH|^~\\&|GW|MSO|EPIC|NORTH|20261122100001+0000||ACK^O01^ACK|A1|T|2.5.1\rMSA|CA|C100\r"
    );
    let err = GatewayError::mapping("required case field patient missing");
    assert!(ack(msg.as_bytes(), AckStatus::Error, Some(&err), &[]).contains("\rMSA|CE|C100|"));
    assert!(ack(msg.as_bytes(), AckStatus::Reject, Some(&err), &[]).contains("\rMSA|CR|C100|"));
    // MSH-15 semantics
    let er = ORM.replace("|P|2.5.1", "|P|2.5.1|||ER");
    assert!(!accept_ack_wanted(er.as_bytes(), AckStatus::Accept));
    assert!(accept_ack_wanted(er.as_bytes(), AckStatus::Error));
    let ne = ORM.replace("|P|2.5.1", "|P|2.5.1|||NE");
    assert!(!accept_ack_wanted(ne.as_bytes(), AckStatus::Reject));
    assert!(accept_ack_wanted(ORM.as_bytes(), AckStatus::Accept));
}

#[test]
fn mapping_error_with_location() {
    let d = Diagnostic::error("M010", "required field patient.identifiers missing").at("PID-3");
    let e = GatewayError::mapping("required case field missing");
    assert_eq!(
        ack(ORM.as_bytes(), AckStatus::Error, Some(&e), &[d]),
        "MSH|^~\\&|GW|MSO|EPIC|NORTH|20261122100001+0000||ACK^O01^ACK|A1|P|2.5.1\r\
         MSA|AE|C100|required case field missing\r\
         ERR||PID^1^3^1|101^Required field missing^HL70357|E|M010||required field patient.identifiers missing|required case field missing\r"
    );
}

#[test]
fn parser_error_located_by_span_and_location() {
    // MSH-9 missing: the parser's diagnostic names MSH-9 and carries the MSH span.
    let raw = b"MSH|^~\\&|EPIC|NORTH|GW|MSO|20261122100000|||C100|P|2.5.1\rPID|1\r";
    let doc = parse_message(raw).expect("partial tree");
    let errors: Vec<_> = doc
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    assert_eq!(errors.len(), 1);
    let a = ack(raw, AckStatus::Reject, None, &errors);
    assert_eq!(
        a,
        "MSH|^~\\&|GW|MSO|EPIC|NORTH|20261122100001+0000||ACK|A1|P|2.5.1\r\
         MSA|AR|C100|MSH-9 message type is missing\r\
         ERR||MSH^1^9^1|101^Required field missing^HL70357|E|H015||MSH-9 message type is missing (bytes 0..56)|MSH-9 message type is missing\r"
    );
    // A diagnostic without a location is placed by its byte span.
    let pid3_at = ORM.find("E10001").expect("pos");
    let d = Diagnostic::error("M020", "identifier type unknown in table")
        .with_span(gateway_core::Span::new(pid3_at, pid3_at + 6));
    let a = ack(ORM.as_bytes(), AckStatus::Error, None, &[d]);
    assert!(
        a.contains("\rERR||PID^1^3^1^1^1|103^Table value not found^HL70357|E|M020||"),
        "{a}"
    );
}

#[test]
fn escapes_our_text_with_the_message_delimiters() {
    let d = Diagnostic::error("M030", "bad value a|b^c");
    let a = ack(ORM.as_bytes(), AckStatus::Error, None, &[d]);
    assert!(a.contains("|bad value a\\F\\b\\S\\c|"), "{a}");
}

#[test]
fn garbage_gets_ar_with_empty_msa2() {
    let diags = parse_message(b"hello").expect_err("not hl7");
    assert_eq!(
        ack(b"hello", AckStatus::Reject, None, &diags),
        "MSH|^~\\&|||||20261122100001+0000||ACK|A1|P|2.5.1\r\
         MSA|AR||text before the first MSH segment\r\
         ERR|||100^Segment sequence error^HL70357|E|H001||text before the first MSH segment (bytes 0..5)|text before the first MSH segment\r"
    );
}

#[test]
fn internal_failure_is_a_retryable_reject_207() {
    let e = GatewayError::internal(true, "store unavailable");
    assert_eq!(
        ack(ORM.as_bytes(), AckStatus::Reject, Some(&e), &[]),
        "MSH|^~\\&|GW|MSO|EPIC|NORTH|20261122100001+0000||ACK^O01^ACK|A1|P|2.5.1\r\
         MSA|AR|C100|store unavailable\r\
         ERR|||207^Application internal error^HL70357|E|internal||store unavailable|store unavailable\r"
    );
}

#[test]
fn version_23_uses_err1_and_short_message_type() {
    let msg = ORM.replace("ORM^O01^ORM_O01|C100|P|2.5.1", "ORM^O01|C100|P|2.3");
    let e = GatewayError::sender("unsupported message type");
    let d = Diagnostic::error("M001", "no mapping handles message type ORM^O01").at("MSH-9");
    assert_eq!(
        ack(msg.as_bytes(), AckStatus::Reject, Some(&e), &[d]),
        "MSH|^~\\&|GW|MSO|EPIC|NORTH|20261122100001+0000||ACK^O01|A1|P|2.3\r\
         MSA|AR|C100|unsupported message type\r\
         ERR|MSH^1^9^200&Unsupported message type&HL70357\r"
    );
}

#[test]
fn charset_truncation_char_and_delimiters_follow_the_message() {
    let mut raw = b"MSH$^~\\&#$EPIC$M".to_vec();
    raw.push(0xDC); // Ü in ISO 8859-1
    raw.extend_from_slice(b"NSTER$GW$MSO$20261122$$SIU^S12^SIU_S12$C9$P$2.7$$$$$$8859/1\rSCH$1\r");
    let out = build_ack_at(&AckRequest::accept(&raw), NOW, "A1");
    let mut expected = b"MSH$^~\\&#$GW$MSO$EPIC$M".to_vec();
    expected.push(0xDC);
    expected.extend_from_slice(
        b"NSTER$20261122100001+0000$$ACK^S12^ACK$A1$P$2.7$$$$$$8859/1\rMSA$AA$C9\r",
    );
    assert_eq!(out, expected);
    // and our own reader decodes it
    let read = parse_ack(&out).expect("reads");
    assert_eq!(read.code, "AA");
    assert_eq!(read.acknowledged_control_id.as_deref(), Some("C9"));
}

#[test]
fn received_ack_reader() {
    let d = Diagnostic::error("M010", "required field missing").at("PID-3");
    let out = build_ack_at(
        &AckRequest {
            message: ORM.as_bytes(),
            status: AckStatus::Error,
            error: None,
            diagnostics: &[d],
        },
        NOW,
        "A7",
    );
    let r = parse_ack(&out).expect("reads");
    assert_eq!(r.code, "AE");
    assert!(!r.is_accept());
    assert_eq!(r.acknowledged_control_id.as_deref(), Some("C100"));
    assert_eq!(r.control_id.as_deref(), Some("A7"));
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].code.as_deref(), Some("101"));
    assert_eq!(r.errors[0].severity.as_deref(), Some("E"));
    assert_eq!(r.errors[0].location.as_deref(), Some("PID^1^3^1"));
    // v2.3 ERR-1 form and junk
    let v23 =
        b"MSH|^~\\&|A|B|C|D|2026||ACK^O01|X|P|2.3\rMSA|AR|C1\rERR|PID^1^3^101&Required&HL70357\r";
    let r = parse_ack(v23).expect("reads");
    assert_eq!(r.errors[0].code.as_deref(), Some("101"));
    assert!(parse_ack(b"MSH|^~\\&|A|B|C|D|2026||ACK|X|P|2.5\r").is_err());
    assert!(parse_ack(b"MSH|^~\\&|A|B|C|D|2026||ACK|X|P|2.5\rMSA|XX|1\r").is_err());
}
