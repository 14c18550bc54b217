//! `x12 ack FILE`, `x12 request CASE.json` and `x12 response CASE.json`: X12
//! tools for integration engineers.
//!
//! * `ack` prints the 999 (and/or TA1) the gateway would send for a received
//!   interchange, and the findings behind it on stderr (codes, positions,
//!   never values). Exit 0 when the interchange is accepted (AK9 `A`/`E`),
//!   1 when anything is rejected.
//! * `request` prints the 278 request the outbound template
//!   (`mappings/x12-278/outbound/request.toml` by default) builds from a Case
//!   JSON. Control numbers come from an in-memory allocator starting at 1:
//!   this output is for review, not for sending (the daemon allocates durably).
//! * `response` prints the 278 response the write-back would send for a
//!   decided Case JSON (`outbound/response.toml`), with the same review-only
//!   control numbers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use gateway_core::Case;
use gateway_x12::ack::{AckIdentity, acknowledge};
use gateway_x12::outbound::RequestTemplate;
use gateway_x12::write::{EnvelopeParams, MemoryControlNumbers, Stamp};

const DEFAULT_REQUEST_TEMPLATE: &str = "mappings/x12-278/outbound/request.toml";

/// X12 tools.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print the 999 (or TA1) the gateway answers FILE with.
    Ack(AckArgs),
    /// Print a 278 request built from a Case JSON with the outbound template.
    Request(RequestArgs),
    /// Print the 278 response built from a decided Case JSON.
    Response(RequestArgs),
}

#[derive(clap::Args)]
struct AckArgs {
    /// A received X12 interchange.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Our ISA id, used when the received ISA08 is unreadable.
    #[arg(long, default_value = "EHRGATEWAY")]
    id: String,
}

#[derive(clap::Args)]
struct RequestArgs {
    /// A Case v1 JSON file.
    #[arg(value_name = "CASE.json")]
    case: PathBuf,
    /// The outbound template (`response` defaults to `outbound/response.toml`).
    #[arg(long, default_value = DEFAULT_REQUEST_TEMPLATE)]
    template: PathBuf,
    /// ISA06/GS02 sender id.
    #[arg(long, default_value = "EHRGATEWAY")]
    sender_id: String,
    /// ISA08/GS03 receiver id (the payer or clearinghouse).
    #[arg(long, default_value = "PAYER")]
    receiver_id: String,
    /// Mark the interchange as production (ISA15 = P) instead of test.
    #[arg(long)]
    production: bool,
}

/// Runs `x12 ack` or `x12 request`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Ack(a) => ack(a),
        Command::Request(r) => request(r),
        Command::Response(mut r) => {
            if r.template == Path::new(DEFAULT_REQUEST_TEMPLATE) {
                r.template = PathBuf::from("mappings/x12-278/outbound/response.toml");
            }
            request(r)
        }
    }
}

fn ack(args: AckArgs) -> anyhow::Result<ExitCode> {
    let raw = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    match gateway_x12::parse_interchange(&raw) {
        Ok(parsed) => {
            for f in &parsed.findings {
                eprintln!("{}", f.diagnostic);
            }
        }
        Err(findings) => {
            for f in &findings {
                eprintln!("{}", f.diagnostic);
            }
        }
    }
    let me = AckIdentity {
        id: args.id,
        ..AckIdentity::default()
    };
    let ack = acknowledge(&raw, &me, &MemoryControlNumbers::new(), &Stamp::now())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if ack.functional.is_none() && ack.ta1.is_none() {
        eprintln!("nothing to acknowledge: acknowledgments (999, TA1) are not acknowledged");
        return Ok(ExitCode::SUCCESS);
    }
    for bytes in [&ack.ta1, &ack.functional].into_iter().flatten() {
        print!("{}", String::from_utf8_lossy(bytes));
    }
    Ok(if matches!(ack.verdict, 'A' | 'E') {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn request(args: RequestArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.case)
        .with_context(|| format!("cannot read {}", args.case.display()))?;
    let case: Case = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid Case v1", args.case.display()))?;
    let template = RequestTemplate::load(&args.template)?;
    let envelope = EnvelopeParams {
        sender_id: args.sender_id.clone(),
        application_sender: args.sender_id,
        receiver_id: args.receiver_id.clone(),
        application_receiver: args.receiver_id,
        usage: if args.production { 'P' } else { 'T' },
        ..EnvelopeParams::default()
    };
    let bytes = template.interchange(
        &case,
        &envelope,
        &MemoryControlNumbers::new(),
        &Stamp::now(),
    )?;
    print!("{}", String::from_utf8_lossy(&bytes));
    Ok(ExitCode::SUCCESS)
}
