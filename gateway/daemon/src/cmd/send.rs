//! `ehr-gateway send mllp HOST:PORT FILE…`: an MLLP client for integration
//! engineers — sends every message in the files, prints each ACK on one line
//! (`MSA-1 MSA-2`, then MSA-3 text and ERR texts), and exits non-zero unless
//! every message got AA/CA.
//!
//! A file may hold one message, several concatenated messages or an FHS/BHS
//! batch, with CR, LF or CRLF line ends (message boundaries come from the HL7
//! parser's input splitter); each message is sent with CR segment terminators,
//! as MLLP requires. The ACK is validated like the daemon's own sender does
//! (MSA-2 must be the message's MSH-10; one ACK per message), with no retries:
//! what the receiver answered is what is printed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use gateway_hl7v2::mllp::config::TlsClientConfig;
use gateway_hl7v2::mllp::files::split_messages;
use gateway_hl7v2::mllp::{MllpSender, SendError, SenderConfig};

/// `send` subcommand arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    transport: Transport,
}

#[derive(clap::Subcommand)]
enum Transport {
    /// Send HL7 v2 messages over MLLP and print each ACK.
    Mllp(MllpArgs),
}

#[derive(clap::Args)]
struct MllpArgs {
    /// The receiver, HOST:PORT.
    address: String,
    /// Files with one or more HL7 v2 messages (or a batch).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Connect with TLS (requires --ca).
    #[arg(long, requires = "ca")]
    tls: bool,
    /// PEM CA bundle that signed the receiver's certificate.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "key"])]
    cert: Option<PathBuf>,
    /// PEM private key for mutual TLS.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "cert"])]
    key: Option<PathBuf>,
    /// Name to verify the receiver's certificate against (default: HOST).
    #[arg(long, value_name = "NAME", requires = "tls")]
    server_name: Option<String>,
    /// Seconds to wait for the connection and for each ACK.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    timeout: f64,
}

/// Runs `send`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Transport::Mllp(args) = args.transport;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(send_mllp(args))
}

/// One message to send: where it came from and its bytes (CR-terminated).
struct Outgoing {
    origin: String,
    bytes: Vec<u8>,
}

/// Splits a file into messages with CR segment terminators.
fn messages_in(path: &PathBuf) -> anyhow::Result<Vec<Outgoing>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let messages = split_messages(&raw);
    if messages.is_empty() {
        bail!("{}: no HL7 v2 message (MSH segment) found", path.display());
    }
    Ok(messages
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| Outgoing {
            origin: format!("{}#{}", path.display(), i + 1),
            bytes,
        })
        .collect())
}

async fn send_mllp(args: MllpArgs) -> anyhow::Result<ExitCode> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let mut outgoing = Vec::new();
    for file in &args.files {
        outgoing.extend(messages_in(file)?);
    }
    let timeout_ms = Duration::from_secs_f64(args.timeout).as_millis() as u64;
    let mut config = SenderConfig::new(args.address.clone());
    config.connect_timeout_ms = timeout_ms;
    config.response_timeout_ms = timeout_ms;
    config.max_attempts = 1;
    if args.tls {
        let Some(ca) = args.ca.clone() else {
            bail!("--tls needs --ca FILE");
        };
        config.tls = Some(TlsClientConfig {
            ca,
            cert: args.cert.clone(),
            key: args.key.clone(),
            server_name: args.server_name.clone(),
        });
    }
    let mut sender = MllpSender::new(config).context("setting up TLS")?;

    let mut all_accepted = true;
    for message in &outgoing {
        match sender.send_once(&message.bytes).await {
            Ok(ack) => println!("{}", ack.one_line()),
            Err(SendError::Negative(ack)) => {
                all_accepted = false;
                println!("{}", ack.one_line());
            }
            Err(e) => {
                all_accepted = false;
                println!("FAILED {}: {e}", message.origin);
            }
        }
    }
    sender.disconnect().await;
    Ok(if all_accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
