//! The daemon's lifetime: start everything in dependency order, stop it in
//! reverse.
//!
//! Start: data dir → store → profiles → sink + forwarder → pipeline →
//! adapters (with the pipeline) → write-back, replay and retention workers →
//! admin server. Nothing accepts traffic before the store is open.
//!
//! Stop ([`Running::shutdown`]):
//! * [`Stop::Drain`] (SIGTERM): `/readyz` turns 503, adapters stop accepting
//!   and finish in-flight messages (each commits, then acknowledges), workers
//!   finish their current attempt, the forwarder flushes in-flight deliveries,
//!   the admin server finishes its requests, the store commits what is queued.
//!   All of it bounded by the grace period; whatever is cut off was never
//!   acknowledged or stays pending in the outbox for the next start.
//! * [`Stop::Fast`] (SIGINT): the same order without waiting.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use gateway_core::SourceFormat;
use gateway_core::adapter::IntakePipeline;
use gateway_forward::{FileSink, FileSinkConfig, Forwarder, HttpSink, Sink};
use gateway_pipeline::{
    DecisionIntake, DocumentParser, Identity, Pipeline, ProfileSet, WriteBackRegistry,
    WriteBackWorker,
};
use gateway_store::{RetentionPolicy, Store, StoreOptions};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::adapters::{self, AdapterContext, Started};
use crate::admin::{self, AdminState, Readiness, SinkProbe};
use crate::settings::{ConfigError, Secret, Settings, SinkKind};

/// The store file inside a data directory.
pub const STORE_FILE: &str = "gateway.sqlite";

/// The store file of `data_dir`.
pub fn store_file(data_dir: &Path) -> PathBuf {
    data_dir.join(STORE_FILE)
}

/// How to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Stop accepting, finish in-flight work, flush; at most this long.
    Drain(Duration),
    /// Stop now.
    Fast,
}

/// Everything `start` needs beyond the settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data directory (store file, file sink default).
    pub data_dir: PathBuf,
    /// Overrides the admin token from the settings (the demo generates one).
    pub admin_token: Option<Secret>,
}

/// A started daemon.
pub struct Running {
    /// Where the admin server listens.
    pub admin_addr: SocketAddr,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The store.
    pub store: Store,
    /// The started adapters, by name.
    pub adapters: Vec<(&'static str, Started)>,
    /// The file sink's directory, when the file sink is used.
    pub file_sink_dir: Option<PathBuf>,
    readiness: Arc<Readiness>,
    stop_admin: CancellationToken,
    /// The forwarder, workers and intake tokens (the adapters are above).
    teardown: Teardown,
    admin: JoinHandle<std::io::Result<()>>,
    /// Released when the daemon is dropped (after `shutdown`).
    _instance_lock: crate::instance::InstanceLock,
}

/// Re-parses stored bytes with the formats wired into this build.
struct FormatParser;

impl DocumentParser for FormatParser {
    fn parse(
        &self,
        _adapter: &str,
        format: SourceFormat,
        raw: &[u8],
    ) -> Result<gateway_core::SourceDocument, Vec<gateway_core::Diagnostic>> {
        crate::formats::parse_for_intake(format, raw)
    }
}

/// What has started so far, in start order. A failed later stage hands it
/// to [`Teardown::stop`], which stops it in reverse (adapters, workers,
/// forwarder, store) before `start` returns the error; a started daemon keeps
/// it in [`Running`] and [`Running::shutdown`] stops it the same way. If the
/// `start` future itself is dropped half-way, `Drop` cancels the tokens and
/// aborts the tasks (it cannot wait for them).
struct Teardown {
    store: Store,
    stop_intake: CancellationToken,
    stop_workers: CancellationToken,
    forwarder: Option<Forwarder>,
    adapters: Vec<(&'static str, Started)>,
    workers: Vec<JoinHandle<()>>,
}

impl Teardown {
    fn new(store: Store) -> Teardown {
        Teardown {
            store,
            stop_intake: CancellationToken::new(),
            stop_workers: CancellationToken::new(),
            forwarder: None,
            adapters: Vec::new(),
            workers: Vec::new(),
        }
    }

