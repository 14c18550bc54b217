//! Retention: prune finished data by age and size budget, then give the space
//! back to the file system.
//!
//! Only finished data goes: delivered events (their attempts cascade), messages
//! none of whose events is still pending or dead and that have no replay
//! queued, finished write-backs, and audit entries past the audit log's own
//! horizon (six years by default, never for size). Pending or dead events,
//! their messages, and case snapshots are never pruned, whatever the budget.
//! Freed pages are returned with `incremental_vacuum` (the schema enables
//! `auto_vacuum = INCREMENTAL`) and a truncating WAL checkpoint.

use std::path::Path;

use rusqlite::{Connection, params};

use crate::error::{Result, StoreError};
use crate::model::{PruneReport, RetentionPolicy};
use crate::size_budget::{audit_bytes, used_bytes};
use crate::time::now_ms;

/// Rows deleted per step while enforcing the size budget.
const CHUNK: i64 = 64;

/// Rows of each table one retention step deletes at most. Each step is its own
/// short writer transaction, so intake commits queued meanwhile run between
/// steps instead of waiting for a prune of a whole backlog.
pub(crate) const STEP_ROWS: i64 = 2_000;

/// Free pages one reclaim step gives back to the file system. Each page moved
/// costs about a millisecond on a large file (its parent and pointer-map pages
/// are rewritten): 2,000 pages held the writer for 2 s per step and the p99
/// MLLP ACK during a million-row prune was 2.1 s (`cargo bench --bench
/// prune`); 128 keeps a step near the cost of a row step.
pub(crate) const RECLAIM_PAGES: i64 = 128;

/// One bounded step of retention in its own transaction: at most
/// [`STEP_ROWS`] rows of each kind. Returns whether it deleted anything (the
/// caller repeats until a step deletes nothing).
pub(crate) fn prune_step(
    conn: &Connection,
    policy: &RetentionPolicy,
    report: &mut PruneReport,
) -> Result<bool> {
    let before = *report;
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(StoreError::sql("starting retention"))?;
    match prune_in_tx(conn, policy, report) {
        Ok(()) => conn
            .execute_batch("COMMIT")
            .map_err(StoreError::sql("committing retention"))?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            *report = before;
            return Err(e);
        }
    }
    Ok(
        report.messages + report.events + report.decisions + report.audit + report.evidence
            > before.messages + before.events + before.decisions + before.audit + before.evidence,
    )
}

/// Gives up to [`RECLAIM_PAGES`] free pages back to the file system
/// (`auto_vacuum = INCREMENTAL`); returns whether free pages remain.
pub(crate) fn reclaim_step(conn: &Connection) -> Result<bool> {
    conn.prepare(&format!("PRAGMA incremental_vacuum({RECLAIM_PAGES})"))
        .and_then(|mut st| {
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {}
            Ok(())
        })
        .map_err(StoreError::sql("reclaiming free pages"))?;
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .map_err(StoreError::sql("counting free pages"))?;
    Ok(free > 0)
}

/// Folds the WAL back into the file and truncates it.
pub(crate) fn truncate_wal(conn: &Connection) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(StoreError::sql("checkpointing the WAL"))
}

fn prune_in_tx(
    conn: &Connection,
    policy: &RetentionPolicy,
    report: &mut PruneReport,
) -> Result<()> {
    if let Some(age) = policy.max_age_secs {
        let cutoff = now_ms().saturating_sub((age as i64).saturating_mul(1000));
        prune_before(conn, cutoff, STEP_ROWS, report)?;
        report.decisions += conn
            .execute(
                "DELETE FROM decisions WHERE id IN (
                     SELECT d.id FROM decisions d
                     WHERE d.writeback_state = 'done' AND d.finished_at_ms < ?1
                       AND NOT EXISTS (SELECT 1 FROM events e WHERE e.decision_id = d.id
                                       AND e.state != 'delivered')
                     LIMIT ?2)",
                params![cutoff, STEP_ROWS],
            )
            .map_err(StoreError::sql("pruning decisions"))? as u64;
        report.evidence += crate::evidence::prune_before(conn, cutoff)?;
    }
    if let Some(age) = policy.audit_max_age_secs {
        let cutoff = now_ms().saturating_sub((age as i64).saturating_mul(1000));
        report.audit += conn
            .execute(
                "DELETE FROM audit_log WHERE id IN (
                     SELECT id FROM audit_log WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2)",
                params![cutoff, STEP_ROWS],
            )
            .map_err(StoreError::sql("pruning the audit log"))? as u64;
    }
    if let Some(budget) = policy.max_bytes {
        // The audit log is never pruned for size and does not count against
        // the budget (see `size_budget`).
        let audit = audit_bytes(conn)?;
        let mut deleted = 0;
        while deleted < STEP_ROWS && used_bytes(conn)?.saturating_sub(audit) > budget {
            let before = report.messages + report.events;
            prune_before(conn, i64::MAX, CHUNK, report)?;
            let now = report.messages + report.events;
            if now == before {
                break; // Only unfinished data is left: never pruned.
            }
            deleted += (now - before) as i64;
        }
    }
    Ok(())
}

/// Deletes up to `limit` finished messages and delivered events older than `cutoff`.
fn prune_before(
    conn: &Connection,
    cutoff: i64,
    limit: i64,
    report: &mut PruneReport,
) -> Result<()> {
    // Oldest first in the order of the `events_state (state,
    // next_attempt_at_ms)` index, which a delivered event's finish time
    // follows: the step reads about `limit` rows. Ordering by
    // `finished_at_ms` made every step read and sort every delivered event
    // (a temporary B-tree over a million rows per 2,000-row step), holding
    // the writer for seconds while intake waited (`cargo bench --bench prune`).
    report.events += conn
        .execute(
            "DELETE FROM events WHERE id IN (
                 SELECT id FROM events WHERE state = 'delivered' AND finished_at_ms < ?1
                 ORDER BY next_attempt_at_ms LIMIT ?2)",
            params![cutoff, limit],
        )
        .map_err(StoreError::sql("pruning events"))? as u64;
    report.messages += conn
        .execute(
            "DELETE FROM messages WHERE id IN (
                 SELECT m.id FROM messages m
                 WHERE m.stored_at_ms < ?1 AND m.replay_requested_at_ms IS NULL
                   AND NOT EXISTS (SELECT 1 FROM events e
                                   WHERE e.message_id = m.id AND e.state != 'delivered')
                 ORDER BY m.id LIMIT ?2)",
            params![cutoff, limit],
        )
        .map_err(StoreError::sql("pruning messages"))? as u64;
    Ok(())
}

/// Size of the database file plus its WAL on disk.
pub(crate) fn file_bytes(path: &Path) -> u64 {
    let (db, wal) = crate::size_budget::disk_bytes(path);
    db + wal
}
