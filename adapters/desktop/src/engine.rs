//! Runs a [`Playbook`] against a [`Driver`], safely.
//!
//! Safety rules, enforced here once for every driver:
//! * **One playbook at a time** in the process: keyboard, mouse and clipboard are
//!   global, so two runs would type into each other. A static lock serializes
//!   runs; waiting for it counts against the run's timeout.
//! * **Never type into the wrong window**: right before every input (key, type,
//!   click, and each part of copy/verify) the focused window's title must match
//!   the step's guard; otherwise the run aborts before sending anything.
//! * **Never type into the wrong patient's chart**: a `check_context` step
//!   reads the screen's identifying fields and compares them with the case; on
//!   any difference or unreadable field the run aborts before its next input,
//!   naming the fields (never their values). The loader makes write playbooks
//!   check before their first input and again before the commit step; the
//!   engine refuses the commit step anyway when an input came after the last
//!   passed check.
//! * **Nothing half-typed for lack of data**: every template that depends only on
//!   the case is rendered before the first input.
//! * **Abort with evidence**: an unexpected window, a failed verification, a
//!   timeout or a `fail` step stop the run and return an [`Abort`] carrying a
//!   screenshot for the operator's store.
//! * **Per-step and whole-run timeouts**; loops through `branch` are bounded.
//! * **No PHI in logs or errors**: steps are logged by id, action and duration;
//!   values only by length; titles of unexpected windows only by hash. The
//!   clipboard is cleared at the end of every run so captured values do not linger.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use gateway_core::Case;

use crate::context::FieldFault;
use crate::driver::{Driver, DriverError, Screenshot, WindowInfo};
use crate::pattern::TitlePattern;
use crate::playbook::{Action, Playbook, PlaybookKind, Step, Target, Test};
use crate::template::{Context, RenderError, Template};

static RUN_LOCK: Mutex<()> = Mutex::new(());
static SENTINEL_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Tuning knobs of a run (defaults suit X11 with a Tk or Win32-style app).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How often waiting steps poll the desktop.
    pub poll: Duration,
    /// How long a `copy` of a possibly empty, `optional` field waits for the
    /// clipboard to change before concluding the field is empty.
    pub empty_field_wait: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            poll: Duration::from_millis(20),
            empty_field_wait: Duration::from_millis(400),
        }
    }
}

/// What one executed step took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// Step index (0-based).
    pub index: usize,
    /// Step id.
    pub id: String,
    /// Action name.
    pub action: &'static str,
    /// Attempts used (retries + 1).
    pub attempts: u32,
    /// Wall time including retries.
    pub elapsed: Duration,
}

/// A successful run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The playbook's name.
    pub playbook: String,
    /// Read or write.
    pub kind: PlaybookKind,
    /// Values captured by `copy` steps, by name. PHI: never log these.
    pub captures: BTreeMap<String, String>,
    /// Executed steps in execution order (a step run twice appears twice).
    pub steps: Vec<StepRecord>,
    /// Wall time of the whole run, lock wait included.
    pub elapsed: Duration,
    /// Time spent waiting for the global lock.
    pub lock_wait: Duration,
}

/// Why a run stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbortReason {
    /// Another playbook held the global input lock for the whole timeout.
    #[error("another playbook is running (input is global); gave up waiting")]
    Busy,
    /// The whole-run timeout elapsed.
    #[error("the playbook exceeded its timeout of {0:?}")]
    RunTimeout(Duration),
    /// No window matched in time.
    #[error("no window titled `{0}` appeared in time")]
    WindowNotFound(String),
    /// Focus could not be given to the window in time.
    #[error("could not focus the window titled `{0}` in time")]
    FocusFailed(String),
    /// The focused window is not the one the step must type into.
    #[error(
        "refusing input: the focused window does not match `{expected}` ({found}); nothing was sent"
    )]
    UnexpectedWindow {
        /// The guard pattern.
        expected: String,
        /// `no window has the focus` or `title sha256:xxxxxxxx, N chars`.
        found: String,
    },
    /// A verification read back something else than expected.
    #[error(
        "verification failed: read back {found_chars} chars (sha256:{found_hash}), expected {expected_chars} chars (sha256:{expected_hash})"
    )]
    VerifyMismatch {
        /// Length of the expected text.
        expected_chars: usize,
        /// Short hash of the expected text.
        expected_hash: String,
        /// Length of what was read.
        found_chars: usize,
        /// Short hash of what was read.
        found_hash: String,
    },
    /// The screen shows another patient or record than the case (or an
    /// identifying field cannot be read): nothing more was sent.
    #[error(
        "wrong patient or record on screen: {}; no input was sent after the check",
        describe_faults(.faults)
    )]
    ContextMismatch {
        /// Each failing field's name and how it failed (no values).
        faults: Vec<(String, FieldFault)>,
    },
    /// Select-and-copy left the clipboard unchanged (empty or unselectable field).
    #[error("the field copied nothing to the clipboard")]
    NothingCopied,
    /// A template could not be rendered.
    #[error("template: {0}")]
    Template(#[from] RenderError),
    /// The playbook's own `fail` step.
    #[error("playbook failed: {0}")]
    Failed(String),
    /// `branch` loops ran away.
    #[error("too many steps executed ({0}); a branch loop does not terminate")]
    TooManySteps(usize),
    /// A write playbook was run without a case, or a read playbook with bad input.
    #[error("{0}")]
    Usage(String),
    /// The desktop driver failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
}

