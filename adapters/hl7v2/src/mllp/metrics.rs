//! Metric names and label helpers for the MLLP transport.
//!
//! Names shared with the rest of the gateway come from the operations issue
//! (`ehr_gateway_messages_total`, `ehr_gateway_ack_latency_seconds`);
//! transport-only counters use the `ehr_gateway_mllp_` prefix.
//! `ehr_gateway_adapter_up` is not set here: the daemon's supervisor
//! (`telemetry::AdapterHealth`) owns it for every adapter, so several
//! listeners cannot disagree about it. Labels carry adapter, profile and outcome names only — never payload.

/// Adapter label value.
pub const ADAPTER: &str = gateway_core::adapter::name::HL7V2;

// Names from `gateway_core::metrics` (the one list); the short aliases are
// this module's API. ACK latency: a frame's last byte to its ACK's last byte.
pub use gateway_core::metrics::{
    ACK_LATENCY_SECONDS as ACK_LATENCY, MESSAGES_TOTAL, MLLP_CONNECTIONS as CONNECTIONS,
    MLLP_CONNECTIONS_REFUSED_TOTAL as CONNECTIONS_REFUSED,
    MLLP_DISCARDED_BYTES_TOTAL as DISCARDED_BYTES, MLLP_FRAME_ERRORS_TOTAL as FRAME_ERRORS,
    MLLP_SENDS_TOTAL as SENDS_TOTAL,
};

/// Increments a frame-error counter.
pub fn frame_error(kind: &'static str) {
    metrics::counter!(FRAME_ERRORS, "adapter" => ADAPTER, "kind" => kind).increment(1);
}

/// Increments the refused-connection counter.
pub fn refused(reason: &'static str) {
    metrics::counter!(CONNECTIONS_REFUSED, "adapter" => ADAPTER, "reason" => reason).increment(1);
}
