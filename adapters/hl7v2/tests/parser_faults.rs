//! One test per hl7-parser 0.3 fault the wrapper guards (research notes §1),
//! plus the quirks real feeds have. Byte positions are checked exactly.

use gateway_core::{Diagnostic, NodeId, SourceDocument, SourceTree};
use gateway_hl7v2::parse::{codes, parse_input, parse_message};

fn doc(raw: &[u8]) -> SourceDocument {
    parse_message(raw).expect("parses")
}

fn seg(t: &SourceTree, name: &str, n: usize) -> NodeId {
    t.children_named(t.root(), name).nth(n).expect("segment")
}

/// Value of SEG-F (first rep), or of component C.
fn val(t: &SourceTree, s: NodeId, f: usize, c: Option<usize>) -> Option<&str> {
    let field = t.children_named(s, &f.to_string()).next()?;
    match c {
        None => t.value(field),
        Some(c) => t.value(t.children_named(field, &c.to_string()).next()?),
    }
}

fn codes_of(d: &[Diagnostic]) -> Vec<&str> {
    d.iter().map(|d| d.code.as_str()).collect()
}

const MSH: &str = "MSH|^~\\&|EPIC|NORTH|GW|MSO|20261122100000||ORM^O01^ORM_O01|C100|P|2.5.1";

#[test]
fn escapes_after_non_ascii_decode_without_panic() {
    let raw = format!("{MSH}\rNTE|1||Müller \\T\\ Søn\\S\\Co \\X41\\ \\H\\x\\N\\\\.br\\y\r");
    let d = doc(raw.as_bytes());
    let nte = seg(&d.tree, "NTE", 0);
    assert_eq!(val(&d.tree, nte, 3, None), Some("Müller & Søn^Co A x\ny"));
    assert!(d.is_clean(), "{:?}", d.diagnostics);
}

/// A field of one component and one subcomponent is one value at three
/// levels: decoded once, with a malformed escape reported once at its bytes,
/// and the same text at `NTE-3`, `NTE-3.1` and `NTE-3.1.1`.
#[test]
fn a_bad_escape_in_a_plain_field_is_reported_once() {
    let raw = format!("{MSH}\rNTE|1||see \\Zx here\r");
    let d = doc(raw.as_bytes());
    let escapes: Vec<&Diagnostic> = d
        .diagnostics
        .iter()
        .filter(|x| x.code == codes::BAD_ESCAPE)
        .collect();
    assert_eq!(escapes.len(), 1, "{:?}", d.diagnostics);
    let at = raw.find("\\Zx").expect("escape in the message");
    let span = escapes[0].span.expect("span");
    assert_eq!(span.start, at);
    let nte = seg(&d.tree, "NTE", 0);
    let field = val(&d.tree, nte, 3, None);
    assert_eq!(field, Some("see \\Zx here"));
    assert_eq!(val(&d.tree, nte, 3, Some(1)), field);
    let f = d.tree.children_named(nte, "3").next().expect("NTE-3");
    let c = d.tree.children_named(f, "1").next().expect("NTE-3.1");
    let s = d.tree.children_named(c, "1").next().expect("NTE-3.1.1");
    assert_eq!(d.tree.value(s), field);
    assert_eq!(d.tree.span(s), d.tree.span(f));
}

#[test]
fn blank_line_is_reported_and_later_segments_kept() {
    // hl7-parser stops at the blank line and reports success with 1 segment.
    let raw = format!("{MSH}\r\rPID|1||E10001\rPV1|1|O\r");
    let d = doc(raw.as_bytes());
    assert_eq!(d.tree.children(d.tree.root()).len(), 3);
    let blank = d
        .diagnostics
        .iter()
        .find(|x| x.code == codes::BLANK_LINE)
        .expect("blank");
    assert_eq!(blank.span.expect("span").start, MSH.len() + 1);
}

#[test]
fn bad_segment_name_is_an_error_with_position() {
    let raw = format!("{MSH}\rPID|1||E10001\rpv1|1|O\rOBR|1\r");
    let d = doc(raw.as_bytes());
    let e = d
        .diagnostics
        .iter()
        .find(|x| x.code == codes::BAD_SEGMENT)
        .expect("bad seg");
    let start = MSH.len() + 1 + "PID|1||E10001\r".len();
    assert_eq!(
        (e.span.expect("span").start, e.span.expect("span").end),
        (start, start + 7)
    );
    assert!(!d.is_clean());
    // the segment after it is still there
    assert_eq!(d.tree.children_named(d.tree.root(), "OBR").count(), 1);
}

