//! The single writer thread and its group commit.
//!
//! SQLite allows one writer at a time and every durable COMMIT costs an fsync.
//! Instead of one transaction per caller, callers queue jobs on a channel; the
//! writer drains up to `batch_max` queued jobs into **one** transaction (one
//! fsync) and answers each caller only after that COMMIT returned. Each job runs
//! inside its own SAVEPOINT, so one failing job (an unknown case, a constraint)
//! rolls back alone and the rest of the batch still commits.
//!
//! Maintenance jobs (retention: `incremental_vacuum`, WAL checkpoint) cannot run
//! inside a transaction; they run alone between batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::error::{Result, StoreError};
use crate::size_budget::SizeGate;

/// Sends one job's result, called once the batch's COMMIT result is known.
type Completion = Box<dyn FnOnce(Result<()>) + Send>;

/// Work for the writer thread.
pub(crate) trait Job: Send {
    /// Runs inside the batch transaction (or alone, see [`Job::transactional`]);
    /// returns whether the job's own work succeeded, and its completion.
    /// `isolate`: wrap the work in its own SAVEPOINT so that a failure rolls
    /// back this job alone. A batch of one job runs without (a failure then
    /// rolls back the whole transaction, which is the same thing) — a
    /// savepoint copies every page the job touches into a statement journal.
    fn run(self: Box<Self>, conn: &Connection, isolate: bool) -> (JobEnd, Completion);
    /// Fails the job without running it (the batch could not start).
    fn abort(self: Box<Self>, error: StoreError);
    /// Whether the job runs inside the group transaction.
    fn transactional(&self) -> bool {
        true
    }
    /// Whether the job commits an announced inbound message (see
    /// [`GroupCommit`]).
    fn is_intake(&self) -> bool {
        false
    }
}

/// How a job's own work ended (before the batch's COMMIT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JobEnd {
    /// It succeeded.
    pub ok: bool,
    /// It failed because the disk (or the page limit) is full.
    pub full: bool,
}

impl JobEnd {
    fn of<R>(result: &Result<R>) -> Self {
        JobEnd {
            ok: result.is_ok(),
            full: matches!(result, Err(StoreError::Full(_))),
        }
    }
}

/// A closure and the channel its result goes back on.
struct TxJob<F, R> {
    f: F,
    reply: oneshot::Sender<Result<R>>,
    intake: bool,
}

impl<F, R> Job for TxJob<F, R>
where
    F: FnOnce(&Connection) -> Result<R> + Send,
    R: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection, isolate: bool) -> (JobEnd, Completion) {
        let TxJob { f, reply, .. } = *self;
        // A panicking operation (a bug) fails alone; the writer lives on.
        let guarded = |f: F| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn))).unwrap_or_else(
                |_| {
                    Err(StoreError::InvalidState(
                        "a store operation panicked; it was rolled back".to_owned(),
                    ))
                },
            )
        };
        let result = if !isolate {
            guarded(f)
        } else {
            match exec_cached(conn, "SAVEPOINT job") {
                Err(e) => Err(StoreError::sql("opening a savepoint")(e)),
                Ok(()) => {
                    let result = guarded(f);
                    let end = if result.is_ok() {
                        exec_cached(conn, "RELEASE job")
                    } else {
                        exec_cached(conn, "ROLLBACK TO job")
                            .and_then(|()| exec_cached(conn, "RELEASE job"))
                    };
                    match end {
                        Ok(()) => result,
                        Err(e) => {
                            // The savepoint could not be closed (SQLite may
                            // have rolled the whole transaction back on the
                            // job's error, as a full disk does). Whatever
                            // is left of the transaction goes too, so the
                            // job's partial work can never be committed; the
                            // writer then fails the whole batch.
                            if !conn.is_autocommit() {
                                let _ = conn.execute_batch("ROLLBACK");
                            }
                            match result {
                                // The job's own error says why.
                                Err(own) => Err(own),
                                Ok(_) => Err(StoreError::sql("closing a savepoint")(e)),
                            }
                        }
                    }
                }
            }
        };
        let end = JobEnd::of(&result);
        let done: Completion = Box::new(move |commit: Result<()>| {
            // The job's own error first (it says why, e.g. the disk is full),
            // then the transaction's.
            let _ = reply.send(result.and_then(|r| commit.map(|()| r)));
        });
        (end, done)
    }

    fn abort(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }

    fn is_intake(&self) -> bool {
        self.intake
    }
}

/// A job that runs outside any transaction, alone.
struct SoloJob<F, R> {
    f: F,
    reply: oneshot::Sender<Result<R>>,
}

