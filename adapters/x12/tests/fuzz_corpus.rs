//! Replays the checked-in fuzz corpus (`fuzz/corpus/parse_x12`) through the
//! same calls as the fuzz target, so CI catches a regression without fuzzing.

use gateway_x12::ack::{AckIdentity, acknowledge, parse_acks};
use gateway_x12::write::{MemoryControlNumbers, Stamp};

#[test]
fn fuzz_corpus_replays_without_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse_x12");
    let stamp = Stamp {
        at: jiff::civil::date(2026, 11, 23).at(7, 0, 0, 0),
    };
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read");
        if let Ok(parsed) = gateway_x12::parse_interchange(&data) {
            for i in 0..parsed.sets.len() {
                let _ = gateway_x12::tree::document(&parsed, Some(i));
            }
        }
        let _ = parse_acks(&data);
        if let Ok(ack) = acknowledge(
            &data,
            &AckIdentity::default(),
            &MemoryControlNumbers::new(),
            &stamp,
        ) && let Some(f) = ack.functional
        {
            assert!(gateway_x12::parse_interchange(&f).is_ok());
        }
        count += 1;
    }
    assert!(count >= 5, "corpus has only {count} inputs");
}
