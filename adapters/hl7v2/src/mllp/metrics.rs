//! Metric names and label helpers for the MLLP transport.
//!
//! Names shared with the rest of the gateway come from the operations issue
//! (`ehr_gateway_messages_total`, `ehr_gateway_ack_latency_seconds`);
//! transport-only counters use the `ehr_gateway_mllp_` prefix.
//! `ehr_gateway_adapter_up` is not set here: the daemon's supervisor
//! (`telemetry::AdapterHealth`) owns it for every adapter, so several
//! listeners cannot disagree about it. Labels carry adapter, profile and outcome names only — never payload.

/// Adapter label value.
pub const ADAPTER: &str = "hl7v2";

/// Messages by outcome: `accepted`, `duplicate`, `rejected`, `error`.
pub const MESSAGES_TOTAL: &str = "ehr_gateway_messages_total";
/// Seconds from a frame's last byte to its ACK's last byte.
pub const ACK_LATENCY: &str = "ehr_gateway_ack_latency_seconds";
/// Bytes received outside MLLP frames and dropped.
pub const DISCARDED_BYTES: &str = "ehr_gateway_mllp_discarded_bytes_total";
/// Frame-level problems by `kind`: `oversized`, `frame_timeout`, `truncated`.
pub const FRAME_ERRORS: &str = "ehr_gateway_mllp_frame_errors_total";
/// Open inbound connections.
pub const CONNECTIONS: &str = "ehr_gateway_mllp_connections";
/// Connections refused by `reason`: `limit`, `tls`, `not_allowed`.
pub const CONNECTIONS_REFUSED: &str = "ehr_gateway_mllp_connections_refused_total";
/// Outbound sends by `result`: `accepted`, `rejected`, `invalid_ack`, `error`.
pub const SENDS_TOTAL: &str = "ehr_gateway_mllp_sends_total";

/// Increments a frame-error counter.
pub fn frame_error(kind: &'static str) {
    metrics::counter!(FRAME_ERRORS, "adapter" => ADAPTER, "kind" => kind).increment(1);
}

/// Increments the refused-connection counter.
pub fn refused(reason: &'static str) {
    metrics::counter!(CONNECTIONS_REFUSED, "adapter" => ADAPTER, "reason" => reason).increment(1);
}
