//! The forwarder against a real loopback HTTP receiver that fails, hangs and
//! answers 500/429/400, and against the file sink.

use gateway_testkit::samples as common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{append_interleaved, case};
use gateway_forward::*;
use gateway_store::*;
use gateway_testkit::platform::{PlatformReceiver, Reply};
use gateway_testkit::store::TempStore;

fn fast_options() -> ForwarderOptions {
    ForwarderOptions {
        concurrency: 4,
        poll_interval_ms: 50,
        backoff: BackoffPolicy {
            initial_ms: 20,
            max_ms: 150,
            multiplier: 2.0,
        },
        max_retry_after_secs: 5,
        batch_max: 256,
        linger_ms: 5,
    }
}

#[tokio::test]
async fn order_per_case_survives_failures_timeouts_429_and_a_dead_letter_replays() {
    let t = TempStore::new().await;
    let receiver = PlatformReceiver::start().await;
    let mut config = HttpSinkConfig::new(receiver.url());
    // Generous against a loaded CI machine: a lost answer only means a re-send.
    config.timeout_ms = 1_000;
    let sink = Arc::new(HttpSink::new(&config).expect("sink"));

    // Append first so the poison event's id is known, then script the chaos.
    let events = append_interleaved(&t.store, 6, 3).await;
    let poison = events
        .iter()
        .find(|(_, (c, seq))| *c == case(2, 2).case_id && *seq == 1)
        .map(|(id, _)| id.clone())
        .expect("poison event");
    let poison_for_rule = poison.clone();
    // Each event's failure mode from its position in (case, sequence) order:
    // deterministic (event ids are random UUIDs), and every mode occurs.
    let mut ordered: Vec<(&(String, i64), &String)> =
        events.iter().map(|(id, key)| (key, id)).collect();
    ordered.sort();
    let mode: HashMap<String, usize> = ordered
        .into_iter()
        .enumerate()
        .map(|(i, (_, id))| (id.clone(), i % 5))
        .collect();
    receiver.set_rule(move |req| {
        let id = req.ce_id.clone().unwrap_or_default();
        if id == poison_for_rule {
            // Refused until an operator fixes things (the replay below).
            return if req.attempt == 1 {
                Some(Reply::status(
                    400,
                    "schema violation: data.services missing",
                ))
            } else {
                None
            };
        }
        if req.attempt > 2 {
            return None;
        }
        match mode.get(&id).copied().unwrap_or(4) {
            0 => Some(Reply::status(500, "internal error")),
            1 => Some(Reply::Hang(Duration::from_millis(1_500))),
            2 => Some(Reply::too_many(0)),
            3 => Some(Reply::status(503, "maintenance")),
            _ => None,
        }
    });

    let forwarder = Forwarder::spawn(t.store.clone(), sink, fast_options());
    let total = events.len();
    // The poison's case is held back behind it: its three events wait.
    assert_eq!(
        receiver
            .wait_accepted(total - 3, Duration::from_secs(20))
            .await,
        total - 3,
        "every case but the poisoned one delivered"
    );
    // The 400 is dead-lettered with its reason.
    let dead = t.store.dead_letters(10).await.expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, poison);
    let reason = dead[0].last_error.clone().unwrap_or_default();
    assert!(reason.starts_with("HTTP 400"), "{reason}");
    assert!(reason.contains("schema violation"), "{reason}");
    let attempts = t
        .store
        .read({
            let p = poison.clone();
            move |r| r.attempts(&p)
        })
        .await
        .expect("attempts");
    assert_eq!(attempts.last().map(|a| a.http_status), Some(Some(400)));
    // (The receiver records an event before our store does: wait for both.)
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = t.store.outbox_stats().await.expect("stats");
        if (stats.dead, stats.pending) == (1, 2) {
            break; // two events wait behind the dead letter
        }
        assert!(Instant::now() < deadline, "outbox: {stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = receiver
        .requests()
        .iter()
        .filter(|r| {
            r.ce_id
                .as_deref()
                .is_some_and(|id| events[id].0 == case(2, 2).case_id)
        })
        .filter(|r| r.ce_id.as_deref() != Some(poison.as_str()))
        .count();
    assert_eq!(held, 0, "nothing after the dead letter was sent");

    // Order per case: a request for sequence s arrived only after the request
    // for s - 1 of the same case had been answered 202.
    // Replay from the dead letter delivers it.
    let msg = dead[0].message_id.expect("message");
    let outcome = t.store.replay_message(msg).await.expect("replay");
    assert_eq!(
        outcome,
        ReplayOutcome::EventsRequeued {
            event_ids: vec![poison.clone()]
        }
    );
    assert_eq!(
        receiver.wait_accepted(total, Duration::from_secs(10)).await,
        total
    );
    forwarder.shutdown(Duration::from_secs(2)).await;
    let stats = t.store.outbox_stats().await.expect("stats");
    assert_eq!((stats.pending, stats.dead), (0, 0));

    let requests = receiver.requests();
    let settled = |r: &gateway_testkit::platform::Request| r.status == 202;
    for req in &requests {
        let id = req.ce_id.clone().expect("ce-id header");
        assert_eq!(req.idempotency_key.as_deref(), Some(id.as_str()));
        let (case_id, seq) = events.get(&id).expect("known event").clone();
        if seq == 1 {
            continue;
        }
        let earlier_settled = requests.iter().any(|r| {
            let (c, s) = &events[r.ce_id.as_deref().unwrap_or_default()];
            *c == case_id && *s == seq - 1 && settled(r) && r.answered_at <= req.at
        });
        assert!(
            earlier_settled,
            "case {case_id}: seq {seq} sent before seq {} was delivered or dead",
            seq - 1
        );
    }
    assert!(
        requests.iter().any(|r| r.status == 500)
            && requests.iter().any(|r| r.status == 429)
            && requests.iter().any(|r| r.status == 503),
        "the script exercised the failure paths"
    );

    // Everything accepted exactly once per id, each a valid CloudEvent.
    let accepted = receiver.accepted();
    let mut ids: Vec<&str> = accepted
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total);
    // Per case, the accepted order follows the sequence, the replayed case too.
    let mut per_case: HashMap<String, Vec<i64>> = HashMap::new();
    for e in &accepted {
        let (c, seq) = events[e["id"].as_str().expect("id")].clone();
        per_case.entry(c).or_default().push(seq);
    }
    for (c, seqs) in per_case {
        assert_eq!(seqs, [1, 2, 3], "case {c}");
    }
}