impl AbortReason {
    /// Retrying the same step may help (slow UI), as opposed to safety stops.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            AbortReason::WindowNotFound(_)
                | AbortReason::FocusFailed(_)
                | AbortReason::VerifyMismatch { .. }
                | AbortReason::NothingCopied
        ) || matches!(
            self,
            // A field that could not be read may be a slow screen; a field
            // that differs will not fix itself.
            AbortReason::ContextMismatch { faults }
                if faults.iter().all(|(_, f)| *f == FieldFault::Unreadable)
        )
    }

    /// A short stable name for metrics and audit (`unexpected_window`, …).
    pub fn code(&self) -> &'static str {
        match self {
            AbortReason::Busy => "busy",
            AbortReason::RunTimeout(_) => "run_timeout",
            AbortReason::WindowNotFound(_) => "window_not_found",
            AbortReason::FocusFailed(_) => "focus_failed",
            AbortReason::UnexpectedWindow { .. } => "unexpected_window",
            AbortReason::VerifyMismatch { .. } => "verify_mismatch",
            AbortReason::ContextMismatch { .. } => "context_mismatch",
            AbortReason::NothingCopied => "nothing_copied",
            AbortReason::Template(_) => "template",
            AbortReason::Failed(_) => "failed",
            AbortReason::TooManySteps(_) => "too_many_steps",
            AbortReason::Usage(_) => "usage",
            AbortReason::Driver(e) if e.is_timeout() => "driver_timeout",
            AbortReason::Driver(_) => "driver",
        }
    }
}

