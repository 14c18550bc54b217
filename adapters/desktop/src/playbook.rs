//! Playbooks: named flows of UI steps, loaded from TOML and checked up front.
//!
//! A playbook is data (`mappings/legacy-desktop/playbooks/*.toml`): onboarding a
//! legacy screen means writing steps, not code. Everything that can be checked
//! without a desktop is checked when the file loads — unknown keys and actions,
//! key chord typos, template syntax, unknown tables and captures, `goto` targets,
//! input steps without a window to guard them, write playbooks without a
//! verification or without their context checks — and every problem is
//! reported at once with file, line and step.
//!
//! **The write rule** ([`WRITE_RULE`]): a write playbook marks the one step
//! that commits (the Save click, or a key) with `commit = true`, and on every
//! path through it (branches followed) a `check_context` step comes before the
//! first input — key, type, click, and the clicks and keys of `copy`/`verify`
//! reads — and another one between the last input and the commit step. The
//! first proves the screen is on the case's patient and record before anything
//! is typed; the second that it still is (a user or the EHR may switch patients
//! while the bridge types) right before the save. See [`crate::context`] for
//! how fields are compared.
//!
//! ```toml
//! name = "write-decision"
//! kind = "write"                  # read | write
//! timeout_ms = 60000              # whole run
//! step_timeout_ms = 5000          # default for waiting steps
//! select_all = "ctrl+/"           # chord copy/verify use to select a field
//! copy = "ctrl+c"
//! settle_ms = 100                 # pause after each click (WM click-to-focus)
//!
//! [tables.status]
//! approved = "APPROVED"
//!
//! [[step]]
//! id = "auth-screen"
//! action = "wait_window"          # wait_window focus check_context key type click copy verify wait branch fail
//! title = "LegacyEHR — Prior Authorization*"
//!
//! [[step]]
//! id = "check-patient"
//! action = "check_context"        # read identifying fields, compare with the case
//! fields = [
//!   { name = "mrn", x = 500, y = 23, expect = "{{patient.identifiers[0].value}}" },
//!   { name = "birth_date", x = 150, y = 59, expect = "{{patient.birth_date}}", compare = "date:MM/DD/YYYY" },
//! ]
//!
//! [[step]]
//! action = "type"
//! text = "{{decision.authorization_number}}"
//!
//! # … verify, then check_context again …
//!
//! [[step]]
//! id = "save"
//! action = "click"
//! x = 230
//! y = 325
//! commit = true                   # the step that saves: exactly one in a write playbook
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::context::{Compare, ContextField};
use crate::driver::MouseButton;
use crate::keys::Chord;
use crate::pattern::TitlePattern;
use crate::template::Template;

/// Longest a playbook may run, whatever it asks for.
pub const MAX_RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// The rule every write playbook follows, as `desktop check` explains it.
pub const WRITE_RULE: &str = "a write playbook marks the one step that saves with `commit = true` (a `click` or `key`), \
and on every path through it a `check_context` step reads the patient banner (MRN, name, birth date, \
order number where shown) and compares it with the case twice: before the first input (key, type, click, \
and the clicks of copy/verify), and again between the last input and the commit step, \
because the screen may switch patients while the bridge types";

/// Whether a playbook reads a screen into a source tree or writes a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlaybookKind {
    /// Captures values into a source tree for the mapping profile.
    Read,
    /// Types a decision into the chart and verifies it.
    Write,
}

impl PlaybookKind {
    /// `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlaybookKind::Read => "read",
            PlaybookKind::Write => "write",
        }
    }
}

/// A loaded, validated playbook.
#[derive(Debug, Clone)]
pub struct Playbook {
    /// The playbook's name (becomes `source.message_type` of read cases).
    pub name: String,
    /// Read or write.
    pub kind: PlaybookKind,
    /// What it does, for operators.
    pub description: Option<String>,
    /// The file it was loaded from.
    pub file: PathBuf,
    /// Whole-run timeout.
    pub timeout: Duration,
    /// Default timeout of waiting steps.
    pub step_timeout: Duration,
    /// Chord that selects a field's whole text (copy, verify).
    pub select_all: Chord,
    /// Chord that copies the selection to the clipboard.
    pub copy: Chord,
    /// Capture whose value identifies the record read (becomes the control id
    /// and the source key of the case id).
    pub record_key: Option<String>,
    /// Pause after every click before the next input. Window managers hold a
    /// click (click-to-focus grab) while keys pass, so keys sent at once could
    /// reach the previously focused field.
    pub settle: Duration,
    /// Code tables for `table:NAME` filters.
    pub tables: BTreeMap<String, BTreeMap<String, String>>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// One step with everything resolved at load time.
#[derive(Debug, Clone)]
pub struct Step {
    /// Position (0-based).
    pub index: usize,
    /// The id given in the file, or `step-N` (1-based).
    pub id: String,
    /// Line of the step in the file (1-based).
    pub line: usize,
    /// What to do.
    pub action: Action,
    /// For input actions: the title the focused window must match right before
    /// the input (the step's own `title`, else the last `wait_window`/`focus`).
    pub guard: Option<TitlePattern>,
    /// Timeout for waiting (falls back to the playbook's `step_timeout_ms`).
    pub timeout: Duration,
    /// Retries after a retryable failure.
    pub retry: Retry,
    /// The step that commits the write (the Save click or key).
    pub commit: bool,
}

/// Retry policy of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Total attempts (1 = no retry).
    pub attempts: u32,
    /// Pause between attempts.
    pub delay: Duration,
}

/// Where a `branch` jumps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The step at this index.
    Step(usize),
    /// Finish the playbook successfully.
    End,
}