    /// Stops intake (adapters finish in-flight messages), then the workers,
    /// then the forwarder, everything bounded by `deadline`. The store stays
    /// open (the caller checkpoints and closes it).
    async fn stop_tasks(&mut self, deadline: Instant) {
        self.stop_intake.cancel();
        for (name, started) in std::mem::take(&mut self.adapters) {
            for task in started.tasks {
                wait_or_abort(task, deadline, name).await;
            }
        }
        self.stop_workers.cancel();
        for task in std::mem::take(&mut self.workers) {
            wait_or_abort(task, deadline, "worker").await;
        }
        if let Some(forwarder) = self.forwarder.take() {
            forwarder
                .shutdown(deadline.saturating_duration_since(Instant::now()))
                .await;
        }
    }

    /// A stage failed: stop what started, close the store, pass `error` on.
    async fn stop(mut self, error: anyhow::Error) -> anyhow::Error {
        tracing::warn!("Start-up failed; stopping what already started.");
        self.stop_tasks(Instant::now()).await;
        let store = self.store.clone();
        drop(self);
        store.close().await;
        error
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        self.stop_intake.cancel();
        self.stop_workers.cancel();
        for (_, started) in &self.adapters {
            for task in &started.tasks {
                task.abort();
            }
        }
        for task in &self.workers {
            task.abort();
        }
    }
}

/// Starts the daemon. Configuration problems found here (a required profile
/// that does not load) are returned as [`ConfigError`].
///
/// Stages, in order: checks that open nothing (data dir, instance lock,
/// admin tokens and TLS, served certificates) → store → profiles → sink and
/// forwarder → alerts → adapters → workers → admin server. Once the store is
/// open, a failing stage stops everything started before it (`Teardown`).
pub async fn start(settings: &Settings, options: Options) -> anyhow::Result<Running> {
    // The recorder first: a metric handle taken before it is installed (an
    // adapter's `adapter_up` gauge, say) would stay a no-op for good.
    let _recorder = crate::telemetry::prometheus();
    // The adapters wired into this build and the registry must agree.
    adapters::check_registry().map_err(|problems| {
        anyhow::anyhow!(
            "the adapter registry is incomplete: {}",
            problems.join("; ")
        )
    })?;
    let data_dir = options.data_dir.clone();
    // Owner-only (0700) when created here; an existing directory open to
    // other users is reported, not changed (it may be shared on purpose).
    gateway_store::private_files::create_private_dir(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    if gateway_store::private_files::is_shared(&data_dir) {
        tracing::warn!(
            data_dir = %data_dir.display(),
            "The data directory is readable by other local users; it holds PHI: chmod 700 it."
        );
    }
    // One daemon per data directory; `store restore` checks the same lock.
    let instance_lock = crate::instance::acquire(&data_dir)?;
    let access = admin::access::Access::load(&settings.admin, options.admin_token.clone())
        .map_err(|problems| ConfigError { problems })?;
    if access.is_empty() {
        tracing::warn!("No admin token configured: /api/v1 answers 401 to every request.");
    } else {
        tracing::info!(tokens = ?access.names(), "Admin tokens loaded.");
    }

    // The admin listener's TLS first: a bad certificate stops the start
    // before anything opens.
    let admin_options = admin::listener_options(&settings.admin)?;
    let served_certificates = served_certificates(settings)?;

    let store_options = StoreOptions {
        fail_after_transactions: writer_test_hook(),
        max_bytes: Some(settings.store.max_size_mb.saturating_mul(1024 * 1024)),
        max_page_count: page_limit_test_hook(),
        ..StoreOptions::default()
    };
    let store = Store::open(store_file(&data_dir), store_options)
        .await
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let mut teardown = Teardown::new(store);
    let staged = start_stages(
        settings,
        &data_dir,
        access,
        served_certificates,
        &mut teardown,
    )
    .await;
    let stages = match staged {
        Ok(stages) => stages,
        Err(error) => return Err(teardown.stop(error).await),
    };
    let stop_admin = CancellationToken::new();
    let admin = tokio::spawn(admin::serve(
        stages.listener,
        stages.admin_state,
        admin_options,
        stop_admin.clone(),
    ));
    tracing::info!(
        admin_addr = %stages.admin_addr,
        data_dir = %data_dir.display(),
        sink = settings.forward.sink.as_str(),
        "Daemon started."
    );
    let adapters = std::mem::take(&mut teardown.adapters);
    Ok(Running {
        admin_addr: stages.admin_addr,
        data_dir,
        store: teardown.store.clone(),
        adapters,
        file_sink_dir: stages.file_sink_dir,
        readiness: stages.readiness,
        stop_admin,
        teardown,
        admin,
        _instance_lock: instance_lock,
    })
}

/// What the stages after the store hand to the admin server and [`Running`].
struct Stages {
    listener: tokio::net::TcpListener,
    admin_addr: SocketAddr,
    admin_state: AdminState,
    readiness: Arc<Readiness>,
    file_sink_dir: Option<PathBuf>,
}

/// The stages after the store is open; each records what it started in
/// `teardown` before the next one runs.
async fn start_stages(
    settings: &Settings,
    data_dir: &Path,
    access: admin::access::Access,
    served_certificates: Vec<crate::certificates::Served>,
    teardown: &mut Teardown,
) -> anyhow::Result<Stages> {
    let store = teardown.store.clone();
    let profiles = load_profiles(settings)?;
    let (sink, probe, file_sink_dir) = build_sink(settings, data_dir).await?;
    let sink_name = sink.name().to_owned();
    teardown.forwarder = Some(Forwarder::spawn(
        store.clone(),
        sink,
        settings.forward.delivery,
    ));

    let identity = Identity {
        tenant: settings.gateway.tenant.clone(),
        practice: settings.gateway.practice.clone(),
        site: settings.gateway.site.clone(),
    };
    let pipeline =
        Pipeline::new(store.clone(), profiles, identity).with_parser(Arc::new(FormatParser));
    let intake: Arc<dyn IntakePipeline> = Arc::new(pipeline.clone());

    // Alerts (issue 9): started before the adapters so a webhook problem stops
    // the start before anything accepts traffic.
    let adapter_health = crate::telemetry::AdapterHealth::new();
    let alert_state = crate::alerts::AlertState::new();
    let alert_sources = crate::alerts::Sources {
        store: store.clone(),
        adapters: adapter_health.clone(),
        sink: sink_name.clone(),
        identity: crate::alerts::webhook::GatewayIdentity {
            tenant: settings.gateway.tenant.clone(),
            practice: settings.gateway.practice.clone(),
            site: settings.gateway.site.clone(),
        },
        certificates: served_certificates.clone(),
        store_warn_fraction: settings.store.warn_fraction,
    };
    teardown.workers.extend(crate::alerts::spawn(
        &settings.alerts,
        alert_sources,
        alert_state.clone(),
        teardown.stop_workers.clone(),
    )?);

    let registry = start_adapters(settings, data_dir, intake, &adapter_health, teardown).await?;
    crate::telemetry::zero_init(&crate::telemetry::KnownSeries {
        intake: teardown
            .adapters
            .iter()
            .flat_map(|(name, started)| {
                started
                    .endpoints
                    .iter()
                    .filter_map(|e| Some(((*name).to_owned(), e.profile.clone()?)))
            })
            .collect(),
        sink: sink_name,
    });

    let wake = Arc::new(Notify::new());
    let decisions = DecisionIntake::new(store.clone(), wake.clone());
    // Decisions back over JetStream (issue #20): the same intake as the admin API.
    if let (SinkProbe::Nats(client), Some(nats)) = (&probe, &settings.forward.nats)
        && nats.decisions
    {
        let subjects = nats.subjects(settings).map_err(anyhow::Error::msg)?;
        let handler = crate::nats::IntakeHandler::new(decisions.clone(), &subjects);
        let consumer = gateway_forward::nats::DecisionConsumer::spawn(
            client.clone(),
            subjects,
            nats.decisions_stream.clone(),
            nats.ack_timeout_ms,
            handler,
        );
        let stop = teardown.stop_workers.clone();
        teardown.workers.push(tokio::spawn(async move {
            stop.cancelled().await;
            consumer.shutdown().await;
        }));
    }
    start_workers(
        settings,
        pipeline,
        registry,
        wake,
        served_certificates,
        teardown,
    );

    let readiness = Arc::new(Readiness {
        draining: false.into(),
        data_dir: data_dir.to_owned(),
        sink: probe,
    });
    // 278 requests the platform obtains for a case, recorded so the payer's
    // response can be adopted onto the case (admin/x12_request.rs).
    let x12_request = match &settings.x12 {
        Some(section) => admin::x12_request::X12RequestWriter::load(
            &settings.mappings_dir,
            &section.profile,
            section.identity.clone(),
            Arc::new(gateway_x12::HostControlNumbers::new(
                Arc::new(crate::adapters::StoreHost::new(store.clone())),
                &section.identity.id,
            )),
        )
        .context("the x12 outbound request template")?
        .map(Arc::new),
        None => None,
    };
    let listener = admin::bind(settings.admin.listen).await?;
    let admin_addr = listener.local_addr().context("admin listener address")?;
    let endpoints = teardown
        .adapters
        .iter()
        .flat_map(|(name, started)| {
            started
                .endpoints
                .iter()
                .map(|e| admin::AdapterEndpoint::new(name, e))
        })
        .collect();
    let admin_state = AdminState {
        store,
        decisions,
        access: Arc::new(access),
        readiness: readiness.clone(),
        metrics: crate::telemetry::prometheus(),
        endpoints: Arc::new(endpoints),
        alerts: alert_state,
        x12_request,
        desktop_read: teardown
            .adapters
            .iter()
            .find_map(|(_, started)| started.handle::<gateway_desktop::ReadTrigger>()),
    };
    Ok(Stages {
        listener,
        admin_addr,
        admin_state,
        readiness,
        file_sink_dir,
    })
}

/// Loads the profiles the configured adapters name; any problem is a
/// [`ConfigError`].
fn load_profiles(settings: &Settings) -> anyhow::Result<ProfileSet> {
    let required: BTreeSet<String> = adapters::all()
        .into_iter()
        .filter(|a| a.configured(settings))
        .flat_map(|a| a.profiles(settings))
        .collect();
    let loaded = crate::profiles::load(&settings.mappings_dir, &required);
    if !loaded.problems.is_empty() {
        return Err(ConfigError {
            problems: loaded.problems,
        }
        .into());
    }
    Ok(ProfileSet::new(loaded.profiles))
}

/// The configured sink, its readiness probe and (file sink) its directory.
/// The HTTP sink's secrets are read here, by the daemon.
async fn build_sink(
    settings: &Settings,
    data_dir: &Path,
) -> anyhow::Result<(Arc<dyn Sink>, SinkProbe, Option<PathBuf>)> {
    Ok(match settings.forward.sink {
        SinkKind::File => {
            let dir = settings
                .forward
                .file
                .dir
                .clone()
                .unwrap_or_else(|| data_dir.join("outbox"));
            let sink = FileSink::new(FileSinkConfig { dir: dir.clone() })
                .context("cannot create the file sink")?;
            (Arc::new(sink), SinkProbe::Directory(dir.clone()), Some(dir))
        }
        SinkKind::Http => {
            let config = settings
                .forward
                .http
                .clone()
                .context("sink = \"http\" needs [forward.http]")?;
            let url = url::Url::parse(&config.url).context("forward.http.url")?;
            let authority = format!(
                "{}:{}",
                url.host_str().unwrap_or("localhost"),
                url.port_or_known_default().unwrap_or(443)
            );
            let resolved = config.resolve().map_err(anyhow::Error::msg)?;
            let sink = HttpSink::new(&resolved).context("cannot set up the HTTP sink")?;
            (Arc::new(sink), SinkProbe::Tcp { authority }, None)
        }
        SinkKind::Nats => {
            let nats = settings
                .forward
                .nats
                .clone()
                .context("sink = \"nats\" needs [forward.nats]")?;
            let resolved = nats.resolve(settings).map_err(anyhow::Error::msg)?;
            let subjects = nats.subjects(settings).map_err(anyhow::Error::msg)?;
            let client = gateway_forward::nats::connect(&resolved)
                .await
                .context("cannot set up the NATS sink")?;
            let sink =
                gateway_forward::NatsSink::new(client.clone(), subjects, nats.ack_timeout_ms);
            (Arc::new(sink), SinkProbe::Nats(client), None)
        }
    })
}

/// Starts every configured adapter, recording each in `teardown` as soon as
/// it runs; returns their write-backs.
async fn start_adapters(
    settings: &Settings,
    data_dir: &Path,
    intake: Arc<dyn IntakePipeline>,
    adapter_health: &crate::telemetry::AdapterHealth,
    teardown: &mut Teardown,
) -> anyhow::Result<WriteBackRegistry> {
    let mut registry = WriteBackRegistry::new();
    for adapter in adapters::all() {
        if !adapter.configured(settings) {
            continue;
        }
        adapter_health.configured(adapter.name());
        let context = AdapterContext {
            pipeline: intake.clone(),
            shutdown: teardown.stop_intake.clone(),
            paths: adapters::Paths {
                config_file: PathBuf::new(),
                mappings_dir: settings.mappings_dir.clone(),
            },
            data_dir: data_dir.to_owned(),
            host: Arc::new(adapters::StoreHost::new(teardown.store.clone())),
        };
        let mut started = adapter
            .start(settings, context)
            .await
            .with_context(|| format!("cannot start the {} adapter", adapter.name()))?;
        // What the adapter handed back that needs the store (the x12
        // request path's submission worker) runs as one of its tasks.
        let store_tasks = adapters::store_tasks(&started, &teardown.store, &teardown.stop_intake);
        started.tasks.extend(store_tasks);
        // An endpoint with an undeclared transport refuses the start; the
        // adapter is recorded first so the teardown stops it too.
        let refused = adapters::check_endpoints(adapter, &started);
        for endpoint in &started.endpoints {
            tracing::info!(
                adapter = adapter.name(),
                endpoint = %endpoint.description,
                addr = ?endpoint.addr,
                profile = endpoint.profile.as_deref().unwrap_or(""),
                "Adapter endpoint up."
            );
        }
        for (writeback, profile) in &started.writebacks {
            registry.register(writeback.clone(), profile.as_deref());
        }
        // `ehr_gateway_adapter_up`: 1 while all of these tasks run.
        started.tasks = adapter_health.started(adapter.name(), std::mem::take(&mut started.tasks));
        teardown.adapters.push((adapter.name(), started));
        refused.map_err(anyhow::Error::msg)?;
    }
    Ok(registry)
}

/// The write-back, replay, retention and gauge workers.
fn start_workers(
    settings: &Settings,
    pipeline: Pipeline,
    registry: WriteBackRegistry,
    wake: Arc<Notify>,
    served_certificates: Vec<crate::certificates::Served>,
    teardown: &mut Teardown,
) {
    let stop = teardown.stop_workers.clone();
    let store = teardown.store.clone();
    let worker = WriteBackWorker::new(store.clone(), registry, wake)
        .with_backoff(settings.forward.delivery.backoff);
    let workers = &mut teardown.workers;
    workers.push(tokio::spawn(worker.run(stop.clone())));
    let replay = gateway_pipeline::replay::ReplayWorker::new(pipeline, Duration::from_secs(1));
    workers.push(tokio::spawn(replay.run(stop.clone())));
    workers.push(tokio::spawn(retention(
        store.clone(),
        RetentionPolicy {
            max_age_secs: Some(u64::from(settings.store.retention_days) * 86_400),
            // The hourly pass prunes delivered history to the same level as
            // the size keeper (`store_budget`), never undelivered data.
            max_bytes: Some(
                crate::store_budget::prune_band(
                    settings.store.max_size_mb.saturating_mul(1024 * 1024),
                    settings.store.warn_fraction,
                )
                .1,
            ),
            audit_max_age_secs: Some(u64::from(settings.store.audit_retention_days) * 86_400),
        },
        stop.clone(),
    )));
    workers.push(tokio::spawn(crate::store_budget::keep(
        store.clone(),
        settings.store.warn_fraction,
        Duration::from_secs(1),
        stop.clone(),
    )));
    workers.push(tokio::spawn(crate::telemetry::outbox_gauges(
        store,
        Duration::from_secs(1),
        stop.clone(),
    )));
    workers.push(tokio::spawn(crate::certificates::gauges(
        served_certificates,
        Duration::from_secs(5),
        stop,
    )));
}

/// The certificates the TLS listeners configured in `settings` serve, with
/// their expiry (a warning when it is less than 30 days away).
fn served_certificates(settings: &Settings) -> anyhow::Result<Vec<crate::certificates::Served>> {
    let mut files = Vec::new();
    if let Some(tls) = &settings.admin.tls {
        files.push(("admin", "admin.tls.cert", tls.cert.clone()));
    }
    if let Some(tls) = settings
        .fhir
        .as_ref()
        .and_then(|f| f.subscription.as_ref())
        .and_then(|s| s.tls.as_ref())
    {
        files.push((
            "fhir-rest-hook",
            "fhir.subscription.tls.cert",
            tls.cert.clone(),
        ));
    }
    let now = jiff::Timestamp::now().as_second();
    let mut served = Vec::new();
    for (listener, key, cert) in files {
        let not_after = gateway_http_listener::tls::not_after(&cert)
            .with_context(|| format!("{key}: cannot read the certificate's expiry"))?;
        let cert = crate::certificates::Served {
            listener: listener.to_owned(),
            not_after,
        };
        let left = cert.seconds_left(now);
        if left < 30 * 86_400 {
            tracing::warn!(
                listener,
                days_left = left / 86_400,
                "The TLS certificate this listener serves expires within 30 days."
            );
        }
        served.push(cert);
    }
    crate::certificates::describe();
    crate::certificates::publish(&served);
    Ok(served)
}

/// The test hook that proves a dead store writer stops the daemon
/// (`tests/writer_death.rs`): `EHR_GATEWAY_TEST_WRITER_FAIL_AFTER=N` makes the
/// writer thread die after N group commits. Unset in production.
fn writer_test_hook() -> Option<u64> {
    let value = std::env::var("EHR_GATEWAY_TEST_WRITER_FAIL_AFTER").ok()?;
    let n = value.trim().parse().ok()?;
    tracing::warn!(
        after = n,
        "Test hook set: the store writer will die after this many commits."
    );
    Some(n)
}

/// Test hook for the disk-full tests (`tests/store_full.rs`):
/// `EHR_GATEWAY_TEST_MAX_PAGE_COUNT=N` limits the store file to N pages
/// (SQLite's `max_page_count`), so that writes beyond it fail with
/// `SQLITE_FULL` as on a full disk. Unset in production.
fn page_limit_test_hook() -> Option<u64> {
    let value = std::env::var("EHR_GATEWAY_TEST_MAX_PAGE_COUNT").ok()?;
    value.trim().parse().ok()
}

/// Prunes finished data hourly (first run a minute after start).
async fn retention(store: Store, policy: RetentionPolicy, stop: CancellationToken) {
    let mut next = Duration::from_secs(60);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(next) => {}
        }
        match store.prune(policy).await {
            Ok(report) => tracing::info!(
                messages = report.messages,
                events = report.events,
                bytes_before = report.bytes_before,
                bytes_after = report.bytes_after,
                "Retention pass done."
            ),
            Err(error) => tracing::warn!(%error, "Retention pass failed."),
        }
        next = Duration::from_secs(3600);
    }
}

impl Running {
    /// Stops the daemon (see the module docs for the order).
    pub async fn shutdown(self, stop: Stop) {
        let grace = match stop {
            Stop::Drain(grace) => grace,
            Stop::Fast => Duration::ZERO,
        };
        let deadline = Instant::now() + grace;
        tracing::info!(?stop, "Stopping.");
        self.readiness.draining.store(true, Ordering::SeqCst);
        let mut teardown = self.teardown;
        teardown.adapters = self.adapters;
        teardown.stop_tasks(deadline).await;
        drop(teardown);
        self.stop_admin.cancel();
        let admin_deadline = deadline.max(Instant::now() + Duration::from_millis(200));
        let mut admin = self.admin;
        if tokio::time::timeout_at(admin_deadline, &mut admin)
            .await
            .is_err()
        {
            admin.abort();
        }
        match self.store.checkpoint().await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "The final WAL checkpoint was incomplete (a reader was busy); the WAL is kept."
            ),
            Err(e) => {
                tracing::warn!(error = %e, "The final WAL checkpoint failed; the WAL is kept.")
            }
        }
        self.store.close().await;
        tracing::info!("Stopped.");
    }
}

