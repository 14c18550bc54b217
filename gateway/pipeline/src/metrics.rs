//! Metric names the pipeline emits (issue 9's names), in one place so the
//! daemon's exporter, the dashboard and tests agree. Labels never carry PHI:
//! only adapter, profile, outcome and status names.

/// Counter: inbound messages by `adapter`, `profile`, `outcome`
/// (`accepted`, `rejected`, `duplicate`, `error`).
pub const MESSAGES_TOTAL: &str = "ehr_gateway_messages_total";
/// Counter: case events committed by `profile` and the case's `status`.
pub const CASES_TOTAL: &str = "ehr_gateway_cases_total";
/// Histogram: seconds from a case's first event (the request) to a decision.
pub const DECISION_CYCLE_SECONDS: &str = "ehr_gateway_decision_cycle_seconds";
/// Counter: write-back attempts by `adapter` and `result` (`done`, `retry`, `failed`).
pub const WRITEBACK_ATTEMPTS_TOTAL: &str = "ehr_gateway_writeback_attempts_total";

/// Counter: stored messages processed again (replays) by `adapter`, `profile`
/// and the replay's `outcome`; kept apart from [`MESSAGES_TOTAL`] so each
/// received message is counted there exactly once.
pub const REPLAYED_MESSAGES_TOTAL: &str = "ehr_gateway_replayed_messages_total";
/// Counter: messages a mapping file with `action = "ignore"` acknowledged and
/// kept without a case event, by `adapter`, `profile`, `message_type` (the
/// document's type, e.g. `ORU^R01`, at most 16 characters) and `rule` (the
/// mapping file that ignored it). Counted on arrival, not on replay.
pub const IGNORED_MESSAGES_TOTAL: &str = "ehr_gateway_ignored_messages_total";
/// Counter: events that needed or were a person's touch, by `reason`
/// (`replay`, `desktop_abort`, `writeback_failed`, `dead_letter`).
pub const MANUAL_INTERVENTIONS_TOTAL: &str = "ehr_gateway_manual_interventions_total";

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
