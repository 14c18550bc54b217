//! The metrics the pipeline emits (names from `gateway_core::metrics`, so the
//! daemon's exporter, the dashboard and tests agree). Labels never carry PHI:
//! only adapter, profile, outcome and status names.

pub use gateway_core::metrics::{
    CASES_TOTAL, DECISION_CYCLE_SECONDS, IGNORED_MESSAGES_TOTAL, MANUAL_INTERVENTIONS_TOTAL,
    MESSAGES_TOTAL, REPLAYED_MESSAGES_TOTAL, WRITEBACK_ATTEMPTS_TOTAL,
};

/// Counts one inbound message.
pub(crate) fn message(adapter: &str, profile: &str, outcome: &'static str) {
    ::metrics::counter!(
        MESSAGES_TOTAL,
        "adapter" => adapter.to_owned(),
        "profile" => profile.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
}

/// Counts one committed case event.
pub(crate) fn case(profile: &str, status: &'static str) {
    ::metrics::counter!(CASES_TOTAL, "profile" => profile.to_owned(), "status" => status)
        .increment(1);
}

/// Records one request-to-decision cycle time.
pub(crate) fn decision_cycle(seconds: f64) {
    ::metrics::histogram!(DECISION_CYCLE_SECONDS).record(seconds);
}

/// Counts one write-back attempt.
pub(crate) fn writeback(adapter: &str, result: &'static str) {
    ::metrics::counter!(WRITEBACK_ATTEMPTS_TOTAL, "adapter" => adapter.to_owned(), "result" => result)
        .increment(1);
}

/// Counts one message kept by an `ignore` mapping file.
pub(crate) fn ignored(adapter: &str, profile: &str, message_type: &str, rule: &str) {
    // The type comes from the sender: bound its length so a hostile MSH-9
    // cannot mint unbounded label values.
    let message_type: String = message_type.chars().take(16).collect();
    ::metrics::counter!(
        IGNORED_MESSAGES_TOTAL,
        "adapter" => adapter.to_owned(),
        "profile" => profile.to_owned(),
        "message_type" => message_type,
        "rule" => rule.to_owned()
    )
    .increment(1);
}

/// Counts one replayed message.
pub(crate) fn replayed(adapter: &str, profile: &str, outcome: &'static str) {
    ::metrics::counter!(
        REPLAYED_MESSAGES_TOTAL,
        "adapter" => adapter.to_owned(),
        "profile" => profile.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
}

/// Counts one manual intervention (see [`MANUAL_INTERVENTIONS_TOTAL`]).
pub fn manual_intervention(reason: &'static str) {
    ::metrics::counter!(MANUAL_INTERVENTIONS_TOTAL, "reason" => reason).increment(1);
}
