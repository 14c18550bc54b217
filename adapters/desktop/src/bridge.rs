//! What the daemon embeds: configuration, scheduled/triggered reads into the
//! intake pipeline, and write-back of decisions through the write playbook.
//!
//! The bridge owns one driver, connected lazily and kept alive between runs (the
//! X11 clipboard lives only as long as its owner) and dropped after a driver
//! error so the next run reconnects. Runs are blocking UI work: they execute on
//! tokio's blocking pool, and the engine's global lock keeps them one at a time.
//! An aborted run hands its screenshot and reason to an [`EvidenceSink`] (the
//! daemon stores it for the operator).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_core::adapter::{
    BoxFuture, IntakeOutcome, IntakePipeline, WriteBack, WriteBackReceipt,
};
use gateway_core::{Case, GatewayError};
use serde::Deserialize;

use crate::driver::{Driver, DriverError};
use crate::engine::{Abort, AbortReason, RunOptions, RunReport, run_playbook};
use crate::playbook::{Playbook, PlaybookError, PlaybookKind};

/// The `[adapters.desktop]` section of the daemon's configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DesktopConfig {
    /// Mapping profile name for read cases (default `legacy-desktop`).
    #[serde(default = "default_profile")]
    pub profile: String,
    /// X display (`:0`); default `$DISPLAY`. X11 only: on Windows the bridge
    /// drives the desktop of the session it runs in.
    #[serde(default)]
    pub display: Option<String>,
    /// Read playbook (screen → source tree), if reads are wanted.
    #[serde(default)]
    pub read_playbook: Option<PathBuf>,
    /// Write playbook (decision → chart), if write-back is wanted.
    #[serde(default)]
    pub write_playbook: Option<PathBuf>,
    /// Run the read playbook every this many seconds (0 or absent: only on trigger).
    #[serde(default)]
    pub read_interval_secs: Option<u64>,
    /// Where screenshots of aborted runs go when no evidence sink is given
    /// (library use; the daemon keeps them in its store and ignores this).
    #[serde(default)]
    pub evidence_dir: Option<PathBuf>,
    /// Hard bound on any single desktop call, connecting included (default
    /// 5000 ms; typing gets 25 ms more per character). A hung or vanished
    /// display server aborts the run after this instead of blocking it.
    #[serde(default)]
    pub call_timeout_ms: Option<u64>,
}

fn default_profile() -> String {
    "legacy-desktop".to_owned()
}

impl DesktopConfig {
    /// A config with the given playbooks and defaults elsewhere.
    pub fn new(read_playbook: Option<PathBuf>, write_playbook: Option<PathBuf>) -> Self {
        DesktopConfig {
            profile: default_profile(),
            display: None,
            read_playbook,
            write_playbook,
            read_interval_secs: None,
            evidence_dir: None,
            call_timeout_ms: None,
        }
    }

    /// The call bounds this section asks for.
    pub fn bounds(&self) -> crate::bounded::Bounds {
        let mut bounds = crate::bounded::Bounds::default();
        if let Some(ms) = self.call_timeout_ms.filter(|ms| *ms > 0) {
            bounds.call = Duration::from_millis(ms);
        }
        bounds
    }
}

/// Evidence of an aborted run, for the operator (no PHI except inside the PNG,
/// which belongs in the store like any raw message).
#[derive(Debug, Clone)]
pub struct AbortEvidence {
    /// The case being written, for write runs.
    pub case_id: Option<String>,
    /// Playbook name.
    pub playbook: String,
    /// `step 5 \`type-auth\``, or `start`.
    pub step: String,
    /// Stable reason code (`unexpected_window`, `verify_mismatch`, …).
    pub reason: &'static str,
    /// The full (PHI-free) error text.
    pub message: String,
    /// Screenshot PNG, when one was taken.
    pub png: Option<Vec<u8>>,
}

impl AbortEvidence {
    fn from_abort(abort: &Abort, case_id: Option<&str>) -> Self {
        AbortEvidence {
            case_id: case_id.map(str::to_owned),
            playbook: abort.playbook.clone(),
            step: abort
                .step
                .as_ref()
                .map(|(i, id, _)| format!("step {} `{id}`", i + 1))
                .unwrap_or_else(|| "start".to_owned()),
            reason: abort.reason.code(),
            message: abort.to_string(),
            png: abort.screenshot.as_ref().map(|s| s.png.clone()),
        }
    }
}

