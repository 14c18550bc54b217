//! Property: any interleaving of appends (with duplicates), deliveries, retries,
//! dead-lettering, re-queues, abandoned commits and crashes (drop + reopen)
//! keeps every committed event exactly once in the outbox, with contiguous
//! per-case sequences, and the forwarder's choice of sendable events respects
//! the order per case.

use gateway_testkit::samples as common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use common::{accepted, case};
use gateway_store::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Commit message `content` for case `case` (repeats are duplicates).
    Append { case: u32, content: u32 },
    /// Start a commit and abandon it at once (crash of the caller): it may or
    /// may not commit, but never half.
    AppendAbandoned { case: u32, content: u32 },
    /// Deliver the `pick`-th sendable event.
    Deliver { pick: usize },
    /// A transient failure of the `pick`-th sendable event (retry due now).
    Retry { pick: usize },
    /// Dead-letter the `pick`-th sendable event.
    Dead { pick: usize },
    /// Re-queue the `pick`-th dead event.
    Requeue { pick: usize },
    /// Drop every handle without closing and reopen the file.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4u32, 0..3u32).prop_map(|(case, content)| Op::Append { case, content }),
        1 => (0..4u32, 0..3u32).prop_map(|(case, content)| Op::AppendAbandoned { case, content }),
        3 => any::<usize>().prop_map(|pick| Op::Deliver { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Retry { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Dead { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Requeue { pick }),
        1 => Just(Op::Crash),
    ]
}

#[derive(Default)]
struct Model {
    /// Committed events: id → (case id, seq, state).
    events: BTreeMap<String, (String, i64, EventState)>,
    /// (case, content) → message id of the accepted original.
    originals: HashMap<(u32, u32), i64>,
    /// (case, content) whose commit was abandoned and not yet resolved.
    maybe: HashSet<(u32, u32)>,
}

impl Model {
    /// Sendable events by the order-per-case rule.
    fn sendable(&self) -> BTreeSet<String> {
        self.events
            .iter()
            .filter(|(_, (c, seq, st))| {
                *st == EventState::Pending
                    && !self
                        .events
                        .values()
                        // An earlier pending event, or a dead letter (nothing
                        // here skips one), holds the case back.
                        .any(|(c2, s2, st2)| c2 == c && s2 < seq && *st2 != EventState::Delivered)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}

fn inbound(case_no: u32, content: u32) -> NewInbound {
    accepted(
        case(case_no, case_no),
        &format!("M{case_no}-{content}"),
        &format!("raw {case_no} {content}"),
    )
}

async fn attempt(store: &Store, id: &str, outcome: AttemptOutcome) {
    store
        .record_attempt(DeliveryAttempt {
            event_id: id.to_owned(),
            sink: "test".to_owned(),
            http_status: None,
            outcome,
        })
        .await
        .expect("record attempt");
}

async fn check(store: &Store, model: &mut Model) {
    let stored = store
        .read(|r| r.list_events(None, 100_000))
        .await
        .expect("list events");
    // Adopt events of abandoned commits that did land (found by message id).
    for e in &stored {
        if !model.events.contains_key(&e.id) {
            let msg = e.message_id.expect("inbound event");
            let m = store.get_message(msg).await.expect("get").expect("message");
            let control = m.summary.control_id.expect("control id");
            let (c, content) = control[1..].split_once('-').expect("control shape");
            let key: (u32, u32) = (c.parse().expect("n"), content.parse().expect("n"));
            assert!(
                model.maybe.remove(&key) || !model.originals.contains_key(&key),
                "event {} for {key:?} was never committed",
                e.id
            );
            assert!(
                !model.originals.contains_key(&key),
                "second event for accepted message {key:?}"
            );
            model.originals.insert(key, msg);
            model
                .events
                .insert(e.id.clone(), (e.case_id.clone(), e.sequence, e.state));
        }
    }
    // Exactly once: same set of ids, same states.
    let ids: BTreeSet<&String> = stored.iter().map(|e| &e.id).collect();
    assert_eq!(ids.len(), stored.len(), "event ids are unique");
    assert_eq!(
        ids,
        model.events.keys().collect::<BTreeSet<_>>(),
        "every committed event is in the outbox, and nothing else"
    );
    for e in &stored {
        let (c, seq, st) = &model.events[&e.id];
        assert_eq!(
            (&e.case_id, e.sequence, e.state),
            (c, *seq, *st),
            "event {}",
            e.id
        );
    }
    // One event per accepted message.
    let mut per_message: HashMap<i64, usize> = HashMap::new();
    for e in &stored {
        *per_message
            .entry(e.message_id.expect("message"))
            .or_default() += 1;
    }
    assert!(per_message.values().all(|n| *n == 1));
    // Contiguous sequences per case, in append order.
    let mut per_case: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for e in &stored {
        per_case.entry(&e.case_id).or_default().push(e.sequence);
    }
    for (c, seqs) in per_case {
        let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(seqs, expected, "case {c}");
    }
    // The forwarder's choice matches the order-per-case rule, and it is
    // given each event whole, as any other read gives it (its query builds
    // the body from the case row it reached through the outbox head).
    let deliverable = store
        .read(|r| r.deliverable(1_000, &HashSet::new()))
        .await
        .expect("deliverable");
    for e in &deliverable {
        let same = stored
            .iter()
            .find(|s| s.id == e.id)
            .expect("a stored event");
        assert_eq!(e, same, "event {} as the forwarder reads it", e.id);
    }
    let sendable: BTreeSet<String> = deliverable.into_iter().map(|e| e.id).collect();
    assert_eq!(sendable, model.sendable());
}

fn run(ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("store.db");
        let mut store = Store::open(&path, StoreOptions::default())
            .await
            .expect("open");
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Append { case, content } => {
                    let r = store
                        .commit_inbound(inbound(case, content))
                        .await
                        .expect("commit");
                    let key = (case, content);
                    match (r.disposition, model.originals.get(&key)) {
                        (Disposition::Duplicate { original }, Some(id)) => {
                            assert_eq!(original.message_id, *id)
                        }
                        (Disposition::Duplicate { original }, None) => {
                            // Only possible when an abandoned commit landed.
                            assert!(model.maybe.remove(&key), "duplicate of nothing");
                            model.originals.insert(key, original.message_id);
                            check(&store, &mut model).await;
                        }
                        (
                            Disposition::Accepted {
                                event_id,
                                case_id,
                                sequence,
                                ..
                            },
                            None,
                        ) => {
                            model.maybe.remove(&key);
                            model.originals.insert(key, r.receipt.message_id);
                            model
                                .events
                                .insert(event_id, (case_id, sequence, EventState::Pending));
                        }
                        (other, original) => {
                            panic!("{key:?}: {other:?} with original {original:?}")
                        }
                    }
                }
                Op::AppendAbandoned { case, content } => {
                    if !model.originals.contains_key(&(case, content)) {
                        model.maybe.insert((case, content));
                    }
                    let s = store.clone();
                    let task = tokio::spawn(async move {
                        let _ = s.commit_inbound(inbound(case, content)).await;
                    });
                    tokio::task::yield_now().await;
                    task.abort();
                    let _ = task.await;
                    // Let a commit that was queued finish, then learn what landed.
                    let _ = store
                        .audit(AuditEntry {
                            actor: "test".to_owned(),
                            action: "barrier".to_owned(),
                            target: None,
                            detail: None,
                            case_id: None,
                        })
                        .await;
                    check(&store, &mut model).await;
                }
                Op::Deliver { pick } | Op::Retry { pick } | Op::Dead { pick } => {
                    let sendable: Vec<String> = model.sendable().into_iter().collect();
                    if sendable.is_empty() {
                        continue;
                    }
                    let id = sendable[pick % sendable.len()].clone();
                    let (outcome, state) = match op {
                        Op::Deliver { .. } => (AttemptOutcome::Delivered, EventState::Delivered),
                        Op::Dead { .. } => (
                            AttemptOutcome::Dead {
                                error: "HTTP 400".to_owned(),
                            },
                            EventState::Dead,
                        ),
                        _ => (
                            AttemptOutcome::Retry {
                                retry_at: jiff::Timestamp::now(),
                                error: "HTTP 500".to_owned(),
                            },
                            EventState::Pending,
                        ),
                    };
                    attempt(&store, &id, outcome).await;
                    if let Some(e) = model.events.get_mut(&id) {
                        e.2 = state;
                    }
                }
                Op::Requeue { pick } => {
                    let dead: Vec<String> = model
                        .events
                        .iter()
                        .filter(|(_, e)| e.2 == EventState::Dead)
                        .map(|(id, _)| id.clone())
                        .collect();
                    if dead.is_empty() {
                        continue;
                    }
                    let id = dead[pick % dead.len()].clone();
                    store.requeue_event(&id).await.expect("requeue");
                    if let Some(e) = model.events.get_mut(&id) {
                        e.2 = EventState::Pending;
                    }
                }
                Op::Crash => {
                    drop(store);
                    store = Store::open(&path, StoreOptions::default())
                        .await
                        .expect("reopen");
                    check(&store, &mut model).await;
                }
            }
        }
        check(&store, &mut model).await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn committed_events_stay_exactly_once_and_in_order(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
