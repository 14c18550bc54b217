//! `demo`: the whole gateway on loopback in a temporary data directory.
//!
//! The daemon starts with the file sink and every adapter wired into this
//! build that can run here: each adapter configures itself for loopback
//! (`Adapter::demo_configure`) or says why it is skipped, then sends its
//! sample traffic (`Adapter::demo_traffic`). The demo then posts a decision
//! for the first case through the admin API, prints the cases, the data
//! directory, the admin URL and token, and what was skipped and why; it keeps
//! running until Ctrl-C unless `--exit-after-traffic` is given.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use gateway_store::{MessageFilter, Reader};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::adapters::{self, DemoEnv};
use crate::daemon::{self, Options, Stop};
use crate::settings::{self, Secret, Settings};

/// Run the whole gateway on loopback with sample traffic.
#[derive(clap::Args)]
pub struct Args {
    /// Stop after the sample traffic and print the summary (for tests and CI).
    #[arg(long)]
    exit_after_traffic: bool,
    /// Admin server address; when taken, a free loopback port is used.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    admin_listen: SocketAddr,
    /// Keep the data here instead of a temporary directory (kept at exit).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The repository root holding `mappings/` and `sample-messages/`
    /// (default: found from the current directory upwards).
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
}

/// Runs the demo.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let repo_root = match args.repo.clone() {
        Some(dir) => dir,
        None => find_repo_root()?,
    };
    let temp = tempfile::Builder::new()
        .prefix("ehr-gateway-demo-")
        .tempdir()
        .context("creating the demo's temporary directory")?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().join("data"));
    let env = DemoEnv {
        repo_root: repo_root.clone(),
        temp_dir: temp.path().to_path_buf(),
    };
    let admin_listen = free_or_fallback(args.admin_listen);
    let config = temp.path().join("demo.toml");
    std::fs::write(&config, demo_config(&repo_root, &data_dir, admin_listen))
        .context("writing the demo config")?;
    let mut settings = settings::load(&config).into_result()?;

    let mut skipped: Vec<(String, String)> = Vec::new();
    for adapter in adapters::all() {
        if let Err(reason) = adapter.demo_configure(&mut settings, &env) {
            skipped.push((adapter.name().to_owned(), reason));
        }
    }
    let token = Secret::new(random_token());

    crate::logging::init(&settings.logging);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let code = runtime.block_on(demo(&args, &settings, &env, data_dir, token, skipped))?;
    drop(temp);
    Ok(code)
}

