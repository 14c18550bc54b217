//! `demo`: the whole gateway on loopback in a temporary data directory.
//!
//! The daemon starts with the file sink (the local stand-in for the central
//! platform) and every adapter wired into this build that can run here: each
//! adapter configures itself for loopback (`Adapter::demo_configure`) or says
//! why it is skipped, then sends its sample traffic (`Adapter::demo_traffic`).
//! The desktop bridge gets a private Xvfb when there is no display but Xvfb
//! is installed ([`xvfb`]). The demo then shows the X12 file drop's folders
//! ([`x12_files`]), posts a decision through the admin API so the write-back
//! runs ([`admin_client`]), prints a summary from the store ([`summary`]) with
//! the dashboard URL and where the demo admin token is, and names every part
//! it skipped and why. It keeps serving until Ctrl-C unless
//! `--exit-after-traffic` is given; the temporary directory is removed at
//! exit unless `--keep`, and every child process it started is stopped on
//! every exit path.

mod admin_client;
mod summary;
mod x12_files;
#[cfg(unix)]
mod xvfb;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gateway_core::adapter::name as adapter_name;
use gateway_store::Reader;

use crate::adapters::{self, DemoEnv, DemoState};
use crate::daemon::{self, Options, Running, Stop};
use crate::settings::{self, Settings};
use summary::Snapshot;

/// Run the whole gateway on loopback with sample traffic.
#[derive(clap::Args)]
pub struct Args {
    /// Stop after the sample traffic and print the summary (for tests and CI).
    #[arg(long)]
    exit_after_traffic: bool,
    /// Keep the temporary directory (store, events, token, X12 folders) at exit.
    #[arg(long)]
    keep: bool,
    /// Admin server address; when taken, a free loopback port is used.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    admin_listen: SocketAddr,
    /// Keep the data here instead of the temporary directory (kept at exit).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The repository root holding `mappings/` and `sample-messages/`
    /// (default: found from the current directory upwards).
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
}

/// Where the desktop bridge's X display comes from.
enum Display {
    /// `DISPLAY` is set; `ours` when the demo started the Xvfb behind it.
    /// (X11 only: never built on Windows.)
    #[cfg_attr(not(unix), allow(dead_code))]
    Existing { display: String, ours: bool },
    /// No display: why.
    Unavailable(String),
}

/// Runs the demo.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    #[cfg(unix)]
    let display = match xvfb::plan() {
        xvfb::Plan::Existing { display, ours } => Display::Existing { display, ours },
        xvfb::Plan::Unavailable(reason) => Display::Unavailable(reason),
        xvfb::Plan::StartXvfb => match xvfb::supervise()? {
            Ok(code) => return Ok(code),
            Err(reason) => Display::Unavailable(reason),
        },
    };
    #[cfg(not(unix))]
    let display = Display::Unavailable("the desktop bridge drives X11 displays only".to_owned());

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
    let mut env = DemoEnv {
        repo_root: repo_root.clone(),
        temp_dir: temp.path().to_path_buf(),
        mappings_dir: PathBuf::new(),
    };
    let token_file = temp.path().join("admin.token");
    write_private(&token_file, &random_token()).context("writing the demo admin token")?;
    let admin_listen = free_or_fallback(args.admin_listen);
    let config = temp.path().join("demo.toml");
    std::fs::write(
        &config,
        demo_config(&repo_root, &data_dir, admin_listen, &token_file),
    )
    .context("writing the demo config")?;
    let mut settings = settings::load(&config).into_result()?;
    env.mappings_dir = settings.mappings_dir.clone();

    // What the adapters' demo hooks started (the loopback FHIR server, the
    // desktop test application), stopped when dropped however this function
    // ends.
    let mut states: Vec<(&'static str, DemoState)> = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    for adapter in adapters::all() {
        if adapter.name() == gateway_desktop::ADAPTER
            && let Display::Unavailable(reason) = &display
        {
            skipped.push((part(adapter.name()), reason.clone()));
            continue;
        }
        match adapter.demo_configure(&mut settings, &env) {
            Ok(state) => states.push((adapter.name(), state)),
            Err(reason) => skipped.push((part(adapter.name()), plain_reason(&reason))),
        }
    }

    crate::logging::init(&settings.logging);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let demo = Demo {
        args: &args,
        settings: &settings,
        env: &env,
        data_dir,
        token_file,
        display,
    };
    let code = runtime.block_on(demo.run(skipped, &mut states));
    runtime.shutdown_timeout(Duration::from_secs(2));
    if args.keep {
        let kept = temp.keep();
        println!("Kept the demo directory: {}", kept.display());
    }
    code
}