fn describe_faults(faults: &[(String, FieldFault)]) -> String {
    faults
        .iter()
        .map(|(name, fault)| format!("field `{name}` {}", fault.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A run that stopped before its end, with the evidence for the operator.
#[derive(Debug, Clone, thiserror::Error)]
#[error("playbook `{playbook}` aborted at {}: {reason}", self.location())]
pub struct Abort {
    /// The playbook's name.
    pub playbook: String,
    /// The step that stopped (`None` before the first step).
    pub step: Option<(usize, String, &'static str)>,
    /// Why.
    pub reason: AbortReason,
    /// The screen when it stopped (PNG), when one could be taken.
    pub screenshot: Option<Screenshot>,
    /// Steps completed before the abort.
    pub completed: Vec<StepRecord>,
    /// How many input events (key chords, typed strings, clicks) were sent
    /// before the abort: 0 proves nothing was typed.
    pub inputs_sent: usize,
}

impl Abort {
    /// `step 3 \`check-patient\` (check_context)`, or `start`.
    pub fn location_label(&self) -> String {
        self.location()
    }

    fn location(&self) -> String {
        match &self.step {
            Some((index, id, action)) => format!("step {} `{id}` ({action})", index + 1),
            None => "start".to_owned(),
        }
    }
}

/// Hex prefix of SHA-256, to compare values in errors without showing them.
pub(crate) fn short_hash(text: &str) -> String {
    gateway_core::ids::content_hash(text.as_bytes())[..8].to_owned()
}

/// Runs `playbook` on `driver`. Write playbooks need `case` (templates read it);
/// read playbooks may get one too (e.g. to type a search key).
pub fn run_playbook(
    playbook: &Playbook,
    driver: &mut dyn Driver,
    case: Option<&Case>,
    options: &RunOptions,
) -> Result<RunReport, Box<Abort>> {
    let started = Instant::now();
    let deadline = started + playbook.timeout;
    let abort0 = |reason| {
        Box::new(Abort {
            playbook: playbook.name.clone(),
            step: None,
            reason,
            screenshot: None,
            completed: Vec::new(),
            inputs_sent: 0,
        })
    };
    let case_json = match case {
        Some(c) => serde_json::to_value(c)
            .map_err(|e| abort0(AbortReason::Usage(format!("case does not serialize: {e}"))))?,
        None if playbook.kind == PlaybookKind::Write => {
            return Err(abort0(AbortReason::Usage(
                "a write playbook needs a case (--case)".into(),
            )));
        }
        None => serde_json::Value::Null,
    };
    let ctx = Context {
        case: case_json,
        captured: BTreeMap::new(),
        tables: playbook.tables.clone(),
    };
    // Render every case-only template before touching the desktop.
    for step in &playbook.steps {
        for template in step.action.templates() {
            if template.holes().all(|h| h.captured_name().is_none())
                && !matches!(step.action, Action::Branch { .. })
            {
                template.render(&ctx).map_err(|e| {
                    let mut a = abort0(AbortReason::Template(e));
                    a.step = Some((step.index, step.id.clone(), step.action.name()));
                    a
                })?;
            }
        }
    }
    let guard = acquire_lock(deadline, options.poll).ok_or_else(|| abort0(AbortReason::Busy))?;
    let lock_wait = started.elapsed();
    let mut run = Run {
        playbook,
        driver,
        options,
        ctx,
        deadline,
        current: None,
        records: Vec::new(),
        inputs_sent: 0,
        checked_since_input: false,
    };
    let result = run.execute();
    // Do not leave captured values (or a sentinel) on the clipboard.
    if let Err(e) = run.driver.clipboard_set("") {
        tracing::warn!(error = %e, "could not clear the clipboard after the run");
    }
    drop(guard);
    match result {
        Ok(()) => {
            let report = RunReport {
                playbook: playbook.name.clone(),
                kind: playbook.kind,
                captures: run.ctx.captured,
                steps: run.records,
                elapsed: started.elapsed(),
                lock_wait,
            };
            tracing::info!(
                playbook = %report.playbook,
                steps = report.steps.len(),
                captures = report.captures.len(),
                elapsed_ms = report.elapsed.as_millis() as u64,
                "playbook finished"
            );
            Ok(report)
        }
        Err((step, reason)) => {
            let screenshot = match run.driver.screenshot(run.current.as_ref().map(|w| w.id)) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "no screenshot of the aborted run");
                    None
                }
            };
            let abort = Abort {
                playbook: playbook.name.clone(),
                step: step.map(|s| (s.index, s.id.clone(), s.action.name())),
                reason,
                screenshot,
                completed: run.records,
                inputs_sent: run.inputs_sent,
            };
            tracing::warn!(
                playbook = %abort.playbook,
                reason = abort.reason.code(),
                error = %abort,
                "playbook aborted"
            );
            Err(Box::new(abort))
        }
    }
}

fn acquire_lock(deadline: Instant, poll: Duration) -> Option<MutexGuard<'static, ()>> {
    loop {
        match RUN_LOCK.try_lock() {
            Ok(g) => return Some(g),
            // A panicking run cannot leave the desktop in a state the lock
            // protects beyond its own end: the guard data is `()`.
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(poll);
            }
        }
    }
}

struct Run<'a> {
    playbook: &'a Playbook,
    driver: &'a mut dyn Driver,
    options: &'a RunOptions,
    ctx: Context,
    deadline: Instant,
    current: Option<WindowInfo>,
    records: Vec<StepRecord>,
    inputs_sent: usize,
    /// A context check passed and no input followed it yet.
    checked_since_input: bool,
}

type StepFailure<'p> = (Option<&'p Step>, AbortReason);