/// Keeps the evidence of aborted runs.
pub trait EvidenceSink: Send + Sync {
    /// Stores `evidence`; returns where it went (for the error message).
    fn keep(&self, evidence: &AbortEvidence) -> Result<String, String>;
}

/// Writes `<n>-<playbook>.png` and `.json` into a directory.
#[derive(Debug, Clone)]
pub struct DirectorySink {
    dir: PathBuf,
}

impl DirectorySink {
    /// A sink writing into `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirectorySink { dir: dir.into() }
    }
}

impl EvidenceSink for DirectorySink {
    fn keep(&self, evidence: &AbortEvidence) -> Result<String, String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let stamp = jiff::Timestamp::now().as_millisecond();
        let base = self.dir.join(format!("{stamp}-{}", evidence.playbook));
        if let Some(png) = &evidence.png {
            std::fs::write(base.with_extension("png"), png).map_err(|e| e.to_string())?;
        }
        let meta = serde_json::json!({
            "case_id": evidence.case_id, "playbook": evidence.playbook,
            "step": evidence.step, "reason": evidence.reason, "message": evidence.message,
            "screenshot": evidence.png.as_ref().map(|_| base.with_extension("png")),
        });
        std::fs::write(base.with_extension("json"), meta.to_string()).map_err(|e| e.to_string())?;
        Ok(base.with_extension("json").display().to_string())
    }
}

/// An aborted run and where its evidence went (when a sink kept it).
#[derive(Debug)]
pub struct Failed {
    /// The abort.
    pub abort: Box<Abort>,
    /// What the evidence sink answered (`evidence:17`, a file path).
    pub evidence: Option<String>,
}

/// What [`DesktopBridge::try_run_blocking`] did.
#[derive(Debug)]
pub enum RunNow {
    /// Another run holds the desktop; nothing was done.
    Busy,
    /// The run finished.
    Done(RunReport),
    /// The run aborted.
    Aborted(Failed),
}

/// What [`DesktopBridge::read_now`] did.
#[derive(Debug)]
pub enum ReadNow {
    /// No read playbook is configured.
    NotConfigured,
    /// Another playbook holds the desktop; nothing was done.
    Busy,
    /// The screen was read and submitted; the pipeline's verdict.
    Done(IntakeOutcome),
    /// The read playbook aborted (evidence kept when possible).
    Aborted(Failed),
    /// The run could not be started or the pipeline failed.
    Failed(GatewayError),
}

/// Makes a driver (called lazily, and again after a driver failure).
pub type DriverFactory = Box<dyn Fn() -> Result<Box<dyn Driver>, DriverError> + Send + Sync>;

/// Why the bridge could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A playbook failed to load.
    #[error(transparent)]
    Playbook(#[from] PlaybookError),
    /// A playbook of the wrong kind was configured.
    #[error("{0}")]
    Kind(String),
}

/// The desktop adapter instance the daemon runs (cheap to clone: shared state).
#[derive(Clone)]
pub struct DesktopBridge {
    inner: Arc<Inner>,
}

struct Inner {
    config: DesktopConfig,
    read: Option<Arc<Playbook>>,
    write: Option<Arc<Playbook>>,
    factory: DriverFactory,
    driver: Mutex<Option<Box<dyn Driver>>>,
    evidence: Option<Arc<dyn EvidenceSink>>,
    options: RunOptions,
}

impl std::fmt::Debug for DesktopBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesktopBridge")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn load_kind(path: &Path, kind: PlaybookKind) -> Result<Arc<Playbook>, BridgeError> {
    let pb = Playbook::load(path)?;
    if pb.kind != kind {
        return Err(BridgeError::Kind(format!(
            "{} is a {} playbook; a {} playbook is configured here",
            path.display(),
            pb.kind.as_str(),
            kind.as_str()
        )));
    }
    Ok(Arc::new(pb))
}