async fn demo(
    args: &Args,
    settings: &Settings,
    env: &DemoEnv,
    data_dir: PathBuf,
    token: Secret,
    mut skipped: Vec<(String, String)>,
) -> anyhow::Result<ExitCode> {
    let mut signals = daemon::Signals::install()?;
    let running = daemon::start(
        settings,
        Options {
            data_dir: data_dir.clone(),
            admin_token: Some(token.clone()),
        },
    )
    .await?;
    let admin_url = format!("http://{}", running.admin_addr);
    let mut out = std::io::stdout();
    writeln!(out, "ehr-gateway demo")?;
    writeln!(out, "  admin:    {admin_url}  (token: {})", token.expose())?;
    writeln!(out, "  data dir: {}", data_dir.display())?;
    if let Some(dir) = &running.file_sink_dir {
        writeln!(
            out,
            "  events:   {} (CloudEvents, JSON lines)",
            dir.display()
        )?;
    }
    for (name, started) in &running.adapters {
        for endpoint in &started.endpoints {
            let at = endpoint
                .addr
                .map(|a| format!(" on {a}"))
                .unwrap_or_default();
            writeln!(out, "  {name:<9} {}{at}", endpoint.description)?;
        }
    }

    let mut failures = 0;
    let mut ran = Vec::new();
    for (name, started) in &running.adapters {
        let Some(adapter) = adapters::all().into_iter().find(|a| a.name() == *name) else {
            continue;
        };
        match adapter.demo_traffic(started, env).await {
            Ok(summary) => ran.push(((*name).to_owned(), summary)),
            Err(reason) => {
                failures += 1;
                skipped.push(((*name).to_owned(), format!("traffic failed: {reason}")));
            }
        }
    }
    if adapters::all().is_empty() {
        skipped.push((
            "adapters".to_owned(),
            "no adapter is wired into this build".to_owned(),
        ));
    }

    // Let the pipeline and the forwarder settle before reporting.
    settle(&running.data_dir).await;
    let cases = case_lines(&running.data_dir);
    // Decide a case whose owning adapter can write the decision back, if any.
    let writable: Vec<(String, Option<String>)> = running
        .adapters
        .iter()
        .flat_map(|(_, started)| started.writebacks.iter())
        .map(|(wb, profile)| (wb.adapter().to_owned(), profile.clone()))
        .collect();
    let target = cases
        .iter()
        .find(|c| {
            writable
                .iter()
                .any(|(a, p)| *a == c.adapter && p.as_ref().is_none_or(|p| *p == c.profile))
        })
        .or_else(|| cases.first())
        .map(|c| c.case_id.clone());
    if let Some(case_id) = target {
        match post_decision(running.admin_addr, token.expose(), &case_id).await {
            Ok(status) => {
                let writeback = writeback_state(&running.data_dir, &case_id).await;
                ran.push((
                    "decision".to_owned(),
                    format!(
                        "POST /api/v1/cases/{case_id}/decision answered {status}; write-back: {writeback}"
                    ),
                ));
            }
            Err(error) => {
                failures += 1;
                skipped.push(("decision".to_owned(), format!("failed: {error:#}")));
            }
        }
        settle(&running.data_dir).await;
    } else {
        skipped.push((
            "decision".to_owned(),
            "no case was created, so no decision was posted".to_owned(),
        ));
    }

    writeln!(out, "\nran:")?;
    for (name, summary) in &ran {
        writeln!(out, "  {name:<9} {summary}")?;
    }
    writeln!(out, "\ncases:")?;
    let cases = case_lines(&running.data_dir);
    if cases.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for case in &cases {
        writeln!(out, "  {}", case.line)?;
    }
    if !skipped.is_empty() {
        writeln!(out, "\nskipped:")?;
        for (name, reason) in &skipped {
            writeln!(out, "  {name:<9} {reason}")?;
        }
    }
    writeln!(out, "\ntry:")?;
    writeln!(
        out,
        "  curl -H 'Authorization: Bearer {}' {admin_url}/api/v1/messages",
        token.expose()
    )?;
    writeln!(out, "  curl {admin_url}/metrics")?;
    writeln!(
        out,
        "  ehr-gateway messages list --data-dir {}",
        data_dir.display()
    )?;
    out.flush()?;

    let stop = if args.exit_after_traffic {
        Stop::Drain(Duration::from_secs(5))
    } else {
        writeln!(out, "\nrunning; press Ctrl-C to stop")?;
        out.flush()?;
        match signals.next(settings.shutdown.grace_period()).await {
            Stop::Fast => Stop::Drain(Duration::from_secs(2)),
            other => other,
        }
    };
    running.shutdown(stop).await;
    Ok(if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The demo's config: loopback admin, file sink under the data dir, the
/// repository's mappings. Adapters add their sections in `demo_configure`.
fn demo_config(repo_root: &Path, data_dir: &Path, admin: SocketAddr) -> String {
    format!(
        r#"mappings_dir = "{mappings}"
[gateway]
tenant = "mso-demo"
practice = "cardio-north"
site = "main"
[admin]
listen = "{admin}"
[store]
path = "{data}"
[forward]
sink = "file"
[forward.delivery]
poll_interval_ms = 100
[logging]
format = "pretty"
level = "warn"
[shutdown]
grace_period_ms = 5000
"#,
        mappings = toml_path(&repo_root.join("mappings")),
        data = toml_path(data_dir),
    )
}

/// A path as a TOML basic string body (backslashes and quotes escaped).
fn toml_path(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// `addr` when it can be bound now, else a free port on the same IP.
fn free_or_fallback(addr: SocketAddr) -> SocketAddr {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => addr,
        Err(_) => SocketAddr::new(addr.ip(), 0),
    }
}

/// The nearest directory upwards holding `mappings/`, else the source tree's root.
fn find_repo_root() -> anyhow::Result<PathBuf> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    for dir in cwd.ancestors() {
        if dir.join("mappings").is_dir() && dir.join("Cargo.toml").is_file() {
            return Ok(dir.to_path_buf());
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if built.join("mappings").is_dir() {
        return Ok(built);
    }
    anyhow::bail!("cannot find the repository (a directory with mappings/); pass --repo DIR")
}

fn random_token() -> String {
    use rand::Rng as _;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until the outbox has nothing pending (or 3 s).
async fn settle(data_dir: &Path) {
    let file = daemon::store_file(data_dir);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let pending = Reader::open(&file)
            .and_then(|r| r.outbox_stats())
            .map(|s| s.pending)
            .unwrap_or(0);
        if pending == 0 {
            return;
        }
    }
}

/// One stored case as the demo shows it.
struct CaseLine {
    case_id: String,
    adapter: String,
    profile: String,
    line: String,
}

/// One line per case: id, status, adapter/profile, message type, service codes.
/// Ids and codes only: the demo prints no patient data.
fn case_lines(data_dir: &Path) -> Vec<CaseLine> {
    let Ok(reader) = Reader::open(daemon::store_file(data_dir)) else {
        return Vec::new();
    };
    let Ok(messages) = reader.list_messages(&MessageFilter {
        limit: Some(1000),
        ..MessageFilter::default()
    }) else {
        return Vec::new();
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut lines = Vec::new();
    for message in messages.iter().rev() {
        let Some(case_id) = &message.case_id else {
            continue;
        };
        if !seen.insert(case_id.clone()) {
            continue;
        }
        let Ok(Some(record)) = reader.get_case(case_id) else {
            continue;
        };
        let codes: Vec<String> = record
            .case
            .services
            .iter()
            .map(|s| format!("{} {}", s.code.system.as_str(), s.code.code))
            .collect();
        let decision = record
            .case
            .decision
            .as_ref()
            .and_then(|d| d.authorization_number.clone())
            .map(|n| format!(" auth={n}"))
            .unwrap_or_default();
        lines.push(CaseLine {
            case_id: case_id.clone(),
            adapter: record.adapter.clone(),
            profile: record.profile.clone(),
            line: format!(
                "{case_id}  {:<10} {}/{}  {}  [{}]  events={}{decision}",
                record.case.status.as_str(),
                record.adapter,
                record.profile,
                record.case.source.message_type.as_deref().unwrap_or("-"),
                codes.join(", "),
                record.last_sequence,
            ),
        });
    }
    lines
}

/// The write-back state of the newest decision of `case_id`, after giving the
/// owning adapter up to 5 s.
async fn writeback_state(data_dir: &Path, case_id: &str) -> String {
    let file = daemon::store_file(data_dir);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut last = "unknown".to_owned();
    while tokio::time::Instant::now() < deadline {
        let state = Reader::open(&file).ok().and_then(|r| {
            let decision_id = r
                .case_events(case_id)
                .ok()?
                .iter()
                .rev()
                .find_map(|e| e.decision_id)?;
            r.writeback_state(decision_id).ok().flatten()
        });
        if let Some((state, error)) = state {
            last = match (state, error) {
                (gateway_store::WriteBackState::Done, _) => return "done".to_owned(),
                (gateway_store::WriteBackState::Failed, e) => {
                    return format!("failed ({})", e.unwrap_or_default());
                }
                (gateway_store::WriteBackState::Pending, Some(e)) => {
                    format!("pending, retrying ({e})")
                }
                (gateway_store::WriteBackState::Pending, None) => "pending".to_owned(),
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    last
}

/// Posts an approval for `case_id` through the admin API (plain HTTP/1.1 on
/// loopback); returns the status line's code.
async fn post_decision(admin: SocketAddr, token: &str, case_id: &str) -> anyhow::Result<u16> {
    let body = r#"{"status":"approved","authorization_number":"DEMO-AUTH-0001","effective":{"start":"2026-12-01","end":"2027-02-28"},"note":"demo decision"}"#;
    let request = format!(
        "POST /api/v1/cases/{case_id}/decision HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(admin)
        .await
        .context("connecting to the admin server")?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .context("the admin server did not answer")??;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .context("no HTTP status in the answer")?;
    if status != 202 {
        anyhow::bail!("the admin API answered {status}");
    }
    Ok(status)
}