/// The condition a `branch` tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// Value equals the text exactly.
    Equals(String),
    /// Value differs from the text.
    NotEquals(String),
    /// Value matches the glob.
    Matches(TitlePattern),
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Wait until a window with a matching title exists; it becomes the current window.
    WaitWindow {
        /// Title glob.
        title: TitlePattern,
    },
    /// Give the current (or the titled) window the focus and wait until it has it.
    Focus {
        /// Title glob of the window to focus; the current window when absent.
        title: Option<TitlePattern>,
    },
    /// Press key chords in order.
    Key {
        /// The chords.
        chords: Vec<Chord>,
    },
    /// Type text.
    Type {
        /// The text template.
        text: Template,
    },
    /// Click relative to the current window.
    Click {
        /// X offset from the window's left edge.
        x: i32,
        /// Y offset from the window's top edge.
        y: i32,
        /// Which button.
        button: MouseButton,
        /// 1 = single, 2 = double, 3 = triple click.
        clicks: u8,
    },
    /// (Click a field,) select all, copy, and capture the clipboard text.
    Copy {
        /// Where to click first, relative to the current window.
        at: Option<(i32, i32)>,
        /// The captured value's name (dots nest it in the source tree).
        capture: String,
        /// When true an empty field captures nothing instead of failing.
        optional: bool,
    },
    /// (Click a field,) read it back like `copy` and compare with the expectation.
    Verify {
        /// Where to click first.
        at: Option<(i32, i32)>,
        /// The expected text.
        expect: Template,
    },
    /// Sleep.
    Wait {
        /// How long.
        duration: Duration,
    },
    /// Jump when a value passes a test.
    Branch {
        /// The value tested (usually `{{captured.NAME}}`).
        value: Template,
        /// The test.
        test: Test,
        /// Where to go when it passes.
        goto: Target,
    },
    /// Abort the playbook with a message (e.g. on a locked chart).
    Fail {
        /// Operator-facing message (no PHI).
        message: String,
    },
    /// Read identifying fields off the screen and compare them with the case;
    /// abort before the next input when any differs or cannot be read.
    CheckContext {
        /// The fields, read in order, all compared before the verdict.
        fields: Vec<ContextField>,
    },
}

impl Action {
    /// The action's name as written in playbooks.
    pub fn name(&self) -> &'static str {
        match self {
            Action::WaitWindow { .. } => "wait_window",
            Action::Focus { .. } => "focus",
            Action::Key { .. } => "key",
            Action::Type { .. } => "type",
            Action::Click { .. } => "click",
            Action::Copy { .. } => "copy",
            Action::Verify { .. } => "verify",
            Action::Wait { .. } => "wait",
            Action::Branch { .. } => "branch",
            Action::Fail { .. } => "fail",
            Action::CheckContext { .. } => "check_context",
        }
    }

    /// True for actions that send input to the focused window (a context
    /// check reads with clicks and keys too, so it needs a window guard).
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Action::Key { .. }
                | Action::Type { .. }
                | Action::Click { .. }
                | Action::Copy { .. }
                | Action::Verify { .. }
                | Action::CheckContext { .. }
        )
    }

    /// True for the inputs the write rule counts: everything that sends input
    /// except the context check itself.
    pub fn counts_as_input(&self) -> bool {
        self.is_input() && !matches!(self, Action::CheckContext { .. })
    }

    /// The templates this action renders.
    pub fn templates(&self) -> Vec<&Template> {
        match self {
            Action::Type { text } => vec![text],
            Action::Verify { expect, .. } => vec![expect],
            Action::Branch { value, .. } => vec![value],
            Action::CheckContext { fields } => fields.iter().map(|f| &f.expect).collect(),
            _ => Vec::new(),
        }
    }
}

/// One problem found while loading a playbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// `step 3 (type-auth)`, when the problem is inside a step.
    pub step: Option<String>,
    /// What is wrong (no PHI: playbooks hold none).
    pub message: String,
}