impl DesktopBridge {
    /// Loads and checks the configured playbooks; the driver connects on first use.
    pub fn new(
        config: DesktopConfig,
        factory: DriverFactory,
        evidence: Option<Arc<dyn EvidenceSink>>,
    ) -> Result<DesktopBridge, BridgeError> {
        let read = config
            .read_playbook
            .as_deref()
            .map(|p| load_kind(p, PlaybookKind::Read))
            .transpose()?;
        let write = config
            .write_playbook
            .as_deref()
            .map(|p| load_kind(p, PlaybookKind::Write))
            .transpose()?;
        let evidence = evidence.or_else(|| {
            config
                .evidence_dir
                .clone()
                .map(|d| Arc::new(DirectorySink::new(d)) as Arc<dyn EvidenceSink>)
        });
        Ok(DesktopBridge {
            inner: Arc::new(Inner {
                config,
                read,
                write,
                factory,
                driver: Mutex::new(None),
                evidence,
                options: RunOptions::default(),
            }),
        })
    }

    /// A bridge on the X11 driver for `config.display` (or `$DISPLAY`), every
    /// call bounded by [`DesktopConfig::bounds`] ([`crate::bounded`]).
    #[cfg(unix)]
    pub fn x11(
        config: DesktopConfig,
        evidence: Option<Arc<dyn EvidenceSink>>,
    ) -> Result<DesktopBridge, BridgeError> {
        let display = config.display.clone();
        let bounds = config.bounds();
        let factory: DriverFactory = Box::new(move || {
            let display = display.clone();
            crate::bounded::BoundedDriver::spawn(
                move || {
                    crate::x11::X11Driver::connect(display.as_deref())
                        .map(|d| Box::new(d) as Box<dyn Driver>)
                },
                bounds,
            )
            .map(|d| Box::new(d) as Box<dyn Driver>)
        });
        DesktopBridge::new(config, factory, evidence)
    }

    /// A bridge on the Windows driver for the interactive desktop this process
    /// runs on (`config.display` does not apply), every call bounded by
    /// [`DesktopConfig::bounds`] ([`crate::bounded`]).
    #[cfg(windows)]
    pub fn windows(
        config: DesktopConfig,
        evidence: Option<Arc<dyn EvidenceSink>>,
    ) -> Result<DesktopBridge, BridgeError> {
        let bounds = config.bounds();
        let factory: DriverFactory = Box::new(move || {
            crate::bounded::BoundedDriver::spawn(
                || crate::windows::WindowsDriver::connect().map(|d| Box::new(d) as Box<dyn Driver>),
                bounds,
            )
            .map(|d| Box::new(d) as Box<dyn Driver>)
        });
        DesktopBridge::new(config, factory, evidence)
    }

    /// A bridge on this platform's driver: [`DesktopBridge::x11`] on Unix,
    /// [`DesktopBridge::windows`] on Windows.
    #[cfg(any(unix, windows))]
    pub fn native(
        config: DesktopConfig,
        evidence: Option<Arc<dyn EvidenceSink>>,
    ) -> Result<DesktopBridge, BridgeError> {
        #[cfg(unix)]
        return DesktopBridge::x11(config, evidence);
        #[cfg(windows)]
        return DesktopBridge::windows(config, evidence);
    }

    /// The configuration.
    pub fn config(&self) -> &DesktopConfig {
        &self.inner.config
    }

    /// The read playbook, if configured.
    pub fn read_playbook(&self) -> Option<&Playbook> {
        self.inner.read.as_deref()
    }

    /// The write playbook, if configured.
    pub fn write_playbook(&self) -> Option<&Playbook> {
        self.inner.write.as_deref()
    }

    /// Runs `playbook` now on this thread (blocking), on the kept-alive driver;
    /// waits while another run of this bridge holds the desktop.
    pub fn run_blocking(
        &self,
        playbook: &Playbook,
        case: Option<&Case>,
    ) -> Result<RunReport, Box<Abort>> {
        let slot = self.inner.driver.lock().unwrap_or_else(|p| p.into_inner());
        self.run_in_slot(slot, playbook, case)
            .map_err(|failed| failed.abort)
    }

