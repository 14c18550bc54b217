//! `check-config --config FILE`: validates a configuration and lists every
//! problem with its key, so an operator fixes them all in one pass.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::settings;

/// Validate a config file and list every problem with its key.
#[derive(clap::Args)]
pub struct Args {
    /// The TOML config file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// Prints warnings and problems; exit 0 when valid, 2 otherwise.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = settings::load(&args.config);
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let settings = loaded.into_result()?;
    let mut problems = Vec::new();
    crate::adapters::check_all(&settings, &args.config, &mut problems);
    // The profiles the adapter sections name must load, as they must at start.
    let required: std::collections::BTreeSet<String> = crate::adapters::all()
        .into_iter()
        .filter(|a| a.configured(&settings))
        .flat_map(|a| a.profiles(&settings))
        .collect();
    problems.extend(crate::profiles::load(&settings.mappings_dir, &required).problems);
    if !problems.is_empty() {
        return Err(settings::ConfigError { problems }.into());
    }
    println!("{}: configuration is valid", args.config.display());
    Ok(ExitCode::SUCCESS)
}