#[test]
fn trailing_junk_is_reported() {
    let mut raw = format!("{MSH}\rPID|1||E10001\r").into_bytes();
    let at = raw.len();
    raw.extend_from_slice(b"\x1a\x1c garbage");
    let d = doc(&raw);
    let e = d
        .diagnostics
        .iter()
        .find(|x| x.code == codes::BAD_SEGMENT)
        .expect("junk");
    assert_eq!(e.span.expect("span").start, at);
    assert_eq!(e.span.expect("span").end, raw.len());
}

#[test]
fn trailing_blank_lines_are_warnings_only() {
    let raw = format!("{MSH}\r\nPID|1||E10001\r\n\r\n");
    let d = doc(raw.as_bytes());
    assert!(d.is_clean());
    assert_eq!(codes_of(&d.diagnostics), vec![codes::TRAILING_BLANK]);
}

#[test]
fn v27_truncation_character_keeps_msh_numbering() {
    let raw = b"MSH|^~\\&#|EPIC|NORTH|GW|MSO|20261122100000||OMG^O19^OMG_O19|C7|P|2.7\rNTE|1||50\\P\\ off\r";
    let d = doc(raw);
    let msh = seg(&d.tree, "MSH", 0);
    assert_eq!(val(&d.tree, msh, 2, None), Some("^~\\&#"));
    assert_eq!(val(&d.tree, msh, 3, None), Some("EPIC"));
    assert_eq!(val(&d.tree, msh, 9, Some(1)), Some("OMG"));
    assert_eq!(d.meta.message_type.as_deref(), Some("OMG^O19"));
    assert_eq!(d.meta.control_id.as_deref(), Some("C7"));
    assert_eq!(d.meta.version.as_deref(), Some("2.7"));
    assert_eq!(
        val(&d.tree, seg(&d.tree, "NTE", 0), 3, None),
        Some("50# off")
    );
    // spans: MSH-3 is bytes 10..14
    let f3 = d.tree.children_named(msh, "3").next().expect("MSH-3");
    assert_eq!(d.tree.span(f3).map(|s| (s.start, s.end)), Some((10, 14)));
}

#[test]
fn iso_8859_1_is_decoded_and_spans_point_at_raw_bytes() {
    let mut raw =
        b"MSH|^~\\&|A|B|C|D|20261122||ADT^A08|C2|P|2.5.1||||||8859/1\rPID|1||E10002||M".to_vec();
    raw.push(0xDC); // Ü
    raw.extend_from_slice(b"LLER^J");
    raw.push(0xF6); // ö
    raw.extend_from_slice(b"rg\r");
    let d = doc(&raw);
    let pid = seg(&d.tree, "PID", 0);
    assert_eq!(val(&d.tree, pid, 5, Some(1)), Some("MÜLLER"));
    assert_eq!(val(&d.tree, pid, 5, Some(2)), Some("Jörg"));
    let f5 = d.tree.children_named(pid, "5").next().expect("PID-5");
    let span = d.tree.span(f5).expect("span");
    assert_eq!(&raw[span.start..span.end], b"M\xDCLLER^J\xF6rg");
    assert!(d.is_clean(), "{:?}", d.diagnostics);
}

#[test]
fn windows_1252_and_undeclared_cp1252_bytes() {
    let raw = b"MSH|^~\\&|A|B|C|D|20261122||ADT^A08|C3|P|2.5.1\rNTE|1||a\x96b\r";
    let d = doc(raw);
    assert_eq!(
        val(&d.tree, seg(&d.tree, "NTE", 0), 3, None),
        Some("a\u{2013}b")
    );
    let w = d
        .diagnostics
        .iter()
        .find(|x| x.code == codes::INVALID_BYTES)
        .expect("reported");
    assert_eq!(
        w.span.expect("span").start,
        raw.iter().position(|b| *b == 0x96).expect("pos")
    );
}

#[test]
fn crlf_lf_and_bom() {
    for sep in ["\r", "\n", "\r\n"] {
        let mut raw = b"\xEF\xBB\xBF".to_vec();
        raw.extend(format!("{MSH}{sep}PID|1||E10001{sep}PV1|1|O{sep}").into_bytes());
        let d = doc(&raw);
        assert_eq!(d.tree.children(d.tree.root()).len(), 3, "sep {sep:?}");
        assert_eq!(codes_of(&d.diagnostics), vec![codes::BOM]);
        let pid = seg(&d.tree, "PID", 0);
        let span = d.tree.span(pid).expect("span");
        assert_eq!(&raw[span.start..span.end], b"PID|1||E10001");
    }
}

