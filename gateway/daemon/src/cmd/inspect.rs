//! `inspect FILE`: the parsed tree of any supported document, with byte
//! positions (and field names for HL7), so integration engineers can find the
//! paths to write in a profile. Shows message data: a local tool.
//!
//! Like `map`, it tells the same truth as intake: for X12 the 999 verdict our
//! intake would answer goes to stderr (exit 1 when it rejects), and an HL7
//! batch (FHS/BHS, several MSH) is split into messages the way the listener
//! sees them, each with its own tree.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use gateway_core::SourceFormat;
use gateway_hl7v2::mllp::files::split_messages;
use gateway_x12::ack::{AckIdentity, acknowledge};
use gateway_x12::write::{MemoryControlNumbers, Stamp};

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

/// What `inspect` prints and whether the document parsed cleanly.
pub(crate) struct Report {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Exit 0 when the document parses without errors, 1 otherwise.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report = inspect(&args)?;
    print!("{}", report.stdout);
    eprint!("{}", report.stderr);
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn inspect(args: &Args) -> anyhow::Result<Report> {
    let raw = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let format = match &args.format {
        Some(name) => formats::format_from_name(name).with_context(|| {
            format!(
                "unknown format `{name}` (one of {})",
                formats::format_names().join(", ")
            )
        })?,
        None => match formats::detect(&raw) {
            Some(f) => f,
            None => {
                return Ok(Report {
                    ok: false,
                    stdout: String::new(),
                    stderr: format!(
                        "{}: format not recognized (not HL7 v2, X12 or JSON); use --format\n",
                        args.file.display()
                    ),
                });
            }
        },
    };
    let mut report = Report {
        ok: true,
        stdout: String::new(),
        stderr: String::new(),
    };
    if format == SourceFormat::X12 {
        // The verdict our intake would answer, from the same findings.
        let ack = acknowledge(
            &raw,
            &AckIdentity::default(),
            &MemoryControlNumbers::new(),
            &Stamp::now(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        report.stderr.push_str(&super::map::verdict_text(&ack));
        report.ok &= matches!(ack.verdict, 'A' | 'E');
    }
    let messages = if format == SourceFormat::Hl7v2 {
        split_messages(&raw)
    } else {
        Vec::new()
    };
    if messages.len() > 1 {
        // A batch: each message as the listener sees it.
        for (i, message) in messages.iter().enumerate() {
            report.stdout.push_str(&format!(
                "--- message {} of {} ---\n",
                i + 1,
                messages.len()
            ));
            let one = inspect_one(format, message);
            report.ok &= one.ok;
            report.stdout.push_str(&one.stdout);
            report.stderr.push_str(&one.stderr);
        }
    } else {
        let one = inspect_one(format, &raw);
        report.ok &= one.ok;
        report.stdout.push_str(&one.stdout);
        report.stderr.push_str(&one.stderr);
    }
    Ok(report)
}

/// The tree of one document.
fn inspect_one(format: SourceFormat, raw: &[u8]) -> Report {
    let mut stderr = String::new();
    match formats::parse(format, raw) {
        Ok(document) => {
            let m = &document.meta;
            let mut stdout = format!("format: {}\n", format.as_str());
            for (label, value) in [
                ("message type", &m.message_type),
                ("trigger", &m.trigger),
                ("version", &m.version),
                ("control id", &m.control_id),
                ("sender", &m.sender),
            ] {
                if let Some(v) = value {
                    stdout.push_str(&format!("{label}: {v}\n"));
                }
            }
            stdout.push('\n');
            stdout.push_str(&formats::render_tree(&document));
            for d in &document.diagnostics {
                stderr.push_str(&format!("{d}\n"));
            }
            Report {
                ok: document.is_clean(),
                stdout,
                stderr,
            }
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                stderr.push_str(&format!("{d}\n"));
            }
            Report {
                ok: false,
                stdout: String::new(),
                stderr,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_a_json_tree_with_meta() {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../mapping/tests/cases/readme_worked_example/input.json");
        let report = inspect(&Args { file, format: None }).expect("runs");
        assert!(report.ok, "{}", report.stderr);
        assert!(
            report
                .stdout
                .starts_with("format: json\nmessage type: ORDER\n")
        );
        assert!(
            report.stdout.contains("    dx[1]\n      code = \"R079\"\n"),
            "{}",
            report.stdout
        );
    }

    #[test]
    fn unknown_content_and_format_names_are_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("x.txt");
        std::fs::write(&file, "hello").expect("write");
        let report = inspect(&Args {
            file: file.clone(),
            format: None,
        })
        .expect("runs");
        assert!(!report.ok);
        assert!(report.stderr.contains("format not recognized"));
        assert!(
            inspect(&Args {
                file,
                format: Some("csv".into())
            })
            .is_err()
        );
    }
}
