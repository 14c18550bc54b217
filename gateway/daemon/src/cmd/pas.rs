//! `pas request CASE.json` and `pas response CASE.json`: Da Vinci PAS bundles
//! from any Case, for the central platform and integration engineers.
//!
//! * `request` prints the PAS Request Bundle for a case, whatever adapter it
//!   came from (HL7, FHIR, X12, desktop), so the platform can submit it to a
//!   payer's own PAS API. The bundle is checked with the gateway's own
//!   `$submit` validation first: a case that cannot make a valid PAS request
//!   (no coverage, no service line) prints the OperationOutcome's issues on
//!   stderr and exits 1 instead of printing a bundle a payer would refuse.
//! * `response` prints the PAS Response Bundle for the case's decision
//!   (pended `A4` without one) — what `$inquire` answers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use gateway_core::Case;
use gateway_davinci_pas::request::{Operation, validate};

/// Da Vinci PAS tools.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print the PAS Request Bundle (Claim/$submit input) for a Case JSON.
    Request(CaseArgs),
    /// Print the PAS Response Bundle (ClaimResponse) for a Case JSON's decision.
    Response(CaseArgs),
}

#[derive(clap::Args)]
struct CaseArgs {
    /// A Case v1 JSON file.
    #[arg(value_name = "CASE.json")]
    case: PathBuf,
}

fn load(path: &PathBuf) -> anyhow::Result<Case> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a valid Case v1", path.display()))
}

/// Writes `text` and a newline to stdout; a closed pipe (`| head`) is not an
/// error.
fn print_out(text: &str) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Runs `pas request` or `pas response`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Request(a) => {
            let case = load(&a.case)?;
            let bundle = gateway_davinci_pas::outbound::request_bundle(&case);
            let text = serde_json::to_string_pretty(&bundle)?;
            if let Err(refusal) = validate(text.as_bytes(), Operation::Submit) {
                eprintln!(
                    "{}: the case cannot make a valid PAS request:",
                    a.case.display()
                );
                for d in &refusal.diagnostics {
                    eprintln!(
                        "  {} {} at {}",
                        d.code,
                        d.message,
                        d.location.as_deref().unwrap_or("?")
                    );
                }
                return Ok(ExitCode::FAILURE);
            }
            print_out(&text)
        }
        Command::Response(a) => {
            let case = load(&a.case)?;
            if case.decision.is_none() {
                eprintln!("{}: no decision yet; the answer is pended (A4)", a.case.display());
            }
            let bundle = gateway_davinci_pas::response::response_bundle(&case, &[]);
            print_out(&serde_json::to_string_pretty(&bundle)?)
        }
    }
}
