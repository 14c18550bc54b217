//! The `nats` sink against a real `nats-server` on loopback: the forwarder
//! publishes the outbox to a JetStream stream in per-case order, a repeat of
//! an acknowledged event is dropped by the duplicate window, a missing stream
//! is retried (the outbox holds) and an event larger than the stream allows
//! is dead-lettered. Skips with a printed reason when nats-server is missing
//! (fails under CI).

use gateway_testkit::samples as common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::append_interleaved;
use futures_util::StreamExt;
use gateway_forward::nats::{self, StreamPlan};
use gateway_forward::*;
use gateway_store::*;
use gateway_testkit::nats::{NatsCluster, nats_server_or_skip};
use gateway_testkit::store::TempStore;

fn fast_options() -> ForwarderOptions {
    ForwarderOptions {
        concurrency: 4,
        poll_interval_ms: 50,
        backoff: BackoffPolicy {
            initial_ms: 20,
            max_ms: 200,
            multiplier: 2.0,
        },
        max_retry_after_secs: 5,
        batch_max: 64,
        linger_ms: 5,
    }
}

async fn wait_drained(store: &Store) -> OutboxStats {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = store.outbox_stats().await.expect("stats");
        if stats.pending == 0 {
            return stats;
        }
        assert!(Instant::now() < deadline, "outbox not drained: {stats:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message of `stream` as (msg id, case id, sequence), in stream order.
async fn read_stream(js: &jetstream::Context, stream: &str) -> Vec<(String, String, i64)> {
    let stream = js.get_stream(stream).await.expect("stream");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut info = consumer.clone();
    let total = info.info().await.expect("info").num_pending as usize;
    let mut out = Vec::new();
    let mut messages = consumer.messages().await.expect("messages");
    while out.len() < total {
        let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("message within 10 s")
            .expect("stream open")
            .expect("message");
        let body: serde_json::Value = serde_json::from_slice(&m.payload).expect("CloudEvent JSON");
        let headers = m.headers.as_ref().expect("headers");
        let msg_id = headers
            .get("Nats-Msg-Id")
            .expect("msg id")
            .as_str()
            .to_owned();
        assert_eq!(
            body["id"].as_str(),
            Some(msg_id.as_str()),
            "Nats-Msg-Id = CloudEvents id"
        );
        assert_eq!(
            headers.get("content-type").map(|v| v.as_str()),
            Some("application/cloudevents+json; charset=utf-8")
        );
        let case_id = headers
            .get("Ehr-Case-Id")
            .expect("case")
            .as_str()
            .to_owned();
        let seq: i64 = headers
            .get("Ehr-Sequence")
            .expect("seq")
            .as_str()
            .parse()
            .expect("number");
        out.push((msg_id, case_id, seq));
    }
    out
}

#[tokio::test]
async fn publishes_in_case_order_once_and_classifies_answers() {
    let Some(binary) = nats_server_or_skip() else {
        return;
    };
    let cluster = NatsCluster::start(&binary, 1, &[]);
    let config = NatsConnectConfig::new(cluster.urls());
    let client = nats::connect(&config).await.expect("connect");
    let js = nats::jetstream_context(client.clone(), 5_000);
    let subjects = Subjects::new("ehr", "mso-demo", "cardio-north").expect("subjects");

    // No stream yet: the sink is told to retry and the outbox holds.
    let t = TempStore::new().await;
    let sent = append_interleaved(&t.store, 6, 5).await;
    let sink = Arc::new(NatsSink::new(client.clone(), subjects.clone(), 2_000));
    let first = t
        .store
        .read(|r| r.deliverable(1, &HashSet::new()))
        .await
        .expect("read")
        .remove(0);
    assert!(
        matches!(sink.deliver(&first).await, SinkResult::Retry { .. }),
        "no stream for the subject is transient"
    );

    let mut plan = StreamPlan::new("ehr", 1);
    plan.max_msg_size = 64 * 1024;
    let lines = nats::provision(&js, &plan, Some(&subjects), false)
        .await
        .expect("provision");
    assert!(lines.iter().all(|l| l.ok), "{lines:?}");
    let check = nats::provision(&js, &plan, Some(&subjects), true)
        .await
        .expect("check");
    assert!(check.iter().all(|l| l.ok && l.outcome == "ok"), "{check:?}");

    let forwarder = Forwarder::spawn(t.store.clone(), sink.clone(), fast_options());
    wait_drained(&t.store).await;

    // A repeat of an acknowledged event (a crash before the delivery was
    // recorded) is acknowledged as a duplicate and not stored twice.
    assert_eq!(
        sink.deliver(&first).await,
        SinkResult::Delivered { http_status: None }
    );
    let seen = read_stream(&js, "EHR_EVENTS").await;
    assert_eq!(seen.len(), sent.len(), "each event once");
    let ids: HashSet<&String> = seen.iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids.len(), sent.len(), "no CloudEvents id twice");
    let mut last: HashMap<&str, i64> = HashMap::new();
    for (id, case_id, seq) in &seen {
        assert_eq!(sent.get(id), Some(&(case_id.clone(), *seq)));
        let prev = last.insert(case_id.as_str(), *seq).unwrap_or(0);
        assert_eq!(*seq, prev + 1, "case {case_id}: order kept");
    }

    // An event larger than the stream's max_msg_size is refused for good.
    let mut big = first.clone();
    big.id = "0190aaaa-0000-7000-8000-000000000001".to_owned();
    big.body = format!("{{\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    assert!(
        matches!(sink.deliver(&big).await, SinkResult::Reject { .. }),
        "too large for the stream is permanent"
    );
    forwarder.shutdown(Duration::from_secs(2)).await;
    let stats = wait_drained(&t.store).await;
    assert_eq!(stats.dead, 0);
}