/// A playbook that failed to load, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct PlaybookError {
    /// The file.
    pub file: PathBuf,
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl PlaybookError {
    fn render(&self) -> String {
        let mut out = format!(
            "playbook {} has {} problem(s):",
            self.file.display(),
            self.problems.len()
        );
        for p in &self.problems {
            out.push_str(&format!("\n  {}", self.file.display()));
            if let Some(line) = p.line {
                out.push_str(&format!(":{line}"));
            }
            out.push_str(": ");
            if let Some(step) = &p.step {
                out.push_str(&format!("{step}: "));
            }
            out.push_str(&p.message);
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    name: String,
    kind: String,
    description: Option<String>,
    timeout_ms: Option<u64>,
    step_timeout_ms: Option<u64>,
    settle_ms: Option<u64>,
    select_all: Option<String>,
    copy: Option<String>,
    record_key: Option<String>,
    #[serde(default)]
    tables: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    step: Vec<toml::Spanned<RawStep>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Option<String>,
    action: String,
    title: Option<String>,
    timeout_ms: Option<u64>,
    keys: Option<OneOrMany>,
    text: Option<String>,
    x: Option<i32>,
    y: Option<i32>,
    button: Option<String>,
    clicks: Option<u8>,
    capture: Option<String>,
    optional: Option<bool>,
    expect: Option<String>,
    ms: Option<u64>,
    value: Option<String>,
    equals: Option<String>,
    not_equals: Option<String>,
    matches: Option<String>,
    goto: Option<String>,
    message: Option<String>,
    retry: Option<RawRetry>,
    commit: Option<bool>,
    fields: Option<Vec<RawField>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    x: i32,
    y: i32,
    expect: String,
    compare: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: u32,
    #[serde(default)]
    delay_ms: u64,
}

impl Playbook {
    /// Reads and validates a playbook file.
    pub fn load(path: &Path) -> Result<Playbook, PlaybookError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlaybookError {
            file: path.to_owned(),
            problems: vec![Problem {
                line: None,
                step: None,
                message: format!("cannot read: {e}"),
            }],
        })?;
        Playbook::parse(path, &text)
    }

    /// Parses and validates playbook `text`; `file` is used in messages.
    pub fn parse(file: &Path, text: &str) -> Result<Playbook, PlaybookError> {
        let fail = |problems| PlaybookError {
            file: file.to_owned(),
            problems,
        };
        let raw: RawPlaybook = toml::from_str(text).map_err(|e| {
            fail(vec![Problem {
                line: e.span().map(|s| line_of(text, s.start)),
                step: None,
                message: e.message().trim().to_owned(),
            }])
        })?;
        let mut v = Validator {
            text,
            problems: Vec::new(),
        };
        let playbook = v.playbook(file, raw);
        if v.problems.is_empty() {
            Ok(playbook)
        } else {
            Err(fail(v.problems))
        }
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

struct Validator<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn top(&mut self, message: impl Into<String>) {
        self.problems.push(Problem {
            line: None,
            step: None,
            message: message.into(),
        });
    }

    fn playbook(&mut self, file: &Path, raw: RawPlaybook) -> Playbook {
        if raw.name.trim().is_empty() {
            self.top("`name` is empty");
        }
        let kind = match raw.kind.as_str() {
            "read" => PlaybookKind::Read,
            "write" => PlaybookKind::Write,
            other => {
                self.top(format!("`kind` is `{other}`; expected `read` or `write`"));
                PlaybookKind::Read
            }
        };
        let timeout = self.duration_top("timeout_ms", raw.timeout_ms, 60_000);
        let step_timeout = self.duration_top("step_timeout_ms", raw.step_timeout_ms, 5_000);
        let select_all =
            self.chord_top("select_all", raw.select_all.as_deref().unwrap_or("ctrl+a"));
        let copy = self.chord_top("copy", raw.copy.as_deref().unwrap_or("ctrl+c"));
        let settle = Duration::from_millis(raw.settle_ms.unwrap_or(100));
        if settle > Duration::from_secs(5) {
            self.top("`settle_ms` must be at most 5000");
        }
        let ids = self.step_ids(&raw.step);
        let steps = self.steps(raw.step, &ids, step_timeout, timeout);
        if steps.is_empty() && self.problems.is_empty() {
            self.top("the playbook has no `[[step]]`");
        }
        self.cross_step_checks(&steps, kind, &raw.tables, raw.record_key.as_deref());
        Playbook {
            name: raw.name,
            kind,
            description: raw.description,
            file: file.to_owned(),
            timeout,
            step_timeout,
            select_all,
            copy,
            record_key: raw.record_key,
            settle,
            tables: raw.tables,
            steps,
        }
    }

    /// First pass: every step's id and index, so `goto` can point forward
    /// (duplicates and the reserved `end` are reported).
    fn step_ids(&mut self, raw: &[toml::Spanned<RawStep>]) -> BTreeMap<String, usize> {
        let mut ids: BTreeMap<String, usize> = BTreeMap::new();
        for (index, spanned) in raw.iter().enumerate() {
            let id = step_id(index, spanned.get_ref());
            if ids.insert(id.clone(), index).is_some() {
                let line = line_of(self.text, spanned.span().start);
                self.problems.push(Problem {
                    line: Some(line),
                    step: Some(label(index, &id)),
                    message: format!("duplicate step id `{id}`"),
                });
            }
            if id == "end" {
                self.problems.push(Problem {
                    line: Some(line_of(self.text, spanned.span().start)),
                    step: Some(label(index, &id)),
                    message: "`end` is reserved for `goto = \"end\"`".into(),
                });
            }
        }
        ids
    }

    /// Second pass: each step checked on its own, in order (the window
    /// guard carries from step to step).
    fn steps(
        &mut self,
        raw: Vec<toml::Spanned<RawStep>>,
        ids: &BTreeMap<String, usize>,
        step_timeout: Duration,
        timeout: Duration,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut guard: Option<TitlePattern> = None;
        for (index, spanned) in raw.into_iter().enumerate() {
            let line = line_of(self.text, spanned.span().start);
            let raw_step = spanned.into_inner();
            let id = step_id(index, &raw_step);
            let mut s = StepCheck {
                v: self,
                line,
                label: label(index, &id),
            };
            if let Some(step) = s.step(index, id, raw_step, ids, &mut guard, step_timeout, timeout)
            {
                steps.push(step);
            }
        }
        steps
    }

    /// Cross-step checks: captures, tables, the record key, verification and
    /// commits.
    fn cross_step_checks(
        &mut self,
        steps: &[Step],
        kind: PlaybookKind,
        tables: &BTreeMap<String, BTreeMap<String, String>>,
        record_key: Option<&str>,
    ) {
        let captured: BTreeSet<&str> = steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Copy { capture, .. } => Some(capture.as_str()),
                _ => None,
            })
            .collect();
        self.template_references(steps, &captured, tables);
        if let Some(key) = record_key
            && !captured.contains(key)
        {
            self.top(format!(
                "`record_key` names `{key}`, which no step captures"
            ));
        }
        match kind {
            PlaybookKind::Read if captured.is_empty() && !steps.is_empty() => {
                self.top("a read playbook must capture at least one value (`copy` step)");
            }
            PlaybookKind::Write
                if !steps.is_empty()
                    && !steps
                        .iter()
                        .any(|s| matches!(s.action, Action::Verify { .. })) =>
            {
                self.top("a write playbook must verify what it typed (`verify` step)");
            }
            _ => {}
        }
        match kind {
            PlaybookKind::Write if !steps.is_empty() => self.write_rule(steps),
            PlaybookKind::Read => {
                for s in steps.iter().filter(|s| s.commit) {
                    self.problems.push(Problem {
                        line: Some(s.line),
                        step: Some(label(s.index, &s.id)),
                        message: "`commit` is for write playbooks; a read playbook saves nothing"
                            .into(),
                    });
                }
            }
            _ => {}
        }
    }

    /// Every `captured.<name>` a template reads is captured by some step and
    /// every table it looks up is defined.
    fn template_references(
        &mut self,
        steps: &[Step],
        captured: &BTreeSet<&str>,
        tables: &BTreeMap<String, BTreeMap<String, String>>,
    ) {
        let mut late = Vec::new();
        for step in steps {
            for template in step.action.templates() {
                for hole in template.holes() {
                    if let Some(name) = hole.captured_name()
                        && !captured.contains(name.as_str())
                    {
                        late.push((step, format!("`captured.{name}` is never captured")));
                    }
                    for table in hole.tables() {
                        if !tables.contains_key(table) {
                            late.push((step, format!("no table named `{table}`")));
                        }
                    }
                }
            }
        }
        for (step, message) in late {
            self.problems.push(Problem {
                line: Some(step.line),
                step: Some(label(step.index, &step.id)),
                message,
            });
        }
    }

    /// [`WRITE_RULE`]: one commit step; on every path a context check before
    /// the first input and one between the last input and the commit.
    fn write_rule(&mut self, steps: &[Step]) {
        let commits: Vec<&Step> = steps.iter().filter(|s| s.commit).collect();
        match commits.as_slice() {
            [] => self.top("no step is marked `commit = true`"),
            [_] => {}
            [_, more @ ..] => {
                for s in more {
                    self.problems.push(Problem {
                        line: Some(s.line),
                        step: Some(label(s.index, &s.id)),
                        message: "a second `commit` step: a write playbook saves once".into(),
                    });
                }
            }
        }
        // Walk every path: the state is (a check was passed, no input since
        // the last check); the last input is kept for the message only.
        let mut seen: BTreeSet<(usize, bool, bool)> = BTreeSet::new();
        let mut stack: Vec<(usize, bool, bool, Option<usize>)> = vec![(0, false, true, None)];
        let mut early: BTreeSet<usize> = BTreeSet::new();
        let mut unchecked_commit: BTreeMap<usize, Option<usize>> = BTreeMap::new();
        while let Some((pc, checked, clean, last_input)) = stack.pop() {
            let Some(step) = steps.get(pc) else { continue };
            if !seen.insert((pc, checked, clean)) {
                continue;
            }
            let (mut checked, mut clean, mut last_input) = (checked, clean, last_input);
            if matches!(step.action, Action::CheckContext { .. }) {
                checked = true;
                clean = true;
            } else if step.action.counts_as_input() {
                if !checked {
                    early.insert(pc);
                    // Reported once per path: the inputs after it follow from it.
                    checked = true;
                }
                if step.commit && !clean {
                    unchecked_commit.entry(pc).or_insert(last_input);
                }
                clean = false;
                last_input = Some(pc);
            }
            match &step.action {
                Action::Fail { .. } => {}
                Action::Branch { goto, .. } => {
                    if let Target::Step(i) = goto {
                        stack.push((*i, checked, clean, last_input));
                    }
                    stack.push((pc + 1, checked, clean, last_input));
                }
                _ => stack.push((pc + 1, checked, clean, last_input)),
            }
        }
        let broken = commits.len() != 1 || !early.is_empty() || !unchecked_commit.is_empty();
        for pc in early {
            let s = &steps[pc];
            self.problems.push(Problem {
                line: Some(s.line),
                step: Some(label(s.index, &s.id)),
                message: format!(
                    "`{}` sends input before any `check_context` (on some path): check the patient on screen first",
                    s.action.name()
                ),
            });
        }
        for (pc, last) in unchecked_commit {
            let s = &steps[pc];
            let after = last
                .and_then(|i| steps.get(i))
                .map(|l| format!(" after {} (line {})", label(l.index, &l.id), l.line))
                .unwrap_or_default();
            self.problems.push(Problem {
                line: Some(s.line),
                step: Some(label(s.index, &s.id)),
                message: format!(
                    "the commit step can be reached{after} with no `check_context` between the last input and it"
                ),
            });
        }
        if broken {
            self.top(format!("the write rule: {WRITE_RULE}"));
        }
    }

    fn duration_top(&mut self, key: &str, ms: Option<u64>, default: u64) -> Duration {
        let d = Duration::from_millis(ms.unwrap_or(default));
        if d.is_zero() || d > MAX_RUN_TIMEOUT {
            self.top(format!(
                "`{key}` must be between 1 and {} ms",
                MAX_RUN_TIMEOUT.as_millis()
            ));
        }
        d
    }

    fn chord_top(&mut self, key: &str, text: &str) -> Chord {
        Chord::parse(text).unwrap_or_else(|e| {
            self.top(format!("`{key}`: {e}"));
            Chord {
                modifiers: Vec::new(),
                key: crate::keys::Key::Escape,
            }
        })
    }
}