/// Everything the running demo needs.
struct Demo<'a> {
    args: &'a Args,
    settings: &'a Settings,
    env: &'a DemoEnv,
    data_dir: PathBuf,
    token_file: PathBuf,
    display: Display,
}

/// What the traffic phase did.
#[derive(Default)]
struct Traffic {
    /// Per part: one or more lines of what happened.
    ran: Vec<(String, String)>,
    /// Parts that were started but whose traffic failed: why.
    failed: Vec<(String, String)>,
}

impl Demo<'_> {
    async fn run(
        self,
        mut skipped: Vec<(String, String)>,
        states: &mut [(&'static str, DemoState)],
    ) -> anyhow::Result<ExitCode> {
        let mut signals = daemon::Signals::install()?;
        #[cfg(unix)]
        let mut parent = xvfb::parent_gone();
        #[cfg(not(unix))]
        let mut parent: Option<tokio::sync::oneshot::Receiver<()>> = None;
        let running = daemon::start(
            self.settings,
            Options {
                data_dir: self.data_dir.clone(),
                admin_token: None,
            },
        )
        .await?;
        let mut out = std::io::stdout();
        self.write_started(&mut out, &running)?;
        out.flush()?;

        let token = std::fs::read_to_string(&self.token_file)
            .context("reading the demo admin token")?
            .trim()
            .to_owned();
        let traffic = tokio::select! {
            traffic = self.traffic(&running, &token, states) => traffic,
            stop = stop_requested(&mut signals, &mut parent, self.settings.shutdown.grace_period()) => {
                writeln!(out, "\nInterrupted during the sample traffic; stopping.")?;
                running.shutdown(gentle(stop)).await;
                return Ok(ExitCode::from(130));
            }
        };
        skipped.extend(
            traffic
                .failed
                .iter()
                .map(|(p, why)| (p.clone(), format!("failed: {why}"))),
        );
        let dashboard = admin_client::dashboard_served(running.admin_addr).await;
        self.write_summary(&mut out, &running, &traffic, &skipped, dashboard)?;
        out.flush()?;

        let stop = if self.args.exit_after_traffic {
            Stop::Drain(Duration::from_secs(5))
        } else {
            writeln!(out, "\nServing until Ctrl-C.")?;
            out.flush()?;
            gentle(
                stop_requested(
                    &mut signals,
                    &mut parent,
                    self.settings.shutdown.grace_period(),
                )
                .await,
            )
        };
        running.shutdown(stop).await;
        Ok(if traffic.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    /// Sends every adapter's sample traffic, shows the X12 folders, posts a
    /// decision and waits for the forwarder.
    async fn traffic(
        &self,
        running: &Running,
        token: &str,
        states: &mut [(&'static str, DemoState)],
    ) -> Traffic {
        let mut t = Traffic::default();
        let host: Arc<dyn adapters::Host> =
            Arc::new(adapters::StoreHost::new(running.store.clone()));
        for (name, started) in &running.adapters {
            let Some(adapter) = adapters::all().into_iter().find(|a| a.name() == *name) else {
                continue;
            };
            // An adapter started without a demo hook's state gets an empty one
            // (its traffic then says it was not configured).
            let mut none: DemoState = Box::new(());
            let state = match states.iter_mut().find(|(n, _)| n == name) {
                Some((_, state)) => state,
                None => &mut none,
            };
            match adapter
                .demo_traffic(started, state, Arc::clone(&host), self.env)
                .await
            {
                Ok(line) => t.ran.push((part(name), without_prefix(&line, name))),
                Err(reason) => t.failed.push((part(name), plain_reason(&reason))),
            }
        }
        let x12_started = running.adapters.iter().any(|(n, _)| *n == adapter_name::X12);
        if let Some(drop_cfg) = self
            .settings
            .x12
            .as_ref()
            .and_then(|x| x.file_drop.as_ref())
            && x12_started
        {
            match x12_files::drop_malformed(drop_cfg, &self.env.repo_root).await {
                Ok(()) => {
                    for line in x12_files::describe(drop_cfg) {
                        t.ran.push((part(adapter_name::X12), line));
                    }
                }
                Err(why) => t.failed.push((part(adapter_name::X12), why)),
            }
        }
        settle(&running.data_dir).await;
        match self.decide(running, token).await {
            Ok(line) => t.ran.push(("decision write-back".to_owned(), line)),
            Err(why) => t.failed.push(("decision write-back".to_owned(), why)),
        }
        settle(&running.data_dir).await;
        t
    }

    /// Posts the demo decision for the case whose owning adapter can best
    /// write it back, and reports the write-back's state.
    async fn decide(&self, running: &Running, token: &str) -> Result<String, String> {
        let snapshot = Snapshot::read(&running.data_dir);
        let writable: Vec<(String, Option<String>)> = running
            .adapters
            .iter()
            .flat_map(|(_, started)| started.writebacks.iter())
            .map(|(wb, profile)| (wb.adapter().to_owned(), profile.clone()))
            .collect();
        let can_write = |c: &summary::CaseInfo| {
            writable
                .iter()
                .any(|(a, p)| *a == c.adapter && p.as_ref().is_none_or(|p| *p == c.profile))
        };
        let open = |c: &&summary::CaseInfo| matches!(c.status.as_str(), "requested" | "pended");
        // The desktop test application is closed after its own demo, so a
        // desktop case is the last choice.
        let rank = |c: &summary::CaseInfo| match c.adapter.as_str() {
            adapter_name::FHIR => 0,
            adapter_name::X12 => 1,
            adapter_name::HL7V2 => 2,
            _ => 3,
        };
        let mut writable_cases: Vec<&summary::CaseInfo> = snapshot
            .cases
            .iter()
            .filter(open)
            .filter(|c| can_write(c))
            .collect();
        writable_cases.sort_by_key(|c| rank(c));
        let target = writable_cases
            .first()
            .copied()
            .or_else(|| snapshot.cases.iter().find(open))
            .ok_or_else(|| "no open case was created, so no decision was posted".to_owned())?;
        let status = admin_client::post_decision(running.admin_addr, token, &target.case_id)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let case_id = &target.case_id;
        let writeback = if can_write(target) {
            format!(
                "write-back by {} ({}): {}",
                target.adapter,
                target.profile,
                admin_client::writeback_state(&running.data_dir, case_id).await
            )
        } else {
            format!(
                "no write-back is configured for {} in the demo, so the decision stays pending and is forwarded as a case.decided event",
                target.adapter
            )
        };
        Ok(format!(
            "POST /api/v1/cases/{case_id}/decision answered {status} (approved, DEMO-AUTH-0001); {writeback}"
        ))
    }

    fn write_started(
        &self,
        out: &mut impl std::io::Write,
        running: &Running,
    ) -> std::io::Result<()> {
        let temp = &self.env.temp_dir;
        writeln!(
            out,
            "ehr-gateway demo: the gateway on loopback with sample traffic"
        )?;
        writeln!(
            out,
            "  temp dir:  {} ({})",
            temp.display(),
            if self.args.keep {
                "kept at exit"
            } else {
                "removed at exit; --keep keeps it"
            }
        )?;
        writeln!(out, "  data dir:  {}", running.data_dir.display())?;
        writeln!(out, "\nStarted:")?;
        for (name, started) in &running.adapters {
            for endpoint in &started.endpoints {
                let at = endpoint
                    .addr
                    .map(|a| format!(" on {a}"))
                    .unwrap_or_default();
                writeln!(out, "  {name:<9} {}{at}", endpoint.description)?;
            }
            if *name == gateway_desktop::ADAPTER
                && let Display::Existing { display, ours } = &self.display
            {
                let whose = if *ours {
                    "a private Xvfb the demo started"
                } else {
                    "your display"
                };
                writeln!(
                    out,
                    "  {name:<9} legacy-EHR test application on DISPLAY={display} ({whose})"
                )?;
            }
        }
        if let Some(dir) = &running.file_sink_dir {
            writeln!(
                out,
                "  platform  file sink {} (CloudEvents as JSON lines, standing in for the central platform)",
                dir.display()
            )?;
        }
        writeln!(out, "  admin     http://{}", running.admin_addr)?;
        writeln!(out, "\nSending the sample traffic...")
    }

    fn write_summary(
        &self,
        out: &mut impl std::io::Write,
        running: &Running,
        traffic: &Traffic,
        skipped: &[(String, String)],
        dashboard: bool,
    ) -> std::io::Result<()> {
        writeln!(out, "\nRan:")?;
        let mut previous: Option<&str> = None;
        for (name, line) in &traffic.ran {
            if previous == Some(name.as_str()) {
                writeln!(out, "    {line}")?;
            } else {
                writeln!(out, "  {name}: {line}")?;
            }
            previous = Some(name);
        }
        let snapshot = Snapshot::read(&running.data_dir);
        writeln!(out)?;
        snapshot.write_cases(out)?;
        writeln!(out)?;
        snapshot.write_messages(out)?;
        if let Some(dir) = &running.file_sink_dir {
            writeln!(
                out,
                "\nPlatform: {} CloudEvents delivered to the file sink {} ({} pending, {} dead-lettered)",
                snapshot.delivered,
                dir.display(),
                snapshot.pending,
                snapshot.dead
            )?;
        }
        let port = running.admin_addr.port();
        let url = format!("http://localhost:{port}/");
        let token = self.token_file.display();
        writeln!(out, "\nDashboard: {url}")?;
        if !dashboard {
            writeln!(
                out,
                "  (the dashboard did not answer at / just now: see the log above; the admin API below may still answer)"
            )?;
        }
        writeln!(
            out,
            "  log in with the demo admin token, in {token} (mode 0600): cat {token}"
        )?;
        writeln!(
            out,
            "  API:     curl -H \"Authorization: Bearer $(cat {token})\" http://localhost:{port}/api/v1/messages"
        )?;
        writeln!(out, "  metrics: curl http://localhost:{port}/metrics")?;
        writeln!(out, "\nTry next:")?;
        writeln!(
            out,
            "  ehr-gateway messages list --data-dir {}",
            running.data_dir.display()
        )?;
        if self.args.exit_after_traffic && !self.args.keep && self.args.data_dir.is_none() {
            writeln!(
                out,
                "  (the data directory is removed when the demo exits; add --keep to keep it)"
            )?;
        }
        writeln!(out)?;
        if skipped.is_empty() {
            writeln!(out, "Skipped: nothing, every part ran")?;
        }
        for (name, why) in skipped {
            writeln!(out, "Skipped: {name} — {why}")?;
        }
        Ok(())
    }
}

/// A signal, or (inner demo under a private Xvfb) the outer demo gone.
async fn stop_requested(
    signals: &mut daemon::Signals,
    parent: &mut Option<tokio::sync::oneshot::Receiver<()>>,
    grace: Duration,
) -> Stop {
    let parent_gone = async {
        match parent.as_mut() {
            Some(rx) => {
                let _ = rx.await;
                *parent = None;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        stop = signals.next(grace) => stop,
        () = parent_gone => Stop::Fast,
    }
}

/// SIGINT stops the demo with a short drain (it owns all its traffic).
fn gentle(stop: Stop) -> Stop {
    match stop {
        Stop::Fast => Stop::Drain(Duration::from_secs(2)),
        other => other,
    }
}

/// The part of the demo an adapter stands for, as the summary names it.
fn part(adapter: &str) -> String {
    match adapter {
        adapter_name::HL7V2 => "HL7 v2 MLLP listener",
        adapter_name::FHIR => "FHIR polling",
        adapter_name::DESKTOP => "desktop bridge",
        adapter_name::X12 => "X12 file drop and CORE SOAP",
        adapter_name::DAVINCI_PAS => "Da Vinci PAS server",
        other => other,
    }
    .to_owned()
}

/// An adapter's skip reason without its own "skipped the …:" lead-in.
fn plain_reason(reason: &str) -> String {
    match reason.split_once(": ") {
        Some((lead, rest)) if lead.starts_with("skipped ") => rest.to_owned(),
        _ => reason.to_owned(),
    }
}

/// An adapter's summary line without a leading "<adapter>: ".
fn without_prefix(line: &str, adapter: &str) -> String {
    line.strip_prefix(adapter)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(line)
        .to_owned()
}

/// The demo's config: loopback admin with the generated token file, file sink
/// under the data dir, the repository's mappings. Adapters add their sections
/// in `demo_configure`.
fn demo_config(repo_root: &Path, data_dir: &Path, admin: SocketAddr, token_file: &Path) -> String {
    format!(
        r#"mappings_dir = "{mappings}"
[gateway]
tenant = "mso-demo"
practice = "cardio-north"
site = "main"
[admin]
listen = "{admin}"
token_file = "{token}"
[store]
path = "{data}"
[forward]
sink = "file"
[forward.delivery]
poll_interval_ms = 100
[logging]
format = "pretty"
level = "error"
[shutdown]
grace_period_ms = 5000
"#,
        mappings = toml_path(&repo_root.join("mappings")),
        token = toml_path(token_file),
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

/// Writes a secret readable only by the owner (0600 on Unix).
fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{secret}")?;
    file.sync_all()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_reasons_lose_the_adapters_lead_in() {
        assert_eq!(
            plain_reason("skipped the FHIR adapter: node is not installed"),
            "node is not installed"
        );
        assert_eq!(plain_reason("x: y"), "x: y");
        assert_eq!(without_prefix("x12: 3 dropped", "x12"), "3 dropped");
        assert_eq!(without_prefix("sent 3", "hl7v2"), "sent 3");
    }

    #[test]
    fn the_demo_config_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = dir.path().join("admin.token");
        write_private(&token, &random_token()).expect("token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&token)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let config = dir.path().join("demo.toml");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        std::fs::write(
            &config,
            demo_config(
                &repo,
                &dir.path().join("data"),
                "127.0.0.1:0".parse().expect("addr"),
                &token,
            ),
        )
        .expect("config");
        let settings = settings::load(&config).into_result().expect("loads");
        assert_eq!(settings.gateway.tenant, "mso-demo");
    }
}
