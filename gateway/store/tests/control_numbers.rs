//! Control numbers on a real SQLite file: strictly increasing across reopen,
//! never handed out twice to concurrent callers, wrapping within the range.

use std::collections::BTreeSet;

use gateway_store::{Store, StoreOptions};
use gateway_testkit::store::TempStore;

const NINE_DIGITS: u64 = 999_999_999;

#[tokio::test]
async fn numbers_strictly_increase_across_reopen() {
    let t = TempStore::new().await;
    let path = t.path();
    let first = t
        .store
        .allocate_control_numbers("x12/T/interchange", 3, NINE_DIGITS)
        .await
        .expect("allocates");
    assert_eq!(first, vec![1, 2, 3]);
    // Scopes are independent.
    let other = t
        .store
        .allocate_control_numbers("x12/T/group", 1, NINE_DIGITS)
        .await
        .expect("allocates");
    assert_eq!(other, vec![1]);
    t.store.close().await;

    let reopened = Store::open(&path, StoreOptions::default())
        .await
        .expect("reopens");
    assert_eq!(
        reopened
            .last_control_number("x12/T/interchange")
            .await
            .expect("reads"),
        3
    );
    let next = reopened
        .allocate_control_numbers("x12/T/interchange", 2, NINE_DIGITS)
        .await
        .expect("allocates");
    assert_eq!(next, vec![4, 5]);
    assert_eq!(
        reopened
            .allocate_control_numbers("x12/T/interchange", 0, NINE_DIGITS)
            .await
            .expect("nothing"),
        Vec::<u64>::new()
    );
    reopened.close().await;
}

#[tokio::test]
async fn concurrent_allocations_never_collide() {
    let t = TempStore::new().await;
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let store = t.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..10 {
                got.extend(
                    store
                        .allocate_control_numbers("x12/T/transaction", 1 + i % 3, NINE_DIGITS)
                        .await
                        .expect("allocates"),
                );
            }
            got
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let got = task.await.expect("task");
        // Each caller's own numbers increase.
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        all.extend(got);
    }
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a number was handed out twice");
    // No gaps either: 16 callers × 10 allocations of 1..=3 numbers.
    let expected: u64 = (0..16u64).map(|i| 10 * (1 + i % 3)).sum();
    assert_eq!(all.len() as u64, expected);
    assert_eq!(distinct.iter().next_back().copied(), Some(expected));
}

#[tokio::test]
async fn numbers_wrap_within_the_range() {
    let t = TempStore::new().await;
    let s = &t.store;
    assert_eq!(
        s.allocate_control_numbers("st", 3, 4).await.expect("a"),
        vec![1, 2, 3]
    );
    assert_eq!(
        s.allocate_control_numbers("st", 3, 4).await.expect("b"),
        vec![4, 1, 2]
    );
    // A range that shrank below the stored value restarts at 1.
    assert_eq!(
        s.allocate_control_numbers("st", 1, 1).await.expect("c"),
        vec![1]
    );
    assert!(s.allocate_control_numbers("st", 5, 4).await.is_err());
    assert!(s.allocate_control_numbers("st", 1, 0).await.is_err());
}

#[tokio::test]
async fn several_scopes_are_allocated_in_one_write_continuing_each_counter() {
    let t = TempStore::new().await;
    let s = &t.store;
    assert_eq!(
        s.allocate_control_numbers("x12/T/interchange", 2, NINE_DIGITS)
            .await
            .expect("single"),
        vec![1, 2]
    );
    let before = s.commit_stats();
    let numbers = s
        .allocate_control_numbers_many(
            vec![
                ("x12/T/interchange".to_owned(), 1),
                ("x12/T/group".to_owned(), 2),
                ("x12/T/transaction".to_owned(), 0),
                ("x12/T/interchange".to_owned(), 1),
            ],
            NINE_DIGITS,
        )
        .await
        .expect("many");
    // In the order asked; the same scope twice continues within the write.
    assert_eq!(numbers, vec![vec![3], vec![1, 2], vec![], vec![4]]);
    assert_eq!(
        s.commit_stats().requests - before.requests,
        1,
        "one write request for every scope"
    );
    assert_eq!(
        s.last_control_number("x12/T/interchange")
            .await
            .expect("read"),
        4
    );
    // A count the range cannot hold refuses the whole request, nothing advanced.
    let refused = s
        .allocate_control_numbers_many(vec![("x12/T/group".to_owned(), 1), ("st".to_owned(), 5)], 4)
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(s.last_control_number("x12/T/group").await.expect("read"), 2);
}
