//! The size budget at intake: a store that reached `max_size_mb` refuses new
//! inbound messages with [`StoreError::Full`] instead of growing further.
//!
//! Why: pending events are never pruned (nothing acknowledged may be lost), so
//! during a platform outage only refusing more intake bounds the store. The
//! refusal is retryable — HL7 senders get `AR`/`CR`, SOAP senders 503, a file
//! drop keeps its file — and it happens on the writer thread *before* the
//! intake job runs, so nothing of a refused message is written. Intake resumes
//! by itself as soon as delivery and pruning free pages (the count below drops)
//! or the limit is raised ([`crate::Store::set_size_limit`]).
//!
//! What counts: the database's live pages (page count minus the free list,
//! i.e. what the data occupies; free pages are reused before the file grows),
//! minus the pages of the audit log. The audit log has its own six-year
//! horizon, is never pruned for size and is never the reason intake is
//! refused; it is measured (SQLite's `dbstat`) and reported on its own. The
//! WAL is not counted (it is bounded by the checkpoint settings, see
//! `StoreOptions::wal_autocheckpoint_pages`).
//!
//! A real full disk (`SQLITE_FULL`, or SQLite's `max_page_count` in tests)
//! maps to the same error in [`StoreError::sql`], and the writer's savepoints
//! and its check for a transaction SQLite rolled back on its own make sure
//! nothing half-written remains.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::error::{Result, StoreError};

/// `limit` value meaning "no limit".
const NO_LIMIT: u64 = u64::MAX;

/// How long a measurement of the audit log's pages is reused: it grows by a
/// row per admin action, so a minute-old figure is close enough and the page
/// walk stays off the hot path.
const AUDIT_REMEASURE: Duration = Duration::from_secs(60);

/// The intake budget shared by the store handle and the writer thread.
#[derive(Debug)]
pub(crate) struct SizeGate {
    limit: AtomicU64,
    audit_bytes: AtomicU64,
    audit_measured: Mutex<Option<Instant>>,
    refused: AtomicU64,
}

impl SizeGate {
    pub(crate) fn new(limit: Option<u64>) -> Self {
        SizeGate {
            limit: AtomicU64::new(limit.unwrap_or(NO_LIMIT)),
            audit_bytes: AtomicU64::new(0),
            audit_measured: Mutex::new(None),
            refused: AtomicU64::new(0),
        }
    }

    pub(crate) fn limit(&self) -> Option<u64> {
        match self.limit.load(Ordering::Acquire) {
            NO_LIMIT => None,
            n => Some(n),
        }
    }

    pub(crate) fn set_limit(&self, limit: Option<u64>) {
        self.limit
            .store(limit.unwrap_or(NO_LIMIT), Ordering::Release);
    }

    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub(crate) fn audit_bytes(&self) -> u64 {
        self.audit_bytes.load(Ordering::Relaxed)
    }

    /// Re-measures the audit log when the last figure is stale (or `force`).
    pub(crate) fn refresh_audit(&self, conn: &Connection, force: bool) -> Result<u64> {
        let stale = self
            .audit_measured
            .lock()
            .map(|at| at.is_none_or(|at| at.elapsed() >= AUDIT_REMEASURE))
            .unwrap_or(true);
        if force || stale {
            let bytes = audit_bytes(conn)?;
            self.audit_bytes.store(bytes, Ordering::Relaxed);
            if let Ok(mut at) = self.audit_measured.lock() {
                *at = Some(Instant::now());
            }
        }
        Ok(self.audit_bytes())
    }

    /// On the writer thread, inside the open transaction, before an intake
    /// job runs: `Err(Full)` when the counted bytes reached the limit.
    pub(crate) fn admit(&self, conn: &Connection) -> Result<()> {
        let Some(limit) = self.limit() else {
            return Ok(());
        };
        let counted = used_bytes(conn)?.saturating_sub(self.audit_bytes());
        if counted < limit {
            return Ok(());
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        Err(StoreError::Full(format!(
            "the store reached its size budget of {} MiB (max_size_mb) with undelivered data; \
             retry later",
            limit / (1024 * 1024)
        )))
    }
}

/// How big the store is and how much of its budget is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreSize {
    /// Bytes of live database pages (page count minus the free list).
    pub used_bytes: u64,
    /// Of those, the audit log's pages (never counted against the budget).
    pub audit_bytes: u64,
    /// What the budget counts: `used_bytes - audit_bytes`.
    pub counted_bytes: u64,
    /// The intake limit (`max_size_mb`), `None` without one.
    pub limit_bytes: Option<u64>,
    /// The database file on disk.
    pub file_bytes: u64,
    /// Its write-ahead log on disk.
    pub wal_bytes: u64,
    /// Intake commits refused for size since the store was opened.
    pub refused: u64,
}

impl StoreSize {
    /// Whether intake is refused now (the counted bytes reached the limit).
    pub fn full(&self) -> bool {
        self.limit_bytes.is_some_and(|l| self.counted_bytes >= l)
    }

    /// The counted bytes as a share of the limit (`None` without one).
    pub fn fraction(&self) -> Option<f64> {
        self.limit_bytes
            .map(|l| self.counted_bytes as f64 / l.max(1) as f64)
    }
}

/// Bytes in use by live pages (excluding the free list).
pub(crate) fn used_bytes(conn: &Connection) -> Result<u64> {
    let (pages, free, size): (i64, i64, i64) = conn
        .prepare_cached(
            "SELECT (SELECT page_count FROM pragma_page_count()),
                    (SELECT freelist_count FROM pragma_freelist_count()),
                    (SELECT page_size FROM pragma_page_size())",
        )
        .and_then(|mut st| st.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
        .map_err(StoreError::sql("measuring the store"))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// Bytes of the audit log's table and index pages (`dbstat`).
pub(crate) fn audit_bytes(conn: &Connection) -> Result<u64> {
    let bytes: i64 = conn
        .prepare_cached(
            "SELECT coalesce(sum(pgsize), 0) FROM dbstat
             WHERE name IN (SELECT name FROM sqlite_schema WHERE tbl_name = 'audit_log')",
        )
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(StoreError::sql("measuring the audit log"))?;
    Ok(bytes.max(0) as u64)
}

/// The database file and its WAL on disk, in bytes.
pub(crate) fn disk_bytes(path: &Path) -> (u64, u64) {
    let db = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::fs::metadata(Path::new(&wal))
        .map(|m| m.len())
        .unwrap_or(0);
    (db, wal)
}