    /// Like [`DesktopBridge::run_blocking`], but answers [`RunNow::Busy`]
    /// at once when another run of this bridge holds the desktop (one playbook
    /// at a time: input is global).
    pub fn try_run_blocking(&self, playbook: &Playbook, case: Option<&Case>) -> RunNow {
        let slot = match self.inner.driver.try_lock() {
            Ok(slot) => slot,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return RunNow::Busy,
        };
        match self.run_in_slot(slot, playbook, case) {
            Ok(report) => RunNow::Done(report),
            Err(failed) => RunNow::Aborted(failed),
        }
    }

    fn run_in_slot(
        &self,
        mut slot: std::sync::MutexGuard<'_, Option<Box<dyn Driver>>>,
        playbook: &Playbook,
        case: Option<&Case>,
    ) -> Result<RunReport, Failed> {
        let inner = &self.inner;
        let driver = match slot.as_mut() {
            Some(d) => d,
            None => match (inner.factory)() {
                Ok(d) => slot.insert(d),
                Err(e) => {
                    return Err(Failed {
                        abort: Box::new(Abort {
                            playbook: playbook.name.clone(),
                            step: None,
                            reason: AbortReason::Driver(e),
                            screenshot: None,
                            completed: Vec::new(),
                            inputs_sent: 0,
                        }),
                        evidence: None,
                    });
                }
            },
        };
        let result = run_playbook(playbook, driver.as_mut(), case, &inner.options);
        let mut kept = None;
        if let Err(abort) = &result {
            // Every aborted run leaves a screen for a person to look at.
            metrics::counter!(gateway_core::metrics::MANUAL_INTERVENTIONS_TOTAL, "reason" => "desktop_abort")
                .increment(1);
            if matches!(abort.reason, AbortReason::Driver(_)) {
                *slot = None;
            }
            if let Some(sink) = &inner.evidence {
                let evidence = AbortEvidence::from_abort(abort, case.map(|c| c.case_id.as_str()));
                match sink.keep(&evidence) {
                    Ok(place) => {
                        tracing::warn!(reason = evidence.reason, evidence = %place, "kept evidence of an aborted run");
                        kept = Some(place);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not keep evidence of an aborted run")
                    }
                }
            }
        }
        result.map_err(|abort| Failed {
            abort,
            evidence: kept,
        })
    }

    /// Runs the read playbook once and submits the screen to the pipeline
    /// (waits while another run holds the desktop).
    pub async fn read_once(
        &self,
        pipeline: &dyn IntakePipeline,
    ) -> Result<IntakeOutcome, GatewayError> {
        let Some(pb) = self.inner.read.clone() else {
            return Err(GatewayError::internal(false, "no read playbook configured"));
        };
        let this = self.clone();
        let report = tokio::task::spawn_blocking(move || this.run_blocking(&pb, None))
            .await
            .map_err(|e| GatewayError::internal(false, format!("read run panicked: {e}")))?
            .map_err(|abort| abort_to_error(&abort))?;
        self.submit_read(&report, pipeline).await
    }

    /// The operator's "read now": runs the read playbook at once unless another
    /// playbook holds the desktop, in which case it answers
    /// [`ReadNow::Busy`] without queueing (the caller asks again; a queued
    /// trigger would fire at a moment nobody chose).
    pub async fn read_now(&self, pipeline: &dyn IntakePipeline) -> ReadNow {
        let Some(pb) = self.inner.read.clone() else {
            return ReadNow::NotConfigured;
        };
        let this = self.clone();
        let run = match tokio::task::spawn_blocking(move || this.try_run_blocking(&pb, None)).await
        {
            Ok(run) => run,
            Err(e) => {
                return ReadNow::Failed(GatewayError::internal(
                    false,
                    format!("read run panicked: {e}"),
                ));
            }
        };
        match run {
            RunNow::Busy => ReadNow::Busy,
            RunNow::Aborted(failed) => ReadNow::Aborted(failed),
            RunNow::Done(report) => match self.submit_read(&report, pipeline).await {
                Ok(outcome) => ReadNow::Done(outcome),
                Err(e) => ReadNow::Failed(e),
            },
        }
    }