impl<F, R> Job for SoloJob<F, R>
where
    F: FnOnce(&Connection) -> Result<R> + Send,
    R: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection, _isolate: bool) -> (JobEnd, Completion) {
        let SoloJob { f, reply } = *self;
        // As for transactional jobs: a panicking maintenance job fails alone.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| {
                Err(StoreError::InvalidState(
                    "a store maintenance operation panicked".to_owned(),
                ))
            });
        let end = JobEnd::of(&result);
        let done: Completion = Box::new(move |_| {
            let _ = reply.send(result);
        });
        (end, done)
    }

    fn abort(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }

    fn transactional(&self) -> bool {
        false
    }
}

/// Counters of the writer's work (for benchmarks and diagnostics).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Group transactions committed.
    pub transactions: AtomicU64,
    /// Requests committed in them.
    pub requests: AtomicU64,
    /// Transactions that waited for announced messages.
    pub waited: AtomicU64,
}

/// How long a group transaction may wait for announced messages.
///
/// Why: under load the writer used to commit whatever was queued the moment
/// it woke — 1.6 messages per fsync at 16 MLLP connections, because the other
/// messages were still being parsed and mapped. Adapters announce each message
/// when it arrives ([`gateway_core::adapter::IntakePipeline::announce`]); while
/// more messages are announced than the open transaction holds, the writer
/// waits for them (at most `wait`) so they share one COMMIT. With a single
/// sender nothing else is announced and nothing waits.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    /// Live announcement tickets (messages received, not yet answered).
    pub announced: Arc<AtomicUsize>,
    /// The longest a transaction waits for announced messages.
    pub wait: Duration,
    /// Test hook ([`crate::StoreOptions::fail_after_transactions`]): the
    /// writer thread panics outside any job after this many commits.
    pub fail_after: Option<u64>,
    /// The size budget checked before each intake job ([`SizeGate::admit`]).
    pub gate: Arc<SizeGate>,
}

/// How often a waiting writer looks for the announced jobs.
const WAIT_POLL: Duration = Duration::from_micros(50);

/// Whether the writer thread runs, and why it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriterState {
    /// It takes jobs.
    Running,
    /// It stopped because the store was closed.
    Closed,
    /// It died (a panic outside any job, which would otherwise leave every
    /// later write failing with `Closed` while the process looks alive).
    Died(String),
}

/// Handle to the writer thread. Dropping every handle stops the thread after
/// it finished the jobs already queued.
pub(crate) struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    state: watch::Receiver<WriterState>,
}

