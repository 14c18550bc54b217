//! Replays the checked-in `mllp_codec` fuzz corpus (and the crash artifacts, if
//! any were saved there) through the same invariant check the fuzz target runs,
//! so CI guards what fuzzing found without running the fuzzer.

use std::path::Path;

#[test]
fn mllp_codec_corpus_replays_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/mllp_codec");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        if let Err(e) = gateway_hl7v2::mllp::codec::self_check(&data) {
            panic!("{}: {e}", path.display());
        }
        n += 1;
    }
    assert!(n >= 5, "corpus has only {n} inputs");
}
