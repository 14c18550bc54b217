//! Counts for health signals: how many inbound messages failed recently, and
//! whether deliveries to the sink keep failing (the daemon's alert rules
//! decide what is alarming).
//!
//! Read from the store rather than from in-process counters so they survive a
//! restart and agree with what `messages list` shows. Both queries use
//! existing indexes (`messages_received`, the attempts' primary key) and read
//! counts only — no payloads.

use rusqlite::params;

use crate::error::{Result, StoreError};
use crate::read::Reader;
use crate::store::Store;

/// Inbound messages received since some instant, by verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IntakeCounts {
    /// Every stored message (accepted, kept, duplicate, rejected, error).
    pub total: u64,
    /// Those stored as rejected or error.
    pub failed: u64,
}

impl Reader {
    /// Counts messages received at or after `since_ms` (Unix milliseconds).
    pub fn intake_counts_since(&self, since_ms: i64) -> Result<IntakeCounts> {
        self.conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(state IN ('rejected', 'error')), 0)
                 FROM messages WHERE received_at_ms >= ?1",
                params![since_ms],
                |r| {
                    Ok(IntakeCounts {
                        total: r.get::<_, i64>(0)?.max(0) as u64,
                        failed: r.get::<_, i64>(1)?.max(0) as u64,
                    })
                },
            )
            .map_err(StoreError::sql("counting recent messages"))
    }

    /// How many of the latest delivery attempts, counted back from the newest,
    /// failed transiently (`retry`); 0 when the newest one was delivered or
    /// dead-lettered (the sink answered) or there was none.
    pub fn consecutive_failed_deliveries(&self) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM delivery_attempts
                 WHERE id > COALESCE(
                     (SELECT MAX(id) FROM delivery_attempts WHERE result <> 'retry'), 0)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(StoreError::sql("counting failed deliveries"))
    }

    /// [`Reader::consecutive_failed_deliveries`] and the HTTP status of the
    /// newest failed attempt (`None`: no answer — timeout, refused
    /// connection — or no failure), so alerts can tell a platform that
    /// refuses us (401, 404, …) from one that cannot be reached.
    pub fn failed_delivery_run(&self) -> Result<(u64, Option<u16>)> {
        let run = self.consecutive_failed_deliveries()?;
        if run == 0 {
            return Ok((0, None));
        }
        let status: Option<i64> = self
            .conn
            .query_row(
                "SELECT http_status FROM delivery_attempts ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .map_err(StoreError::sql("reading the last delivery attempt"))?;
        Ok((run, status.and_then(|s| u16::try_from(s).ok())))
    }
}

impl Store {
    /// See [`Reader::failed_delivery_run`].
    pub async fn failed_delivery_run(&self) -> Result<(u64, Option<u16>)> {
        self.read(|r| r.failed_delivery_run()).await
    }

    /// See [`Reader::intake_counts_since`].
    pub async fn intake_counts_since(&self, since_ms: i64) -> Result<IntakeCounts> {
        self.read(move |r| r.intake_counts_since(since_ms)).await
    }

    /// See [`Reader::consecutive_failed_deliveries`].
    pub async fn consecutive_failed_deliveries(&self) -> Result<u64> {
        self.read(|r| r.consecutive_failed_deliveries()).await
    }
}
