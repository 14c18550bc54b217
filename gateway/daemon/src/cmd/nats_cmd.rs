//! `nats provision --config FILE [--check] [--no-consumer]`: creates or checks
//! the JetStream streams (`EHR_EVENTS`, `EHR_DECISIONS`: subjects, replicas,
//! duplicate window, max age, message size) and this practice's durable
//! decisions consumer, from the gateway's own `[forward.nats]` section, so an
//! operator never hand-types stream JSON. Creating streams needs an account
//! allowed to (`$JS.API.STREAM.CREATE.*`); `--check` needs only read access.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::settings;

/// NATS JetStream tools.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: NatsCommand,
}

#[derive(clap::Subcommand)]
enum NatsCommand {
    /// Create (or with --check only verify) the streams and this practice's decisions consumer.
    Provision {
        /// The gateway's TOML config file (its [forward.nats] section).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Only check; exit 1 when something is missing or differs.
        #[arg(long)]
        check: bool,
        /// Leave the practice's decisions consumer alone (an MSO-wide run).
        #[arg(long)]
        no_consumer: bool,
    },
}

/// Prints one line per stream/consumer; exit 1 when a check fails.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let NatsCommand::Provision {
        config,
        check,
        no_consumer,
    } = args.command;
    let loaded = settings::load(&config);
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let settings = loaded.into_result()?;
    let nats = settings
        .forward
        .nats
        .clone()
        .with_context(|| format!("{}: key `forward.nats`: no [forward.nats] section", config.display()))?;
    let problems: Vec<settings::Problem> = crate::nats::check(&settings, &nats)
        .into_iter()
        .map(|(key, message)| settings::Problem {
            origin: config.display().to_string(),
            key: Some(key),
            message,
        })
        .collect();
    if !problems.is_empty() {
        return Err(settings::ConfigError { problems }.into());
    }
    let resolved = nats.resolve(&settings).map_err(anyhow::Error::msg)?;
    let subjects = nats.subjects(&settings).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let lines = runtime.block_on(async {
        let client = gateway_forward::nats::connect(&resolved).await?;
        // The client retries in the background: give the first connection a bound.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        while client.connection_state()
            != gateway_forward::nats::async_nats::connection::State::Connected
        {
            if tokio::time::Instant::now() > deadline {
                return Err(gateway_forward::ForwardError::Config(format!(
                    "no NATS server of {:?} answered within 15 s",
                    resolved.servers
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let js = gateway_forward::nats::jetstream_context(client, resolved.ack_timeout_ms);
        gateway_forward::nats::provision(
            &js,
            &nats.plan(),
            (!no_consumer).then_some(&subjects),
            check,
        )
        .await
    })?;
    let mut ok = true;
    for line in &lines {
        ok &= line.ok;
        println!("{}: {}", line.what, line.outcome);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
