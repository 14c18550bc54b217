//! The dashboard's figures (`GET /api/v1/stats`): volume in vs completed,
//! queue depth and time in queue, cycle times, exceptions, dead letters,
//! automation coverage and per-minute throughput, shaped from the store's
//! windowed reads ([`gateway_store::activity`]).
//!
//! *Why here and not in the store:* what a tile shows (which states count as
//! exceptions, which audit actions are a manual touch, p50/p90, a 60-minute
//! chart) changes with the dashboard; the store only answers row-level
//! questions through indexed queries and does not know what a tile is.
//!
//! Percentiles are nearest-rank: the smallest value with at least `p` of the
//! sample at or below it. The result carries ids, names, counts and
//! durations, never PHI.

use std::collections::BTreeMap;

use gateway_store::activity::{CaseSite, MessageTally};
use gateway_store::{MessageState, Reader};
use jiff::Timestamp;
use serde::Serialize;

/// Shortest and longest window [`StatsQuery`] accepts, in seconds.
pub const WINDOW_SECS_RANGE: (u64, u64) = (60, 7 * 24 * 3600);

/// Audit actions that count as a manual touch of a case.
///
/// A case also counts as touched by hand when a person has to act on it
/// outside the gateway: its decision's write-back gave up (staff enter it in
/// the EHR themselves) or the desktop bridge aborted on it and kept evidence
/// for an operator (see [`Reader::case_touches`]).
pub const MANUAL_ACTIONS: [&str; 3] = ["message.replay", "event.replay", "event.skip"];

/// What to aggregate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsQuery {
    /// The end of the window ("now").
    pub now: Timestamp,
    /// Window length in seconds (clamped to [`WINDOW_SECS_RANGE`]).
    pub window_secs: u64,
    /// Most dead letters listed (the count is always exact).
    pub dead_letter_limit: usize,
}

impl StatsQuery {
    /// The window ending now.
    pub fn last(window_secs: u64) -> StatsQuery {
        StatsQuery {
            now: Timestamp::now(),
            window_secs,
            dead_letter_limit: 50,
        }
    }
}

/// Everything the dashboard shows, for one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpsStats {
    /// The end of the window, RFC 3339.
    pub generated_at: String,
    /// The window's length in seconds.
    pub window_secs: u64,
    /// Messages received vs completed, per site and per adapter.
    pub volume: Volume,
    /// The outbox now and how long delivered events waited in it.
    pub queue: QueueStats,
    /// Received → forwarded and request → decision.
    pub cycle: CycleTimes,
    /// Rejected and failed messages.
    pub exceptions: Exceptions,
    /// Dead-lettered events (all of them, not only the window's).
    pub dead_letters: DeadLetters,
    /// Share of cases never touched by hand.
    pub automation: Automation,
    /// Per-minute counts over the last hour.
    pub throughput: Throughput,
}

/// Volume in vs completed. "Received" counts the window's messages except
/// duplicates; "completed" counts those of them that are accepted and whose
/// case events are all delivered (or that needed none).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Volume {
    /// Per tenant / practice / site of the case; messages without a case
    /// (rejected, kept) have none.
    pub by_site: Vec<SiteVolume>,
    /// Per adapter.
    pub by_adapter: Vec<AdapterVolume>,
    /// All adapters.
    pub received: u64,
    /// All adapters.
    pub completed: u64,
}

/// One site's volume.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SiteVolume {
    /// Tenant of the cases (absent for messages without a case).
    pub tenant: Option<String>,
    /// Practice of the cases.
    pub practice: Option<String>,
    /// Site of the cases.
    pub site: Option<String>,
    /// Messages received (not duplicates).
    pub received: u64,
    /// Of those, completed.
    pub completed: u64,
    /// Decisions received in the window for this site's cases.
    pub decided: u64,
}

/// One adapter's volume.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AdapterVolume {
    /// Adapter name.
    pub adapter: String,
    /// Messages received (not duplicates).
    pub received: u64,
    /// Of those, completed.
    pub completed: u64,
    /// Of those, rejected or failed.
    pub rejected: u64,
    /// Duplicates received (not in `received`).
    pub duplicates: u64,
}

/// The outbox.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct QueueStats {
    /// Events waiting for delivery now.
    pub depth: u64,
    /// Age of the oldest of them in seconds (0 when none).
    pub oldest_age_secs: f64,
    /// Events first delivered in the window.
    pub delivered: u64,
    /// Time from append to first delivery of those events.
    pub wait: Percentiles,
}

