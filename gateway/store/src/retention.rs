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
use crate::time::now_ms;

/// Rows deleted per step while enforcing the size budget.
const CHUNK: i64 = 64;

pub(crate) fn prune(
    conn: &Connection,
    path: &Path,
    policy: &RetentionPolicy,
) -> Result<PruneReport> {
    let mut report = PruneReport {
        bytes_before: file_bytes(path),
        ..PruneReport::default()
    };
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(StoreError::sql("starting retention"))?;
    let result = prune_in_tx(conn, policy, &mut report);
    match result {
        Ok(()) => conn
            .execute_batch("COMMIT")
            .map_err(StoreError::sql("committing retention"))?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    // Returns free pages to the OS, then folds the WAL back and truncates it.
    // `incremental_vacuum` frees one page per step: step it to the end.
    conn.prepare("PRAGMA incremental_vacuum")
        .and_then(|mut st| {
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {}
            Ok(())
        })
        .map_err(StoreError::sql("reclaiming free pages"))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(StoreError::sql("checkpointing the WAL"))?;
    report.bytes_after = file_bytes(path);
    Ok(report)
}

fn prune_in_tx(
    conn: &Connection,
    policy: &RetentionPolicy,
    report: &mut PruneReport,
) -> Result<()> {
    if let Some(age) = policy.max_age_secs {
        let cutoff = now_ms().saturating_sub((age as i64).saturating_mul(1000));
        prune_before(conn, cutoff, i64::MAX, report)?;
        report.decisions += conn
            .execute(
                "DELETE FROM decisions WHERE writeback_state = 'done' AND finished_at_ms < ?1
                 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.decision_id = decisions.id
                                 AND e.state != 'delivered')",
                [cutoff],
            )
            .map_err(StoreError::sql("pruning decisions"))? as u64;
        report.evidence += crate::evidence::prune_before(conn, cutoff)?;
    }
    if let Some(age) = policy.audit_max_age_secs {
        let cutoff = now_ms().saturating_sub((age as i64).saturating_mul(1000));
        report.audit += conn
            .execute("DELETE FROM audit_log WHERE at_ms < ?1", [cutoff])
            .map_err(StoreError::sql("pruning the audit log"))? as u64;
    }
    if let Some(budget) = policy.max_bytes {
        while used_bytes(conn)? > budget {
            let before = report.messages + report.events;
            prune_before(conn, i64::MAX, CHUNK, report)?;
            if report.messages + report.events == before {
                break; // Only unfinished data is left: never pruned.
            }
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
    report.events += conn
        .execute(
            "DELETE FROM events WHERE id IN (
                 SELECT id FROM events WHERE state = 'delivered' AND finished_at_ms < ?1
                 ORDER BY finished_at_ms LIMIT ?2)",
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

/// Bytes in use by live pages (excluding the free list).
fn used_bytes(conn: &Connection) -> Result<u64> {
    let (pages, free, size): (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT page_count FROM pragma_page_count()),
                    (SELECT freelist_count FROM pragma_freelist_count()),
                    (SELECT page_size FROM pragma_page_size())",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(StoreError::sql("measuring the store"))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// Size of the database file plus its WAL on disk.
pub(crate) fn file_bytes(path: &Path) -> u64 {
    let db = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::fs::metadata(Path::new(&wal))
        .map(|m| m.len())
        .unwrap_or(0);
    db + wal
}
