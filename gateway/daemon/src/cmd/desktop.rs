//! `desktop run --playbook FILE [--case CASE.json] [--dry-run] [--timing]` and
//! `desktop check --playbook FILE…`: run or check a desktop playbook by hand;
//! `check` also shows where a write playbook checks the patient on screen and
//! where it saves, with the rule it must follow (the loader's errors state the
//! rule when a write playbook breaks it).
//!
//! A read playbook prints the Case mapped from the screen (through the profile
//! in `--profile`, by default the folder above the playbook's `playbooks/`) on
//! stdout; a write playbook types `--case`'s decision and verifies it. An abort
//! prints the (PHI-free) reason and, having no daemon store at hand, writes the
//! screenshot as `desktop-abort-<playbook>-<ms>.png` into `--evidence-dir`
//! (default: the system temp directory; the daemon keeps its own in the store).
//! Every desktop call is bounded (5 s; typing 25 ms more per character). `--dry-run` touches no desktop and prints every step with
//! values redacted. `--timing` prints each step's duration on stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use gateway_desktop::{Playbook, PlaybookKind, RunOptions, dry_run, run_playbook};
use gateway_mapping::{MapContext, Profile, render_all};

/// The one path syntax a desktop profile needs (the daemon-wide registry in
/// `formats.rs` carries it too; this keeps the command self-contained).
struct Syntaxes;

impl gateway_mapping::SyntaxProvider for Syntaxes {
    fn syntax(
        &self,
        format: gateway_core::SourceFormat,
    ) -> Option<&dyn gateway_core::path::PathSyntax> {
        match format {
            gateway_core::SourceFormat::Desktop => Some(&gateway_desktop::DesktopPathSyntax),
            gateway_core::SourceFormat::Json => Some(&gateway_core::json_tree::JsonPathSyntax),
            _ => None,
        }
    }
}

/// Run or check desktop playbooks (legacy desktop EHRs).
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DesktopCommand,
}

