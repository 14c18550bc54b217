//! Parsers never panic: arbitrary bytes into `parse_bundle`, arbitrary text
//! (including multi-byte whitespace and quotes) into the FHIR path syntax, and
//! mutated sample bundles through both.

use gateway_core::path::PathSyntax;
use gateway_fhir::{FhirPathSyntax, build_document, parse_bundle};
use proptest::prelude::*;

const SAMPLE: &[u8] = include_bytes!("../../../sample-messages/fhir/athenahealth/order-full.json");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn bundles_from_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_bundle(&bytes);
        let _ = build_document(&bytes);
        let _ = gateway_fhir::bundle::entry_spans(&bytes);
    }

    #[test]
    fn mutated_sample_bundles(cut in 0..SAMPLE.len(), byte in any::<u8>(), pos in 0..SAMPLE.len()) {
        let mut raw = SAMPLE.to_vec();
        raw[pos] = byte;
        raw.truncate(cut.max(1));
        let _ = parse_bundle(&raw);
    }

    #[test]
    fn paths_from_arbitrary_text(text in "[a-zA-Z\\.\\(\\)\\[\\]'=!* \u{3000}é\\-0-9]{0,40}") {
        if let Ok(path) = FhirPathSyntax.compile(&text) {
            let doc = build_document(SAMPLE).expect("sample parses");
            let _ = path.evaluate(&doc.tree, doc.tree.root());
        }
    }
}
