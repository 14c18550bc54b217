//! Every metric name the gateway emits, in one place (`docs/metrics.md` lists
//! them with their labels).
//!
//! *Why in core:* adapters, the pipeline, the forwarder and the daemon emit
//! through the `metrics` facade from different crates, and the daemon
//! describes and zero-initialises the same series; core is the one crate they
//! all depend on, so a name is spelled once and a rename cannot split a
//! series. Labels never carry PHI: only adapter, profile, outcome, status,
//! reason and result names. Only names live here (no `metrics` dependency).

// Intake.
/// Counter: inbound messages by `adapter`, `profile`, `outcome` (`accepted`
/// incl. kept-without-case, `rejected`, `duplicate`, `error`), each counted
/// once on arrival.
pub const MESSAGES_TOTAL: &str = "ehr_gateway_messages_total";
/// Counter: stored messages processed again (replays) by `adapter`, `profile`
/// and the replay's `outcome`.
pub const REPLAYED_MESSAGES_TOTAL: &str = "ehr_gateway_replayed_messages_total";
/// Counter: messages a mapping file with `action = "ignore"` kept without a
/// case event, by `adapter`, `profile`, `message_type` and `rule`.
pub const IGNORED_MESSAGES_TOTAL: &str = "ehr_gateway_ignored_messages_total";
/// Histogram: seconds from a message's arrival to its acknowledgement (MLLP
/// ACK, X12 999/TA1), by `adapter`.
pub const ACK_LATENCY_SECONDS: &str = "ehr_gateway_ack_latency_seconds";
/// Counter: case events committed by `profile` and the case's `status`.
pub const CASES_TOTAL: &str = "ehr_gateway_cases_total";
/// Histogram: seconds from a case's first event (the request) to a decision.
pub const DECISION_CYCLE_SECONDS: &str = "ehr_gateway_decision_cycle_seconds";
/// Counter: write-back attempts by `adapter` and `result` (`done`, `retry`,
/// `failed`).
pub const WRITEBACK_ATTEMPTS_TOTAL: &str = "ehr_gateway_writeback_attempts_total";
/// Counter: events that needed or were a person's touch, by `reason`
/// (`replay`, `desktop_abort`, `writeback_failed`, `dead_letter`, `skip`).
pub const MANUAL_INTERVENTIONS_TOTAL: &str = "ehr_gateway_manual_interventions_total";
/// Gauge: 1 while every task of a configured adapter runs, by `adapter`.
pub const ADAPTER_UP: &str = "ehr_gateway_adapter_up";

// The outbox and the sinks.
/// Gauge: pending outbox events.
pub const OUTBOX_DEPTH: &str = "ehr_gateway_outbox_depth";
/// Gauge: age of the oldest pending outbox event, seconds.
pub const OUTBOX_OLDEST_AGE_SECONDS: &str = "ehr_gateway_outbox_oldest_age_seconds";
/// Gauge: dead-lettered events.
pub const DEAD_LETTERS: &str = "ehr_gateway_dead_letters";
/// Counter: delivery attempts by `sink` and `result` (`delivered`, `retry`,
/// `dead`).
pub const FORWARD_ATTEMPTS_TOTAL: &str = "ehr_gateway_forward_attempts_total";
/// Gauge (sink `nats`): 1 while the JetStream client is connected.
pub const NATS_CONNECTED: &str = "ehr_gateway_nats_connected";
/// Histogram (sink `nats`): seconds from publish to JetStream's ack.
pub const NATS_PUBLISH_SECONDS: &str = "ehr_gateway_nats_publish_seconds";

