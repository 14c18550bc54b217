//! Feeds arbitrary bytes through the guarded parser, the path evaluation, the
//! ACK builder and the received-ACK reader: none of them may panic.
#![no_main]

use gateway_hl7v2::{ack, parse, path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = parse::parse_input(data);
    for m in &input.messages {
        if let Ok(doc) = &m.result {
            for span in doc.diagnostics.iter().filter_map(|d| d.span) {
                assert!(span.start <= span.end && span.end <= data.len());
            }
            for p in ["PID-3[*](5=MR).1", "MSH-9.2", "IN1[2]-36", "OBR-4.1.2"] {
                if let Ok(p) = path::compile(p) {
                    let _ = p.first_value(&doc.tree, doc.tree.root());
                }
            }
            let _ = gateway_hl7v2::fields::render_tree(doc);
        }
    }
    let diags: Vec<gateway_core::Diagnostic> = match parse::parse_message(data) {
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
    // Our own ACK must always be readable by our own ACK reader.
    if std::str::from_utf8(data).is_ok() {
        let _ = ack::parse_ack(&out);
    }
    let _ = ack::parse_ack(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = path::compile(text);
    }
});