impl Writer {
    /// Starts the writer on `conn` (already configured and migrated).
    pub(crate) fn spawn(
        conn: Connection,
        batch_max: usize,
        committed: Arc<Notify>,
        counters: Arc<Counters>,
        group: GroupCommit,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(batch_max.max(1) * 4);
        let (state_tx, state) = watch::channel(WriterState::Running);
        let thread = std::thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(conn, rx, batch_max.max(1), committed, counters, group)
                }));
                let end = match ran {
                    Ok(()) => WriterState::Closed,
                    Err(panic) => {
                        let why = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a panic".to_owned());
                        tracing::error!(reason = %why, "The store writer thread died.");
                        WriterState::Died(why)
                    }
                };
                let _ = state_tx.send(end);
            })
            .map_err(|e| StoreError::Io {
                context: "starting the store writer thread",
                message: e.to_string(),
            })?;
        Ok(Writer {
            tx,
            thread: std::sync::Mutex::new(Some(thread)),
            state,
        })
    }

    /// The writer thread's state now.
    pub(crate) fn state(&self) -> WriterState {
        self.state.borrow().clone()
    }

    /// Resolves when the writer thread has died (never when it only closed).
    pub(crate) async fn died(&self) -> String {
        let mut state = self.state.clone();
        loop {
            if let WriterState::Died(why) = &*state.borrow_and_update() {
                return why.clone();
            }
            if state.changed().await.is_err() {
                // The thread is gone and its sender with it: see what it left.
                if let WriterState::Died(why) = &*state.borrow() {
                    return why.clone();
                }
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `f` inside the next group transaction; resolves after COMMIT.
    pub(crate) async fn write<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.queue(f, false).await
    }

    /// [`Writer::write`] for the commit of an announced inbound message.
    pub(crate) async fn write_intake<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.queue(f, true).await
    }

    async fn queue<F, R>(&self, f: F, intake: bool) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Box::new(TxJob { f, reply, intake }))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` alone, outside any transaction (maintenance).
    pub(crate) async fn solo<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Box::new(SoloJob { f, reply }))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Takes the thread handle so the last owner can join it.
    pub(crate) fn take_thread(&self) -> Option<JoinHandle<()>> {
        self.thread.lock().ok().and_then(|mut t| t.take())
    }
}

fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    batch_max: usize,
    committed: Arc<Notify>,
    counters: Arc<Counters>,
    group: GroupCommit,
) {
    let mut carry: Option<Box<dyn Job>> = None;
    let mut reclaim = WalReclaim::default();
    loop {
        if reclaim.due() {
            reclaim.run(&conn);
        }
        let first = match carry.take() {
            Some(job) => job,
            None => match rx.blocking_recv() {
                Some(job) => job,
                None => break,
            },
        };
        if !first.transactional() {
            let (_, done) = first.run(&conn, false);
            done(Ok(()));
            continue;
        }
        let mut batch = vec![first];
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(job) if job.transactional() => batch.push(job),
                Ok(job) => {
                    carry = Some(job);
                    break;
                }
                Err(_) => break,
            }
        }
        if let Err(e) = exec_cached(&conn, "BEGIN IMMEDIATE") {
            let err = StoreError::sql("starting a group transaction")(e);
            for job in batch {
                job.abort(err.clone());
            }
            continue;
        }
        let started = Instant::now();
        let mut disk_full = false;
        let mut intakes = batch.iter().filter(|job| job.is_intake()).count();
        let mut waited = false;
        let mut succeeded = 0u64;
        let isolate = batch.len() > 1;
        let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
        let mut lost: Option<StoreError> = None;
        let mut jobs = batch.into_iter();
        for job in jobs.by_ref() {
            match run_job(&conn, job, isolate, &group.gate, &mut disk_full) {
                Ran::Done(ok, done) => {
                    succeeded += u64::from(ok);
                    completions.push(done);
                }
                Ran::Refused => {}
                Ran::Lost(err, done) => {
                    completions.push(done);
                    lost = Some(err);
                    break;
                }
            }
        }
        reclaim.note(disk_full);
        if let Some(err) = lost {
            // SQLite rolled the whole transaction back on its own (a full
            // disk or an I/O error can do that): every job of the batch lost
            // its work, so none may be answered as committed.
            for job in jobs {
                job.abort(err.clone());
            }
            for done in completions {
                done(Err(err.clone()));
            }
            continue;
        }
        if !isolate && succeeded == 0 {
            // The lone job failed (or was refused): undo its partial work. Its
            // caller gets the job's own error (the completion combines it with
            // this result).
            let rollback = exec_cached(&conn, "ROLLBACK")
                .map_err(StoreError::sql("rolling back a failed job"));
            for done in completions {
                done(rollback.clone());
            }
            continue;
        }
        // Late joiners: jobs queued while the batch ran, and announced
        // messages worth a short wait (see [`GroupCommit`]), share its COMMIT
        // (one fsync) instead of waiting for the next one. Each runs in its
        // own savepoint, so a failing one still rolls back alone.
        while completions.len() < batch_max {
            match rx.try_recv() {
                Ok(job) if job.transactional() => {
                    intakes += usize::from(job.is_intake());
                    match run_job(&conn, job, true, &group.gate, &mut disk_full) {
                        Ran::Done(ok, done) => {
                            succeeded += u64::from(ok);
                            completions.push(done);
                        }
                        Ran::Refused => {}
                        Ran::Lost(err, done) => {
                            completions.push(done);
                            lost = Some(err);
                            break;
                        }
                    }
                }
                Ok(job) => {
                    carry = Some(job);
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty)
                    if group.announced.load(Ordering::Acquire) > intakes
                        && started.elapsed() < group.wait =>
                {
                    waited = true;
                    std::thread::sleep(WAIT_POLL);
                }
                Err(_) => break,
            }
        }
        reclaim.note(disk_full);
        if let Some(err) = lost {
            for done in completions {
                done(Err(err.clone()));
            }
            continue;
        }
        let commit =
            exec_cached(&conn, "COMMIT").map_err(StoreError::sql("committing a group transaction"));
        if let Err(e) = &commit {
            let _ = conn.execute_batch("ROLLBACK");
            reclaim.note(matches!(e, StoreError::Full(_)));
        }
        let ok = commit.is_ok();
        if ok {
            counters.transactions.fetch_add(1, Ordering::Relaxed);
            counters.requests.fetch_add(succeeded, Ordering::Relaxed);
            counters
                .waited
                .fetch_add(u64::from(waited), Ordering::Relaxed);
        }
        for done in completions {
            done(commit.clone());
        }
        if ok {
            committed.notify_waiters();
            committed.notify_one();
        }
        if let Some(limit) = group.fail_after
            && counters.transactions.load(Ordering::Relaxed) >= limit
        {
            panic!("test hook: the writer stops after {limit} transactions");
        }
    }
    tracing::debug!("store writer stopped");
}

/// Gives the WAL's space back after a full disk.
///
/// Why: the WAL is only folded into the database file every
/// `wal_autocheckpoint_pages` (≈ 40 MiB), so on a nearly full disk it is the
/// WAL that grows into the last free bytes — and it keeps the disk full after
/// an operator freed space, since every later transaction appends to it
/// again. After a write failed with `SQLITE_FULL` the writer checkpoints the
/// WAL and truncates it (at most once a second): the pages it holds are mostly
/// versions of the same pages, so folding them in takes little room and frees
/// the rest.
#[derive(Debug, Default)]
struct WalReclaim {
    pending: bool,
    last: Option<Instant>,
}

impl WalReclaim {
    const EVERY: Duration = Duration::from_secs(1);

    fn note(&mut self, disk_full: bool) {
        self.pending |= disk_full;
    }

    fn due(&self) -> bool {
        self.pending && self.last.is_none_or(|t| t.elapsed() >= Self::EVERY)
    }

    fn run(&mut self, conn: &Connection) {
        self.pending = false;
        self.last = Some(Instant::now());
        match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        }) {
            Ok((busy, wal_pages, moved)) => tracing::warn!(
                busy,
                wal_pages,
                moved,
                "The disk was full: WAL checkpointed and truncated to give space back."
            ),
            Err(error) => {
                self.pending = true;
                tracing::warn!(%error, "The disk is full and the WAL could not be checkpointed.")
            }
        }
    }
}

/// What became of one job in a group transaction.
enum Ran {
    /// It ran (successfully or not, in its savepoint): its success and completion.
    Done(bool, Completion),
    /// An intake job refused by the size budget: answered already, nothing ran.
    Refused,
    /// It ran and SQLite rolled the whole transaction back meanwhile.
    Lost(StoreError, Completion),
}

/// Runs one job of a group transaction: an intake job only when the size
/// budget admits it ([`SizeGate::admit`], answered with the refusal at once
/// otherwise), then a check that the transaction is still open.
fn run_job(
    conn: &Connection,
    job: Box<dyn Job>,
    isolate: bool,
    gate: &SizeGate,
    disk_full: &mut bool,
) -> Ran {
    if job.is_intake()
        && let Err(refusal) = gate.admit(conn)
    {
        job.abort(refusal);
        return Ran::Refused;
    }
    let (end, done) = job.run(conn, isolate);
    *disk_full |= end.full;
    if conn.is_autocommit() {
        let why = "SQLite rolled the group transaction back; nothing of it was committed";
        let error = if end.full {
            StoreError::Full(format!("the disk is full ({why})"))
        } else {
            StoreError::Io {
                context: "running a group transaction",
                message: format!("an I/O error ({why})"),
            }
        };
        return Ran::Lost(error, done);
    }
    Ran::Done(end.ok, done)
}

/// Runs a statement without result rows through the statement cache, so the
/// per-job and per-batch transaction statements are parsed once, not per use.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.execute([]))
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (Writer, tempfile::TempDir) {
        writer_failing_after(None)
    }

    fn writer_failing_after(fail_after: Option<u64>) -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tmp");
        let conn = Connection::open(dir.path().join("w.sqlite")).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER NOT NULL)")
            .expect("schema");
        let w = Writer::spawn(
            conn,
            8,
            Arc::new(Notify::new()),
            Arc::new(Counters::default()),
            GroupCommit {
                announced: Arc::new(AtomicUsize::new(0)),
                wait: Duration::from_millis(1),
                fail_after,
                gate: Arc::new(SizeGate::new(None)),
            },
        )
        .expect("spawn");
        (w, dir)
    }

    #[tokio::test]
    async fn a_panicking_maintenance_job_fails_alone() {
        let (w, _dir) = writer();
        let result: Result<()> = w.solo(|_| panic!("a bug in maintenance")).await;
        assert!(
            matches!(result, Err(StoreError::InvalidState(_))),
            "{result:?}"
        );
        assert_eq!(w.state(), WriterState::Running);
        assert_eq!(count(&w).await.expect("the writer lives on"), 0);
    }

    #[tokio::test]
    async fn a_dead_writer_says_so_and_why() {
        let (w, _dir) = writer_failing_after(Some(1));
        w.write(|c| {
            c.execute("INSERT INTO t VALUES (1)", [])
                .map_err(StoreError::sql("insert"))
        })
        .await
        .expect("the commit before the failure is answered");
        let why = tokio::time::timeout(Duration::from_secs(30), w.died())
            .await
            .expect("the death is reported");
        assert!(why.contains("test hook"), "{why}");
        assert!(matches!(w.state(), WriterState::Died(_)));
        assert!(matches!(count(&w).await, Err(StoreError::Closed)));
    }

    fn count(w: &Writer) -> impl std::future::Future<Output = Result<i64>> + '_ {
        w.write(|c| {
            c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .map_err(StoreError::sql("count"))
        })
    }

    #[tokio::test]
    async fn a_lone_failing_job_leaves_nothing_behind() {
        let (w, _dir) = writer();
        // Runs alone (no savepoint): its first insert must be rolled back.
        let failed = w
            .write(|c| {
                c.execute("INSERT INTO t (v) VALUES (1)", [])
                    .map_err(StoreError::sql("insert"))?;
                c.execute("INSERT INTO t (v) VALUES (NULL)", [])
                    .map_err(StoreError::sql("insert"))?;
                Ok(())
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(count(&w).await.expect("count"), 0);
        let panicked = w
            .write(|c| -> Result<()> {
                c.execute("INSERT INTO t (v) VALUES (2)", [])
                    .map_err(StoreError::sql("insert"))?;
                panic!("a bug in an operation")
            })
            .await;
        assert!(panicked.is_err());
        assert_eq!(count(&w).await.expect("count"), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_savepoint_cannot_be_closed_commits_nothing_half_done() {
        // Job 5 closes its own savepoint behind the writer's back, so the
        // writer's RELEASE fails when it runs in a batch: its transaction is
        // abandoned and every job of that batch is answered with an error.
        // Whatever happens, "answered Ok" must equal "committed".
        let (w, _dir) = writer();
        let w = Arc::new(w);
        // Hold the writer until all 32 jobs are queued, so they run in
        // batches (of 8) and job 5 never runs alone.
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let w = w.clone();
            tokio::spawn(async move {
                w.solo(move |_| {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                    Ok(())
                })
                .await
            })
        };
        tokio::task::block_in_place(|| started_rx.recv()).expect("the blocker runs");
        let mut tasks = Vec::new();
        for i in 0..32i64 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                let r = w
                    .write(move |c| {
                        c.execute("INSERT INTO t (v) VALUES (?1)", [i])
                            .map_err(StoreError::sql("insert"))?;
                        if i == 5 {
                            let _ = c.execute_batch("RELEASE job");
                        }
                        Ok(())
                    })
                    .await;
                (i, r.is_ok())
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while w.tx.capacity() > 0 {
            assert!(Instant::now() < deadline, "the jobs were never all queued");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        release_tx.send(()).expect("release");
        blocker.await.expect("blocker").expect("blocker job");
        let mut answered_ok = Vec::new();
        for t in tasks {
            let (i, ok) = t.await.expect("task");
            if ok {
                answered_ok.push(i);
            }
        }
        answered_ok.sort_unstable();
        let stored: Vec<i64> = w
            .write(|c| {
                let mut st = c
                    .prepare("SELECT v FROM t ORDER BY v")
                    .map_err(StoreError::sql("select"))?;
                let rows: Vec<i64> = st
                    .query_map([], |r| r.get(0))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<i64>>>())
                    .map_err(StoreError::sql("select"))?;
                Ok(rows)
            })
            .await
            .expect("read back");
        assert_eq!(stored, answered_ok);
        assert!(!answered_ok.contains(&5), "job 5's batch failed whole");
        assert!(answered_ok.len() >= 24, "the other batches committed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_a_batch_only_the_failing_job_is_rolled_back() {
        let (w, _dir) = writer();
        let w = Arc::new(w);
        let mut tasks = Vec::new();
        for i in 0..32i64 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                w.write(move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [i])
                        .map_err(StoreError::sql("insert"))?;
                    if i % 2 == 1 {
                        c.execute("INSERT INTO t (v) VALUES (NULL)", [])
                            .map_err(StoreError::sql("insert"))?;
                    }
                    Ok(())
                })
                .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.expect("task").is_ok());
        }
        assert_eq!(ok, 16);
        assert_eq!(count(&w).await.expect("count"), 16);
    }
}