#[test]
fn batch_is_split_and_counts_checked() {
    let m1 = format!("{MSH}\rPID|1||E10001\r");
    let m2 = MSH.replace("C100", "C101") + "\rPID|1||E10002\r";
    let raw = format!("FHS|^~\\&|EPIC\rBHS|^~\\&|EPIC\r{m1}{m2}BTS|3\rFTS|1\r");
    let input = parse_input(raw.as_bytes());
    assert_eq!(input.messages.len(), 2);
    assert!(input.is_batch());
    let ids: Vec<_> = input
        .messages
        .iter()
        .map(|m| {
            m.result
                .as_ref()
                .expect("ok")
                .meta
                .control_id
                .clone()
                .expect("id")
        })
        .collect();
    assert_eq!(ids, vec!["C100", "C101"]);
    assert_eq!(
        &raw.as_bytes()[input.messages[1].range.clone()],
        m2.as_bytes()
    );
    assert!(input.diagnostics.iter().any(|d| d.code == codes::BATCH));
    // a single-message API refuses a 2-message batch with a reason
    let err = parse_message(raw.as_bytes()).expect_err("several");
    assert_eq!(err[0].code, codes::SEVERAL_MESSAGES);
}

#[test]
fn not_hl7_and_bad_separators_are_errors() {
    let e = parse_message(b"hello world").expect_err("not hl7");
    assert_eq!(e[0].code, codes::NOT_HL7);
    let e = parse_message(b"MSH|^^\\&|A\r").expect_err("dup");
    assert_eq!(e[0].code, codes::BAD_SEPARATORS);
    let e = parse_message(b"").expect_err("empty");
    assert!(!e.is_empty());
}

#[test]
fn structure_repetitions_components_subcomponents() {
    let raw = format!(
        "{MSH}\rPID|1||E10001^^^NORTH^MR~999-00-1234^^^SSA^SS||DOE^JANE^Q||19700131|F\rOBR|1|ORD1||78452^SPECT&MPI^CPT|\"\"\rZPI|1|custom\r"
    );
    let d = doc(raw.as_bytes());
    let t = &d.tree;
    let pid = seg(t, "PID", 0);
    let reps: Vec<_> = t.children_named(pid, "3").collect();
    assert_eq!(reps.len(), 2);
    assert_eq!(t.value(reps[1]), Some("999-00-1234^^^SSA^SS"));
    assert_eq!(
        t.value(t.children_named(reps[1], "5").next().expect("c5")),
        Some("SS")
    );
    assert_eq!(val(t, pid, 8, Some(1)), Some("F"));
    let obr = seg(t, "OBR", 0);
    let f4 = t.children_named(obr, "4").next().expect("OBR-4");
    let c2 = t.children_named(f4, "2").next().expect("OBR-4.2");
    assert_eq!(t.value(c2), Some("SPECT&MPI"));
    assert_eq!(
        t.value(t.children_named(c2, "2").next().expect("sub")),
        Some("MPI")
    );
    // HL7 null "" gives a node without a value
    let f5 = t.children_named(obr, "5").next().expect("OBR-5");
    assert_eq!(t.value(f5), None);
    assert_eq!(seg(t, "ZPI", 0), t.children(t.root())[3]);
    assert_eq!(d.meta.sender.as_deref(), Some("EPIC^NORTH"));
    assert_eq!(d.meta.trigger.as_deref(), Some("O01"));
}

#[test]
fn second_msh_in_single_message_api() {
    // parse_message on concatenation -> several messages error
    let raw = format!("{MSH}\rPID|1\r{MSH}\rPID|2\r");
    assert_eq!(
        parse_message(raw.as_bytes()).expect_err("two")[0].code,
        codes::SEVERAL_MESSAGES
    );
}

#[test]
fn missing_required_header_fields() {
    let d = doc(b"MSH|^~\\&|A|B\rPID|1\r");
    let c = codes_of(&d.diagnostics);
    assert!(c.contains(&codes::NO_MESSAGE_TYPE) && c.contains(&codes::NO_CONTROL_ID));
}

#[test]
fn intake_refuses_a_message_with_a_bad_segment_id() {
    // `P@D` is not a segment id: `inspect` still gets the partial tree, but
    // intake refuses the message (answered AR with ERR 100, stored as rejected).
    let raw = format!("{MSH}\rPID|1||E10001\rP@D|1|x\rPV1|1|O\r");
    let d = doc(raw.as_bytes());
    assert!(!d.is_clean());
    let refused = gateway_hl7v2::parse::parse_for_intake(raw.as_bytes())
        .expect_err("bad segment refused at intake");
    let bad = refused
        .iter()
        .find(|x| x.code == codes::BAD_SEGMENT)
        .expect("bad segment diagnostic");
    let start = MSH.len() + 1 + "PID|1||E10001\r".len();
    assert_eq!(bad.span.expect("span").start, start);
    // A clean message passes unchanged.
    let clean = format!("{MSH}\rPID|1||E10001\r");
    let ok = gateway_hl7v2::parse::parse_for_intake(clean.as_bytes()).expect("clean");
    assert!(ok.is_clean());
}