/// p50 / p90 of a sample of durations, in seconds (`None` for an empty sample).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Percentiles {
    /// Sample size.
    pub count: u64,
    /// Median.
    pub p50_secs: Option<f64>,
    /// 90th percentile.
    pub p90_secs: Option<f64>,
}

impl Percentiles {
    /// Nearest-rank p50 and p90 of durations in milliseconds.
    pub fn of_millis(mut sample: Vec<i64>) -> Percentiles {
        sample.sort_unstable();
        let rank = |p: f64| -> Option<f64> {
            if sample.is_empty() {
                return None;
            }
            let n = sample.len();
            let index = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            Some(sample[index].max(0) as f64 / 1000.0)
        };
        Percentiles {
            count: sample.len() as u64,
            p50_secs: rank(0.5),
            p90_secs: rank(0.9),
        }
    }
}

/// Cycle times of the window.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct CycleTimes {
    /// Message received → its case event first delivered, for events first
    /// delivered in the window.
    pub received_to_forwarded: Percentiles,
    /// Case first stored → decision received, for decisions received in the window.
    pub request_to_decision: Percentiles,
}

/// Exceptions among the window's messages.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Exceptions {
    /// Every message received in the window (duplicates included).
    pub total: u64,
    /// Rejected (sender or mapping problem).
    pub rejected: u64,
    /// Failed on our side.
    pub error: u64,
    /// (rejected + error) ÷ total; `None` without messages.
    pub rate: Option<f64>,
}

/// Dead letters.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DeadLetters {
    /// How many events are dead now and not skipped by an operator (each one
    /// holds its case's later events back until it is replayed or skipped).
    pub count: u64,
    /// Cases whose next delivery is a dead letter: nothing more of them goes
    /// out until an operator replays or skips it.
    pub held_cases: u64,
    /// Pending events waiting behind those dead letters.
    pub held_events: u64,
    /// The oldest of them (ids and types only).
    pub items: Vec<DeadLetter>,
}

/// One dead-lettered event, without its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Event id (what `POST /api/v1/dead-letters/{event_id}/replay` takes).
    pub event_id: String,
    /// The case.
    pub case_id: String,
    /// Adapter owning the case.
    pub adapter: String,
    /// `created`, `updated`, `decided`.
    pub event_type: String,
    /// Position in the case.
    pub sequence: i64,
    /// Delivery attempts made.
    pub attempts: i64,
    /// When it was dead-lettered, RFC 3339.
    pub dead_since: Option<String>,
    /// HTTP status of the last attempt, when there was one.
    pub http_status: Option<u16>,
    /// Later events of the same case waiting behind this one.
    pub held_events: u64,
}

/// Automation coverage over all stored cases.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Automation {
    /// Stored cases.
    pub cases: u64,
    /// Cases a person had to touch: replayed by hand, write-back given up,
    /// or desktop evidence kept for an operator.
    pub touched: u64,
    /// (cases − touched) ÷ cases; `None` without cases.
    pub coverage: Option<f64>,
}

/// Per-minute counts over the last hour, oldest bucket first.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Throughput {
    /// Start of the first bucket, RFC 3339.
    pub start: String,
    /// Bucket length in seconds (60).
    pub bucket_secs: u64,
    /// Messages received per bucket (duplicates excluded).
    pub received: Vec<u64>,
    /// Events first delivered per bucket.
    pub forwarded: Vec<u64>,
}

const MINUTE_MS: i64 = 60_000;
const BUCKETS: i64 = 60;

/// RFC 3339 in UTC with millisecond precision (the store's own format).
fn rfc3339(ms: i64) -> String {
    format!(
        "{:.3}",
        Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
    )
}

