//! The alert rules: one pure function from a [`Snapshot`] of the gateway's
//! health to one [`Observation`] per rule and label set.
//!
//! A signal that could not be read is `None` in the snapshot and produces no
//! observation, so the debouncer keeps that alert as it was.

use std::collections::BTreeMap;

use super::config::AlertSettings;
use super::debounce::{AlertKey, Observation};

/// What the evaluator read in one pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Pending events and the oldest one's age in seconds.
    pub outbox: Option<(u64, f64)>,
    /// Inbound messages in the error-rate window: (total, rejected + error).
    pub intake: Option<(u64, u64)>,
    /// Each configured adapter and whether all its tasks run.
    pub adapters: Vec<(String, bool)>,
    /// The sink's name and its run of transiently failed attempts.
    pub sink: Option<(String, u64)>,
    /// The HTTP status of the newest failed attempt (`None`: no answer).
    pub sink_status: Option<u16>,
    /// Each TLS listener and the seconds until its certificate expires.
    pub certificates: Vec<(String, f64)>,
    /// The store against its size budget.
    pub store_size: Option<StoreSizeSignal>,
}

/// The store's size against its budget, as the evaluator read it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreSizeSignal {
    /// Bytes the budget counts (live pages minus the audit log).
    pub counted_bytes: u64,
    /// The audit log's bytes.
    pub audit_bytes: u64,
    /// The budget (`max_size_mb` in bytes).
    pub limit_bytes: u64,
    /// `[store] warn_fraction`.
    pub warn_fraction: f64,
    /// Intake was refused since the previous pass (or the store is full now).
    pub refusing: bool,
}