async fn wait_or_abort<T>(mut task: JoinHandle<T>, deadline: Instant, what: &str) {
    if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
        tracing::warn!(
            task = what,
            "Grace period over; stopping a task that has not finished."
        );
        task.abort();
        // Wait for the abort to land, so what the task held (a listening
        // socket) is released when the stop returns.
        let _ = task.await;
    }
}

/// SIGTERM and SIGINT handlers, installed before anything starts so that a
/// signal arriving during start-up is not lost (or fatal). On Windows (a
/// console, not the service: see `service::windows`) Ctrl-Break, closing the
/// console, logoff and shutdown drain like SIGTERM; Ctrl-C stops like SIGINT.
#[cfg(unix)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    /// Installs the handlers (needs a running tokio runtime).
    pub fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Waits for SIGTERM (drain with `grace`) or SIGINT (fast).
    pub async fn next(&mut self, grace: Duration) -> Stop {
        tokio::select! {
            _ = self.term.recv() => Stop::Drain(grace),
            _ = self.int.recv() => Stop::Fast,
        }
    }
}

/// Console control events on Windows (see the Unix variant).
#[cfg(windows)]
pub struct Signals {
    ctrl_c: tokio::signal::windows::CtrlC,
    ctrl_break: tokio::signal::windows::CtrlBreak,
    close: tokio::signal::windows::CtrlClose,
    logoff: tokio::signal::windows::CtrlLogoff,
    shutdown: tokio::signal::windows::CtrlShutdown,
}

#[cfg(windows)]
impl Signals {
    /// Installs the handlers (needs a running tokio runtime).
    pub fn install() -> anyhow::Result<Signals> {
        use tokio::signal::windows;
        Ok(Signals {
            ctrl_c: windows::ctrl_c().context("installing the Ctrl-C handler")?,
            ctrl_break: windows::ctrl_break().context("installing the Ctrl-Break handler")?,
            close: windows::ctrl_close().context("installing the console-close handler")?,
            logoff: windows::ctrl_logoff().context("installing the logoff handler")?,
            shutdown: windows::ctrl_shutdown().context("installing the shutdown handler")?,
        })
    }

    /// Waits for Ctrl-Break/close/logoff/shutdown (drain with `grace`) or Ctrl-C (fast).
    pub async fn next(&mut self, grace: Duration) -> Stop {
        tokio::select! {
            _ = self.ctrl_break.recv() => Stop::Drain(grace),
            _ = self.close.recv() => Stop::Drain(grace),
            _ = self.logoff.recv() => Stop::Drain(grace),
            _ = self.shutdown.recv() => Stop::Drain(grace),
            _ = self.ctrl_c.recv() => Stop::Fast,
        }
    }
}