/// The dashboard's figures for `query`'s window.
pub fn ops_stats(reader: &Reader, query: &StatsQuery) -> gateway_store::Result<OpsStats> {
    let window_secs = query
        .window_secs
        .clamp(WINDOW_SECS_RANGE.0, WINDOW_SECS_RANGE.1);
    let now = query.now.as_millisecond();
    let since = now - window_secs as i64 * 1000;
    let (mut volume, exceptions) = message_volume(reader.message_tallies(since, now)?);
    let decisions = reader.decisions_between(since, now)?;
    let mut decided: BTreeMap<CaseSite, u64> = BTreeMap::new();
    let mut to_decision = Vec::with_capacity(decisions.len());
    for d in decisions {
        *decided.entry(d.site).or_default() += 1;
        to_decision.push(d.after_case_ms);
    }
    merge_decided(&mut volume.by_site, decided);

    let delivered = reader.first_deliveries(since, now)?;
    let mut wait = Vec::with_capacity(delivered.len());
    let mut to_forward = Vec::with_capacity(delivered.len());
    for d in &delivered {
        wait.push(d.at_ms - d.event_created_ms);
        if let Some(received) = d.message_received_ms {
            to_forward.push(d.at_ms - received);
        }
    }
    let pending = reader.pending_events()?;
    let oldest_age_secs = pending
        .oldest_created_ms
        .map(|ms| (now - ms).max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    Ok(OpsStats {
        generated_at: rfc3339(now),
        window_secs,
        volume,
        queue: QueueStats {
            depth: pending.count,
            oldest_age_secs,
            delivered: delivered.len() as u64,
            wait: Percentiles::of_millis(wait),
        },
        cycle: CycleTimes {
            received_to_forwarded: Percentiles::of_millis(to_forward),
            request_to_decision: Percentiles::of_millis(to_decision),
        },
        exceptions,
        dead_letters: dead_letters(reader, query.dead_letter_limit)?,
        automation: automation(reader)?,
        throughput: throughput(reader, now)?,
    })
}

/// The window's messages per site and adapter, and its exceptions.
fn message_volume(tallies: Vec<MessageTally>) -> (Volume, Exceptions) {
    let mut sites: BTreeMap<CaseSite, SiteVolume> = BTreeMap::new();
    let mut adapters: BTreeMap<String, AdapterVolume> = BTreeMap::new();
    let mut exceptions = Exceptions::default();
    let mut volume = Volume::default();
    for t in tallies {
        let count = t.count;
        exceptions.total += count;
        let a = adapters
            .entry(t.adapter.clone())
            .or_insert_with(|| AdapterVolume {
                adapter: t.adapter,
                ..AdapterVolume::default()
            });
        match t.state {
            MessageState::Duplicate => {
                a.duplicates += count;
                continue;
            }
            MessageState::Rejected => {
                exceptions.rejected += count;
                a.rejected += count;
            }
            MessageState::Error => {
                exceptions.error += count;
                a.rejected += count;
            }
            MessageState::Accepted => {}
        }
        a.received += count;
        volume.received += count;
        let s = sites
            .entry(t.site.clone())
            .or_insert_with(|| site_volume(&t.site));
        s.received += count;
        if t.completed {
            a.completed += count;
            s.completed += count;
            volume.completed += count;
        }
    }
    exceptions.rate = (exceptions.total > 0)
        .then(|| (exceptions.rejected + exceptions.error) as f64 / exceptions.total as f64);
    volume.by_site = sites.into_values().collect();
    volume.by_adapter = adapters.into_values().collect();
    (volume, exceptions)
}

/// The dead-letter totals and the oldest `limit` dead letters.
fn dead_letters(reader: &Reader, limit: usize) -> gateway_store::Result<DeadLetters> {
    let totals = reader.dead_letter_totals()?;
    let items = reader
        .oldest_dead_letters(limit)?
        .into_iter()
        .map(|d| DeadLetter {
            event_id: d.event_id,
            case_id: d.case_id,
            adapter: d.adapter,
            event_type: d.event_type,
            sequence: d.sequence,
            attempts: d.attempts,
            dead_since: d.dead_since_ms.map(rfc3339),
            http_status: d.http_status,
            held_events: d.held_events,
        })
        .collect();
    Ok(DeadLetters {
        count: totals.count,
        held_cases: totals.held_cases,
        held_events: totals.held_events,
        items,
    })
}

/// Cases nobody had to touch ÷ all cases (see [`MANUAL_ACTIONS`]).
fn automation(reader: &Reader) -> gateway_store::Result<Automation> {
    let t = reader.case_touches(&MANUAL_ACTIONS)?;
    Ok(Automation {
        cases: t.cases,
        touched: t.touched,
        coverage: (t.cases > 0).then(|| (t.cases - t.touched) as f64 / t.cases as f64),
    })
}

/// Received and forwarded per minute over the hour before `now`.
fn throughput(reader: &Reader, now: i64) -> gateway_store::Result<Throughput> {
    let start = now - BUCKETS * MINUTE_MS;
    let mut received = vec![0u64; BUCKETS as usize];
    for (bucket, count) in reader.messages_per_minute(start, now)? {
        if let Some(slot) = usize::try_from(bucket)
            .ok()
            .and_then(|b| received.get_mut(b))
        {
            *slot += count;
        }
    }
    let mut forwarded = vec![0u64; BUCKETS as usize];
    for d in reader.first_deliveries(start, now)? {
        if let Some(slot) = usize::try_from((d.at_ms - start) / MINUTE_MS)
            .ok()
            .and_then(|b| forwarded.get_mut(b))
        {
            *slot += 1;
        }
    }
    Ok(Throughput {
        start: rfc3339(start),
        bucket_secs: (MINUTE_MS / 1000) as u64,
        received,
        forwarded,
    })
}

/// An empty row for a site.
fn site_volume(key: &CaseSite) -> SiteVolume {
    SiteVolume {
        tenant: key.tenant.clone(),
        practice: key.practice.clone(),
        site: key.site.clone(),
        ..SiteVolume::default()
    }
}

/// Adds decided counts to the site rows (creating rows for sites with
/// decisions but no messages in the window).
fn merge_decided(sites: &mut Vec<SiteVolume>, decided: BTreeMap<CaseSite, u64>) {
    for (key, count) in decided {
        match sites
            .iter_mut()
            .find(|s| s.tenant == key.tenant && s.practice == key.practice && s.site == key.site)
        {
            Some(site) => site.decided += count,
            None => sites.push(SiteVolume {
                decided: count,
                ..site_volume(&key)
            }),
        }
    }
    sites.sort_by(|a, b| (&a.tenant, &a.practice, &a.site).cmp(&(&b.tenant, &b.practice, &b.site)));
}

#[cfg(test)]
mod tests {
    //! Known rows on a real store file, with their times rewritten to fixed
    //! instants around `T`, and the exact figures expected from them.

    use gateway_core::Case;
    use gateway_core::case::Decision;
    use rusqlite::{Connection, params};

    use gateway_store::{
        AttemptOutcome, AuditEntry, DeliveryAttempt, Disposition, InboundOutcome, NewEvidence,
        NewInbound, Store, StoreOptions, WriteBackOutcome,
    };

    use super::*;

    /// The end of the window: 2026-11-22T12:00:00Z.
    const T: i64 = 1_795_348_800_000;
    const SEC: i64 = 1000;
    const MIN: i64 = 60 * SEC;

    fn case(id: &str, adapter: &str, practice: &str, site: Option<&str>) -> Case {
        let mut value = serde_json::json!({
            "case_id": id, "tenant": "mso-test", "practice": practice,
            "source": {"adapter": adapter, "profile": "p", "received_at": "2026-11-22T10:00:00Z"},
            "status": "requested",
            "patient": {"identifiers": [{"type": "MR", "value": "E10001"}]}
        });
        if let Some(site) = site {
            value["site"] = site.into();
        }
        serde_json::from_value(value).expect("case")
    }

    fn inbound(adapter: &str, control: &str, at_ms: i64, outcome: InboundOutcome) -> NewInbound {
        NewInbound {
            adapter: adapter.to_owned(),
            profile: "p".to_owned(),
            sender: Some("SENDER".to_owned()),
            control_id: Some(control.to_owned()),
            message_type: Some("ORM^O01".to_owned()),
            raw: format!("raw {control}").into_bytes(),
            received_at: rfc3339(at_ms),
            peer: None,
            outcome,
            replay_of: None,
        }
    }

    fn accepted(c: Case) -> InboundOutcome {
        InboundOutcome::Accepted {
            case: Box::new(c),
            event_type: None,
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        events: BTreeMap<&'static str, String>,
    }

    /// Commits every known row through the public API, then closes the store.
    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stats.sqlite");
        let store = Store::open(&path, StoreOptions::default())
            .await
            .expect("open");
        let mut events = BTreeMap::new();
        let mut commit = async |name: &'static str, msg: NewInbound| {
            let receipt = store.commit_inbound(msg).await.expect("commit");
            if let Disposition::Accepted { event_id, .. } = receipt.disposition {
                events.insert(name, event_id);
            }
        };
        // Before the window: case F, and a rejected message.
        let f = case("case-f", "hl7v2", "cardio-north", Some("main"));
        commit("F", inbound("hl7v2", "M-F", T - 180 * MIN, accepted(f))).await;
        let rejected = |reason: &str| InboundOutcome::Rejected {
            reason: reason.to_owned(),
            diagnostics: vec![],
        };
        commit(
            "old",
            inbound("hl7v2", "M-0", T - 120 * MIN, rejected("old")),
        )
        .await;
        // In the window.
        let a = case("case-a", "hl7v2", "cardio-north", Some("main"));
        let d = case("case-d", "hl7v2", "cardio-north", Some("main"));
        let e = case("case-e", "fhir", "ortho-south", None);
        let b = case("case-b", "hl7v2", "cardio-north", Some("east"));
        let c = case("case-c", "fhir", "ortho-south", None);
        commit(
            "A",
            inbound("hl7v2", "M-A", T - 50 * MIN, accepted(a.clone())),
        )
        .await;
        commit("D", inbound("hl7v2", "M-D", T - 45 * MIN, accepted(d))).await;
        commit("E", inbound("fhir", "M-E", T - 40 * MIN, accepted(e))).await;
        commit("B", inbound("hl7v2", "M-B", T - 30 * MIN, accepted(b))).await;
        commit("C", inbound("fhir", "M-C", T - 20 * MIN, accepted(c))).await;
        commit(
            "rej",
            inbound("hl7v2", "M-R", T - 15 * MIN, rejected("bad")),
        )
        .await;
        // A duplicate of M-A (same sender, control id and bytes).
        let mut dup = inbound("hl7v2", "M-A", T - 10 * MIN, accepted(a));
        dup.raw = b"raw M-A".to_vec();
        commit("dup", dup).await;
        let kept = InboundOutcome::Kept {
            note: "ignored".to_owned(),
        };
        commit("kept", inbound("hl7v2", "M-K", T - 5 * MIN, kept)).await;
        let failed = InboundOutcome::Failed {
            reason: "ours".to_owned(),
            diagnostics: vec![],
        };
        commit("err", inbound("fhir", "M-X", T - 3 * MIN, failed)).await;

        let decision: Decision =
            serde_json::from_str(r#"{"status": "approved"}"#).expect("decision");
        let da = store
            .record_decision("case-a", decision.clone())
            .await
            .expect("decision A");
        let df = store
            .record_decision("case-f", decision)
            .await
            .expect("decision F");
        events.insert("A-decided", da.event_id);
        events.insert("F-decided", df.event_id);

        let attempt = |event: &str, outcome: AttemptOutcome, status: u16| DeliveryAttempt {
            event_id: event.to_owned(),
            sink: "http".to_owned(),
            http_status: Some(status),
            outcome,
        };
        // In time order, like the forwarder writes them.
        for (name, outcome, status) in [
            ("F", AttemptOutcome::Delivered, 202),
            ("A", AttemptOutcome::Delivered, 202),
            ("D", AttemptOutcome::Delivered, 202),
            ("E", AttemptOutcome::Delivered, 202),
            (
                "B",
                AttemptOutcome::Dead {
                    error: "400".to_owned(),
                },
                400,
            ),
            ("A-decided", AttemptOutcome::Delivered, 202),
            // At least once: A delivered a second time.
            ("A", AttemptOutcome::Delivered, 202),
            ("F-decided", AttemptOutcome::Delivered, 202),
        ] {
            store
                .record_attempt(attempt(&events[name], outcome, status))
                .await
                .expect("attempt");
        }
        for (action, case_id) in [
            ("message.replay", Some("case-b")),
            ("event.replay", Some("case-b")),
            ("phi.read", Some("case-a")),
            ("event.replay", Some("case-unknown")),
            ("event.replay", None),
        ] {
            store
                .audit(AuditEntry {
                    actor: "test".to_owned(),
                    action: action.to_owned(),
                    target: None,
                    detail: None,
                    case_id: case_id.map(str::to_owned),
                })
                .await
                .expect("audit");
        }
        store.close().await;
        Fixture {
            _dir: dir,
            path,
            events,
        }
    }

    /// Sets every store-clock time to a fixed instant.
    fn pin_times(f: &Fixture) {
        let conn = Connection::open(&f.path).expect("open");
        let cases = [
            ("case-f", T - 180 * MIN),
            ("case-a", T - 50 * MIN + SEC),
            ("case-d", T - 45 * MIN + 2 * SEC),
            ("case-e", T - 40 * MIN + SEC),
            ("case-b", T - 30 * MIN),
            ("case-c", T - 20 * MIN),
        ];
        for (id, at) in cases {
            conn.execute(
                "UPDATE cases SET created_at_ms = ?2 WHERE case_id = ?1",
                params![id, at],
            )
            .expect("case time");
        }
        let events = [
            ("F", T - 180 * MIN),
            ("A", T - 50 * MIN + SEC),
            ("D", T - 45 * MIN + 2 * SEC),
            ("E", T - 40 * MIN + SEC),
            ("B", T - 30 * MIN),
            ("C", T - 20 * MIN),
            ("A-decided", T - 25 * MIN),
            ("F-decided", T - MIN),
        ];
        for (name, at) in events {
            conn.execute(
                "UPDATE events SET created_at_ms = ?2 WHERE id = ?1",
                params![f.events[name], at],
            )
            .expect("event time");
        }
        let attempts = [
            T - 180 * MIN + 5 * SEC,
            T - 50 * MIN + 11 * SEC,
            T - 45 * MIN + 32 * SEC,
            T - 40 * MIN + 61 * SEC,
            T - 30 * MIN + 5 * SEC,
            T - 25 * MIN + 4 * SEC,
            T - 5 * MIN,
            T - MIN + 2 * SEC,
        ];
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM delivery_attempts ORDER BY id")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("attempt ids");
        assert_eq!(ids.len(), attempts.len());
        for (id, at) in ids.iter().zip(attempts) {
            conn.execute(
                "UPDATE delivery_attempts SET at_ms = ?2 WHERE id = ?1",
                params![id, at],
            )
            .expect("attempt time");
        }
        conn.execute(
            "UPDATE events SET finished_at_ms = ?2 WHERE id = ?1",
            params![f.events["B"], T - 30 * MIN + 5 * SEC],
        )
        .expect("dead time");
        for (case_id, at) in [("case-a", T - 25 * MIN), ("case-f", T - MIN)] {
            conn.execute(
                "UPDATE decisions SET received_at_ms = ?2 WHERE case_id = ?1",
                params![case_id, at],
            )
            .expect("decision time");
        }
    }

    fn at(window_secs: u64) -> StatsQuery {
        StatsQuery {
            now: Timestamp::from_millisecond(T).expect("T"),
            window_secs,
            dead_letter_limit: 10,
        }
    }

    fn site(practice: Option<&str>, site: Option<&str>, r: u64, c: u64, d: u64) -> SiteVolume {
        SiteVolume {
            tenant: practice.map(|_| "mso-test".to_owned()),
            practice: practice.map(str::to_owned),
            site: site.map(str::to_owned),
            received: r,
            completed: c,
            decided: d,
        }
    }

    #[tokio::test]
    async fn known_rows_give_exact_figures() {
        let f = fixture().await;
        pin_times(&f);
        let reader = Reader::open(&f.path).expect("reader");
        let stats = ops_stats(&reader, &at(3600)).expect("stats");

        assert_eq!(stats.generated_at, "2026-11-22T12:00:00.000Z");
        assert_eq!(stats.window_secs, 3600);
        // Volume: 8 messages in (the duplicate and the two old ones excluded);
        // completed: A, D, E (delivered) and the kept one.
        assert_eq!((stats.volume.received, stats.volume.completed), (8, 4));
        assert_eq!(
            stats.volume.by_site,
            vec![
                site(None, None, 3, 1, 0),
                site(Some("cardio-north"), Some("east"), 1, 0, 0),
                site(Some("cardio-north"), Some("main"), 2, 2, 2),
                site(Some("ortho-south"), None, 2, 1, 0),
            ]
        );
        assert_eq!(
            stats.volume.by_adapter,
            vec![
                AdapterVolume {
                    adapter: "fhir".to_owned(),
                    received: 3,
                    completed: 1,
                    rejected: 1,
                    duplicates: 0
                },
                AdapterVolume {
                    adapter: "hl7v2".to_owned(),
                    received: 5,
                    completed: 3,
                    rejected: 1,
                    duplicates: 1
                },
            ]
        );
        // Queue: C pending for 20 minutes; first deliveries in the window:
        // A 10 s, D 30 s, E 60 s, A-decided 4 s, F-decided 2 s (A's second
        // delivery and F's first, before the window, do not count).
        assert_eq!(stats.queue.depth, 1);
        assert_eq!(stats.queue.oldest_age_secs, 1200.0);
        assert_eq!(stats.queue.delivered, 5);
        assert_eq!(
            stats.queue.wait,
            Percentiles {
                count: 5,
                p50_secs: Some(10.0),
                p90_secs: Some(60.0)
            }
        );
        // Received → forwarded: 11 s, 32 s, 61 s (decided events have no message).
        assert_eq!(
            stats.cycle.received_to_forwarded,
            Percentiles {
                count: 3,
                p50_secs: Some(32.0),
                p90_secs: Some(61.0)
            }
        );
        // Request → decision: A 25 min − 1 s, F 3 h − 1 min.
        assert_eq!(
            stats.cycle.request_to_decision,
            Percentiles {
                count: 2,
                p50_secs: Some(1499.0),
                p90_secs: Some(10740.0)
            }
        );
        // Exceptions: 9 messages in the window, one rejected, one failed.
        assert_eq!(
            (
                stats.exceptions.total,
                stats.exceptions.rejected,
                stats.exceptions.error
            ),
            (9, 1, 1)
        );
        assert_eq!(stats.exceptions.rate, Some(2.0 / 9.0));
        assert_eq!(
            stats.dead_letters,
            DeadLetters {
                count: 1,
                held_cases: 1,
                held_events: 0,
                items: vec![DeadLetter {
                    event_id: f.events["B"].clone(),
                    case_id: "case-b".to_owned(),
                    adapter: "hl7v2".to_owned(),
                    event_type: "created".to_owned(),
                    sequence: 1,
                    attempts: 1,
                    dead_since: Some("2026-11-22T11:30:05.000Z".to_owned()),
                    http_status: Some(400),
                    held_events: 0,
                }]
            }
        );
        // Six cases, B replayed by hand (twice); A's PHI read and the replay of
        // an unknown case do not count.
        assert_eq!(
            stats.automation,
            Automation {
                cases: 6,
                touched: 1,
                coverage: Some(5.0 / 6.0)
            }
        );
        let t = &stats.throughput;
        assert_eq!(t.start, "2026-11-22T11:00:00.000Z");
        assert_eq!(
            (t.bucket_secs, t.received.len(), t.forwarded.len()),
            (60, 60, 60)
        );
        let nonzero = |v: &[u64]| -> Vec<(usize, u64)> {
            v.iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (i, *n))
                .collect()
        };
        assert_eq!(
            nonzero(&t.received),
            vec![
                (10, 1),
                (15, 1),
                (20, 1),
                (30, 1),
                (40, 1),
                (45, 1),
                (55, 1),
                (57, 1)
            ]
        );
        assert_eq!(
            nonzero(&t.forwarded),
            vec![(10, 1), (15, 1), (21, 1), (35, 1), (59, 1)]
        );
    }

    #[tokio::test]
    async fn dead_letters_list_the_cases_and_events_they_hold_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("held.sqlite");
        let store = Store::open(&path, StoreOptions::default())
            .await
            .expect("open");
        let created = store
            .commit_inbound(inbound(
                "hl7v2",
                "M-H",
                T,
                accepted(case("case-h", "hl7v2", "cardio-north", None)),
            ))
            .await
            .expect("commit");
        let Disposition::Accepted { event_id, .. } = created.disposition else {
            panic!("not accepted");
        };
        let decision: Decision =
            serde_json::from_str(r#"{"status": "approved"}"#).expect("decision");
        store
            .record_decision("case-h", decision)
            .await
            .expect("decision");
        store
            .record_attempt(DeliveryAttempt {
                event_id: event_id.clone(),
                sink: "http".to_owned(),
                http_status: Some(422),
                outcome: AttemptOutcome::Dead {
                    error: "422".to_owned(),
                },
            })
            .await
            .expect("attempt");
        let held = || {
            let reader = Reader::open(&path).expect("reader");
            ops_stats(&reader, &StatsQuery::last(3600))
                .expect("stats")
                .dead_letters
        };
        let before = held();
        assert_eq!(
            (before.count, before.held_cases, before.held_events),
            (1, 1, 1)
        );
        assert_eq!(before.items.len(), 1);
        assert_eq!(before.items[0].held_events, 1);

        // Skipped: nothing is held any more and the dead letter is not listed.
        store
            .skip_dead_event_audited(
                &event_id,
                AuditEntry {
                    actor: "test".to_owned(),
                    action: "event.skip".to_owned(),
                    target: Some(event_id.clone()),
                    detail: None,
                    case_id: Some("case-h".to_owned()),
                },
            )
            .await
            .expect("skip");
        let after = held();
        assert_eq!(
            (after.count, after.held_cases, after.held_events),
            (0, 0, 0)
        );
        assert!(after.items.is_empty());
        store.close().await;
    }

    #[tokio::test]
    async fn a_short_window_counts_only_its_rows() {
        let f = fixture().await;
        pin_times(&f);
        let reader = Reader::open(&f.path).expect("reader");
        // The last 10 minutes: the duplicate, the kept and the failed message;
        // F's decision and its delivery; A's second delivery is not a first one.
        let stats = ops_stats(&reader, &at(600)).expect("stats");
        assert_eq!((stats.volume.received, stats.volume.completed), (2, 1));
        assert_eq!(stats.exceptions.total, 3);
        assert_eq!(stats.exceptions.error, 1);
        assert_eq!(stats.queue.delivered, 1);
        assert_eq!(stats.cycle.request_to_decision.count, 1);
        assert_eq!(stats.cycle.received_to_forwarded.count, 0);
        assert_eq!(stats.cycle.received_to_forwarded.p50_secs, None);
        // Window-independent figures stay.
        assert_eq!(stats.dead_letters.count, 1);
        assert_eq!(stats.queue.depth, 1);
        // Windows are clamped.
        assert_eq!(ops_stats(&reader, &at(1)).expect("stats").window_secs, 60);
    }

    /// Every kind of manual touch counts once per case; untouched cases and
    /// touches of unknown cases do not.
    #[tokio::test]
    async fn failed_writebacks_and_desktop_evidence_are_manual_touches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("touch.sqlite");
        let store = Store::open(&path, StoreOptions::default())
            .await
            .expect("open");
        for (n, id) in ["case-w", "case-x", "case-r", "case-ok", "case-done"]
            .into_iter()
            .enumerate()
        {
            let c = case(id, "hl7v2", "cardio-north", None);
            let msg = inbound("hl7v2", &format!("M-{n}"), T, accepted(c));
            store.commit_inbound(msg).await.expect("commit");
        }
        let decision: Decision =
            serde_json::from_str(r#"{"status": "approved"}"#).expect("decision");
        for (case_id, outcome) in [
            (
                "case-w",
                WriteBackOutcome::Failed {
                    error: "refused".to_owned(),
                },
            ),
            (
                "case-done",
                WriteBackOutcome::Done {
                    detail: "written".to_owned(),
                },
            ),
        ] {
            let recorded = store
                .record_decision(case_id, decision.clone())
                .await
                .expect("decision");
            store
                .complete_writeback(recorded.decision_id, outcome)
                .await
                .expect("write-back outcome");
        }
        for case_id in [Some("case-x"), Some("case-x"), None, Some("case-unknown")] {
            store
                .put_evidence(NewEvidence {
                    adapter: "desktop".to_owned(),
                    kind: "abort-screenshot".to_owned(),
                    case_id: case_id.map(str::to_owned),
                    content_type: "image/png".to_owned(),
                    body: vec![0x89, b'P', b'N', b'G'],
                    detail: None,
                })
                .await
                .expect("evidence");
        }
        store
            .audit(AuditEntry {
                actor: "test".to_owned(),
                action: "message.replay".to_owned(),
                target: None,
                detail: None,
                case_id: Some("case-r".to_owned()),
            })
            .await
            .expect("audit");
        store.close().await;
        let reader = Reader::open(&path).expect("reader");
        let stats = ops_stats(&reader, &StatsQuery::last(3600)).expect("stats");
        assert_eq!(
            stats.automation,
            Automation {
                cases: 5,
                touched: 3,
                coverage: Some(2.0 / 5.0)
            }
        );
    }

    #[tokio::test]
    async fn an_empty_store_has_no_rates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.sqlite");
        Store::open(&path, StoreOptions::default())
            .await
            .expect("open")
            .close()
            .await;
        let reader = Reader::open(&path).expect("reader");
        let stats = ops_stats(&reader, &StatsQuery::last(3600)).expect("stats");
        assert_eq!(stats.exceptions.rate, None);
        assert_eq!(stats.automation.coverage, None);
        assert_eq!(stats.queue.wait.p50_secs, None);
        assert!(stats.volume.by_site.is_empty());
        assert_eq!(stats.throughput.received.iter().sum::<u64>(), 0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of_millis(vec![4000, 1000, 3000, 2000]);
        assert_eq!((p.count, p.p50_secs, p.p90_secs), (4, Some(2.0), Some(4.0)));
        let p = Percentiles::of_millis((1..=10).map(|s| s * 1000).collect());
        assert_eq!((p.p50_secs, p.p90_secs), (Some(5.0), Some(9.0)));
        let p = Percentiles::of_millis(vec![1500]);
        assert_eq!((p.p50_secs, p.p90_secs), (Some(1.5), Some(1.5)));
    }
}