impl<'a> Run<'a> {
    fn execute(&mut self) -> Result<(), StepFailure<'a>> {
        let steps = &self.playbook.steps;
        let budget = steps.len().saturating_mul(20).max(100);
        let mut pc = 0usize;
        let mut executed = 0usize;
        while let Some(step) = steps.get(pc) {
            executed += 1;
            if executed > budget {
                return Err((Some(step), AbortReason::TooManySteps(executed)));
            }
            if Instant::now() >= self.deadline {
                return Err((Some(step), AbortReason::RunTimeout(self.playbook.timeout)));
            }
            let started = Instant::now();
            let mut attempt = 1;
            let next = loop {
                match self.step(step) {
                    Ok(next) => break next,
                    Err(reason) if reason.retryable() && attempt < step.retry.attempts => {
                        tracing::debug!(step = %step.id, attempt, reason = reason.code(), "retrying step");
                        attempt += 1;
                        self.sleep(step.retry.delay);
                    }
                    Err(reason) => return Err((Some(step), reason)),
                }
            };
            tracing::debug!(
                step = %step.id,
                action = step.action.name(),
                attempts = attempt,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "step done"
            );
            self.records.push(StepRecord {
                index: step.index,
                id: step.id.clone(),
                action: step.action.name(),
                attempts: attempt,
                elapsed: started.elapsed(),
            });
            pc = match next {
                None => pc + 1,
                Some(Target::Step(i)) => i,
                Some(Target::End) => break,
            };
        }
        Ok(())
    }

    fn sleep(&self, d: Duration) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(d.min(left));
    }

    fn step_deadline(&self, step: &Step) -> Instant {
        (Instant::now() + step.timeout).min(self.deadline)
    }

    /// Executes one step; `Some(target)` jumps.
    fn step(&mut self, step: &Step) -> Result<Option<Target>, AbortReason> {
        if step.commit && !self.checked_since_input {
            // The loader refuses such playbooks; refuse here too, never save unchecked.
            return Err(AbortReason::Usage(
                "the commit step is not preceded by a passed context check since the last input"
                    .into(),
            ));
        }
        if step.action.counts_as_input() {
            self.checked_since_input = false;
        }
        match &step.action {
            Action::WaitWindow { title } => {
                let w = self.wait_for_window(title, self.step_deadline(step))?;
                self.current = Some(w);
            }
            Action::Focus { title } => {
                let until = self.step_deadline(step);
                let target = match title {
                    Some(t) => self.wait_for_window(t, until)?,
                    None => self
                        .current
                        .clone()
                        .ok_or_else(|| AbortReason::Usage("no current window to focus".into()))?,
                };
                let pattern = title.clone().or_else(|| step.guard.clone());
                self.focus(&target, pattern.as_ref(), until)?;
                self.current = Some(target);
            }
            Action::Key { chords } => {
                for chord in chords {
                    self.check_guard(step)?;
                    self.driver.key_chord(chord)?;
                    self.inputs_sent += 1;
                }
            }
            Action::Type { text } => {
                let text = text.render(&self.ctx)?;
                self.check_guard(step)?;
                self.driver.type_text(&text)?;
                self.inputs_sent += 1;
            }
            Action::Click {
                x,
                y,
                button,
                clicks,
            } => {
                let w = self.check_guard(step)?;
                self.driver.click(w.id, *x, *y, *button, *clicks)?;
                self.sleep(self.playbook.settle);
                self.inputs_sent += 1;
            }
            Action::Copy {
                at,
                capture,
                optional,
            } => {
                let wait = if *optional {
                    self.options.empty_field_wait.min(step.timeout)
                } else {
                    step.timeout
                };
                match self.read_field(step, *at, wait)? {
                    Some(value) => {
                        tracing::debug!(step = %step.id, capture = %capture, chars = value.chars().count(), "captured");
                        self.ctx.captured.insert(capture.clone(), value);
                    }
                    None if *optional => {
                        self.ctx.captured.remove(capture);
                    }
                    None => return Err(AbortReason::NothingCopied),
                }
            }
            Action::Verify { at, expect } => {
                let expected = expect.render(&self.ctx)?;
                // An empty expectation is met by an empty field: wait only briefly.
                let wait = if expected.is_empty() {
                    self.options.empty_field_wait.min(step.timeout)
                } else {
                    step.timeout
                };
                let found = self.read_field(step, *at, wait)?.unwrap_or_default();
                if found != expected {
                    return Err(AbortReason::VerifyMismatch {
                        expected_chars: expected.chars().count(),
                        expected_hash: short_hash(&expected),
                        found_chars: found.chars().count(),
                        found_hash: short_hash(&found),
                    });
                }
            }
            Action::Wait { duration } => self.sleep(*duration),
            Action::Branch { value, test, goto } => {
                let value = render_or_empty(value, &self.ctx)?;
                let taken = match test {
                    Test::Equals(t) => value == *t,
                    Test::NotEquals(t) => value != *t,
                    Test::Matches(p) => p.matches(&value),
                };
                tracing::debug!(step = %step.id, taken, "branch");
                if taken {
                    return Ok(Some(goto.clone()));
                }
            }
            Action::Fail { message } => return Err(AbortReason::Failed(message.clone())),
            Action::CheckContext { fields } => {
                // Read every field first, then judge: the reason names all
                // that disagree. Reads go only into the identifying fields.
                let mut faults = Vec::new();
                for field in fields {
                    let expected = field.expect.render(&self.ctx)?;
                    let seen = self.read_field(step, Some(field.at), step.timeout)?;
                    if let Some(fault) =
                        crate::context::compare(&field.compare, seen.as_deref(), &expected)
                    {
                        faults.push((field.name.clone(), fault));
                    }
                }
                if !faults.is_empty() {
                    return Err(AbortReason::ContextMismatch { faults });
                }
                tracing::debug!(step = %step.id, fields = fields.len(), "context check passed");
                self.checked_since_input = true;
            }
        }
        Ok(None)
    }

    fn wait_for_window(
        &mut self,
        title: &TitlePattern,
        until: Instant,
    ) -> Result<WindowInfo, AbortReason> {
        loop {
            if let Some(w) = self
                .driver
                .windows()?
                .into_iter()
                .find(|w| title.matches(&w.title))
            {
                return Ok(w);
            }
            if Instant::now() >= until {
                return Err(AbortReason::WindowNotFound(title.to_string()));
            }
            std::thread::sleep(self.options.poll);
        }
    }

    fn focus(
        &mut self,
        target: &WindowInfo,
        pattern: Option<&TitlePattern>,
        until: Instant,
    ) -> Result<(), AbortReason> {
        let mut asked = Instant::now();
        self.driver.focus(target.id)?;
        loop {
            if let Some(active) = self.driver.active_window()? {
                let ok =
                    active.id == target.id || pattern.is_some_and(|p| p.matches(&active.title));
                if ok {
                    return Ok(());
                }
            }
            if Instant::now() >= until {
                return Err(AbortReason::FocusFailed(
                    pattern.map(|p| p.to_string()).unwrap_or_default(),
                ));
            }
            // Window managers may drop a focus request made too early: ask again.
            if asked.elapsed() > Duration::from_millis(250) {
                self.driver.focus(target.id)?;
                asked = Instant::now();
            }
            std::thread::sleep(self.options.poll);
        }
    }

    /// The focused window, if and only if it matches the step's guard.
    fn check_guard(&mut self, step: &Step) -> Result<WindowInfo, AbortReason> {
        let Some(guard) = &step.guard else {
            // Validation gives every input step a guard; refuse rather than guess.
            return Err(AbortReason::Usage(
                "input step without a window guard".into(),
            ));
        };
        match self.driver.active_window()? {
            Some(w) if guard.matches(&w.title) => Ok(w),
            Some(w) => Err(AbortReason::UnexpectedWindow {
                expected: guard.to_string(),
                found: format!(
                    "title sha256:{}, {} chars",
                    short_hash(&w.title),
                    w.title.chars().count()
                ),
            }),
            None => Err(AbortReason::UnexpectedWindow {
                expected: guard.to_string(),
                found: "no window has the focus".into(),
            }),
        }
    }

    /// (Click,) select all, copy; the clipboard text if it changed within `wait`.
    fn read_field(
        &mut self,
        step: &Step,
        at: Option<(i32, i32)>,
        wait: Duration,
    ) -> Result<Option<String>, AbortReason> {
        // A value no field holds, so an unchanged clipboard is recognised even
        // when the field's text equals what was on the clipboard before.
        let sentinel = format!(
            "\u{2063}ehr-gateway-sentinel-{}-{}",
            std::process::id(),
            SENTINEL_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        self.driver.clipboard_set(&sentinel)?;
        if let Some((x, y)) = at {
            let w = self.check_guard(step)?;
            self.driver
                .click(w.id, x, y, crate::driver::MouseButton::Left, 1)?;
            self.sleep(self.playbook.settle);
            self.inputs_sent += 1;
        }
        self.check_guard(step)?;
        self.driver.key_chord(&self.playbook.select_all)?;
        self.check_guard(step)?;
        self.driver.key_chord(&self.playbook.copy)?;
        self.inputs_sent += 2;
        let until = (Instant::now() + wait).min(self.deadline);
        loop {
            match self.driver.clipboard_get()? {
                Some(text) if text != sentinel => return Ok(Some(text).filter(|t| !t.is_empty())),
                _ => {}
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(self.options.poll);
        }
    }
}

fn render_or_empty(template: &Template, ctx: &Context) -> Result<String, AbortReason> {
    match template.render(ctx) {
        Ok(v) => Ok(v),
        Err(RenderError::Missing(_)) => Ok(String::new()),
        Err(e) => Err(e.into()),
    }
}
