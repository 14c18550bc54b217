//! The async store handle: one writer thread (group commit) plus a pool of
//! read connections.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_core::adapter::IntakeTicket;
use gateway_core::case::Decision;
use rusqlite::Connection;
use tokio::sync::Notify;

use crate::error::{Result, StoreError};
use crate::model::*;
use crate::read::Reader;
use crate::size_budget::{SizeGate, StoreSize};
use crate::writer::{Counters, GroupCommit, Writer, WriterState};
use crate::{ops, retention, schema};

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most requests committed in one group transaction (default 256).
    pub batch_max: usize,
    /// How long a writer waits for another process's write lock (default 5 s).
    pub busy_timeout: Duration,
    /// Read connections kept open for reuse (default 4).
    pub readers: usize,
    /// The longest a group transaction waits for messages that adapters
    /// announced ([`Store::intake_ticket`]) before it commits (default 1 ms;
    /// zero commits at once).
    pub group_commit_wait: Duration,
    /// WAL pages after which a commit checkpoints the WAL into the main file
    /// (default 10 000 ≈ 40 MiB). SQLite's default of 1 000 checkpointed so
    /// often that the same index pages were copied to the file again and
    /// again: `store-bench` measured 10 000 at 1.04–1.26× the throughput of
    /// 1 000 with 16 writers and a 3× lower p99 for single commits.
    pub wal_autocheckpoint_pages: u32,
    /// Test hook, for proving that a dead writer stops the daemon: the writer
    /// thread panics outside any job after this many group commits (every
    /// commit before it is complete and answered). `None` in production.
    #[doc(hidden)]
    pub fail_after_transactions: Option<u64>,
    /// The intake size budget in bytes (`[store] max_size_mb`): at it, intake
    /// commits fail with [`StoreError::Full`] before anything is written (see
    /// [`Store::size`]). `None` (the default): no limit.
    pub max_bytes: Option<u64>,
    /// Test hook, for proving the store's answer to a full disk: SQLite's
    /// `PRAGMA max_page_count` on the writer connection, so that writes
    /// beyond it fail with `SQLITE_FULL` as on a full file system. `None` in
    /// production.
    #[doc(hidden)]
    pub max_page_count: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            batch_max: 256,
            busy_timeout: Duration::from_secs(5),
            readers: 4,
            group_commit_wait: Duration::from_millis(1),
            wal_autocheckpoint_pages: 10_000,
            fail_after_transactions: None,
            max_bytes: None,
            max_page_count: None,
        }
    }
}

pub(crate) struct Inner {
    path: PathBuf,
    pub(crate) writer: Writer,
    readers: Mutex<Vec<Reader>>,
    max_readers: usize,
    committed: Arc<Notify>,
    counters: Arc<Counters>,
    announced: Arc<AtomicUsize>,
    gate: Arc<SizeGate>,
}

/// How much grouping the writer achieved since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Group transactions committed (one fsync each).
    pub transactions: u64,
    /// Write requests committed in them.
    pub requests: u64,
    /// Transactions that waited for announced messages before committing.
    pub waited: u64,
}

