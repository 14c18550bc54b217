//! The forwarder reports its metrics under the names issue 9 defines.

use gateway_testkit::samples as common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{accepted, case};
use gateway_forward::*;
use gateway_testkit::platform::{PlatformReceiver, Reply};
use gateway_testkit::store::TempStore;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// Records every counter and gauge by its name and sorted labels.
#[derive(Default, Clone)]
struct TestRecorder {
    values: Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>,
}

impl TestRecorder {
    fn slot(&self, key: &Key) -> Arc<AtomicU64> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.values
            .lock()
            .expect("lock")
            .entry(name)
            .or_default()
            .clone()
    }

    fn counter(&self, name: &str) -> u64 {
        self.values
            .lock()
            .expect("lock")
            .get(name)
            .map(|v| v.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    fn gauge(&self, name: &str) -> Option<f64> {
        self.values
            .lock()
            .expect("lock")
            .get(name)
            .map(|v| f64::from_bits(v.load(Ordering::Relaxed)))
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.slot(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[tokio::test]
async fn forwarder_counts_attempts_by_result_and_publishes_outbox_gauges() {
    let recorder = TestRecorder::default();
    metrics::set_global_recorder(recorder.clone()).expect("only recorder in this test binary");

    let t = TempStore::new().await;
    let receiver = PlatformReceiver::start().await;
    // First event: one 500, then accepted. Second event (another case): 400.
    receiver.enqueue([Reply::status(500, "oops")]);
    t.store
        .commit_inbound(accepted(case(1, 1), "A1", "a1"))
        .await
        .expect("commit");
    let poison = case(2, 2).case_id;
    receiver.set_rule(move |req| {
        let subject = req
            .event
            .as_ref()
            .and_then(|e| e["subject"].as_str().map(str::to_owned));
        (subject.as_deref() == Some(poison.as_str())).then(|| Reply::status(400, "bad"))
    });
    let sink = Arc::new(HttpSink::new(&HttpSinkConfig::new(receiver.url())).expect("sink"));
    let options = ForwarderOptions {
        concurrency: 1,
        poll_interval_ms: 50,
        backoff: BackoffPolicy {
            initial_ms: 10,
            max_ms: 50,
            multiplier: 2.0,
        },
        ..ForwarderOptions::default()
    };
    let forwarder = Forwarder::spawn(t.store.clone(), sink, options);
    assert_eq!(receiver.wait_accepted(1, Duration::from_secs(10)).await, 1);
    t.store
        .commit_inbound(accepted(case(2, 2), "B1", "b1"))
        .await
        .expect("commit");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while t.store.outbox_stats().await.expect("stats").dead == 0 {
        assert!(std::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    forwarder.shutdown(Duration::from_secs(1)).await;

    let attempts = "ehr_gateway_forward_attempts_total";
    assert_eq!(
        recorder.counter(&format!("{attempts}{{result=retry,sink=http}}")),
        1
    );
    assert_eq!(
        recorder.counter(&format!("{attempts}{{result=delivered,sink=http}}")),
        1
    );
    assert_eq!(
        recorder.counter(&format!("{attempts}{{result=dead,sink=http}}")),
        1
    );
    // Published on shutdown from the final state.
    assert_eq!(recorder.gauge("ehr_gateway_outbox_depth{}"), Some(0.0));
    assert_eq!(recorder.gauge("ehr_gateway_dead_letters{}"), Some(1.0));
    assert_eq!(
        recorder.gauge("ehr_gateway_outbox_oldest_age_seconds{}"),
        Some(0.0)
    );
}
