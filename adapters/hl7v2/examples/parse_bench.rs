//! Parser throughput: the guarded wrapper (`parse_message`, building the full
//! source tree with decoded values and raw spans) against bare hl7-parser 0.3
//! (`Message::parse_with_lenient_newlines`, no tree, no decoding) as the
//! baseline, measured in the same run over every HL7 sample.
//!
//! `cargo run --release -p gateway-hl7v2 --example parse_bench [seconds-per-side] [samples-dir]`

use std::time::{Duration, Instant};

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let root = std::env::args()
        .nth(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sample-messages/hl7v2")
        });
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for dir in std::fs::read_dir(&root)
        .expect("samples")
        .filter_map(Result::ok)
    {
        for f in std::fs::read_dir(dir.path())
            .expect("profile dir")
            .filter_map(Result::ok)
        {
            let data = std::fs::read(f.path()).expect("read");
            // only single messages that hl7-parser can take as UTF-8 text
            if data.starts_with(b"MSH") && std::str::from_utf8(&data).is_ok() {
                inputs.push(data);
            }
        }
    }
    let bytes: usize = inputs.iter().map(Vec::len).sum();
    println!(
        "{} messages, {} bytes average",
        inputs.len(),
        bytes / inputs.len().max(1)
    );
    let budget = Duration::from_secs_f64(secs);

    let (n_base, t_base) = run(budget, &inputs, |d| {
        let s = std::str::from_utf8(d).unwrap_or("");
        hl7_parser::Message::parse_with_lenient_newlines(s, true).is_ok()
    });
    let (n_ours, t_ours) = run(budget, &inputs, |d| {
        gateway_hl7v2::parse::parse_message(d).is_ok()
    });
    let rate = |n: u64, t: Duration| n as f64 / t.as_secs_f64();
    let (b, o) = (rate(n_base, t_base), rate(n_ours, t_ours));
    println!("hl7-parser 0.3 (baseline, no tree):  {b:>10.0} msg/s");
    println!(
        "gateway-hl7v2 parse_message (tree):  {o:>10.0} msg/s  ({:.2}x baseline)",
        o / b
    );
}

fn run(budget: Duration, inputs: &[Vec<u8>], f: impl Fn(&[u8]) -> bool) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0u64;
    let mut ok = 0u64;
    while start.elapsed() < budget {
        for d in inputs {
            ok += u64::from(f(d));
            n += 1;
        }
    }
    assert!(ok > 0);
    (n, start.elapsed())
}