#[derive(clap::Subcommand)]
enum DesktopCommand {
    /// Run one playbook against the X display in DISPLAY.
    Run(RunArgs),
    /// Load and validate playbooks without running them.
    Check(CheckArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The playbook file (TOML).
    #[arg(long, value_name = "FILE")]
    playbook: PathBuf,
    /// The case whose decision a write playbook types (Case v1 JSON).
    #[arg(long, value_name = "CASE.json")]
    case: Option<PathBuf>,
    /// Print the steps with values redacted; touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print each step's duration on stderr.
    #[arg(long)]
    timing: bool,
    /// Mapping profile folder for read playbooks (default: the playbook's profile).
    #[arg(long, value_name = "DIR")]
    profile: Option<PathBuf>,
    /// Where an aborted run's screenshot goes (default: the temp directory).
    #[arg(long, value_name = "DIR")]
    evidence_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Playbook files.
    #[arg(long = "playbook", value_name = "FILE", required = true)]
    playbooks: Vec<PathBuf>,
}

/// Dispatches `desktop run` / `desktop check`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        DesktopCommand::Run(a) => run_one(a),
        DesktopCommand::Check(a) => check(a),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    for path in &args.playbooks {
        match Playbook::load(path) {
            Ok(pb) => {
                println!(
                    "{}: ok ({} playbook `{}`, {} steps)",
                    path.display(),
                    pb.kind.as_str(),
                    pb.name,
                    pb.steps.len()
                );
                if pb.kind == PlaybookKind::Write {
                    explain_write_rule(&pb);
                }
            }
            Err(e) => {
                ok = false;
                eprintln!("{e}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Where a write playbook checks the patient on screen and where it saves,
/// with the rule they satisfy (a failing playbook's errors state it too).
fn explain_write_rule(pb: &Playbook) {
    let at = |s: &gateway_desktop::playbook::Step| {
        format!("step {} `{}` (line {})", s.index + 1, s.id, s.line)
    };
    let checks: Vec<String> = pb
        .steps
        .iter()
        .filter(|s| matches!(s.action, gateway_desktop::playbook::Action::CheckContext { .. }))
        .map(at)
        .collect();
    let commit: Vec<String> = pb.steps.iter().filter(|s| s.commit).map(at).collect();
    println!("  context checks: {}", checks.join(", "));
    println!("  commit: {}", commit.join(", "));
    println!(
        "  rule: {}",
        gateway_desktop::playbook::WRITE_RULE
    );
}

fn load_case(path: &Path) -> anyhow::Result<gateway_core::Case> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a Case v1", path.display()))
}

/// `mappings/<profile>/playbooks/x.toml` → `mappings/<profile>`.
fn default_profile_dir(playbook: &Path) -> Option<PathBuf> {
    let dir = playbook.parent()?;
    let profile = if dir.file_name().is_some_and(|n| n == "playbooks") {
        dir.parent()?
    } else {
        dir
    };
    profile
        .join("profile.toml")
        .exists()
        .then(|| profile.to_owned())
}

fn run_one(args: RunArgs) -> anyhow::Result<ExitCode> {
    let playbook = match Playbook::load(&args.playbook) {
        Ok(pb) => pb,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let case = args.case.as_deref().map(load_case).transpose()?;
    if args.dry_run {
        let listing = dry_run::describe(&playbook, case.as_ref());
        print!("{listing}");
        if playbook.kind == PlaybookKind::Write && case.is_none() {
            eprintln!("note: a write playbook needs --case to run");
        }
        return Ok(if listing.contains("ERROR:") {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    // Load the profile before touching the desktop: a broken profile must not
    // cost a screen read.
    let profile = if playbook.kind == PlaybookKind::Read {
        let dir = args
            .profile
            .clone()
            .or_else(|| default_profile_dir(&args.playbook))
            .context("no mapping profile found next to the playbook; pass --profile DIR")?;
        match Profile::load(&dir, &Syntaxes) {
            Ok(p) => Some(p),
            Err(e) => {
                eprint!("{}", render_all(&e.diagnostics));
                eprintln!("{}: the profile has errors", dir.display());
                return Ok(ExitCode::FAILURE);
            }
        }
    } else {
        None
    };
    let mut driver = x11_driver()?;
    let result = run_playbook(
        &playbook,
        &mut *driver,
        case.as_ref(),
        &RunOptions::default(),
    );
    match result {
        Ok(report) => {
            if args.timing {
                print_timing(&report.steps, report.elapsed);
            }
            match profile {
                Some(profile) => {
                    let (_raw, document) = gateway_desktop::capture::document(
                        &playbook.name,
                        playbook.record_key.as_deref(),
                        &report.captures,
                    );
                    let context = MapContext {
                        received_at: jiff::Timestamp::now().to_string(),
                        adapter: Some(gateway_desktop::ADAPTER.to_owned()),
                        ..MapContext::default()
                    };
                    let outcome = profile.map(&document, &context);
                    if !outcome.diagnostics.is_empty() {
                        eprint!("{}", render_all(&outcome.diagnostics));
                    }
                    match &outcome.case {
                        Some(case) => {
                            println!("{}", serde_json::to_string_pretty(case)?);
                            Ok(ExitCode::SUCCESS)
                        }
                        None => Ok(ExitCode::FAILURE),
                    }
                }
                None => {
                    eprintln!(
                        "playbook `{}` wrote and verified the decision ({} steps, {} ms)",
                        report.playbook,
                        report.steps.len(),
                        report.elapsed.as_millis()
                    );
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Err(abort) => {
            eprintln!("error: {abort}");
            if args.timing {
                print_timing(&abort.completed, std::time::Duration::ZERO);
            }
            if let Some(shot) = &abort.screenshot {
                let dir = args.evidence_dir.unwrap_or_else(std::env::temp_dir);
                std::fs::create_dir_all(&dir)?;
                let path = dir.join(format!(
                    "desktop-abort-{}-{}.png",
                    playbook.name,
                    jiff::Timestamp::now().as_millisecond()
                ));
                std::fs::write(&path, &shot.png)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("screenshot: {}", path.display());
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

fn print_timing(steps: &[gateway_desktop::engine::StepRecord], total: std::time::Duration) {
    for s in steps {
        eprintln!(
            "timing: {:>3}. {:<10} {:<22} {:>8.1} ms{}",
            s.index + 1,
            s.action,
            s.id,
            s.elapsed.as_secs_f64() * 1000.0,
            if s.attempts > 1 {
                format!(" ({} attempts)", s.attempts)
            } else {
                String::new()
            }
        );
    }
    if !total.is_zero() {
        eprintln!("timing: total {:.1} ms", total.as_secs_f64() * 1000.0);
    }
}

/// The desktop driver: X11 on Unix, Win32 on Windows (the interactive
/// session this command runs in). Every call is bounded
/// ([`gateway_desktop::bounded`]): a hung desktop aborts the run instead of
/// hanging the command.
#[cfg(any(unix, windows))]
fn x11_driver() -> anyhow::Result<Box<dyn gateway_desktop::Driver>> {
    let driver = gateway_desktop::BoundedDriver::spawn(
        || {
            #[cfg(unix)]
            let driver = gateway_desktop::x11::X11Driver::connect(None);
            #[cfg(windows)]
            let driver = gateway_desktop::windows::WindowsDriver::connect();
            driver.map(|d| Box::new(d) as Box<dyn gateway_desktop::Driver>)
        },
        gateway_desktop::Bounds::default(),
    )
    .context("cannot drive the desktop")?;
    Ok(Box::new(driver))
}

/// No desktop driver exists for this platform.
#[cfg(not(any(unix, windows)))]
fn x11_driver() -> anyhow::Result<Box<dyn gateway_desktop::Driver>> {
    anyhow::bail!("desktop playbooks drive X11 (Unix) or Win32 (Windows) desktops only")
}
