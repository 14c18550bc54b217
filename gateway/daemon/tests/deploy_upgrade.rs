//! A real upgrade: the current daemon starts on a store written by the
//! schema-v1 binary (commit 9d84504; `tests/fixtures/store-v1/README.md` says
//! exactly how it was made) with events still pending, migrates it to the
//! current schema at start-up, and delivers every pending event exactly once
//! to a loopback central platform — without resending the one v1 had already
//! delivered.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_store::{EventState, Reader, SCHEMA_VERSION};
use gateway_testkit::platform::PlatformReceiver;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1/gateway.sqlite")
}

/// `user_version` from the SQLite header (bytes 60..64, big-endian); valid
/// for a cleanly closed store, whose WAL is checkpointed into the main file.
fn header_version(store: &Path) -> u32 {
    let bytes = std::fs::read(store).expect("read store");
    u32::from_be_bytes(bytes[60..64].try_into().expect("header"))
}

/// `user_version` as SQLite sees it (main file plus WAL).
fn sqlite_version(store: &Path) -> u32 {
    rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|conn| conn.query_row("PRAGMA user_version", [], |row| row.get(0)))
        .expect("read user_version")
}

/// Event id → state, straight from the v1 file (never migrated by reading).
fn v1_events(store: &Path) -> BTreeMap<String, String> {
    let conn = rusqlite::Connection::open_with_flags(
        store,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the fixture read-only");
    let mut query = conn.prepare("SELECT id, state FROM events").expect("query");
    query
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_store_is_migrated_and_its_pending_events_are_delivered_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let store = data.join("gateway.sqlite");
    std::fs::copy(fixture(), &store).expect("copy the fixture");

    // What v1 left behind: schema 1, one event delivered, the rest pending.
    assert_eq!(header_version(&store), 1, "the fixture is not a v1 store");
    let before = v1_events(&store);
    let delivered: BTreeSet<&String> = before
        .iter()
        .filter(|(_, state)| *state == "delivered")
        .map(|(id, _)| id)
        .collect();
    let pending: BTreeSet<&String> = before
        .iter()
        .filter(|(_, state)| *state == "pending")
        .map(|(id, _)| id)
        .collect();
    assert_eq!((delivered.len(), pending.len()), (1, 4), "{before:?}");
    let refused = Reader::open(&store)
        .err()
        .expect("a v1 store is not readable");
    assert!(refused.to_string().contains("older"), "{refused}");

    let platform = PlatformReceiver::start().await;
    let config = support::write_config(
        dir.path(),
        &format!(
            "[forward]\nsink = \"http\"\n[forward.http]\nurl = \"{}\"\n\
             [forward.delivery]\npoll_interval_ms = 200\n",
            platform.url()
        ),
    );
    let mut daemon = tokio::task::spawn_blocking(move || support::Daemon::start(&config))
        .await
        .expect("start the daemon");
    let accepted = platform
        .wait_accepted(pending.len(), Duration::from_secs(30))
        .await;
    assert_eq!(accepted, pending.len(), "not every pending event arrived");
    // Several more delivery rounds: nothing may arrive twice or late.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (code, _) = tokio::task::spawn_blocking(move || {
        daemon.signal("TERM");
        daemon.wait_exit(Duration::from_secs(30))
    })
    .await
    .expect("stop the daemon");
    assert_eq!(code, Some(0));

    let requests = platform.requests();
    let sent: Vec<String> = requests.iter().filter_map(|r| r.ce_id.clone()).collect();
    assert_eq!(sent.len(), requests.len(), "a request without ce-id");
    let unique: BTreeSet<&String> = sent.iter().collect();
    assert_eq!(
        unique.len(),
        sent.len(),
        "an event was sent twice: {sent:?}"
    );
    assert_eq!(unique, pending, "sent events differ from the pending ones");
    assert!(requests.iter().all(|r| r.status == 202), "{requests:?}");

    // Migrated, and the store agrees: all delivered, the old one untouched.
    // The clean shutdown checkpointed the WAL, so the file header says so too.
    assert_eq!(sqlite_version(&store), SCHEMA_VERSION as u32);
    assert_eq!(header_version(&store), SCHEMA_VERSION as u32);
    let reader = Reader::open(&store).expect("the migrated store is readable");
    assert!(
        reader
            .list_events(Some(EventState::Pending), 100)
            .expect("events")
            .is_empty()
    );
    let all = reader.list_events(None, 100).expect("events");
    assert_eq!(all.len(), before.len());
    for event in &all {
        assert_eq!(event.state, EventState::Delivered, "{}", event.id);
        let attempts = reader.attempts(&event.id).expect("attempts");
        // v1 tried each event once; the upgrade added exactly one success
        // to each pending event and nothing to the delivered one.
        let expected = if delivered.contains(&event.id) { 1 } else { 2 };
        assert_eq!(attempts.len(), expected, "attempts of {}", event.id);
    }
    let messages = reader.list_messages(&Default::default()).expect("messages");
    assert_eq!(messages.len(), 5);
}
