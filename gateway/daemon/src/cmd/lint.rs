//! `lint --profile DIR`: loads and checks a mapping profile (and the profiles
//! it extends) without any input, and prints every finding with its file,
//! line, rule and a caret under the offending text.

use std::path::PathBuf;
use std::process::ExitCode;

use gateway_mapping::{Profile, render_all};

use crate::formats::Syntaxes;

/// Check a mapping profile and print every problem.
#[derive(clap::Args)]
pub struct Args {
    /// The profile folder (holding `profile.toml`).
    #[arg(long, value_name = "DIR")]
    profile: PathBuf,
}

/// Exit 0 when the profile has no errors (warnings are printed), 1 otherwise.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let diagnostics = Profile::lint(&args.profile, &Syntaxes);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    if !diagnostics.is_empty() {
        eprint!("{}", render_all(&diagnostics));
        eprintln!();
    }
    if errors > 0 {
        eprintln!(
            "{}: {errors} error(s), {warnings} warning(s)",
            args.profile.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let profile = Profile::load(&args.profile, &Syntaxes)
        .map_err(|e| anyhow::anyhow!("profile changed while linting: {e}"))?;
    println!(
        "{}: profile `{}` ({}) is valid: {} mapping file(s), {warnings} warning(s)",
        args.profile.display(),
        profile.name(),
        profile.format().as_str(),
        profile.mapping_files().len()
    );
    Ok(ExitCode::SUCCESS)
}