fn key(alert: &str, labels: &[(&str, &str)]) -> AlertKey {
    AlertKey {
        alert: alert.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// Evaluates every configured rule against `snapshot`.
pub fn evaluate(settings: &AlertSettings, snapshot: &Snapshot) -> Vec<Observation> {
    let mut out = Vec::new();
    if let (Some(rule), Some((depth, _))) = (&settings.outbox_depth, snapshot.outbox) {
        out.push(Observation {
            key: key("outbox_depth", &[]),
            holds: depth >= rule.threshold,
            value: depth as f64,
            threshold: rule.threshold as f64,
            hold: rule.hold,
            summary: format!(
                "{depth} events wait for delivery (threshold {})",
                rule.threshold
            ),
        });
    }
    if let (Some(rule), Some((_, age))) = (&settings.outbox_oldest_age, snapshot.outbox) {
        let threshold = rule.threshold.as_secs_f64();
        out.push(Observation {
            key: key("outbox_oldest_age", &[]),
            holds: age >= threshold,
            value: age,
            threshold,
            hold: rule.hold,
            summary: format!(
                "the oldest undelivered event is {age:.0}s old (threshold {threshold:.0}s)"
            ),
        });
    }
    if let (Some(rule), Some((total, failed))) = (&settings.error_rate, snapshot.intake) {
        let rate = if total == 0 {
            0.0
        } else {
            failed as f64 / total as f64
        };
        out.push(Observation {
            key: key("error_rate", &[]),
            holds: total >= rule.min_messages.max(1) && rate >= rule.threshold,
            value: rate,
            threshold: rule.threshold,
            hold: rule.hold,
            summary: format!(
                "{failed} of {total} inbound messages rejected or failed in the last {}s",
                rule.window.as_secs()
            ),
        });
    }
    if let Some(rule) = &settings.adapter_down {
        for (adapter, up) in &snapshot.adapters {
            out.push(Observation {
                key: key("adapter_down", &[("adapter", adapter)]),
                holds: !up,
                value: if *up { 1.0 } else { 0.0 },
                threshold: 1.0,
                hold: rule.hold,
                summary: if *up {
                    format!("adapter {adapter} is running")
                } else {
                    format!("adapter {adapter} is not running")
                },
            });
        }
    }
    if let (Some(rule), Some((sink, failures))) = (&settings.sink_down, &snapshot.sink) {
        out.push(Observation {
            key: key("sink_down", &[("sink", sink)]),
            holds: *failures >= rule.failures,
            value: *failures as f64,
            threshold: rule.failures as f64,
            hold: rule.hold,
            summary: format!("the last {failures} deliveries to the {sink} sink failed"),
        });
        // Which way the platform is behind: it answers and refuses us (a
        // rotated token, a deploy answering 404/409) or it does not answer.
        let failing = *failures >= rule.failures;
        let refusing = snapshot
            .sink_status
            .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429);
        let seen = match snapshot.sink_status {
            Some(status) => format!("HTTP {status}"),
            None => "no answer".to_owned(),
        };
        out.push(Observation {
            key: key("platform_rejecting", &[("sink", sink)]),
            holds: failing && refusing,
            value: *failures as f64,
            threshold: rule.failures as f64,
            hold: rule.hold,
            summary: format!(
                "the platform refused the last {failures} deliveries to the {sink} sink ({seen}); \
                 events are retried, none is dead-lettered"
            ),
        });
        out.push(Observation {
            key: key("platform_unreachable", &[("sink", sink)]),
            holds: failing && !refusing,
            value: *failures as f64,
            threshold: rule.failures as f64,
            hold: rule.hold,
            summary: format!(
                "the platform did not take the last {failures} deliveries to the {sink} sink \
                 ({seen}); events wait in the outbox"
            ),
        });
    }
    if let (Some(rule), Some(size)) = (&settings.store_size, &snapshot.store_size) {
        let limit = size.limit_bytes.max(1) as f64;
        let share = size.counted_bytes as f64 / limit;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        out.push(Observation {
            key: key("store_nearly_full", &[]),
            holds: share >= size.warn_fraction,
            value: share,
            threshold: size.warn_fraction,
            hold: rule.hold,
            summary: format!(
                "undelivered data fills {:.0}% of the store's budget ({:.1} of {:.1} MiB); \
                 intake is refused (retryably) at 100%",
                share * 100.0,
                mib(size.counted_bytes),
                mib(size.limit_bytes)
            ),
        });
        out.push(Observation {
            key: key("store_full", &[]),
            holds: size.refusing || share >= 1.0,
            value: share,
            threshold: 1.0,
            hold: rule.hold,
            summary: format!(
                "the store is full ({:.1} of {:.1} MiB): inbound messages are refused with a \
                 retryable answer until the platform takes the backlog or max_size_mb is raised",
                mib(size.counted_bytes),
                mib(size.limit_bytes)
            ),
        });
        let audit_share = size.audit_bytes as f64 / limit;
        out.push(Observation {
            key: key("audit_log_large", &[]),
            holds: audit_share >= size.warn_fraction,
            value: audit_share,
            threshold: size.warn_fraction,
            hold: rule.hold,
            summary: format!(
                "the audit log holds {:.1} MiB, {:.0}% of the store's budget (it is kept for \
                 audit_retention_days and never pruned for size; it does not count against \
                 max_size_mb but takes disk space)",
                mib(size.audit_bytes),
                audit_share * 100.0
            ),
        });
    }
    if let Some(rule) = &settings.certificate_expiry {
        let threshold = rule.threshold.as_secs_f64();
        for (listener, left) in &snapshot.certificates {
            out.push(Observation {
                key: key("certificate_expiry", &[("listener", listener)]),
                holds: *left <= threshold,
                value: *left,
                threshold,
                hold: rule.hold,
                summary: if *left <= 0.0 {
                    format!("the {listener} listener's TLS certificate has expired")
                } else {
                    format!(
                        "the {listener} listener's TLS certificate expires in {:.0} h",
                        left / 3600.0
                    )
                },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alerts::config::{
        AdapterDownRule, AgeRule, CertificateExpiryRule, DepthRule, ErrorRateRule, SinkDownRule,
    };

    fn all_rules() -> AlertSettings {
        let hold = Duration::from_secs(10);
        AlertSettings {
            outbox_depth: Some(DepthRule {
                threshold: 100,
                hold,
            }),
            outbox_oldest_age: Some(AgeRule {
                threshold: Duration::from_secs(600),
                hold,
            }),
            error_rate: Some(ErrorRateRule {
                threshold: 0.5,
                window: Duration::from_secs(900),
                min_messages: 4,
                hold,
            }),
            adapter_down: Some(AdapterDownRule { hold }),
            sink_down: Some(SinkDownRule { failures: 3, hold }),
            certificate_expiry: Some(CertificateExpiryRule {
                threshold: Duration::from_secs(30 * 86_400),
                hold,
            }),
            ..AlertSettings::default()
        }
    }

    fn holding(observations: &[Observation]) -> Vec<String> {
        observations
            .iter()
            .filter(|o| o.holds)
            .map(|o| match o.key.labels.values().next() {
                Some(label) => format!("{}:{label}", o.key.alert),
                None => o.key.alert.clone(),
            })
            .collect()
    }

    #[test]
    fn the_store_warns_before_its_limit_and_says_when_it_refuses() {
        let at = |counted: u64, audit: u64, refusing: bool| Snapshot {
            store_size: Some(StoreSizeSignal {
                counted_bytes: counted,
                audit_bytes: audit,
                limit_bytes: 1000,
                warn_fraction: 0.8,
                refusing,
            }),
            ..Snapshot::default()
        };
        let rules = all_rules();
        assert!(holding(&evaluate(&rules, &at(799, 0, false))).is_empty());
        assert_eq!(
            holding(&evaluate(&rules, &at(800, 0, false))),
            ["store_nearly_full"]
        );
        assert_eq!(
            holding(&evaluate(&rules, &at(1000, 0, false))),
            ["store_nearly_full", "store_full"]
        );
        // Refusals seen since the last pass fire `store_full` even when
        // delivery freed a little room in between.
        assert_eq!(
            holding(&evaluate(&rules, &at(990, 0, true))),
            ["store_nearly_full", "store_full"]
        );
        // A large audit log is reported on its own and never makes the
        // store "full".
        assert_eq!(
            holding(&evaluate(&rules, &at(10, 5000, false))),
            ["audit_log_large"]
        );
    }

    #[test]
    fn healthy_snapshot_holds_nothing() {
        let snapshot = Snapshot {
            outbox: Some((99, 599.0)),
            intake: Some((10, 4)),
            adapters: vec![("hl7v2".to_owned(), true)],
            sink: Some(("http".to_owned(), 2)),
            certificates: vec![("admin".to_owned(), 30.0 * 86_400.0 + 1.0)],
            sink_status: None,
            store_size: None,
        };
        let observations = evaluate(&all_rules(), &snapshot);
        assert_eq!(observations.len(), 8);
        assert!(holding(&observations).is_empty());
    }

    #[test]
    fn every_threshold_is_inclusive() {
        let snapshot = Snapshot {
            outbox: Some((100, 600.0)),
            intake: Some((4, 2)),
            adapters: vec![("hl7v2".to_owned(), true), ("x12".to_owned(), false)],
            sink: Some(("http".to_owned(), 3)),
            certificates: vec![
                ("admin".to_owned(), 30.0 * 86_400.0),
                ("fhir-rest-hook".to_owned(), 90.0 * 86_400.0),
            ],
            sink_status: None,
            store_size: None,
        };
        assert_eq!(
            holding(&evaluate(&all_rules(), &snapshot)),
            [
                "outbox_depth",
                "outbox_oldest_age",
                "error_rate",
                "adapter_down:x12",
                "sink_down:http",
                "platform_unreachable:http",
                "certificate_expiry:admin"
            ]
        );
    }

    #[test]
    fn a_refusing_platform_is_told_from_an_unreachable_one() {
        let failing = |status| Snapshot {
            sink: Some(("http".to_owned(), 3)),
            sink_status: status,
            ..Snapshot::default()
        };
        assert_eq!(
            holding(&evaluate(&all_rules(), &failing(Some(401)))),
            ["sink_down:http", "platform_rejecting:http"]
        );
        assert_eq!(
            holding(&evaluate(&all_rules(), &failing(Some(503)))),
            ["sink_down:http", "platform_unreachable:http"]
        );
        assert_eq!(
            holding(&evaluate(&all_rules(), &failing(Some(429)))),
            ["sink_down:http", "platform_unreachable:http"]
        );
        let summary = evaluate(&all_rules(), &failing(Some(404)))
            .into_iter()
            .find(|o| o.key.alert == "platform_rejecting")
            .map(|o| o.summary)
            .unwrap_or_default();
        assert!(summary.contains("HTTP 404"), "{summary}");
    }

    #[test]
    fn low_volume_never_fires_the_error_rate() {
        let snapshot = Snapshot {
            intake: Some((3, 3)),
            ..Snapshot::default()
        };
        assert!(holding(&evaluate(&all_rules(), &snapshot)).is_empty());
    }

    #[test]
    fn unread_signals_and_unconfigured_rules_observe_nothing() {
        assert!(evaluate(&all_rules(), &Snapshot::default()).is_empty());
        let snapshot = Snapshot {
            outbox: Some((1000, 1000.0)),
            ..Snapshot::default()
        };
        assert!(evaluate(&AlertSettings::default(), &snapshot).is_empty());
    }
}
