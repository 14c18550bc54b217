//! Fuzz target: tokenizer, envelope, 278 loop builder, decisions, source tree,
//! 999/TA1 generation and the 999 parser must never panic on any bytes.
//!
//! Run (stable toolchain, no sanitizer):
//! `cd adapters/x12/fuzz && cargo fuzz run -s none parse_x12 -- -max_total_time=600`
#![no_main]

use gateway_x12::ack::{AckIdentity, acknowledge, parse_acks};
use gateway_x12::write::{MemoryControlNumbers, Stamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = gateway_x12::parse_interchange(data) {
        for i in 0..parsed.sets.len() {
            let _ = gateway_x12::tree::document(&parsed, Some(i));
        }
        let _ = gateway_x12::tree::document(&parsed, None);
    }
    let _ = parse_acks(data);
    let stamp = Stamp {
        at: jiff::civil::date(2026, 11, 23).at(7, 0, 0, 0),
    };
    if let Ok(ack) = acknowledge(
        data,
        &AckIdentity::default(),
        &MemoryControlNumbers::new(),
        &stamp,
    ) {
        // Whatever we answer must itself parse.
        if let Some(f) = ack.functional {
            assert!(gateway_x12::parse_interchange(&f).is_ok());
        }
    }
});
