//! `ehr_gateway`: the daemon and CLI of the EHR integration gateway as a
//! library; `src/main.rs` is the thin binary around [`main`].
//!
//! *Why a library*: start-up ([`daemon::start`]) and its teardown can be
//! driven by tests in-process, without spawning the binary.
//!
//! This file declares the modules and the subcommands. Each subcommand lives in
//! `src/cmd/<name>.rs` with a `#[derive(clap::Args)] pub struct Args` and a
//! `pub fn run(args: Args) -> anyhow::Result<std::process::ExitCode>`.
//!
//! **Registering a subcommand is a two-line change** in the `subcommands!` list
//! below: a doc comment (the `--help` text) and `Variant => module,`. The macro
//! declares the module `cmd::<module>` (file `src/cmd/<module>.rs`), adds the
//! variant to the clap `Command` enum and the dispatch arm. Only commands that
//! work are listed, so `--help` never advertises something unfinished. A
//! command behind a cargo feature is written `@cfg(feature = "…") Variant =>
//! module,`: module, variant and arm are then compiled only with the feature
//! (`conformance`, on by default, is the one today).
//!
//! Adapters are hosted through the seam (`gateway_registry::seam::Adapter`,
//! implemented in each adapter crate); `src/adapters/mod.rs` ties each one to
//! its `Settings` field and implements the seam's `Host` over the store.
//! `anyhow` is used only in this crate; libraries return typed errors.

use std::process::ExitCode;

use clap::Parser;

mod adapters;
mod admin;
mod alerts;
mod certificates;
pub mod daemon;
mod formats;
mod instance;
mod logging;
pub mod nats;
mod notify;
mod profiles;
mod secrets;
mod service;
pub mod settings;
mod store_budget;
mod telemetry;

/// Declares the subcommand modules, the clap `Command` enum and its dispatch.
macro_rules! subcommands {
    ($( $(#[$doc:meta])* $(@cfg($cfg:meta))? $variant:ident => $module:ident, )*) => {
        /// One module per subcommand (`src/cmd/<name>.rs`).
        mod cmd {
            $( $(#[cfg($cfg)])? pub mod $module; )*
        }

        /// The subcommands of `ehr-gateway`.
        #[derive(clap::Subcommand)]
        enum Command {
            $( $(#[cfg($cfg)])? $(#[$doc])* $variant(cmd::$module::Args), )*
        }

        impl Command {
            fn run(self) -> anyhow::Result<ExitCode> {
                match self {
                    $( $(#[cfg($cfg)])? Command::$variant(args) => cmd::$module::run(args), )*
                }
            }
        }
    };
}

subcommands! {
    /// Run the whole gateway on loopback with sample traffic; prints the cases and the admin URL.
    Demo => demo,
    /// Run the daemon from a TOML config file.
    Run => run,
    /// Validate a config file and list every problem with its key.
    CheckConfig => check_config,
    /// List, show and replay stored messages (`--data-dir DIR` or `--config FILE`).
    Messages => messages,
    /// Send messages to a receiver and print each acknowledgement (`send mllp HOST:PORT FILE…`).
    Send => send,
    /// Run or check a desktop playbook (`desktop run --playbook FILE [--case CASE.json] [--dry-run]`).
    Desktop => desktop,
    /// Map one document with a mapping profile; Case JSON on stdout (`--explain` traces every field).
    Map => map,
    /// Check a mapping profile and print every problem with file, line and rule.
    Lint => lint,
    /// Print the parsed tree of an HL7 v2, X12, FHIR or JSON document with byte positions.
    Inspect => inspect,
    /// Back up, verify and restore the message store (`store backup --data-dir DIR --to FILE`).
    Store => store,
    /// Install or remove the Windows service (`service install [--config FILE] [--data-dir DIR]`, `service uninstall`).
    #[cfg_attr(not(windows), command(hide = true))]
    Service => service,
    /// NATS JetStream: `nats provision --config FILE [--check]` creates or checks the streams and this practice's decisions consumer.
    Nats => nats_cmd,
    /// X12 tools: `x12 ack FILE` prints our 999/TA1 for it, `x12 request CASE.json` a 278 request.
    X12 => x12,
    /// Da Vinci PAS tools: `pas request CASE.json` prints the PAS Request Bundle for any case, `pas response CASE.json` the Response Bundle for its decision.
    Pas => pas,
    /// Run the per-EHR conformance suites; exit 1 on any failure (`--junit`, `--html`, `--json`, `--live ADDR`).
    @cfg(feature = "conformance") Conformance => conformance,
}

/// `--version`: crate version, git revision (see `build.rs`), cargo features
/// of this binary, build profile and panic strategy.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("EHR_GATEWAY_GIT_REV"),
    "; features: ",
    env!("EHR_GATEWAY_FEATURES"),
    "; adapters: hl7v2, fhir, x12, desktop, davinci-pas; profile: ",
    env!("EHR_GATEWAY_PROFILE"),
    "; panic: ",
    env!("EHR_GATEWAY_PANIC"),
    ")"
);

/// EHR integration gateway: adapters for HL7 v2, FHIR, X12 and desktop EHRs,
/// one canonical prior-authorization case, a durable store and forwarder.
#[derive(Parser)]
#[command(name = "ehr-gateway", version = VERSION, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Parses the command line and runs the subcommand; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            // Configuration problems are usage errors (exit 2, like clap's own);
            // everything else is a runtime failure (exit 1).
            if error.downcast_ref::<settings::ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod feature_tests {
    use clap::Parser;

    /// The `conformance` subcommand exists exactly when the feature is on.
    #[test]
    fn the_conformance_subcommand_follows_its_feature() {
        let parsed = super::Cli::try_parse_from(["ehr-gateway", "conformance", "--help"]);
        let known = match parsed {
            Ok(_) => true,
            Err(e) => e.kind() == clap::error::ErrorKind::DisplayHelp,
        };
        assert_eq!(known, cfg!(feature = "conformance"));
        assert_eq!(
            super::VERSION.contains("conformance"),
            cfg!(feature = "conformance")
        );
    }
}

#[cfg(test)]
mod version_tests {
    #[test]
    fn version_lists_every_adapter_of_this_build() {
        for adapter in crate::adapters::all() {
            assert!(
                super::VERSION.contains(adapter.name()),
                "{} missing from --version",
                adapter.name()
            );
        }
    }
}