    async fn submit_read(
        &self,
        report: &RunReport,
        pipeline: &dyn IntakePipeline,
    ) -> Result<IntakeOutcome, GatewayError> {
        let Some(pb) = self.inner.read.as_deref() else {
            return Err(GatewayError::internal(false, "no read playbook configured"));
        };
        let config = &self.inner.config;
        let message = crate::capture::inbound_message(
            &config.profile,
            &pb.name,
            pb.record_key.as_deref(),
            &report.captures,
            jiff::Timestamp::now(),
            config
                .display
                .clone()
                .or_else(|| std::env::var("DISPLAY").ok()),
        );
        pipeline.submit(message).await
    }

    /// Reads on the configured interval and whenever `trigger` is notified, until
    /// `shutdown` completes. Failures are logged (without PHI) and the loop goes on.
    pub async fn serve_reads(
        self,
        pipeline: Arc<dyn IntakePipeline>,
        trigger: Arc<tokio::sync::Notify>,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        let interval = self
            .inner
            .config
            .read_interval_secs
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        let mut ticker = interval.map(tokio::time::interval);
        tokio::pin!(shutdown);
        loop {
            let tick = async {
                match ticker.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = trigger.notified() => {},
                () = tick => {},
            }
            match self.read_once(pipeline.as_ref()).await {
                Ok(IntakeOutcome::Accepted { case_id, .. }) => {
                    tracing::info!(case_id = %case_id, "desktop read accepted");
                }
                Ok(IntakeOutcome::Duplicate { .. }) => tracing::debug!("desktop read unchanged"),
                Ok(IntakeOutcome::Kept { .. }) => {
                    tracing::info!("desktop read kept without a case")
                }
                Ok(IntakeOutcome::Rejected { error, .. }) => {
                    tracing::warn!(error = %error, "desktop read rejected");
                }
                Err(e) => tracing::warn!(error = %e, "desktop read failed"),
            }
        }
    }
}

/// The gateway error for an aborted run: retryable when the EHR was merely not
/// ready (window absent, busy, timeout, driver), not when a safety check fired
/// — a wrong patient on screen (`context_mismatch`) does not fix itself by
/// retrying: the write-back fails with the reason and waits for an operator.
pub fn abort_to_error(abort: &Abort) -> GatewayError {
    let retryable = matches!(
        abort.reason,
        AbortReason::Busy
            | AbortReason::WindowNotFound(_)
            | AbortReason::RunTimeout(_)
            | AbortReason::Driver(_)
    );
    GatewayError::downstream(retryable, abort.to_string())
}

impl WriteBack for DesktopBridge {
    fn adapter(&self) -> &str {
        crate::capture::ADAPTER
    }

    fn apply<'a>(
        &'a self,
        case: &'a Case,
    ) -> BoxFuture<'a, Result<WriteBackReceipt, GatewayError>> {
        Box::pin(async move {
            let Some(pb) = self.inner.write.clone() else {
                return Err(GatewayError::internal(
                    false,
                    "desktop write-back has no write playbook configured",
                ));
            };
            if case.decision.is_none() {
                return Err(GatewayError::internal(
                    false,
                    "case has no decision to write",
                ));
            }
            let this = self.clone();
            let owned = case.clone();
            let result = tokio::task::spawn_blocking(move || {
                let slot = this.inner.driver.lock().unwrap_or_else(|p| p.into_inner());
                this.run_in_slot(slot, &pb, Some(&owned))
            })
            .await
            .map_err(|e| GatewayError::internal(false, format!("write run panicked: {e}")))?;
            match result {
                Ok(report) => Ok(WriteBackReceipt {
                    detail: format!(
                        "playbook {} wrote and verified the decision in {} steps, {} ms",
                        report.playbook,
                        report.steps.len(),
                        report.elapsed.as_millis()
                    ),
                }),
                Err(failed) => {
                    // The write-back's error names where the evidence went, so
                    // the operator finds the screenshot from the decision.
                    let mut error = abort_to_error(&failed.abort);
                    if let Some(place) = &failed.evidence {
                        error
                            .message
                            .push_str(&format!("; evidence kept as {place}"));
                    }
                    Err(error)
                }
            }
        })
    }
}
