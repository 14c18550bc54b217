//! `inspect FILE`: the parsed tree of any supported document, with byte
//! positions (and field names for HL7), so integration engineers can find the
//! paths to write in a profile. Shows message data: a local tool.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::formats;

/// Print the parsed tree of a document.
#[derive(clap::Args)]
pub struct Args {
    /// The document (HL7 v2, X12, FHIR JSON, JSON).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Format to parse as, instead of detecting it (hl7v2, x12, fhir, desktop, json).
    #[arg(long)]
    format: Option<String>,
}

/// Exit 0 when the document parses (warnings allowed), 1 otherwise.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let raw = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let format = match &args.format {
        Some(name) => formats::format_from_name(name).with_context(|| {
            format!(
                "unknown format `{name}` (one of {})",
                formats::FORMAT_NAMES.join(", ")
            )
        })?,
        None => match formats::detect(&raw) {
            Some(f) => f,
            None => {
                eprintln!(
                    "{}: format not recognized (not HL7 v2, X12 or JSON); use --format",
                    args.file.display()
                );
                return Ok(ExitCode::FAILURE);
            }
        },
    };
    match formats::parse(format, &raw) {
        Ok(document) => {
            let m = &document.meta;
            println!("format: {}", format.as_str());
            for (label, value) in [
                ("message type", &m.message_type),
                ("trigger", &m.trigger),
                ("version", &m.version),
                ("control id", &m.control_id),
                ("sender", &m.sender),
            ] {
                if let Some(v) = value {
                    println!("{label}: {v}");
                }
            }
            println!();
            print!("{}", formats::render_tree(&document));
            for d in &document.diagnostics {
                eprintln!("{d}");
            }
            Ok(if document.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
