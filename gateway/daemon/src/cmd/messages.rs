//! `messages list [--json] / show ID / replay ID… | replay --state S [--reason CODE]`: the message store from the
//! command line, also while the daemon runs.
//!
//! `list` and `show` open the store file read-only (WAL lets them read while
//! the daemon writes). `replay` goes through the store API: a rejected message
//! is queued and the running daemon re-processes it with its current profiles
//! within about a second (or at its next start); an accepted message's
//! dead-lettered events are re-queued for delivery.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use gateway_store::{
    AuditEntry, MessageFilter, MessageState, Reader, ReplayOutcome, Store, StoreOptions,
};

use crate::daemon::store_file;
use crate::settings;

/// List, show and replay stored messages.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    location: Location,
}

/// Where the store is.
#[derive(clap::Args)]
struct Location {
    /// The daemon's data directory.
    #[arg(long, value_name = "DIR", global = true, conflicts_with = "config")]
    data_dir: Option<PathBuf>,
    /// The daemon's config file (its `[store] path` is used).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// List messages, newest first (oldest first with `--after-id`).
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Only this state: accepted, duplicate, rejected, error.
        #[arg(long)]
        state: Option<String>,
        /// Only this control id.
        #[arg(long)]
        control_id: Option<String>,
        /// At most this many (at most 10 000 per call).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only ids greater than this, oldest first: pages through the whole
        /// store (pass the last id printed until nothing is printed).
        #[arg(long, value_name = "ID")]
        after_id: Option<i64>,
    },
    /// Show one message: metadata, reason, diagnostics, events.
    Show {
        /// The message id.
        id: i64,
        /// Also print the raw bytes (they contain patient data).
        #[arg(long)]
        raw: bool,
    },
    /// Replay messages: re-process rejected ones, re-deliver dead-lettered events.
    /// By id, or in bulk after a profile fix: every message in a state
    /// (`--state rejected`), optionally only those refused for one reason
    /// (`--reason M020`: a diagnostic code, or text of the stored reason).
    Replay {
        /// Message ids.
        #[arg(required_unless_present = "state", conflicts_with = "state")]
        ids: Vec<i64>,
        /// Replay the messages in this state (rejected or error), oldest first.
        #[arg(long)]
        state: Option<String>,
        /// With --state: only messages whose stored diagnostics carry this
        /// code (M020, M023, H010, …) or whose reason contains this text.
        #[arg(long, requires = "state")]
        reason: Option<String>,
        /// With --state: replay at most this many.
        #[arg(long, default_value_t = 1000, requires = "state")]
        limit: usize,
    },
}

