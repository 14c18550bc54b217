//! Arbitrary byte streams, fed whole and in chunks, through the MLLP decoder:
//! no panic, identical results either way, bounded buffering, payloads that
//! round-trip (see `gateway_hl7v2::mllp::codec::self_check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = gateway_hl7v2::mllp::codec::self_check(data) {
        panic!("MLLP codec invariant broken: {e}");
    }
});