/// A cheap-to-clone handle on one store file.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path`: WAL, `synchronous=FULL`,
    /// foreign keys on, migrations applied. Fails with
    /// [`StoreError::NewerSchema`] on a file from a newer binary.
    pub async fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let opts = options.clone();
        let gate = Arc::new(SizeGate::new(options.max_bytes));
        let g = gate.clone();
        let conn = tokio::task::spawn_blocking(move || {
            let conn = open_writer(&p, &opts)?;
            g.refresh_audit(&conn, true)?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(|e| StoreError::Io {
            context: "opening the store",
            message: e.to_string(),
        })??;
        let committed = Arc::new(Notify::new());
        let counters = Arc::new(Counters::default());
        let announced = Arc::new(AtomicUsize::new(0));
        let group = GroupCommit {
            announced: announced.clone(),
            wait: options.group_commit_wait,
            fail_after: options.fail_after_transactions,
            gate: gate.clone(),
        };
        let writer = Writer::spawn(
            conn,
            options.batch_max,
            committed.clone(),
            counters.clone(),
            group,
        )?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                writer,
                readers: Mutex::new(Vec::new()),
                max_readers: options.readers,
                committed,
                counters,
                announced,
                gate,
            }),
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Group transactions and requests committed so far by this handle's writer.
    pub fn commit_stats(&self) -> CommitStats {
        use std::sync::atomic::Ordering;
        CommitStats {
            transactions: self.inner.counters.transactions.load(Ordering::Relaxed),
            requests: self.inner.counters.requests.load(Ordering::Relaxed),
            waited: self.inner.counters.waited.load(Ordering::Relaxed),
        }
    }

    /// Whether the writer thread runs (readiness and the watchdog depend on it).
    pub fn writer_state(&self) -> WriterState {
        self.inner.writer.state()
    }

    /// Resolves with the reason when the writer thread dies: every later
    /// write would fail, so the daemon stops and its supervisor restarts it.
    pub async fn writer_died(&self) -> String {
        self.inner.writer.died().await
    }

    /// Signalled after every successful group commit (the forwarder waits on it).
    pub fn committed(&self) -> Arc<Notify> {
        self.inner.committed.clone()
    }

    /// Stores a raw message and, when accepted, upserts its case snapshot and
    /// appends the case event — one transaction. A message with the same sender,
    /// control id and content hash as an accepted one is stored as a duplicate
    /// and answered with the original's id, without a second event. Returns only
    /// after COMMIT: the caller may acknowledge then.
    pub async fn commit_inbound(&self, message: NewInbound) -> Result<InboundReceipt> {
        self.inner
            .writer
            .write_intake(move |conn| ops::commit_inbound(conn, message))
            .await
    }

    /// Stores a decision for a known case, sets the case snapshot's decision
    /// and status ([`gateway_core::case::DecisionStatus::case_status`]), appends a
    /// `decided` event and queues the write-back — one transaction.
    /// [`StoreError::UnknownCase`] when the case was never stored.
    pub async fn record_decision(
        &self,
        case_id: &str,
        decision: Decision,
    ) -> Result<DecisionReceipt> {
        let case_id = case_id.to_owned();
        self.inner
            .writer
            .write(move |conn| ops::record_decision(conn, &case_id, decision))
            .await
    }

    /// Records a delivery attempt and the event's new state (forwarder).
    pub async fn record_attempt(&self, attempt: DeliveryAttempt) -> Result<()> {
        self.inner
            .writer
            .write(move |conn| ops::record_attempt(conn, &attempt))
            .await
    }

    /// Records the attempts of one batch delivery in one transaction.
    pub async fn record_attempts(&self, attempts: Vec<DeliveryAttempt>) -> Result<()> {
        self.inner
            .writer
            .write(move |conn| {
                for attempt in &attempts {
                    ops::record_attempt(conn, attempt)?;
                }
                Ok(())
            })
            .await
    }

    /// `messages replay ID`: a rejected/error message is queued for
    /// re-processing ([`Store::replay_requests`]); an accepted or duplicate
    /// message's dead events are re-queued for delivery, keeping their place in
    /// their case's order.
    pub async fn replay_message(&self, message_id: i64) -> Result<ReplayOutcome> {
        self.inner
            .writer
            .write(move |conn| ops::replay_message(conn, message_id))
            .await
    }

    /// [`Store::replay_message`] and the audit entry `audit` builds from its
    /// outcome, in one transaction: the replay happens if and only if its
    /// audit row is committed.
    pub async fn replay_message_audited<F>(
        &self,
        message_id: i64,
        audit: F,
    ) -> Result<ReplayOutcome>
    where
        F: FnOnce(&ReplayOutcome) -> AuditEntry + Send + 'static,
    {
        self.inner
            .writer
            .write(move |conn| {
                let outcome = ops::replay_message(conn, message_id)?;
                ops::audit(conn, &audit(&outcome))?;
                Ok(outcome)
            })
            .await
    }

    /// [`Store::requeue_event`] and its audit entry in one transaction.
    pub async fn requeue_event_audited(&self, event_id: &str, audit: AuditEntry) -> Result<()> {
        let id = event_id.to_owned();
        self.inner
            .writer
            .write(move |conn| {
                ops::requeue_event(conn, &id)?;
                ops::audit(conn, &audit)?;
                Ok(())
            })
            .await
    }

    /// Lets one dead letter go without delivering it, with its audit entry, in
    /// one transaction: the case's later events, held back behind it so far,
    /// are delivered again. Returns the event's case id.
    pub async fn skip_dead_event_audited(
        &self,
        event_id: &str,
        audit: AuditEntry,
    ) -> Result<String> {
        let id = event_id.to_owned();
        self.inner
            .writer
            .write(move |conn| {
                let case_id = ops::skip_dead_event(conn, &id)?;
                ops::audit(conn, &audit)?;
                Ok(case_id)
            })
            .await
    }

    /// Moves every pending due time later than `latest` back to it; returns
    /// how many events moved (see the forwarder's clock handling).
    pub async fn clamp_due_times(&self, latest: jiff::Timestamp) -> Result<usize> {
        let ms = latest.as_millisecond();
        self.inner
            .writer
            .write(move |conn| ops::clamp_due_times(conn, ms))
            .await
    }

    /// Re-queues one dead event for delivery.
    pub async fn requeue_event(&self, event_id: &str) -> Result<()> {
        let id = event_id.to_owned();
        self.inner
            .writer
            .write(move |conn| ops::requeue_event(conn, &id))
            .await
    }

    /// Records a write-back attempt's result.
    pub async fn complete_writeback(
        &self,
        decision_id: i64,
        outcome: WriteBackOutcome,
    ) -> Result<()> {
        self.inner
            .writer
            .write(move |conn| ops::complete_writeback(conn, decision_id, &outcome))
            .await
    }

    /// Appends an audit entry; returns its id.
    pub async fn audit(&self, entry: AuditEntry) -> Result<i64> {
        self.inner
            .writer
            .write(move |conn| ops::audit(conn, &entry))
            .await
    }

    /// Prunes finished data by `policy` and gives the space back to the file
    /// system (incremental vacuum + WAL checkpoint).
    pub async fn prune(&self, policy: RetentionPolicy) -> Result<PruneReport> {
        // Bounded steps, each its own writer job: intake queued meanwhile
        // commits between them (a prune of a large backlog used to hold the
        // writer for its whole length and HL7 senders timed out).
        let mut report = PruneReport {
            bytes_before: retention::file_bytes(&self.inner.path),
            ..PruneReport::default()
        };
        loop {
            let so_far = report;
            let (more, next) = self
                .inner
                .writer
                .solo(move |conn| {
                    let mut step = so_far;
                    let more = retention::prune_step(conn, &policy, &mut step)?;
                    Ok((more, step))
                })
                .await?;
            report = next;
            if !more {
                break;
            }
        }
        while self.inner.writer.solo(retention::reclaim_step).await? {}
        self.inner.writer.solo(retention::truncate_wal).await?;
        report.bytes_after = retention::file_bytes(&self.inner.path);
        Ok(report)
    }

    /// Prunes delivered data (oldest first, in bounded writer jobs) until
    /// the bytes the budget counts are at most `target`, without giving the
    /// freed pages back to the file system: SQLite reuses them before the
    /// file grows, and a store kept near its budget would otherwise shrink
    /// and regrow its file on every pass. Pending and dead events, their
    /// messages and the audit log are never pruned.
    pub async fn prune_for_size(&self, target: u64) -> Result<PruneReport> {
        let policy = RetentionPolicy {
            max_age_secs: None,
            max_bytes: Some(target),
            audit_max_age_secs: None,
        };
        let mut report = PruneReport::default();
        loop {
            let so_far = report;
            let (more, next) = self
                .inner
                .writer
                .solo(move |conn| {
                    let mut step = so_far;
                    let more = retention::prune_step(conn, &policy, &mut step)?;
                    Ok((more, step))
                })
                .await?;
            report = next;
            if !more {
                break;
            }
        }
        Ok(report)
    }

    /// How big the store is against its intake budget (live pages, the audit
    /// log's share, the files on disk, refusals so far). Reads through the
    /// reader pool; the audit log's pages are re-measured at most once a
    /// minute.
    pub async fn size(&self) -> Result<StoreSize> {
        let inner = self.inner.clone();
        let (used, audit) = self
            .read(move |r| {
                let used = crate::size_budget::used_bytes(&r.conn)?;
                let audit = inner.gate.refresh_audit(&r.conn, false)?;
                Ok((used, audit))
            })
            .await?;
        let (file_bytes, wal_bytes) = crate::size_budget::disk_bytes(&self.inner.path);
        Ok(StoreSize {
            used_bytes: used,
            audit_bytes: audit,
            counted_bytes: used.saturating_sub(audit),
            limit_bytes: self.inner.gate.limit(),
            file_bytes,
            wal_bytes,
            refused: self.inner.gate.refused(),
        })
    }

    /// Changes the intake size budget while running (`None`: no limit); a
    /// raised limit lets refused intake in again with the next commit.
    pub fn set_size_limit(&self, max_bytes: Option<u64>) {
        self.inner.gate.set_limit(max_bytes);
    }

    /// Test hook ([`StoreOptions::max_page_count`]): moves SQLite's page
    /// limit while running, as freeing disk space would; returns the limit now
    /// in force.
    #[doc(hidden)]
    pub async fn set_max_page_count(&self, pages: u64) -> Result<u64> {
        self.inner
            .writer
            .solo(move |conn| {
                conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n.max(0) as u64)
                .map_err(StoreError::sql("setting the page limit"))
            })
            .await
    }

    /// A ticket announcing an inbound message that will be committed soon;
    /// hold it until its commit returned (see
    /// [`gateway_core::adapter::IntakePipeline::announce`]).
    pub fn intake_ticket(&self) -> IntakeTicket {
        IntakeTicket::counted(self.inner.announced.clone())
    }

    /// Folds the WAL back into the main file and truncates it, so that the
    /// file alone is the whole store (a clean shutdown does this last: a copy
    /// of the file or a look at its header then sees every commit). Returns
    /// whether the checkpoint completed (`false`: a reader still held an older
    /// snapshot; nothing is lost, the WAL simply stays).
    pub async fn checkpoint(&self) -> Result<bool> {
        self.inner
            .writer
            .solo(|conn| {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                    row.get::<_, i64>(0)
                })
                .map(|busy| busy == 0)
                .map_err(StoreError::sql("checkpointing the WAL"))
            })
            .await
    }

    /// Proves the store is writable now (for `/readyz`): takes the write lock
    /// through the writer thread and commits an empty transaction.
    pub async fn check_writable(&self) -> Result<()> {
        self.inner.writer.write(|_| Ok(())).await
    }

    /// Messages queued for re-processing (see [`Reader::replay_requests`]).
    pub async fn replay_requests(&self, limit: usize) -> Result<Vec<StoredMessage>> {
        self.read(move |r| r.replay_requests(limit)).await
    }

    /// A case's latest snapshot.
    pub async fn get_case(&self, case_id: &str) -> Result<Option<CaseRecord>> {
        let id = case_id.to_owned();
        self.read(move |r| r.get_case(&id)).await
    }

    /// Open cases of a patient (see [`crate::patient_key`]).
    pub async fn open_cases_for_patient(&self, patient_key: &str) -> Result<Vec<CaseRecord>> {
        let key = patient_key.to_owned();
        self.read(move |r| r.open_cases_for_patient(&key)).await
    }

    /// Lists messages (see [`Reader::list_messages`]).
    pub async fn list_messages(&self, filter: MessageFilter) -> Result<Vec<MessageSummary>> {
        self.read(move |r| r.list_messages(&filter)).await
    }

    /// One message with its bytes.
    pub async fn get_message(&self, id: i64) -> Result<Option<StoredMessage>> {
        self.read(move |r| r.get_message(id)).await
    }

    /// Dead-lettered events, oldest first.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEvent>> {
        self.read(move |r| r.dead_letters(limit)).await
    }

    /// Outbox depth, oldest pending age, dead-letter count.
    pub async fn outbox_stats(&self) -> Result<OutboxStats> {
        self.read(|r| r.outbox_stats()).await
    }

    /// Decisions whose write-back is due (optionally for one adapter).
    pub async fn pending_writebacks(
        &self,
        adapter: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WriteBackJob>> {
        let adapter = adapter.map(str::to_owned);
        self.read(move |r| r.pending_writebacks(adapter.as_deref(), limit))
            .await
    }

    /// Runs any read query on a pooled read connection, off the async threads.
    pub async fn read<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Reader) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut p| p.pop());
            let reader = match pooled {
                Some(r) => r,
                None => Reader::open(&inner.path)?,
            };
            let result = f(&reader);
            if let Ok(mut pool) = inner.readers.lock()
                && pool.len() < inner.max_readers
            {
                pool.push(reader);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Io {
            context: "running a read query",
            message: e.to_string(),
        })?
    }

    /// Closes this handle. When it is the last one, waits until the writer has
    /// committed everything queued and stopped.
    pub async fn close(self) {
        let thread = match Arc::try_unwrap(self.inner) {
            Ok(inner) => {
                let thread = inner.writer.take_thread();
                drop(inner);
                thread
            }
            Err(_) => None,
        };
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

fn open_writer(path: &Path, options: &StoreOptions) -> Result<Connection> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        crate::private_files::create_private_dir(dir).map_err(|e| StoreError::Io {
            context: "creating the store directory",
            message: e.to_string(),
        })?;
    }
    // Owner-only before the first byte is written (the WAL and SHM files
    // SQLite creates take the main file's mode).
    crate::private_files::create_private_file(path)
        .and_then(|()| crate::private_files::restrict_store_files(path))
        .map_err(|e| StoreError::Io {
            context: "restricting the store file to its owner",
            message: e.to_string(),
        })?;
    let mut conn = Connection::open(path).map_err(StoreError::sql("opening the store"))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(StoreError::sql("setting the busy timeout"))?;
    crate::packing::register(&conn)?;
    check_integrity(&conn, path)?;
    // Refuse a newer file before touching its settings.
    if schema::check_not_newer(&conn)? == 0 {
        // A new file: must happen before WAL mode writes the header and before
        // the first table exists; lets retention give pages back to the file
        // system with `incremental_vacuum`.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
            .map_err(StoreError::sql("enabling incremental auto-vacuum"))?;
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(StoreError::sql("enabling WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::InvalidState(format!(
            "the store file system does not support WAL (journal mode {mode})"
        )));
    }
    // `temp_store = MEMORY`: each writer job runs in a SAVEPOINT inside the
    // group transaction, and SQLite copies every page a job changes that an
    // earlier job of the batch already changed into a statement journal; on
    // the default temp store that is a temporary file (a `pwrite` per page per
    // job, ~6% of the writer's CPU). In memory it is a copy, bounded by the
    // batch. Durability is unaffected: the WAL is the only journal that counts.
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(StoreError::sql("configuring the store"))?;
    // See `StoreOptions::wal_autocheckpoint_pages`. The WAL file is kept at
    // its size after a checkpoint (overwriting allocated blocks keeps fsync
    // cheap) but truncated when a long backlog made it larger than 64 MiB.
    conn.execute_batch(&format!(
        "PRAGMA wal_autocheckpoint = {};
         PRAGMA journal_size_limit = {};",
        options.wal_autocheckpoint_pages,
        64 * 1024 * 1024
    ))
    .map_err(StoreError::sql("configuring WAL checkpoints"))?;
    schema::migrate(&mut conn)?;
    if let Some(pages) = options.max_page_count {
        let set: i64 = conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                r.get(0)
            })
            .map_err(StoreError::sql("setting the page limit"))?;
        tracing::warn!(
            pages = set,
            "Test hook set: the store file is limited to this many pages."
        );
    }
    // The bundled SQLite is built with STAT4, which marks a cached statement
    // expired whenever a newly bound value could change its plan; the dedup
    // probe of every intake commit was re-prepared each time (~4% of the
    // writer's CPU). The store runs no ANALYZE, so the plans never depend on
    // the values: keep them.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(StoreError::sql("configuring the query planner"))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// `PRAGMA quick_check(1)`: every page and index entry well formed, stopping
/// at the first problem. It reads the file once (a few seconds per GiB);
/// writing on into a damaged file would spread the damage and hide it until a
/// read fails, so a damaged store refuses to open and says how to recover.
fn check_integrity(conn: &Connection, path: &Path) -> Result<()> {
    let verdict: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(|e| StoreError::Damaged {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(StoreError::Damaged {
            path: path.display().to_string(),
            detail: verdict,
        })
    }
}