/// A 422 dead-letters one event and holds its case back; an operator's
/// audited skip lets the case's later events go, in order, and the skipped
/// event stays dead.
#[tokio::test]
async fn a_skipped_dead_letter_releases_its_case_and_is_audited() {
    let t = TempStore::new().await;
    let receiver = PlatformReceiver::start().await;
    let events = append_interleaved(&t.store, 2, 3).await;
    let poison = events
        .iter()
        .find(|(_, (c, seq))| *c == case(1, 1).case_id && *seq == 1)
        .map(|(id, _)| id.clone())
        .expect("poison event");
    let rule_poison = poison.clone();
    receiver.set_rule(move |req| {
        (req.ce_id.as_deref() == Some(rule_poison.as_str()))
            .then(|| Reply::status(422, "data.services: unknown code system"))
    });
    let sink = Arc::new(HttpSink::new(&HttpSinkConfig::new(receiver.url())).expect("sink"));
    let forwarder = Forwarder::spawn(t.store.clone(), sink, fast_options());
    assert_eq!(receiver.wait_accepted(3, Duration::from_secs(10)).await, 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = t.store.outbox_stats().await.expect("stats");
        if (stats.dead, stats.pending) == (1, 2) {
            break; // the 422 is dead and its case's two later events wait
        }
        assert!(Instant::now() < deadline, "outbox: {stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let audit = AuditEntry {
        actor: "cli:test".to_owned(),
        action: "event.skip".to_owned(),
        target: Some(poison.clone()),
        detail: None,
        case_id: Some(case(1, 1).case_id),
    };
    let skipped = t
        .store
        .skip_dead_event_audited(&poison, audit.clone())
        .await
        .expect("skip");
    assert_eq!(skipped, case(1, 1).case_id);
    assert_eq!(receiver.wait_accepted(5, Duration::from_secs(10)).await, 5);
    forwarder.shutdown(Duration::from_secs(1)).await;
    let seqs: Vec<i64> = receiver
        .accepted()
        .iter()
        .map(|e| events[e["id"].as_str().expect("id")].clone())
        .filter(|(c, _)| *c == case(1, 1).case_id)
        .map(|(_, seq)| seq)
        .collect();
    assert_eq!(seqs, [2, 3], "the skipped event's successors, in order");
    let stats = t.store.outbox_stats().await.expect("stats");
    assert_eq!(
        (stats.pending, stats.dead),
        (0, 1),
        "the skipped event stays dead"
    );
    let log = t.store.read(|r| r.audit_log(10)).await.expect("audit");
    assert!(log.iter().any(|a| a.entry == audit), "the skip is audited");
    let again = t.store.skip_dead_event_audited(&poison, audit).await;
    assert!(again.is_err(), "a second skip is refused");
}

#[tokio::test]
async fn retry_after_is_honoured_on_429() {
    let t = TempStore::new().await;
    let receiver = PlatformReceiver::start().await;
    receiver.enqueue([Reply::too_many(1)]);
    let sink = Arc::new(HttpSink::new(&HttpSinkConfig::new(receiver.url())).expect("sink"));
    append_interleaved(&t.store, 1, 1).await;
    let forwarder = Forwarder::spawn(t.store.clone(), sink, fast_options());
    assert_eq!(receiver.wait_accepted(1, Duration::from_secs(10)).await, 1);
    forwarder.shutdown(Duration::from_secs(1)).await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at.duration_since(requests[0].at);
    assert!(
        waited >= Duration::from_millis(900),
        "retried after {waited:?} despite Retry-After: 1"
    );
}

#[tokio::test]
async fn bearer_token_is_sent_and_a_401_is_retried_not_dead_lettered() {
    let t = TempStore::new().await;
    let receiver = PlatformReceiver::start().await;
    receiver.require_token("s3cret-token");
    let mut config = HttpSinkConfig::new(receiver.url());
    config.bearer_token = Some("s3cret-token".to_owned());
    let sink = Arc::new(HttpSink::new(&config).expect("sink"));
    append_interleaved(&t.store, 2, 1).await;
    let forwarder = Forwarder::spawn(t.store.clone(), sink, fast_options());
    assert_eq!(receiver.wait_accepted(2, Duration::from_secs(10)).await, 2);
    forwarder.shutdown(Duration::from_secs(1)).await;

    // The platform rotates its token before we do: 401s, retried, never parked.
    receiver.require_token("rotated-token");
    let sink = Arc::new(HttpSink::new(&config).expect("sink"));
    // Cases 0 and 1 repeat already delivered messages (duplicates: no new
    // event); case 2 is new.
    append_interleaved(&t.store, 3, 1).await;
    let forwarder = Forwarder::spawn(t.store.clone(), sink, fast_options());
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "the 401 was not retried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = t.store.outbox_stats().await.expect("stats");
    assert_eq!(
        (stats.dead, stats.pending),
        (0, 1),
        "retried, not dead-lettered"
    );
    // Our side catches up (the old token is accepted again): delivered.
    receiver.require_token("s3cret-token");
    assert_eq!(receiver.wait_accepted(3, Duration::from_secs(10)).await, 3);
    forwarder.shutdown(Duration::from_secs(1)).await;
    let stats = t.store.outbox_stats().await.expect("stats");
    assert_eq!((stats.dead, stats.pending), (0, 0));

    // Misconfiguration surfaces at construction, naming the problem.
    let mut bad = HttpSinkConfig::new(receiver.url());
    bad.bearer_token = Some(String::new());
    let err = HttpSink::new(&bad).expect_err("empty token");
    assert!(err.to_string().contains("bearer token is empty"), "{err}");
    let mut bad = HttpSinkConfig::new(receiver.url());
    bad.client_identity = Some(ClientIdentity {
        cert_pem: b"not a certificate".to_vec(),
        key_pem: b"not a key".to_vec(),
    });
    let err = HttpSink::new(&bad).expect_err("garbage identity");
    assert!(err.to_string().contains("client certificate"), "{err}");
    let mut bad = HttpSinkConfig::new("not a url");
    bad.batch = true;
    assert!(HttpSink::new(&bad).is_err(), "bad url");
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_attempts_within_the_grace_period() {
    let t = TempStore::new().await;
    let receiver = PlatformReceiver::start().await;
    // The first request is slow but answers within the client timeout.
    receiver.set_rule(|req| (req.attempt == 1).then(|| Reply::Hang(Duration::from_millis(400))));
    let mut config = HttpSinkConfig::new(receiver.url());
    config.timeout_ms = 5_000;
    let sink = Arc::new(HttpSink::new(&config).expect("sink"));
    append_interleaved(&t.store, 1, 1).await;
    let forwarder = Forwarder::spawn(t.store.clone(), sink.clone(), fast_options());
    // Wait until the attempt is in flight, then stop with a generous grace.
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.arrivals() == 0 {
        assert!(Instant::now() < deadline, "no delivery attempt arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    forwarder.shutdown(Duration::from_secs(3)).await;
    // The hung reply was a 503: the attempt finished and was recorded as a retry.
    let events = t
        .store
        .read(|r| r.list_events(None, 10))
        .await
        .expect("events");
    assert_eq!(
        events[0].attempts, 1,
        "the in-flight attempt completed and was recorded"
    );

    // With a tiny grace period the attempt is cut off and the event stays pending.
    receiver.set_rule(|_| Some(Reply::Hang(Duration::from_secs(3))));
    let id = events[0].id.clone();
    let arrived = receiver.arrivals();
    let forwarder = Forwarder::spawn(
        t.store.clone(),
        sink,
        ForwarderOptions {
            backoff: BackoffPolicy {
                initial_ms: 0,
                max_ms: 0,
                multiplier: 1.0,
            },
            ..fast_options()
        },
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.arrivals() == arrived {
        assert!(Instant::now() < deadline, "no second attempt arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    forwarder.shutdown(Duration::from_millis(100)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let event = t
        .store
        .read(move |r| r.event(&id))
        .await
        .expect("event")
        .expect("exists");
    assert_eq!(event.state, EventState::Pending);
    assert_eq!(event.attempts, 1, "the cut-off attempt was not recorded");
}

#[tokio::test]
async fn file_sink_appends_one_json_line_per_event_in_case_order() {
    let t = TempStore::new().await;
    let dir = t.dir.path().join("outbox");
    let sink = Arc::new(FileSink::new(FileSinkConfig { dir: dir.clone() }).expect("sink"));
    let file = sink.current_file();
    let events = append_interleaved(&t.store, 5, 4).await;
    let forwarder = Forwarder::spawn(t.store.clone(), sink, fast_options());
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.store.outbox_stats().await.expect("stats").pending > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    forwarder.shutdown(Duration::from_secs(1)).await;
    let text = std::fs::read_to_string(&file).expect("jsonl file");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON event"))
        .collect();
    assert_eq!(lines.len(), events.len());
    let mut last: HashMap<String, i64> = HashMap::new();
    for e in &lines {
        let (c, seq) = events[e["id"].as_str().expect("id")].clone();
        let prev = last.insert(c.clone(), seq).unwrap_or(0);
        assert_eq!(seq, prev + 1, "case {c} in order");
    }
}

/// `batch = true`: events leave as CloudEvents batches (several cases per
/// POST, never two events of one case), a batch refused with 503 is sent
/// again, and every case still arrives in order with nothing lost.
#[tokio::test]
async fn http_batches_keep_case_order_and_retry_whole_batches() {
    let t = TempStore::new().await;
    let receiver = PlatformReceiver::start().await;
    receiver.enqueue([Reply::status(503, "deploying")]);
    let mut config = HttpSinkConfig::new(receiver.url());
    config.batch = true;
    let sink = Arc::new(HttpSink::new(&config).expect("sink"));
    let events = append_interleaved(&t.store, 30, 4).await;
    let forwarder = Forwarder::spawn(t.store.clone(), sink, fast_options());
    let got = receiver
        .wait_accepted(events.len(), Duration::from_secs(60))
        .await;
    forwarder.shutdown(Duration::from_secs(1)).await;
    assert_eq!(got, events.len(), "every event accepted");
    let requests = receiver.requests();
    assert_eq!(requests[0].status, 503, "the first batch was refused");
    assert!(
        requests.iter().any(|r| r.batch.len() > 1),
        "events travelled in batches"
    );
    for r in &requests {
        let mut cases: Vec<&str> = r
            .batch
            .iter()
            .filter_map(|e| e["subject"].as_str())
            .collect();
        let n = cases.len();
        cases.sort_unstable();
        cases.dedup();
        assert_eq!(cases.len(), n, "one event per case in a batch");
        if !r.batch.is_empty() {
            assert!(
                r.content_type
                    .as_deref()
                    .is_some_and(|c| c.starts_with("application/cloudevents-batch+json")),
                "batch content type: {:?}",
                r.content_type
            );
        }
    }
    let mut last: HashMap<String, i64> = HashMap::new();
    for e in receiver.accepted() {
        let (c, seq) = events[e["id"].as_str().expect("id")].clone();
        let prev = last.insert(c.clone(), seq).unwrap_or(0);
        assert_eq!(seq, prev + 1, "case {c} in order");
    }
    assert_eq!(t.store.outbox_stats().await.expect("stats").dead, 0);
}

/// Commits one accepted message that opens case `n` with one event.
async fn commit_one(store: &Store, n: u32) {
    let r = store
        .commit_inbound(common::accepted(
            case(n, n),
            &format!("C{n}"),
            &format!("raw {n}"),
        ))
        .await
        .expect("commit");
    assert!(matches!(r.disposition, Disposition::Accepted { .. }));
}

/// How many events each answered request carried, in order.
fn events_per_request(receiver: &PlatformReceiver) -> Vec<usize> {
    receiver
        .requests()
        .iter()
        .map(|r| r.batch.len().max(usize::from(r.event.is_some())))
        .collect()
}

#[tokio::test]
async fn events_committed_while_a_batch_is_in_flight_go_out_together_after_it() {
    let t = TempStore::new().await;
    let receiver = PlatformReceiver::start().await;
    receiver.enqueue([Reply::Held]);
    let mut config = HttpSinkConfig::new(receiver.url());
    config.batch = true;
    let sink = Arc::new(HttpSink::new(&config).expect("sink"));
    let forwarder = Forwarder::spawn(t.store.clone(), sink, fast_options());
    append_interleaved(&t.store, 1, 1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.arrivals() == 0 {
        assert!(Instant::now() < deadline, "the first batch never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Twenty commits of other cases while the first batch is held: each one
    // wakes the forwarder, which has free slots, yet none starts a batch.
    for n in 1..=20u32 {
        commit_one(&t.store, n).await;
    }
    receiver.release();
    let got = receiver.wait_accepted(21, Duration::from_secs(60)).await;
    forwarder.shutdown(Duration::from_secs(1)).await;
    assert_eq!(got, 21, "every event accepted");
    let sizes = events_per_request(&receiver);
    assert_eq!(
        sizes,
        vec![1, 20],
        "the held batch, then everything committed meanwhile in one batch"
    );
}

#[tokio::test]
async fn a_trickle_of_commits_lingers_into_one_batch() {
    let t = TempStore::new().await;
    let receiver = PlatformReceiver::start().await;
    let mut config = HttpSinkConfig::new(receiver.url());
    config.batch = true;
    let sink = Arc::new(HttpSink::new(&config).expect("sink"));
    // A linger far longer than five commits take on any machine.
    let options = ForwarderOptions {
        linger_ms: 3_000,
        ..fast_options()
    };
    let forwarder = Forwarder::spawn(t.store.clone(), sink, options);
    for n in 0..5u32 {
        // Each commit a moment apart: the forwarder reads between them.
        commit_one(&t.store, n).await;
        tokio::task::yield_now().await;
    }
    let got = receiver.wait_accepted(5, Duration::from_secs(60)).await;
    forwarder.shutdown(Duration::from_secs(1)).await;
    assert_eq!(got, 5);
    let sizes = events_per_request(&receiver);
    assert_eq!(sizes, vec![5], "one batch for the five commits");
}

#[tokio::test]
async fn https_with_a_client_certificate_delivers_and_without_one_retries() {
    let pki = gateway_testkit::tls::TestPki::generate();
    let receiver = PlatformReceiver::start_tls(pki.server_config(true)).await;
    let t = TempStore::new().await;

    // No client certificate: the handshake is refused, which is transient.
    let mut config = HttpSinkConfig::new(receiver.url());
    config.ca_cert_pem = Some(pki.ca_cert_pem.clone().into_bytes());
    config.timeout_ms = 2_000;
    let anonymous = HttpSink::new(&config).expect("sink");
    append_interleaved(&t.store, 1, 1).await;
    let event = t
        .store
        .read(|r| r.list_events(None, 1))
        .await
        .expect("events")
        .remove(0);
    let refused = anonymous.deliver(&event).await;
    assert!(
        matches!(
            refused,
            SinkResult::Retry {
                http_status: None,
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!(receiver.arrivals(), 0);

    // With the client certificate the forwarder delivers over mutual TLS.
    config.client_identity = Some(ClientIdentity {
        cert_pem: pki.client_cert_pem.clone().into_bytes(),
        key_pem: pki.client_key_pem.clone().into_bytes(),
    });
    let sink = Arc::new(HttpSink::new(&config).expect("sink"));
    let forwarder = Forwarder::spawn(t.store.clone(), sink, fast_options());
    assert_eq!(receiver.wait_accepted(1, Duration::from_secs(10)).await, 1);
    forwarder.shutdown(Duration::from_secs(1)).await;
    assert_eq!(receiver.accepted()[0]["id"], event.id.as_str());

    // A server certificate from an unknown CA is not trusted.
    let other = gateway_testkit::tls::TestPki::generate();
    let impostor = PlatformReceiver::start_tls(other.server_config(false)).await;
    let mut config = HttpSinkConfig::new(impostor.url());
    config.ca_cert_pem = Some(pki.ca_cert_pem.clone().into_bytes());
    let sink = HttpSink::new(&config).expect("sink");
    assert!(matches!(
        sink.deliver(&event).await,
        SinkResult::Retry { .. }
    ));
    assert_eq!(impostor.arrivals(), 0);
}

/// A clock stepped backwards leaves stored due times far in the future; the
/// forwarder brings them back to at most the longest backoff and delivers.
#[tokio::test]
async fn due_times_left_far_ahead_by_a_clock_step_are_brought_back() {
    let t = TempStore::new().await;
    let dir = t.dir.path().join("outbox");
    append_interleaved(&t.store, 3, 1).await;
    // As if each had failed once and the clock then went back ten hours.
    let ten_hours_ahead = jiff::Timestamp::now().as_millisecond() + 10 * 3_600_000;
    let conn = rusqlite::Connection::open(t.path()).expect("raw connection");
    conn.execute(
        "UPDATE events SET next_attempt_at_ms = ?1 WHERE state = 'pending'",
        [ten_hours_ahead],
    )
    .expect("events");
    conn.execute(
        "UPDATE cases SET head_due_ms = ?1 WHERE head_due_ms IS NOT NULL",
        [ten_hours_ahead],
    )
    .expect("heads");
    drop(conn);
    let sink = Arc::new(FileSink::new(FileSinkConfig { dir }).expect("sink"));
    let mut options = fast_options();
    // Longest wait 150 ms backoff or 1 s Retry-After.
    options.max_retry_after_secs = 1;
    let forwarder = Forwarder::spawn(t.store.clone(), sink, options);
    let deadline = Instant::now() + Duration::from_secs(60);
    while t.store.outbox_stats().await.expect("stats").pending > 0 {
        assert!(Instant::now() < deadline, "due times were not brought back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    forwarder.shutdown(Duration::from_secs(1)).await;
}
