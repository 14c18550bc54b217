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

/// What `lint` prints and whether the profile is usable.
pub(crate) struct Report {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Exit 0 when the profile has no errors (warnings are printed), 1 otherwise.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report = lint(&args);
    print!("{}", report.stdout);
    eprint!("{}", report.stderr);
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn lint(args: &Args) -> Report {
    let diagnostics = Profile::lint(&args.profile, &Syntaxes);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let mut stderr = String::new();
    if !diagnostics.is_empty() {
        stderr.push_str(&render_all(&diagnostics));
        stderr.push('\n');
    }
    if errors > 0 {
        stderr.push_str(&format!(
            "{}: {errors} error(s), {warnings} warning(s)\n",
            args.profile.display()
        ));
        return Report {
            ok: false,
            stdout: String::new(),
            stderr,
        };
    }
    let stdout = match Profile::load(&args.profile, &Syntaxes) {
        Ok(profile) => format!(
            "{}: profile `{}` ({}) is valid: {} mapping file(s), {warnings} warning(s)\n",
            args.profile.display(),
            profile.name(),
            profile.format().as_str(),
            profile.mapping_files().len()
        ),
        Err(e) => {
            stderr.push_str(&render_all(&e.diagnostics));
            return Report {
                ok: false,
                stdout: String::new(),
                stderr,
            };
        }
    };
    Report {
        ok: true,
        stdout,
        stderr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../mapping/tests/cases")
            .join(name)
            .join("profile")
    }

    #[test]
    fn a_valid_profile_passes() {
        let report = lint(&Args {
            profile: case("readme_worked_example"),
        });
        assert!(report.ok, "{}", report.stderr);
        assert!(
            report
                .stdout
                .contains("profile `demo` (json) is valid: 1 mapping file(s)")
        );
    }

    #[test]
    fn every_problem_is_printed_and_fails() {
        let report = lint(&Args {
            profile: case("load_unknown_keys"),
        });
        assert!(!report.ok);
        assert_eq!(
            report.stderr.matches("error[M003]").count(),
            3,
            "{}",
            report.stderr
        );
        assert!(report.stderr.contains("did you mean `transforms`?"));
        assert!(report.stderr.contains("3 error(s), 0 warning(s)"));
    }
}
