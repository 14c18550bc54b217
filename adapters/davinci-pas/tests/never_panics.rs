//! The PAS request reader never panics: arbitrary bytes, and mutated sample
//! bundles (structure broken at random places, values replaced with other
//! JSON types), for both operations and the Subscription reader.

use gateway_davinci_pas::request::{Operation, validate};
use gateway_davinci_pas::subscription::parse_registration;
use proptest::prelude::*;
use serde_json::Value;

const SAMPLE: &[u8] = include_bytes!("../../../sample-messages/fhir/davinci-pas/surgical.json");

/// Every JSON pointer of `value` (objects and arrays).
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = validate(&bytes, Operation::Submit);
        let _ = validate(&bytes, Operation::Inquire);
        let _ = parse_registration(&bytes, true);
    }

    #[test]
    fn truncated_and_flipped_samples(cut in 0..SAMPLE.len(), byte in any::<u8>(), pos in 0..SAMPLE.len()) {
        let mut raw = SAMPLE.to_vec();
        raw[pos] = byte;
        raw.truncate(cut.max(1));
        let _ = validate(&raw, Operation::Submit);
    }

    #[test]
    fn values_replaced_with_other_types(index in any::<prop::sample::Index>(), kind in 0..6u8) {
        let mut value: Value = serde_json::from_slice(SAMPLE).expect("sample");
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        let target = index.get(&all).clone();
        let replacement = match kind {
            0 => Value::Null,
            1 => Value::from(-1),
            2 => Value::from("x"),
            3 => Value::Array(Vec::new()),
            4 => serde_json::json!({"reference": "#nowhere"}),
            _ => Value::Bool(true),
        };
        if let Some(slot) = value.pointer_mut(&target) {
            *slot = replacement;
        }
        let raw = serde_json::to_vec(&value).expect("json");
        let _ = validate(&raw, Operation::Submit);
        let _ = validate(&raw, Operation::Inquire);
    }
}