/// Runs the action.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let data_dir = match (&args.location.data_dir, &args.location.config) {
        (Some(dir), _) => dir.clone(),
        (None, Some(config)) => settings::load(config).into_result()?.store.path,
        (None, None) => bail!("say where the store is: --data-dir DIR or --config FILE"),
    };
    let file = store_file(&data_dir);
    match args.action {
        Action::List {
            json,
            state,
            control_id,
            limit,
            after_id,
        } => {
            let state = match state.as_deref() {
                None => None,
                Some(name) => Some(MessageState::from_name(name).with_context(|| {
                    format!("unknown state `{name}`: use accepted, duplicate, rejected or error")
                })?),
            };
            let reader = open_reader(&file)?;
            let messages = reader.list_messages(&MessageFilter {
                state,
                control_id,
                limit: Some(limit),
                after_id,
                ..MessageFilter::default()
            })?;
            let mut out = std::io::stdout().lock();
            if json {
                for message in &messages {
                    writeln!(out, "{}", serde_json::to_string(message)?)?;
                }
            } else {
                writeln!(
                    out,
                    "{:>6}  {:<25}  {:<9}  {:<18}  {:<10}  {:<16}  {:<16}  REASON",
                    "ID", "RECEIVED", "STATE", "ADAPTER/PROFILE", "TYPE", "CONTROL", "SENDER"
                )?;
                for m in &messages {
                    writeln!(
                        out,
                        "{:>6}  {:<25}  {:<9}  {:<18}  {:<10}  {:<16}  {:<16}  {}",
                        m.id,
                        m.received_at,
                        m.state.as_str(),
                        format!("{}/{}", m.adapter, m.profile),
                        m.message_type.as_deref().unwrap_or("-"),
                        m.control_id.as_deref().unwrap_or("-"),
                        m.sender.as_deref().unwrap_or("-"),
                        m.error_reason.as_deref().unwrap_or(""),
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Show { id, raw } => {
            let reader = open_reader(&file)?;
            let Some(message) = reader.get_message(id)? else {
                bail!("unknown message {id}");
            };
            let events = reader.message_events(id)?;
            let mut out = std::io::stdout().lock();
            let summary = serde_json::to_value(&message.summary)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
            if !message.diagnostics.is_empty() {
                writeln!(out, "diagnostics:")?;
                for d in &message.diagnostics {
                    writeln!(out, "  {d}")?;
                }
            }
            if !events.is_empty() {
                writeln!(out, "events:")?;
                for e in &events {
                    writeln!(
                        out,
                        "  {} {} #{} {} attempts={}{}",
                        e.id,
                        e.case_id,
                        e.sequence,
                        e.state.as_str(),
                        e.attempts,
                        e.last_error
                            .as_deref()
                            .map(|err| format!(" last_error={err}"))
                            .unwrap_or_default()
                    )?;
                }
            }
            if raw {
                writeln!(out, "raw ({} bytes):", message.raw.len())?;
                out.write_all(&message.raw)?;
                writeln!(out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Replay {
            ids,
            state,
            reason,
            limit,
        } => {
            if !file.is_file() {
                bail!("no store at {}", file.display());
            }
            let ids = match state.as_deref() {
                None => ids,
                Some(name) => {
                    let state = MessageState::from_name(name).with_context(|| {
                        format!("unknown state `{name}`: use rejected or error")
                    })?;
                    let ids = select(&open_reader(&file)?, state, reason.as_deref(), limit)?;
                    println!(
                        "{} message(s) in state {} match{}",
                        ids.len(),
                        state.as_str(),
                        reason
                            .as_deref()
                            .map(|r| format!(" reason {r}"))
                            .unwrap_or_default()
                    );
                    ids
                }
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(async {
                let store = Store::open(&file, StoreOptions::default())
                    .await
                    .with_context(|| format!("cannot open the store {}", file.display()))?;
                let mut failed = false;
                for id in ids {
                    let case_id = store
                        .get_message(id)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|m| m.summary.case_id);
                    let actor = format!("cli:{}", whoami());
                    // The replay and its audit row commit together, or neither does.
                    let replayed = store
                        .replay_message_audited(id, move |outcome| AuditEntry {
                            actor,
                            action: "message.replay".to_owned(),
                            target: Some(id.to_string()),
                            detail: Some(replay_detail(outcome)),
                            case_id,
                        })
                        .await;
                    match replayed {
                        Ok(outcome) => {
                            println!("message {id}: {}", replay_detail(&outcome));
                        }
                        Err(error) => {
                            eprintln!("message {id}: {error}");
                            failed = true;
                        }
                    }
                }
                store.close().await;
                Ok(if failed {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                })
            })
        }
    }
}

/// The ids of up to `limit` messages in `state`, oldest first, whose stored
/// diagnostics carry the code `reason` or whose reason text contains it.
fn select(
    reader: &Reader,
    state: MessageState,
    reason: Option<&str>,
    limit: usize,
) -> anyhow::Result<Vec<i64>> {
    let mut out = Vec::new();
    let mut after = 0;
    while out.len() < limit {
        let page = reader.list_messages(&MessageFilter {
            state: Some(state),
            after_id: Some(after),
            limit: Some(1000),
            ..MessageFilter::default()
        })?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for m in &page {
            let hit = match reason {
                None => true,
                Some(r) => {
                    m.error_reason.as_deref().is_some_and(|t| t.contains(r))
                        || reader
                            .get_message(m.id)?
                            .is_some_and(|full| full.diagnostics.iter().any(|d| d.code == r))
                }
            };
            if hit && out.len() < limit {
                out.push(m.id);
            }
        }
    }
    Ok(out)
}

fn open_reader(file: &std::path::Path) -> anyhow::Result<Reader> {
    Reader::open(file).with_context(|| format!("cannot open the store {}", file.display()))
}

/// What a replay did, for the operator and the audit log.
fn replay_detail(outcome: &ReplayOutcome) -> String {
    match outcome {
        ReplayOutcome::MessageQueued { .. } => {
            "queued for re-processing with the current profiles".to_owned()
        }
        ReplayOutcome::EventsRequeued { event_ids } => format!(
            "{} dead-lettered event(s) re-queued for delivery",
            event_ids.len()
        ),
    }
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned())
}