// Transports.
/// Counter: bytes received outside MLLP frames and dropped.
pub const MLLP_DISCARDED_BYTES_TOTAL: &str = "ehr_gateway_mllp_discarded_bytes_total";
/// Counter: MLLP frame problems by `kind` (`oversized`, `frame_timeout`,
/// `truncated`).
pub const MLLP_FRAME_ERRORS_TOTAL: &str = "ehr_gateway_mllp_frame_errors_total";
/// Gauge: open inbound MLLP connections.
pub const MLLP_CONNECTIONS: &str = "ehr_gateway_mllp_connections";
/// Counter: MLLP connections refused by `reason` (`limit`, `tls`,
/// `not_allowed`).
pub const MLLP_CONNECTIONS_REFUSED_TOTAL: &str = "ehr_gateway_mllp_connections_refused_total";
/// Counter: outbound MLLP sends by `result`.
pub const MLLP_SENDS_TOTAL: &str = "ehr_gateway_mllp_sends_total";
/// Counter: FHIR API requests to the EHR by `outcome` (`ok`, `retry`,
/// `error`).
pub const FHIR_REQUESTS_TOTAL: &str = "ehr_gateway_fhir_requests_total";

// The daemon.
/// Gauge: bytes the store's size budget counts.
pub const STORE_SIZE_BYTES: &str = "ehr_gateway_store_size_bytes";
/// Gauge: the audit log's pages (not counted against the budget).
pub const STORE_AUDIT_BYTES: &str = "ehr_gateway_store_audit_bytes";
/// Gauge: the budget (`max_size_mb` in bytes).
pub const STORE_LIMIT_BYTES: &str = "ehr_gateway_store_limit_bytes";
/// Gauge: the store's files on disk, by `file` (`db`, `wal`).
pub const STORE_DISK_BYTES: &str = "ehr_gateway_store_disk_bytes";
/// Counter: intake commits refused because the store was full.
pub const STORE_INTAKE_REFUSED_TOTAL: &str = "ehr_gateway_store_intake_refused_total";
/// Gauge: seconds until a served TLS certificate expires.
pub const TLS_CERTIFICATE_EXPIRY_SECONDS: &str = "ehr_gateway_tls_certificate_expiry_seconds";
/// Counter: alert webhook posts by `result`.
pub const ALERT_NOTIFICATIONS_TOTAL: &str = "ehr_gateway_alert_notifications_total";
/// Counter: alert transitions dropped because the webhook queue was full.
pub const ALERT_NOTIFICATIONS_DROPPED_TOTAL: &str = "ehr_gateway_alert_notifications_dropped_total";

/// Every name above (for checks that the exporter describes each one).
pub const ALL: [&str; 29] = [
    MESSAGES_TOTAL,
    REPLAYED_MESSAGES_TOTAL,
    IGNORED_MESSAGES_TOTAL,
    ACK_LATENCY_SECONDS,
    CASES_TOTAL,
    DECISION_CYCLE_SECONDS,
    WRITEBACK_ATTEMPTS_TOTAL,
    MANUAL_INTERVENTIONS_TOTAL,
    ADAPTER_UP,
    OUTBOX_DEPTH,
    OUTBOX_OLDEST_AGE_SECONDS,
    DEAD_LETTERS,
    FORWARD_ATTEMPTS_TOTAL,
    NATS_CONNECTED,
    NATS_PUBLISH_SECONDS,
    MLLP_DISCARDED_BYTES_TOTAL,
    MLLP_FRAME_ERRORS_TOTAL,
    MLLP_CONNECTIONS,
    MLLP_CONNECTIONS_REFUSED_TOTAL,
    MLLP_SENDS_TOTAL,
    FHIR_REQUESTS_TOTAL,
    STORE_SIZE_BYTES,
    STORE_AUDIT_BYTES,
    STORE_LIMIT_BYTES,
    STORE_DISK_BYTES,
    STORE_INTAKE_REFUSED_TOTAL,
    TLS_CERTIFICATE_EXPIRY_SECONDS,
    ALERT_NOTIFICATIONS_TOTAL,
    ALERT_NOTIFICATIONS_DROPPED_TOTAL,
];

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_unique_prometheus_names_with_the_gateway_prefix() {
        let mut seen = std::collections::BTreeSet::new();
        for name in super::ALL {
            assert!(name.starts_with("ehr_gateway_"), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert!(seen.insert(name), "{name} twice");
        }
    }
}
