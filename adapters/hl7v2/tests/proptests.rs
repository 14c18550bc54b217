//! Property tests: escape round trips, build → parse round trips (with spans
//! checked against the raw bytes in UTF-8 and ISO 8859-1), the two tokenizers
//! agreeing, and arbitrary bytes never panicking anywhere.

use gateway_core::{NodeId, SourceTree};
use gateway_hl7v2::ack::{AckRequest, AckStatus, build_ack_at, parse_ack};
use gateway_hl7v2::parse::charset::Charset;
use gateway_hl7v2::parse::escape::{decode, encode};
use gateway_hl7v2::parse::tokenize::{split_own, split_with_hl7_parser};
use gateway_hl7v2::parse::{Separators, parse_input, parse_message};
use proptest::prelude::*;

fn seps27() -> Separators {
    Separators {
        truncation: Some('#'),
        ..Separators::default()
    }
}

/// Text with plenty of delimiters, escapes, controls and non-ASCII.
fn text(latin1: bool) -> impl Strategy<Value = String> {
    let chars = if latin1 {
        "[a-zA-Z0-9 |^~&#\\\\\r\n\t.éÄßÿ]"
    } else {
        "[a-zA-Z0-9 |^~&#\\\\\r\n\t.éÄß€中😀]"
    };
    proptest::collection::vec(proptest::string::string_regex(chars).expect("regex"), 0..12)
        .prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn escape_round_trip(s in text(false)) {
        for seps in [Separators::default(), seps27()] {
            let enc = encode(&s, &seps);
            let mut issues = Vec::new();
            let back = decode(&enc, &seps, Charset::Utf8, &mut issues);
            prop_assert_eq!(back.as_ref(), s.as_str());
            prop_assert!(issues.is_empty());
        }
    }

    #[test]
    fn decode_never_panics(s in "\\PC*") {
        let mut issues = Vec::new();
        let _ = decode(&s, &seps27(), Charset::Latin1, &mut issues);
        let _ = decode(&s, &Separators::default(), Charset::Utf8, &mut issues);
    }
}

/// segment name, then fields → repetitions → components → subcomponents
type Seg = (String, Vec<Vec<Vec<Vec<String>>>>);

fn segment(latin1: bool) -> impl Strategy<Value = Seg> {
    let leaf = text(latin1).prop_filter("HL7 null", |s| s != "\"\"");
    let comp = proptest::collection::vec(leaf, 1..3);
    let rep = proptest::collection::vec(comp, 1..4);
    let field = proptest::collection::vec(rep, 1..3);
    (
        "Z[A-Z0-9]{2}|PID|OBR|IN1|NTE",
        proptest::collection::vec(field, 0..6),
    )
}

