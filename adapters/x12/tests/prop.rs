//! Property tests: the tokenizer and everything above it never panic on any
//! bytes, and random valid interchanges written with random delimiters
//! tokenize back to exactly what was written, with a clean envelope.

use gateway_x12::ack::{AckIdentity, acknowledge, parse_acks};
use gateway_x12::token::{Delimiters, tokenize};
use gateway_x12::write::{
    EnvelopeParams, GroupOut, MemoryControlNumbers, Seg, Stamp, write_interchange,
};
use gateway_x12::{parse_documents, parse_interchange};
use proptest::prelude::*;

const ISA: &str = "ISA*00*          *00*          *ZZ*SUBMITTER01    *ZZ*RECEIVER01     *261123*0700*^*00501*000000001*0*T*:~";

fn stamp() -> Stamp {
    Stamp {
        at: jiff::civil::date(2026, 11, 23).at(7, 0, 0, 0),
    }
}

fn everything(input: &[u8]) {
    let _ = tokenize(input);
    let _ = parse_interchange(input);
    let _ = parse_documents(input);
    let _ = parse_acks(input);
    let _ = acknowledge(
        input,
        &AckIdentity::default(),
        &MemoryControlNumbers::new(),
        &stamp(),
    );
}

fn segment_bytes() -> impl Strategy<Value = Vec<u8>> {
    let ids = prop::sample::select(vec![
        "ST", "SE", "GS", "GE", "IEA", "ISA", "BHT", "HL", "NM1", "HI", "HCR", "AAA", "TRN", "UM",
        "SV1", "DTP", "REF", "TA1", "AK1", "AK2", "IK3", "IK4", "IK5", "AK9", "X",
    ]);
    (
        ids,
        prop::collection::vec(
            prop::collection::vec(prop::sample::select(b"*:^~\nA1-0 ".to_vec()), 0..8),
            0..6,
        ),
    )
        .prop_map(|(id, parts)| {
            let mut s = id.as_bytes().to_vec();
            for p in parts {
                s.extend(p);
            }
            s.push(b'~');
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..400)) {
        everything(&input);
    }

    #[test]
    fn random_segments_after_a_valid_isa_never_panic(segs in prop::collection::vec(segment_bytes(), 0..30), cut in 0usize..2000) {
        let mut input = ISA.as_bytes().to_vec();
        for s in segs {
            input.extend(s);
        }
        everything(&input);
        let cut = cut.min(input.len());
        everything(&input[..cut]);
    }

    #[test]
    fn random_valid_interchanges_round_trip(
        delims in prop::sample::select(vec![
            (b'*', b':', b'~', b'^'), (b'|', b'>', b'\n', b'^'), (b'^', b'+', b'\'', b'{'), (b'*', b'|', b'\r', b'!'),
        ]),
        newlines in any::<bool>(),
        sets in prop::collection::vec(
            prop::collection::vec(
                (prop::sample::select(vec!["NM1", "REF", "DTP", "MSG", "N3", "PER"]),
                 prop::collection::vec(prop::collection::vec("[A-Z0-9 .-]{0,6}", 1..4), 1..6)),
                0..8),
            1..4),
    ) {
        let (element, component, segment, repetition) = delims;
        let d = Delimiters { element, component, segment, repetition: Some(repetition) };
        let params = EnvelopeParams { delimiters: d, newlines, ..EnvelopeParams::default() };
        let bodies: Vec<Vec<Seg>> = sets
            .iter()
            .map(|set| set.iter().map(|(id, els)| Seg { id: (*id).to_owned(), elements: els.clone() }).collect())
            .collect();
        let group = GroupOut { functional_id: "HI".into(), version: "005010X217".into(), set_id: "278".into(), sets: bodies.clone() };
        let (bytes, _) = write_interchange(&params, &[group], &MemoryControlNumbers::new(), &stamp()).expect("writes");
        let t = tokenize(&bytes).expect("tokenizes");
        prop_assert_eq!(t.delimiters, d);
        let parsed = parse_interchange(&bytes).expect("parses");
        let envelope: Vec<_> = parsed.findings.iter().filter(|f| f.diagnostic.code.as_str() < "X030").collect();
        prop_assert!(envelope.is_empty(), "{:?}", envelope);
        prop_assert_eq!(parsed.interchange.groups[0].transactions.len(), bodies.len());
        for (tx, body) in parsed.interchange.groups[0].transactions.iter().zip(&bodies) {
            let got: Vec<_> = tx.body.clone().map(|i| &t.segments[i]).collect();
            prop_assert_eq!(got.len(), body.len());
            for (g, want) in got.iter().zip(body) {
                prop_assert_eq!(&g.id, &want.id);
                // Compare with trailing empties trimmed, as the writer drops them.
                let mut want_els: Vec<Vec<String>> = want.elements.iter().map(|e| {
                    let mut c = e.clone();
                    while c.len() > 1 && c.last().is_some_and(String::is_empty) { c.pop(); }
                    c
                }).collect();
                while want_els.last().is_some_and(|e| e.iter().all(String::is_empty)) { want_els.pop(); }
                let got_els: Vec<Vec<String>> = g.elements.iter().map(|e| {
                    e.repetitions[0].iter().map(|s| t.text(*s).into_owned()).collect()
                }).collect();
                prop_assert_eq!(got_els, want_els);
            }
        }
    }
}
