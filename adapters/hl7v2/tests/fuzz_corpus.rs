//! Replays every checked-in fuzz corpus input (and every sample message)
//! through the same code the `parse` fuzz target drives. This is what CI runs;
//! long fuzzing happens with `cargo +stable fuzz run -s none parse` in
//! adapters/hl7v2/fuzz.

use std::path::Path;

use gateway_hl7v2::{ack, fields, parse, path};

fn exercise(data: &[u8]) {
    let input = parse::parse_input(data);
    for m in &input.messages {
        if let Ok(doc) = &m.result {
            for span in doc.diagnostics.iter().filter_map(|d| d.span) {
                assert!(span.start <= span.end && span.end <= data.len());
            }
            for p in ["PID-3[*](5=MR).1", "MSH-9.2", "IN1[2]-36", "OBR-4.1.2"] {
                let p = path::compile(p).expect("valid path");
                let _ = p.first_value(&doc.tree, doc.tree.root());
            }
            let _ = fields::render_tree(doc);
        }
    }
    let diags = match parse::parse_message(data) {
        Ok(doc) => doc.diagnostics,
        Err(d) => d,
    };
    let req = ack::AckRequest {
        message: data,
        status: ack::AckStatus::Error,
        error: None,
        diagnostics: &diags,
    };
    let out = ack::build_ack_at(&req, "20260101000000", "A1");
    assert!(out.starts_with(b"MSH"));
    let _ = ack::parse_ack(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = path::compile(text);
    }
}

fn replay_dir(dir: &Path) -> usize {
    let mut n = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.filter_map(Result::ok) {
        let p = entry.path();
        if p.is_dir() {
            n += replay_dir(&p);
        } else if let Ok(data) = std::fs::read(&p) {
            exercise(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn corpus_and_samples_replay_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = replay_dir(&root.join("fuzz/corpus/parse"));
    assert!(corpus >= 10, "fuzz corpus has only {corpus} inputs");
    let samples = replay_dir(&root.join("../../sample-messages/hl7v2"));
    assert!(samples >= 30, "only {samples} samples");
}
