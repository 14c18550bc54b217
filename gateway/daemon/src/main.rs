//! `ehr-gateway`: the one binary of the EHR integration gateway.
//!
//! Thin on purpose: everything — the subcommands, settings, start-up, the
//! admin application, alerting — is the `ehr_gateway` library (`src/lib.rs`),
//! so tests can drive it in-process. The binary only picks the allocator.

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: allocation-heavy intake (parse trees,
/// case JSON) spent ~30% of its CPU in glibc's malloc/free under load
/// (perf on the `mllp` bench, issue #4); mimalloc's thread-local free lists
/// remove most of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ehr_gateway::main()
}
