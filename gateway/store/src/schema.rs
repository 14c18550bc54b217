//! Versioned, forward-only schema migrations.
//!
//! The version lives in SQLite's `user_version`. Each migration runs in its own
//! transaction together with the version bump, so a crash mid-upgrade leaves the
//! previous version intact. A file whose version is newer than [`SCHEMA_VERSION`]
//! was written by a newer binary: opening it fails with
//! [`StoreError::NewerSchema`] instead of guessing.

use rusqlite::Connection;

use crate::error::{Result, StoreError};

/// Migrations in order; entry `i` upgrades version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE messages (
        id                      INTEGER PRIMARY KEY AUTOINCREMENT,
        adapter                 TEXT NOT NULL,
        profile                 TEXT NOT NULL,
        sender                  TEXT,
        control_id              TEXT,
        message_type            TEXT,
        content_hash            TEXT NOT NULL,
        raw                     BLOB NOT NULL,
        received_at             TEXT NOT NULL,
        received_at_ms          INTEGER NOT NULL,
        stored_at_ms            INTEGER NOT NULL,
        peer                    TEXT,
        state                   TEXT NOT NULL
                                CHECK (state IN ('accepted', 'duplicate', 'rejected', 'error')),
        case_id                 TEXT,
        duplicate_of            INTEGER,
        error_reason            TEXT,
        diagnostics             TEXT,
        replay_requested_at_ms  INTEGER,
        replays                 INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX messages_dedup ON messages (content_hash, sender, control_id)
        WHERE state = 'accepted';
    CREATE INDEX messages_state ON messages (state, id);
    CREATE INDEX messages_control ON messages (control_id, id);
    CREATE INDEX messages_received ON messages (received_at_ms);
    CREATE INDEX messages_replay ON messages (replay_requested_at_ms)
        WHERE replay_requested_at_ms IS NOT NULL;

    CREATE TABLE cases (
        case_id         TEXT PRIMARY KEY,
        snapshot        TEXT NOT NULL,
        status          TEXT NOT NULL,
        profile         TEXT NOT NULL,
        adapter         TEXT NOT NULL,
        patient_key     TEXT,
        last_seq        INTEGER NOT NULL DEFAULT 0,
        created_at_ms   INTEGER NOT NULL,
        updated_at_ms   INTEGER NOT NULL
    );
    CREATE INDEX cases_patient ON cases (patient_key, status);

    CREATE TABLE decisions (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id             TEXT NOT NULL REFERENCES cases (case_id),
        adapter             TEXT NOT NULL,
        decision            TEXT NOT NULL,
        received_at_ms      INTEGER NOT NULL,
        writeback_state     TEXT NOT NULL
                            CHECK (writeback_state IN ('pending', 'done', 'failed')),
        attempts            INTEGER NOT NULL DEFAULT 0,
        next_attempt_at_ms  INTEGER NOT NULL,
        last_error          TEXT,
        detail              TEXT,
        finished_at_ms      INTEGER
    );
    CREATE INDEX decisions_writeback ON decisions (writeback_state, adapter, next_attempt_at_ms);
    CREATE INDEX decisions_case ON decisions (case_id);

    CREATE TABLE events (
        id                  TEXT PRIMARY KEY,
        case_id             TEXT NOT NULL REFERENCES cases (case_id),
        seq                 INTEGER NOT NULL,
        type                TEXT NOT NULL,
        message_id          INTEGER REFERENCES messages (id) ON DELETE SET NULL,
        decision_id         INTEGER REFERENCES decisions (id) ON DELETE SET NULL,
        body                TEXT NOT NULL,
        state               TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
        attempts            INTEGER NOT NULL DEFAULT 0,
        next_attempt_at_ms  INTEGER NOT NULL,
        last_error          TEXT,
        created_at_ms       INTEGER NOT NULL,
        finished_at_ms      INTEGER,
        UNIQUE (case_id, seq)
    );
    CREATE INDEX events_state ON events (state, next_attempt_at_ms);
    CREATE INDEX events_message ON events (message_id);
    CREATE INDEX events_decision ON events (decision_id);

    CREATE TABLE delivery_attempts (
        id          INTEGER PRIMARY KEY,
        event_id    TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
        sink        TEXT NOT NULL,
        at_ms       INTEGER NOT NULL,
        result      TEXT NOT NULL,
        http_status INTEGER,
        error       TEXT
    );
    CREATE INDEX attempts_event ON delivery_attempts (event_id);

    CREATE TABLE audit_log (
        id      INTEGER PRIMARY KEY,
        at_ms   INTEGER NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        target  TEXT,
        detail  TEXT
    );
    CREATE INDEX audit_at ON audit_log (at_ms);
    "#,
    // 2: durable X12 control numbers, and operator evidence (screenshots a
    // desktop playbook took when it aborted).
    r#"
    CREATE TABLE control_numbers (
        scope   TEXT PRIMARY KEY,
        last    INTEGER NOT NULL CHECK (last >= 0)
    );

    CREATE TABLE evidence (
        id            INTEGER PRIMARY KEY,
        at_ms         INTEGER NOT NULL,
        adapter       TEXT NOT NULL,
        kind          TEXT NOT NULL,
        case_id       TEXT,
        content_type  TEXT NOT NULL,
        body          BLOB NOT NULL,
        detail        TEXT
    );
    CREATE INDEX evidence_at ON evidence (at_ms);
    CREATE INDEX evidence_case ON evidence (case_id);

    -- The case an audited action touched (replays are manual interventions:
    -- the dashboard's automation coverage counts cases without one).
    ALTER TABLE audit_log ADD COLUMN case_id TEXT;
    CREATE INDEX audit_case ON audit_log (case_id) WHERE case_id IS NOT NULL;
    "#,
    // 3: the outbox's per-case heads. The forwarder may send a case's first
    // undelivered event only; finding those with a correlated subquery over all
    // pending events cost time in proportion to the backlog on every commit
    // (a day's outage never drained). The writer keeps one row per case with an
    // open event — its first one — so scheduling reads only what it sends. A
    // dead letter holds its case back (`due_ms` NULL) until it is replayed or
    // skipped by an operator (`skipped_at_ms`), so per-case order is never
    // broken.
    r#"
    ALTER TABLE events ADD COLUMN skipped_at_ms INTEGER;
    CREATE TABLE outbox_heads (
        case_id     TEXT PRIMARY KEY,
        event_id    TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        due_ms      INTEGER,
        created_ms  INTEGER NOT NULL
    );
    CREATE INDEX outbox_heads_due ON outbox_heads (due_ms) WHERE due_ms IS NOT NULL;
    CREATE INDEX outbox_heads_created ON outbox_heads (created_ms);
    CREATE INDEX events_open_case ON events (case_id, seq)
        WHERE state = 'pending' OR (state = 'dead' AND skipped_at_ms IS NULL);
    INSERT INTO outbox_heads (case_id, event_id, seq, due_ms, created_ms)
        SELECT e.case_id, e.id, e.seq,
               CASE WHEN e.state = 'pending' THEN e.next_attempt_at_ms END, e.created_at_ms
        FROM events e
        WHERE (e.state = 'pending' OR (e.state = 'dead' AND e.skipped_at_ms IS NULL))
          AND e.seq = (SELECT MIN(p.seq) FROM events p
                       WHERE p.case_id = e.case_id
                         AND (p.state = 'pending'
                              OR (p.state = 'dead' AND p.skipped_at_ms IS NULL)));
    "#,
    // 4: decisions exactly once: the idempotency key a decision channel got
    // with a decision, committed with it; a repeat answers the stored receipt.
    r#"
    CREATE TABLE decision_keys (
        channel      TEXT NOT NULL,
        key          TEXT NOT NULL,
        fingerprint  TEXT NOT NULL,
        case_id      TEXT NOT NULL,
        decision_id  INTEGER NOT NULL,
        event_id     TEXT NOT NULL,
        sequence     INTEGER NOT NULL,
        at_ms        INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX decision_keys_key ON decision_keys (channel, key);
    "#,
    // 5: requests this gateway wrote for a case (a 278 request the platform
    // obtained through the admin API),
    // with the references a reply must echo (BHT03, TRN) and the control
    // numbers, so a reply is adopted only when it answers a known request.
    r#"
    CREATE TABLE case_requests (
        id       INTEGER PRIMARY KEY,
        case_id  TEXT NOT NULL,
        at_ms    INTEGER NOT NULL,
        kind     TEXT NOT NULL,
        refs     TEXT NOT NULL,
        control  TEXT NOT NULL,
        actor    TEXT NOT NULL
    );
    CREATE INDEX case_requests_case ON case_requests (case_id);
    "#,
    // 6: the outbound 278 request path (gateway-daemon's x12 submission
    // worker): one row per case and payer route, due until written, recorded
    // (its trace in `case_requests`, its bytes here) and sent; and the cursor
    // over `messages` that finds newly due cases without rescanning.
    r#"
    CREATE TABLE x12_submissions (
        id                  INTEGER PRIMARY KEY,
        case_id             TEXT NOT NULL,
        route               TEXT NOT NULL,
        state               TEXT NOT NULL
                            CHECK (state IN ('due', 'recorded', 'sent', 'refused', 'failed', 'skipped')),
        attempts            INTEGER NOT NULL DEFAULT 0,
        next_attempt_at_ms  INTEGER NOT NULL,
        request_id          INTEGER,
        payload             BLOB,
        reason              TEXT,
        created_at_ms       INTEGER NOT NULL,
        updated_at_ms       INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX x12_submissions_case_route ON x12_submissions (case_id, route);
    CREATE INDEX x12_submissions_due ON x12_submissions (next_attempt_at_ms)
        WHERE state IN ('due', 'recorded');
    CREATE TABLE x12_submission_cursor (
        name             TEXT PRIMARY KEY,
        last_message_id  INTEGER NOT NULL
    );
    "#,
    // 7: the references cases are looked up by (`Store::case_by_reference`:
    // the Da Vinci PAS server's Claim identifiers), indexed instead of read
    // out of every snapshot per request; backfilled from the snapshots.
    // The names are `case_lookup::INDEXED_REFERENCES` (a test checks).
    r#"
    CREATE TABLE case_references (
        name     TEXT NOT NULL,
        value    TEXT NOT NULL,
        case_id  TEXT NOT NULL,
        PRIMARY KEY (name, value, case_id)
    ) WITHOUT ROWID;
    CREATE INDEX case_references_case ON case_references (case_id, name);
    INSERT OR IGNORE INTO case_references (name, value, case_id)
        SELECT 'pas_claim', json_extract(snapshot, '$.references.pas_claim'), case_id
        FROM cases WHERE json_extract(snapshot, '$.references.pas_claim') IS NOT NULL;
    INSERT OR IGNORE INTO case_references (name, value, case_id)
        SELECT 'pas_submission', json_extract(snapshot, '$.references.pas_submission'), case_id
        FROM cases WHERE json_extract(snapshot, '$.references.pas_submission') IS NOT NULL;
    "#,
    // 8: less written per intake (issue #21).
    // * Fewer random-keyed index entries: every message touched a leaf of
    //   `messages_dedup` and one of `messages_control` (both keyed by random
    //   values), and every event one of `events_open_case` at insert and again
    //   at delivery; each is a 4 KiB page the commit writes to the WAL and
    //   fsyncs. The duplicate probe and the control-id search now share one
    //   index; a case's first open event is found through the `(case_id,
    //   seq)` key every event already has.
    // * An event's case is stored once: the newest event of a case may keep
    //   only its envelope (`shares_snapshot = 1`) and take `data` from the
    //   case's snapshot, which is the same case; the write that overwrites the
    //   snapshot first gives that event its own copy (`ops::append_event`).
    //   Readers see the whole body either way (`read::event_body_sql`). Events
    //   stored before keep their whole bodies.
    r#"
    DROP INDEX messages_dedup;
    DROP INDEX messages_control;
    CREATE INDEX messages_control ON messages (control_id, sender, content_hash);
    DROP INDEX events_open_case;
    ALTER TABLE events ADD COLUMN shares_snapshot INTEGER NOT NULL DEFAULT 0;
    "#,
    // 9: fewer bytes per message (issue #21).
    // * `messages.raw` and `cases.snapshot` may be stored packed (`packing`):
    //   the codec column beside each says how (0 as given: every row stored
    //   before). `raw_len` keeps the unpacked size the message lists show
    //   (NULL on older rows, whose `length(raw)` is that size).
    // * `events_decision` holds only the events a decision made: intake
    //   events have none, and every commit wrote the index's tail page for
    //   the NULLs. The one query that uses it (`decision_id = ?`, and the
    //   foreign key's lookup) implies `IS NOT NULL`.
    r#"
    ALTER TABLE messages ADD COLUMN raw_codec INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN raw_len INTEGER;
    ALTER TABLE cases ADD COLUMN snapshot_codec INTEGER NOT NULL DEFAULT 0;
    DROP INDEX events_decision;
    CREATE INDEX events_decision ON events (decision_id) WHERE decision_id IS NOT NULL;
    "#,
    // 10: the outbox head lives in the case's row (issue #21). `outbox_heads`
    // was keyed by the case id, a hash: every intake of a new case wrote a
    // random leaf of its primary key (and its own rows' page), and every
    // delivery deleted and re-inserted there, on top of the case row the same
    // intake writes anyway. The row now says which of its events is the head
    // (`head_seq`, NULL when none is open), when it is due (`head_due_ms`,
    // NULL when a dead letter holds the case back) and when it was made
    // (`head_created_ms`). The indexes of due heads are keyed by time, so
    // they grow at their tail (the scheduling one covers the forwarder's
    // query: it never reads the case rows, whose pages every commit
    // invalidates in the reader's cache); the one of held cases holds only
    // those (a dead letter is rare), so intake never writes it. Queries of
    // held cases spell its condition exactly (`head_seq IS NOT NULL AND
    // head_due_ms IS NULL`) so SQLite can use it. Retrying a head also stops
    // scanning the old table, which had no index on `event_id`.
    r#"
    ALTER TABLE cases ADD COLUMN head_seq INTEGER;
    ALTER TABLE cases ADD COLUMN head_due_ms INTEGER;
    ALTER TABLE cases ADD COLUMN head_created_ms INTEGER;
    UPDATE cases SET (head_seq, head_due_ms, head_created_ms) =
        (SELECT h.seq, h.due_ms, h.created_ms FROM outbox_heads h WHERE h.case_id = cases.case_id)
    WHERE case_id IN (SELECT case_id FROM outbox_heads);
    DROP TABLE outbox_heads;
    CREATE INDEX cases_head_due ON cases (head_due_ms, case_id, head_seq)
        WHERE head_due_ms IS NOT NULL;
    CREATE INDEX cases_head_age ON cases (head_created_ms) WHERE head_due_ms IS NOT NULL;
    CREATE INDEX cases_held ON cases (case_id)
        WHERE head_seq IS NOT NULL AND head_due_ms IS NULL;
    "#,
    // 11: fewer bytes per message again (issue #21).
    // * Packed values may use codec 2: zstd with the store's dictionary 1
    //   (`packing`). A binary from before cannot read them; the version makes
    //   it refuse the file as newer rather than fail on the first such value.
    // * An event's stored body (for an event that shares its case's snapshot,
    //   just its envelope) may be packed too; `body_codec` says how, as the
    //   other codec columns do (0 as given: every row stored before).
    r#"
    ALTER TABLE events ADD COLUMN body_codec INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// The SQL of migration `version` (1-based), for tests that check what a
/// migration backfills.
#[cfg(test)]
pub(crate) fn migration_text(version: usize) -> Option<&'static str> {
    MIGRATIONS.get(version.checked_sub(1)?).copied()
}

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Reads the file's schema version.
pub(crate) fn version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(StoreError::sql("reading the schema version"))
}

/// Fails when the file is newer than this binary.
pub(crate) fn check_not_newer(conn: &Connection) -> Result<i64> {
    let found = version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

/// Brings the file up to [`SCHEMA_VERSION`], one transaction per step.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let mut current = check_not_newer(conn)?;
    while current < SCHEMA_VERSION {
        let step = MIGRATIONS[current as usize];
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::sql("starting a migration"))?;
        // Another process may have migrated while we waited for the lock.
        let now = check_not_newer(&tx)?;
        if now > current {
            current = now;
            continue;
        }
        tx.execute_batch(step)
            .map_err(StoreError::sql("applying a migration"))?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", current + 1))
            .map_err(StoreError::sql("recording the schema version"))?;
        tx.commit()
            .map_err(StoreError::sql("committing a migration"))?;
        current += 1;
    }
    Ok(())
}
