//! Keeps the store inside `[store] max_size_mb` and says how full it is.
//!
//! Why a task of its own: the hourly retention pass is far too slow to make
//! room during busy days, and the store refuses intake at its budget (the
//! writer checks every intake commit, see `gateway_store::StoreSize`). So every
//! second this task measures the store, publishes the size gauges, and when
//! the bytes the budget counts pass [`PRUNE_FROM`] of `warn_fraction` it
//! prunes delivered data (oldest first) down to [`PRUNE_TO`] of it. Delivered
//! history therefore stays below `warn_fraction × max_size_mb`; only data that
//! may not be pruned — events still waiting for the platform, their messages,
//! dead letters, cases — can push the store beyond it, which is what the
//! `store_nearly_full` alert reports, and at the budget intake is refused
//! with a retryable answer until delivery lets this task prune again.

use std::time::Duration;

use gateway_store::{Store, StoreSize};
use metrics::{Unit, describe_counter, describe_gauge};
use tokio_util::sync::CancellationToken;

// Live pages minus the audit log; the audit log's pages; the budget; the
// files on disk by `file`; intake commits refused because the store was full.
pub use gateway_core::metrics::{
    STORE_AUDIT_BYTES as STORE_AUDIT, STORE_DISK_BYTES as STORE_DISK,
    STORE_INTAKE_REFUSED_TOTAL as STORE_REFUSED, STORE_LIMIT_BYTES as STORE_LIMIT,
    STORE_SIZE_BYTES as STORE_SIZE,
};

/// Pruning starts above this share of the warning level…
pub const PRUNE_FROM: f64 = 0.95;
/// …and stops at this share of it.
pub const PRUNE_TO: f64 = 0.9;

/// Describes the store-size metrics (`# HELP`).
pub fn describe() {
    describe_gauge!(
        STORE_SIZE,
        Unit::Bytes,
        "Bytes the store's size budget counts: live database pages minus the audit log's."
    );
    describe_gauge!(
        STORE_AUDIT,
        Unit::Bytes,
        "Bytes of the audit log's pages (kept six years by default; not counted against the budget)."
    );
    describe_gauge!(
        STORE_LIMIT,
        Unit::Bytes,
        "The store's size budget ([store] max_size_mb); intake is refused (retryably) at it."
    );
    describe_gauge!(
        STORE_DISK,
        Unit::Bytes,
        "The store's files on disk, by file (db, wal)."
    );
    describe_counter!(
        STORE_REFUSED,
        "Inbound messages refused with a retryable answer because the store was full."
    );
}

/// Sets the store-size gauges from `size`.
pub fn publish(size: &StoreSize) {
    metrics::gauge!(STORE_SIZE).set(size.counted_bytes as f64);
    metrics::gauge!(STORE_AUDIT).set(size.audit_bytes as f64);
    if let Some(limit) = size.limit_bytes {
        metrics::gauge!(STORE_LIMIT).set(limit as f64);
    }
    metrics::gauge!(STORE_DISK, "file" => "db").set(size.file_bytes as f64);
    metrics::gauge!(STORE_DISK, "file" => "wal").set(size.wal_bytes as f64);
    metrics::counter!(STORE_REFUSED).absolute(size.refused);
}

/// The bytes above which delivered data is pruned, and down to which.
pub fn prune_band(limit: u64, warn_fraction: f64) -> (u64, u64) {
    let warn = limit as f64 * warn_fraction;
    ((warn * PRUNE_FROM) as u64, (warn * PRUNE_TO) as u64)
}

/// Measures, publishes and prunes every `every` until `stop` is cancelled.
pub async fn keep(store: Store, warn_fraction: f64, every: Duration, stop: CancellationToken) {
    let mut was_full = false;
    loop {
        match store.size().await {
            Ok(size) => {
                publish(&size);
                if size.full() != was_full {
                    was_full = size.full();
                    if was_full {
                        tracing::warn!(
                            counted_bytes = size.counted_bytes,
                            limit_bytes = size.limit_bytes,
                            "The store is full of undelivered data: intake is refused (retryably) \
                             until the platform takes the backlog or max_size_mb is raised."
                        );
                    } else {
                        tracing::info!(
                            counted_bytes = size.counted_bytes,
                            "The store has room again: intake resumes."
                        );
                    }
                }
                if let Some(limit) = size.limit_bytes {
                    let (from, to) = prune_band(limit, warn_fraction);
                    if size.counted_bytes > from {
                        match store.prune_for_size(to).await {
                            Ok(report) if report.events + report.messages > 0 => tracing::info!(
                                events = report.events,
                                messages = report.messages,
                                "Delivered data pruned to keep the store inside its budget."
                            ),
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(%error, "Pruning for the size budget failed.")
                            }
                        }
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "Could not measure the store."),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_history_is_pruned_below_the_warning_level() {
        let (from, to) = prune_band(1000, 0.8);
        assert_eq!((from, to), (760, 720));
        assert!(to < from && from < 800);
    }
}