fn step_id(index: usize, raw: &RawStep) -> String {
    raw.id
        .clone()
        .unwrap_or_else(|| format!("step-{}", index + 1))
}

fn label(index: usize, id: &str) -> String {
    format!("step {} `{id}`", index + 1)
}

struct StepCheck<'a, 't> {
    v: &'a mut Validator<'t>,
    line: usize,
    label: String,
}

impl StepCheck<'_, '_> {
    fn problem(&mut self, message: impl Into<String>) {
        self.v.problems.push(Problem {
            line: Some(self.line),
            step: Some(self.label.clone()),
            message: message.into(),
        });
    }

    fn required<T: Clone>(&mut self, value: &Option<T>, key: &str, action: &str) -> Option<T> {
        if value.is_none() {
            self.problem(format!("`{action}` needs `{key}`"));
        }
        value.clone()
    }

    fn template(&mut self, key: &str, text: &str) -> Option<Template> {
        match Template::parse(text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(format!("`{key}`: {e}"));
                None
            }
        }
    }

    fn title(&mut self, text: &str) -> Option<TitlePattern> {
        if text.trim().is_empty() || text.chars().all(|c| c == '*') {
            self.problem("`title` must name the window (not empty, not only `*`)");
            return None;
        }
        Some(TitlePattern::new(text))
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        index: usize,
        id: String,
        raw: RawStep,
        ids: &BTreeMap<String, usize>,
        guard: &mut Option<TitlePattern>,
        default_timeout: Duration,
        run_timeout: Duration,
    ) -> Option<Step> {
        let allowed = self.allowed_keys(&raw.action)?;
        self.check_keys(&raw, allowed);
        let title = self.common_keys(&id, &raw);
        let timeout = self.timeout(&raw, default_timeout, run_timeout);
        let retry = self.retry(&raw);
        let at = self.point(&raw);
        let action = self.action(index, &raw, &title, at, ids, run_timeout)?;
        let step_guard = self.guard(&action, title, guard);
        Some(Step {
            index,
            id,
            line: self.line,
            action,
            guard: step_guard,
            timeout,
            retry,
            commit: raw.commit.unwrap_or(false),
        })
    }

    /// Keys `action` accepts besides id, action, title, timeout_ms, retry;
    /// `None` (reported) for an unknown action.
    fn allowed_keys(&mut self, action: &str) -> Option<&'static [&'static str]> {
        Some(match action {
            "wait_window" | "focus" => &[],
            "key" => &["keys"],
            "type" => &["text"],
            "click" => &["x", "y", "button", "clicks"],
            "copy" => &["x", "y", "capture", "optional"],
            "verify" => &["x", "y", "expect"],
            "wait" => &["ms"],
            "branch" => &["value", "equals", "not_equals", "matches", "goto"],
            "fail" => &["message"],
            "check_context" => &["fields"],
            other => {
                self.problem(format!(
                    "unknown action `{other}` (wait_window, focus, check_context, key, type, click, copy, verify, wait, branch, fail)"
                ));
                return None;
            }
        })
    }

    /// Reports keys set on `raw` that its action does not use.
    fn check_keys(&mut self, raw: &RawStep, allowed: &[&str]) {
        let present = [
            ("keys", raw.keys.is_some()),
            ("text", raw.text.is_some()),
            ("x", raw.x.is_some()),
            ("y", raw.y.is_some()),
            ("button", raw.button.is_some()),
            ("clicks", raw.clicks.is_some()),
            ("capture", raw.capture.is_some()),
            ("optional", raw.optional.is_some()),
            ("expect", raw.expect.is_some()),
            ("ms", raw.ms.is_some()),
            ("value", raw.value.is_some()),
            ("equals", raw.equals.is_some()),
            ("not_equals", raw.not_equals.is_some()),
            ("matches", raw.matches.is_some()),
            ("goto", raw.goto.is_some()),
            ("message", raw.message.is_some()),
            ("fields", raw.fields.is_some()),
        ];
        for (key, is_set) in present {
            if is_set && !allowed.contains(&key) {
                self.problem(format!("`{key}` is not used by action `{}`", raw.action));
            }
        }
    }

    /// The id's characters, the `title` pattern (returned), and `commit` /
    /// `title` only where they mean something.
    fn common_keys(&mut self, id: &str, raw: &RawStep) -> Option<TitlePattern> {
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.problem("step ids use letters, digits, `-` and `_`");
        }
        let title = match &raw.title {
            Some(t) => self.title(t),
            None => None,
        };
        if raw.commit.is_some() && !matches!(raw.action.as_str(), "click" | "key") {
            self.problem(format!(
                "`commit` marks the click or key that saves, not a `{}` step",
                raw.action
            ));
        }
        if raw.title.is_some()
            && !matches!(
                raw.action.as_str(),
                "wait_window"
                    | "focus"
                    | "key"
                    | "type"
                    | "click"
                    | "copy"
                    | "verify"
                    | "check_context"
            )
        {
            self.problem(format!("`title` is not used by action `{}`", raw.action));
        }
        title
    }

    /// `timeout_ms` (default: the playbook's step default), positive and
    /// within the whole run's.
    fn timeout(&mut self, raw: &RawStep, default: Duration, run_timeout: Duration) -> Duration {
        let timeout = Duration::from_millis(raw.timeout_ms.unwrap_or(default.as_millis() as u64));
        if timeout.is_zero() || timeout > run_timeout {
            self.problem("`timeout_ms` must be positive and within the playbook's `timeout_ms`");
        }
        timeout
    }

    /// `retry` (default one attempt); attempts clamped to 1..=10.
    fn retry(&mut self, raw: &RawStep) -> Retry {
        let Some(r) = &raw.retry else {
            return Retry {
                attempts: 1,
                delay: Duration::ZERO,
            };
        };
        if !(1..=10).contains(&r.attempts) {
            self.problem("`retry.attempts` must be between 1 and 10");
        }
        Retry {
            attempts: r.attempts.clamp(1, 10),
            delay: Duration::from_millis(r.delay_ms),
        }
    }

    /// `x` and `y`, both or neither.
    fn point(&mut self, raw: &RawStep) -> Option<(i32, i32)> {
        match (raw.x, raw.y) {
            (Some(x), Some(y)) => Some((x, y)),
            (None, None) => None,
            _ => {
                self.problem("`x` and `y` go together");
                None
            }
        }
    }

    /// The step's action from its keys; `None` when a required key is missing
    /// or unusable (reported).
    fn action(
        &mut self,
        index: usize,
        raw: &RawStep,
        title: &Option<TitlePattern>,
        at: Option<(i32, i32)>,
        ids: &BTreeMap<String, usize>,
        run_timeout: Duration,
    ) -> Option<Action> {
        Some(match raw.action.as_str() {
            "wait_window" => Action::WaitWindow {
                title: match (
                    self.required(&raw.title, "title", "wait_window"),
                    title.clone(),
                ) {
                    (Some(_), Some(t)) => t,
                    _ => return None,
                },
            },
            "focus" => Action::Focus {
                title: title.clone(),
            },
            "key" => self.key_action(raw)?,
            "type" => {
                let text = self.required(&raw.text, "text", "type")?;
                if text.is_empty() {
                    self.problem("`text` is empty");
                }
                Action::Type {
                    text: self.template("text", &text)?,
                }
            }
            "click" => self.click_action(raw, at)?,
            "copy" => self.copy_action(raw, at)?,
            "verify" => {
                let expect = self.required(&raw.expect, "expect", "verify")?;
                Action::Verify {
                    at,
                    expect: self.template("expect", &expect)?,
                }
            }
            "wait" => {
                let ms = self.required(&raw.ms, "ms", "wait")?;
                let duration = Duration::from_millis(ms);
                if duration > run_timeout {
                    self.problem("`ms` exceeds the playbook's `timeout_ms`");
                }
                Action::Wait { duration }
            }
            "branch" => self.branch_action(index, raw, ids)?,
            "fail" => Action::Fail {
                message: self.required(&raw.message, "message", "fail")?,
            },
            "check_context" => self.check_context_action(raw)?,
            _ => return None,
        })
    }

    /// `key`: one chord or a list.
    fn key_action(&mut self, raw: &RawStep) -> Option<Action> {
        let keys = match self.required(&raw.keys, "keys", "key")? {
            OneOrMany::One(k) => vec![k],
            OneOrMany::Many(ks) => ks,
        };
        if keys.is_empty() {
            self.problem("`keys` is empty");
        }
        let mut chords = Vec::new();
        for k in keys {
            match Chord::parse(&k) {
                Ok(c) => chords.push(c),
                Err(e) => self.problem(e.to_string()),
            }
        }
        Some(Action::Key { chords })
    }

    /// `click`: a point, a button (default left) and 1–3 clicks.
    fn click_action(&mut self, raw: &RawStep, at: Option<(i32, i32)>) -> Option<Action> {
        if at.is_none() && raw.x.is_none() {
            self.problem("`click` needs `x` and `y`");
        }
        let (x, y) = at?;
        let button = match raw.button.as_deref().unwrap_or("left") {
            "left" => MouseButton::Left,
            "middle" => MouseButton::Middle,
            "right" => MouseButton::Right,
            other => {
                self.problem(format!(
                    "`button` is `{other}`; expected left, middle or right"
                ));
                MouseButton::Left
            }
        };
        let clicks = raw.clicks.unwrap_or(1);
        if !(1..=3).contains(&clicks) {
            self.problem("`clicks` must be 1, 2 or 3");
        }
        Some(Action::Click {
            x,
            y,
            button,
            clicks,
        })
    }

    /// `copy`: into a dot-separated capture name.
    fn copy_action(&mut self, raw: &RawStep, at: Option<(i32, i32)>) -> Option<Action> {
        let capture = self.required(&raw.capture, "capture", "copy")?;
        let valid = !capture.is_empty()
            && capture.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
        if !valid {
            self.problem(format!(
                "`capture` `{capture}`: names are letters, digits, `_`, `-`, dot-separated"
            ));
        }
        Some(Action::Copy {
            at,
            capture,
            optional: raw.optional.unwrap_or(false),
        })
    }

    /// `branch`: exactly one test on a value, and a `goto` to another step
    /// or `end`.
    fn branch_action(
        &mut self,
        index: usize,
        raw: &RawStep,
        ids: &BTreeMap<String, usize>,
    ) -> Option<Action> {
        let value = self.required(&raw.value, "value", "branch")?;
        let goto = self.required(&raw.goto, "goto", "branch")?;
        let tests: Vec<Test> = [
            raw.equals.clone().map(Test::Equals),
            raw.not_equals.clone().map(Test::NotEquals),
            raw.matches
                .as_deref()
                .map(|m| Test::Matches(TitlePattern::new(m))),
        ]
        .into_iter()
        .flatten()
        .collect();
        if tests.len() != 1 {
            self.problem("`branch` needs exactly one of `equals`, `not_equals`, `matches`");
        }
        let target = if goto == "end" {
            Target::End
        } else if let Some(i) = ids.get(&goto) {
            if *i == index {
                self.problem("`goto` points at its own step");
            }
            Target::Step(*i)
        } else {
            self.problem(format!("`goto` names unknown step `{goto}`"));
            Target::End
        };
        Some(Action::Branch {
            value: self.template("value", &value)?,
            test: tests.into_iter().next()?,
            goto: target,
        })
    }

    /// `check_context`: identifying fields compared with the case.
    fn check_context_action(&mut self, raw: &RawStep) -> Option<Action> {
        let raw_fields = self.required(&raw.fields, "fields", "check_context")?;
        if raw_fields.is_empty() {
            self.problem("`fields` is empty: name the identifying fields to compare");
        }
        let mut names = BTreeSet::new();
        let mut fields = Vec::new();
        for f in raw_fields {
            let listed_twice = !names.insert(f.name.clone());
            fields.extend(self.context_field(f, listed_twice));
        }
        Some(Action::CheckContext { fields })
    }

    /// One `check_context` field (`listed_twice`: its name came earlier): its
    /// name, comparison and an `expect` that comes from the case.
    fn context_field(&mut self, f: RawField, listed_twice: bool) -> Option<ContextField> {
        let valid = !f.name.is_empty()
            && f.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            self.problem(format!(
                "field name `{}`: letters, digits, `_` and `-`",
                f.name
            ));
        }
        if listed_twice {
            self.problem(format!("field `{}` is listed twice", f.name));
        }
        let compare = match Compare::parse(f.compare.as_deref().unwrap_or("text")) {
            Ok(c) => c,
            Err(e) => {
                self.problem(format!("field `{}`: {e}", f.name));
                Compare::Text
            }
        };
        let expect = self.template(&format!("fields.{}.expect", f.name), &f.expect)?;
        if expect.is_literal() || expect.holes().any(|h| h.captured_name().is_some()) {
            self.problem(format!(
                "field `{}`: `expect` must come from the case (`{{{{patient.…}}}}`), not a constant or a captured value",
                f.name
            ));
        }
        if expect.holes().any(|h| h.has_default()) {
            self.problem(format!(
                "field `{}`: `expect` may not use `default:` (a check against a default proves nothing)",
                f.name
            ));
        }
        Some(ContextField {
            name: f.name,
            at: (f.x, f.y),
            expect,
            compare,
        })
    }

    /// The window title the focused window must have for this step, updating
    /// the playbook's current `guard` (set by `wait_window` and `focus`).
    fn guard(
        &mut self,
        action: &Action,
        title: Option<TitlePattern>,
        guard: &mut Option<TitlePattern>,
    ) -> Option<TitlePattern> {
        match action {
            Action::WaitWindow { title } => {
                *guard = Some(title.clone());
                None
            }
            Action::Focus { title } => {
                if let Some(t) = title {
                    *guard = Some(t.clone());
                } else if guard.is_none() {
                    self.problem("`focus` without `title` needs an earlier `wait_window`");
                }
                guard.clone()
            }
            a if a.is_input() => {
                let g = title.or_else(|| guard.clone());
                if g.is_none() {
                    self.problem(format!(
                        "`{}` sends input but no window is known: add a `wait_window` before it or a `title`",
                        a.name()
                    ));
                }
                g
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "write-decision"
kind = "write"
select_all = "ctrl+/"

[tables.status]
approved = "APPROVED"

[[step]]
id = "auth"
action = "wait_window"
title = "LegacyEHR — Prior Authorization*"

[[step]]
action = "focus"

[[step]]
id = "check"
action = "check_context"
fields = [{ name = "mrn", x = 5, y = 5, expect = "{{patient.identifiers[0].value}}" }]

[[step]]
action = "copy"
x = 10
y = 20
capture = "screen.status"
optional = true

[[step]]
action = "branch"
value = "{{captured.screen.status}}"
equals = "LOCKED"
goto = "locked"

[[step]]
action = "type"
text = "{{decision.authorization_number}} {{decision.status | table:status}}"
retry = { attempts = 2, delay_ms = 50 }

[[step]]
action = "verify"
x = 10
y = 60
expect = "{{decision.authorization_number}}"

[[step]]
id = "check-again"
action = "check_context"
fields = [
  { name = "mrn", x = 5, y = 5, expect = "{{patient.identifiers[0].value}}" },
  { name = "dob", x = 5, y = 25, expect = "{{patient.birth_date}}", compare = "date:MM/DD/YYYY" },
]

[[step]]
id = "save"
action = "click"
x = 10
y = 90
commit = true

[[step]]
action = "branch"
value = "x"
equals = "x"
goto = "end"

[[step]]
id = "locked"
action = "fail"
message = "chart is locked"
"#;

    fn parse(text: &str) -> Result<Playbook, PlaybookError> {
        Playbook::parse(Path::new("pb.toml"), text)
    }

    #[test]
    fn loads_a_valid_playbook_and_resolves_guards() {
        let pb = parse(GOOD).expect("valid");
        assert_eq!(pb.kind, PlaybookKind::Write);
        assert_eq!(pb.steps.len(), 11);
        assert_eq!(pb.steps[0].line, 9, "the line of the `[[step]]` header");
        let typing = &pb.steps[5];
        assert_eq!(typing.id, "step-6");
        assert_eq!(
            typing.guard.as_ref().map(TitlePattern::as_str),
            Some("LegacyEHR — Prior Authorization*")
        );
        assert_eq!(typing.retry.attempts, 2);
        assert!(matches!(
            pb.steps[4].action,
            Action::Branch {
                goto: Target::Step(10),
                ..
            }
        ));
        assert!(matches!(
            pb.steps[9].action,
            Action::Branch {
                goto: Target::End,
                ..
            }
        ));
        assert!(pb.step("save").is_some_and(|s| s.commit));
        assert_eq!(pb.steps.iter().filter(|s| s.commit).count(), 1);
        match &pb.step("check-again").map(|s| &s.action) {
            Some(Action::CheckContext { fields }) => {
                assert_eq!(fields.len(), 2);
                assert_eq!(fields[1].at, (5, 25));
                assert_eq!(fields[1].compare, Compare::Date("MM/DD/YYYY".into()));
            }
            other => panic!("not a check: {other:?}"),
        }
        assert!(
            pb.step("check")
                .and_then(|s| s.guard.as_ref())
                .is_some_and(|g| g.as_str().starts_with("LegacyEHR")),
            "a check reads with input: it is guarded"
        );
    }

    #[test]
    fn write_rule_names_file_line_and_step() {
        // GOOD without its first check: the copy (a read that clicks) is the
        // first input.
        let no_first = GOOD.replacen("id = \"check\"\naction = \"check_context\"", "id = \"check\"\naction = \"wait\"\nms = 1\n#", 1)
            .replacen("fields = [{ name = \"mrn\", x = 5, y = 5, expect = \"{{patient.identifiers[0].value}}\" }]\n", "", 1);
        let err = parse(&no_first).expect_err("no check before the first input");
        let text = err.to_string();
        assert!(
            text.contains(
                "pb.toml:23: step 4 `step-4`: `copy` sends input before any `check_context`"
            ),
            "{text}"
        );
        assert!(
            text.contains("the write rule: a write playbook marks"),
            "the rule is explained: {text}"
        );
        assert_eq!(err.problems.len(), 2, "{text}");

        // GOOD without its second check: the save follows the verify.
        let start = GOOD
            .find("[[step]]\nid = \"check-again\"")
            .expect("second check");
        let end = GOOD.find("[[step]]\nid = \"save\"").expect("save");
        let no_second = format!("{}{}", &GOOD[..start], &GOOD[end..]);
        let err = parse(&no_second).expect_err("no check before the commit");
        let text = err.to_string();
        assert!(
            text.contains("step 8 `save`: the commit step can be reached after step 7 `step-7` (line 40) with no `check_context`"),
            "{text}"
        );
        assert!(text.contains("pb.toml:46: step 8 `save`"), "{text}");
    }

    #[test]
    fn write_rule_follows_branches_and_counts_clicks() {
        let base = |middle: &str| {
            format!(
                r#"
name = "w"
kind = "write"
[[step]]
action = "wait_window"
title = "Auth*"
[[step]]
id = "check"
action = "check_context"
fields = [{{ name = "mrn", x = 1, y = 1, expect = "{{{{patient.identifiers[0].value}}}}" }}]
{middle}
[[step]]
id = "verify"
action = "verify"
x = 1
y = 2
expect = "{{{{decision.status}}}}"
[[step]]
id = "skip"
action = "branch"
value = "{{{{decision.status}}}}"
equals = "denied"
goto = "save"
[[step]]
id = "recheck"
action = "check_context"
fields = [{{ name = "mrn", x = 1, y = 1, expect = "{{{{patient.identifiers[0].value}}}}" }}]
[[step]]
id = "save"
action = "click"
x = 1
y = 9
commit = true
"#
            )
        };
        // A branch that jumps over the second check reaches the commit unchecked.
        let err = parse(&base("")).expect_err("bypass by branch");
        assert!(
            err.to_string()
                .contains("step 6 `save`: the commit step can be reached after step 3 `verify`"),
            "{err}"
        );
        // A click before the first check counts as input.
        let early_click = base("").replacen(
            "[[step]]\nid = \"check\"",
            "[[step]]\nid = \"tab\"\naction = \"click\"\nx = 1\ny = 1\n[[step]]\nid = \"check\"",
            1,
        );
        let err = parse(&early_click).expect_err("click before the check");
        assert!(
            err.to_string()
                .contains("step 2 `tab`: `click` sends input before any `check_context`"),
            "{err}"
        );
        // No commit step at all: said, and the first-input rule still applies.
        let err = parse(&early_click.replace("commit = true\n", "")).expect_err("no commit step");
        let text = err.to_string();
        assert!(text.contains("no step is marked `commit = true`"), "{text}");
        assert!(text.contains("step 2 `tab`: `click` sends input"), "{text}");
        assert!(text.contains("the write rule:"), "{text}");
        // Commit markers: only on click/key, once, and only in write playbooks.
        let err = parse(
            "name='r'\nkind='read'\n[[step]]\naction='wait_window'\ntitle='A'\n[[step]]\naction='copy'\ncapture='a'\n[[step]]\naction='click'\nx=1\ny=1\ncommit=true\n",
        )
        .expect_err("commit in a read playbook");
        assert!(
            err.to_string()
                .contains("pb.toml:9: step 3 `step-3`: `commit` is for write playbooks"),
            "{err}"
        );
        let err = parse(
            "name='r'\nkind='read'\n[[step]]\naction='wait_window'\ntitle='A'\n[[step]]\naction='copy'\ncapture='a'\ncommit=true\n",
        )
        .expect_err("commit on a copy");
        assert!(
            err.to_string()
                .contains("`commit` marks the click or key that saves"),
            "{err}"
        );
        // Expectations come from the case, never constants or defaults.
        for expect in [
            "E10001",
            "{{patient.birth_date | default:x}}",
            "{{captured.a}}",
        ] {
            let text = format!(
                "name='r'\nkind='read'\n[[step]]\naction='wait_window'\ntitle='A'\n[[step]]\naction='copy'\ncapture='a'\n[[step]]\naction='check_context'\nfields=[{{name='mrn', x=1, y=1, expect='{expect}'}}]\n"
            );
            let err = parse(&text).expect_err("bad expectation");
            assert!(
                err.to_string()
                    .contains("pb.toml:9: step 3 `step-3`: field `mrn`"),
                "{err}"
            );
        }
    }

    #[test]
    fn reports_every_problem_with_line_and_step() {
        let bad = r#"
name = "x"
kind = "write"

[[step]]
action = "type"
text = "{{decision.authorization_number}"

[[step]]
action = "key"
keys = ["ctrl+c", "ctl+v"]
title = "App"

[[step]]
action = "branch"
value = "{{captured.nope}}"
equals = "A"
goto = "missing"

[[step]]
action = "teleport"
"#;
        let err = parse(bad).expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.contains("pb.toml:5: step 1 `step-1`: `text`"),
            "{text}"
        );
        assert!(
            text.contains("pb.toml:9: step 2 `step-2`: bad key chord `ctl+v`"),
            "{text}"
        );
        assert!(
            text.contains("`goto` names unknown step `missing`"),
            "{text}"
        );
        assert!(text.contains("`captured.nope` is never captured"), "{text}");
        assert!(text.contains("unknown action `teleport`"), "{text}");
        assert!(text.contains("must verify"), "{text}");
    }

    #[test]
    fn input_without_a_window_and_unknown_keys_are_rejected() {
        let err = parse("name='r'\nkind='read'\n[[step]]\naction='copy'\ncapture='a'\n")
            .expect_err("no guard");
        assert!(err.to_string().contains("no window is known"), "{err}");
        let err = parse("name='r'\nkind='read'\n[[step]]\naction='wait'\nms=1\nsped=2\n")
            .expect_err("unknown key");
        assert!(err.to_string().contains("pb.toml:6"), "{err}");
        let err = parse("name='r'\nkind='read'\n[[step]]\naction='wait'\nms=1\ntext='a'\n")
            .expect_err("unused key");
        assert!(
            err.to_string()
                .contains("`text` is not used by action `wait`"),
            "{err}"
        );
    }
}
