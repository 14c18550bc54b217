//! gateway-testkit: dev-only helpers for the gateway's tests. Never a runtime
//! dependency.
//!
//! * [`platform`]: a faithful loopback stand-in for the central platform's
//!   CloudEvents endpoint (a real axum/hyper server on `127.0.0.1:0`) that can be
//!   scripted to fail, hang, or answer 500/429/400.
//! * [`store`]: temporary stores in their own directories.
//! * [`samples`]: synthetic cases and inbound messages to commit into them.
//! * [`tls`]: a throw-away PKI (CA, server and client certificates) for TLS tests.
//! * [`bench`]: CPU time per message and the stage tables of the intake benches.

pub mod bench;
pub mod nats;
pub mod platform;
pub mod samples;
pub mod store;
pub mod tls;