fn value_at(t: &SourceTree, seg: NodeId, f: usize, r: usize, c: usize, s: usize) -> Option<NodeId> {
    let rep = t.children_named(seg, &f.to_string()).nth(r)?;
    let comp = t.children_named(rep, &c.to_string()).next()?;
    t.children_named(comp, &s.to_string()).next()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn build_parse_round_trip(
        segs in proptest::collection::vec(segment(false), 0..5),
        latin_segs in proptest::collection::vec(segment(true), 0..5),
        latin1 in any::<bool>(),
        v27 in any::<bool>(),
        term in prop::sample::select(vec!["\r", "\n", "\r\n"]),
    ) {
        let segs = if latin1 { latin_segs } else { segs };
        let seps = if v27 { seps27() } else { Separators::default() };
        let enc = seps.encoding_characters();
        let charset = if latin1 { "8859/1" } else { "UNICODE UTF-8" };
        let mut text = format!("MSH|{enc}|APP|FAC|GW|MSO|20260101||ORM^O01|CTRL1|P|2.5.1||||||{charset}");
        for (name, fields) in &segs {
            text.push_str(term);
            text.push_str(name);
            for f in fields {
                text.push('|');
                let reps: Vec<String> = f.iter().map(|r| {
                    r.iter().map(|c| c.iter().map(|s| encode(s, &seps).into_owned()).collect::<Vec<_>>().join("&"))
                        .collect::<Vec<_>>().join("^")
                }).collect();
                text.push_str(&reps.join("~"));
            }
        }
        text.push_str(term);
        let raw: Vec<u8> = if latin1 {
            text.chars().map(|c| u8::try_from(u32::from(c)).expect("latin1 char")).collect()
        } else {
            text.clone().into_bytes()
        };
        let doc = parse_message(&raw).expect("parses");
        prop_assert!(doc.is_clean(), "{:?}", doc.diagnostics);
        prop_assert_eq!(doc.meta.control_id.as_deref(), Some("CTRL1"));
        let t = &doc.tree;
        let seg_nodes: Vec<NodeId> = t.children(t.root()).to_vec();
        prop_assert_eq!(seg_nodes.len(), segs.len() + 1);
        for ((name, fields), &node) in segs.iter().zip(&seg_nodes[1..]) {
            prop_assert_eq!(t.name(node), name.as_str());
            for (fi, f) in fields.iter().enumerate() {
                let field_empty = f.iter().all(|r| r.iter().all(|c| c.iter().all(String::is_empty))) && f.len() == 1
                    && f[0].len() == 1 && f[0][0].len() == 1;
                for (ri, r) in f.iter().enumerate() {
                    for (ci, c) in r.iter().enumerate() {
                        for (si, s) in c.iter().enumerate() {
                            let got = value_at(t, node, fi + 1, ri, ci + 1, si + 1);
                            if s.is_empty() {
                                prop_assert!(got.and_then(|n| t.value(n)).is_none());
                                continue;
                            }
                            prop_assert!(!field_empty);
                            let n = got.expect("leaf node exists");
                            prop_assert_eq!(t.value(n), Some(s.as_str()));
                            // the span covers exactly the escaped text in the raw bytes
                            let span = t.span(n).expect("span");
                            let escaped = encode(s, &seps);
                            let expect: Vec<u8> = if latin1 {
                                escaped.chars().map(|ch| u8::try_from(u32::from(ch)).expect("latin1")).collect()
                            } else {
                                escaped.as_bytes().to_vec()
                            };
                            prop_assert_eq!(&raw[span.start..span.end], expect.as_slice());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn tokenizers_agree(line in "[A-Z]{3}(\\|[a-z^~&\\\\é]{0,6}){0,8}") {
        let seps = Separators::default();
        if let Some(a) = split_with_hl7_parser(&line, &seps) {
            prop_assert_eq!(a, split_own(&line, &seps));
        }
    }
}

/// Bytes that look enough like HL7 to reach deep code paths.
fn hl7ish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"MSH|^~\\&|".to_vec()),
        Just(b"MSH|^~\\&#|".to_vec()),
        Just(b"MSH$^~\\&$".to_vec()),
        Just(b"|".to_vec()),
        Just(b"^".to_vec()),
        Just(b"~".to_vec()),
        Just(b"&".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\\X".to_vec()),
        Just(b"\\F\\".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"PID".to_vec()),
        Just(b"BHS|".to_vec()),
        Just(b"BTS|9".to_vec()),
        Just(b"8859/1".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"ORM^O01".to_vec()),
        Just("é中".as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 1..4),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|v| v.concat())
}

fn exercise(data: &[u8]) {
    let input = parse_input(data);
    for m in &input.messages {
        if let Ok(doc) = &m.result {
            for d in &doc.diagnostics {
                if let Some(s) = d.span {
                    assert!(
                        s.start <= s.end && s.end <= data.len(),
                        "span {s:?} outside input"
                    );
                }
            }
            for n in doc.tree.descendants(doc.tree.root()) {
                if let Some(s) = doc.tree.span(n) {
                    assert!(
                        s.start <= s.end && s.end <= data.len(),
                        "node span {s:?} outside input"
                    );
                }
            }
        }
    }
    let diags = match parse_message(data) {
        Ok(d) => d.diagnostics,
        Err(d) => d,
    };
    for status in [AckStatus::Accept, AckStatus::Error, AckStatus::Reject] {
        let ack = build_ack_at(
            &AckRequest {
                message: data,
                status,
                error: None,
                diagnostics: &diags,
            },
            "20260101",
            "A1",
        );
        assert!(ack.starts_with(b"MSH"));
        // our ACK of UTF-8 input must be readable by our own ACK reader
        if std::str::from_utf8(data).is_ok() && !data.contains(&0) {
            let read = parse_ack(&ack);
            assert!(
                read.is_ok() || data.windows(3).any(|w| w == b"MSH"),
                "{read:?}"
            );
        }
    }
    let _ = parse_ack(data);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        exercise(&data);
    }

    #[test]
    fn hl7ish_bytes_never_panic(data in hl7ish()) {
        exercise(&data);
    }
}
