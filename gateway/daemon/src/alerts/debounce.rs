//! The debounce state machine, pure so it can be tested without clocks.
//!
//! Per alert (rule + labels): a condition that starts to hold is *pending*;
//! once it has held for the rule's `for` duration it *fires* — exactly one
//! `firing` transition; while it keeps holding nothing more is emitted; when
//! it clears, exactly one `resolved` transition. A pending condition that
//! clears before `for` leaves no trace. An alert that is not observed in a
//! pass (its data source could not be read) keeps its state: a failing query
//! neither fires nor resolves anything.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::{ActiveAlert, AlertEvent, AlertPhase, AlertStatus};

/// Identifies one alert: the rule and its labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AlertKey {
    /// The rule name.
    pub alert: String,
    /// Its labels (`adapter`, `sink`).
    pub labels: BTreeMap<String, String>,
}

/// What one rule saw for one label set in one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Which alert.
    pub key: AlertKey,
    /// Whether the condition holds now.
    pub holds: bool,
    /// The observed value.
    pub value: f64,
    /// The threshold it is compared with.
    pub threshold: f64,
    /// The rule's `for` duration.
    pub hold: Duration,
    /// One line for people (no PHI).
    pub summary: String,
}

#[derive(Debug, Clone)]
struct Track {
    since: Timestamp,
    fired_at: Option<Timestamp>,
    value: f64,
    threshold: f64,
    summary: String,
}

/// Debounce state of every alert.
#[derive(Debug, Default)]
pub struct Debouncer {
    tracks: BTreeMap<AlertKey, Track>,
}

impl Debouncer {
    /// No alert active.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one pass of observations at `now`; returns the transitions to
    /// send, in order.
    pub fn step(&mut self, observations: Vec<Observation>, now: Timestamp) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for observation in observations {
            let Observation {
                key,
                holds,
                value,
                threshold,
                hold,
                summary,
            } = observation;
            if !holds {
                if let Some(track) = self.tracks.remove(&key)
                    && track.fired_at.is_some()
                {
                    events.push(AlertEvent {
                        status: AlertStatus::Resolved,
                        alert: key.alert.clone(),
                        labels: key.labels.clone(),
                        value,
                        threshold,
                        started_at: track.since.to_string(),
                        ended_at: Some(now.to_string()),
                        summary,
                    });
                }
                continue;
            }
            let track = self.tracks.entry(key.clone()).or_insert_with(|| Track {
                since: now,
                fired_at: None,
                value,
                threshold,
                summary: summary.clone(),
            });
            track.value = value;
            track.threshold = threshold;
            track.summary = summary;
            let held = now.duration_since(track.since).unsigned_abs();
            if track.fired_at.is_none() && held >= hold {
                track.fired_at = Some(now);
                events.push(AlertEvent {
                    status: AlertStatus::Firing,
                    alert: key.alert,
                    labels: key.labels,
                    value,
                    threshold,
                    started_at: track.since.to_string(),
                    ended_at: None,
                    summary: track.summary.clone(),
                });
            }
        }
        events
    }

    /// Every condition that holds now.
    pub fn active(&self) -> Vec<ActiveAlert> {
        self.tracks
            .iter()
            .map(|(key, track)| ActiveAlert {
                alert: key.alert.clone(),
                labels: key.labels.clone(),
                phase: if track.fired_at.is_some() {
                    AlertPhase::Firing
                } else {
                    AlertPhase::Pending
                },
                value: track.value,
                threshold: track.threshold,
                started_at: track.since.to_string(),
                fired_at: track.fired_at.map(|t| t.to_string()),
                summary: track.summary.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + secs).expect("timestamp")
    }

    fn seen(holds: bool, value: f64) -> Observation {
        Observation {
            key: AlertKey {
                alert: "sink_down".to_owned(),
                labels: BTreeMap::from([("sink".to_owned(), "http".to_owned())]),
            },
            holds,
            value,
            threshold: 3.0,
            hold: Duration::from_secs(30),
            summary: "deliveries failing".to_owned(),
        }
    }

    fn statuses(events: &[AlertEvent]) -> Vec<AlertStatus> {
        events.iter().map(|e| e.status).collect()
    }

    #[test]
    fn fires_once_after_hold_and_resolves_once() {
        let mut d = Debouncer::new();
        assert!(d.step(vec![seen(true, 3.0)], at(0)).is_empty());
        assert_eq!(d.active()[0].phase, AlertPhase::Pending);
        assert!(d.step(vec![seen(true, 4.0)], at(29)).is_empty());
        let fired = d.step(vec![seen(true, 5.0)], at(30));
        assert_eq!(statuses(&fired), [AlertStatus::Firing]);
        assert_eq!(fired[0].started_at, at(0).to_string());
        assert_eq!(fired[0].value, 5.0);
        assert_eq!(d.active()[0].phase, AlertPhase::Firing);
        for t in 31..100 {
            assert!(
                d.step(vec![seen(true, 6.0)], at(t)).is_empty(),
                "repeat at {t}"
            );
        }
        let resolved = d.step(vec![seen(false, 0.0)], at(100));
        assert_eq!(statuses(&resolved), [AlertStatus::Resolved]);
        assert_eq!(
            resolved[0].ended_at.as_deref(),
            Some(at(100).to_string().as_str())
        );
        assert!(d.step(vec![seen(false, 0.0)], at(101)).is_empty());
        assert!(d.active().is_empty());
    }

    #[test]
    fn a_blip_shorter_than_hold_sends_nothing() {
        let mut d = Debouncer::new();
        assert!(d.step(vec![seen(true, 3.0)], at(0)).is_empty());
        assert!(d.step(vec![seen(false, 0.0)], at(10)).is_empty());
        // Holding again restarts the clock.
        assert!(d.step(vec![seen(true, 3.0)], at(20)).is_empty());
        assert!(d.step(vec![seen(true, 3.0)], at(45)).is_empty());
        assert_eq!(
            statuses(&d.step(vec![seen(true, 3.0)], at(50))),
            [AlertStatus::Firing]
        );
    }

    #[test]
    fn unobserved_alerts_keep_their_state() {
        let mut d = Debouncer::new();
        d.step(vec![seen(true, 3.0)], at(0));
        assert_eq!(
            statuses(&d.step(vec![seen(true, 3.0)], at(30))),
            [AlertStatus::Firing]
        );
        assert!(d.step(Vec::new(), at(60)).is_empty());
        assert_eq!(d.active().len(), 1);
    }

    #[test]
    fn zero_hold_fires_on_first_sight() {
        let mut d = Debouncer::new();
        let mut o = seen(true, 1.0);
        o.hold = Duration::ZERO;
        assert_eq!(statuses(&d.step(vec![o], at(0))), [AlertStatus::Firing]);
    }
}
