//! `store backup --data-dir DIR --to FILE`, `store restore --from FILE --data-dir DIR`
//! and `store verify FILE`: operators' copies of the message store.
//!
//! Backup works while the daemon runs (SQLite online backup, one consistent
//! snapshot) and writes a SHA-256 sidecar `FILE.sha256`. Restore verifies the
//! checksum and the file, refuses while a daemon holds the data directory's
//! instance lock (unless `--force`), and installs the copy atomically, keeping
//! the previous store beside it as `gateway.sqlite.pre-restore-<ms>`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use gateway_store::backup;

use crate::daemon::store_file;
use crate::instance;

/// Back up, verify and restore the message store.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Copy the store to FILE (safe while the daemon runs) and write FILE.sha256.
    Backup {
        /// The daemon's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The backup file to create (never overwritten).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Check a backup against its FILE.sha256, its integrity and schema version.
    Verify {
        /// The backup file.
        file: PathBuf,
    },
    /// Replace the store in DIR with a verified backup (the daemon must be stopped).
    Restore {
        /// The backup file (with FILE.sha256 beside it).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The daemon's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Restore even though a running daemon holds the data directory.
        /// The daemon keeps writing to the old file: stop it right after.
        #[arg(long)]
        force: bool,
    },
}

/// Runs the action.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Backup { data_dir, to } => {
            let info = backup::backup(&store_file(&data_dir), &to)
                .with_context(|| format!("backing up the store in {}", data_dir.display()))?;
            println!(
                "backup {} ({} bytes, schema {}, sha256 {}); checksum in {}",
                info.path.display(),
                info.bytes,
                info.schema_version,
                info.sha256,
                backup::sidecar_path(&info.path).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Action::Verify { file } => {
            let info =
                backup::verify(&file).with_context(|| format!("verifying {}", file.display()))?;
            println!(
                "ok {} ({} bytes, schema {}, sha256 {})",
                info.path.display(),
                info.bytes,
                info.schema_version,
                info.sha256
            );
            Ok(ExitCode::SUCCESS)
        }
        Action::Restore {
            from,
            data_dir,
            force,
        } => {
            gateway_store::private_files::create_private_dir(&data_dir).with_context(|| {
                format!("cannot create the data directory {}", data_dir.display())
            })?;
            // Held for the whole restore, so a daemon cannot start half-way.
            let _lock = match instance::acquire(&data_dir) {
                Ok(lock) => Some(lock),
                Err(error) if force => {
                    eprintln!("warning: {error:#}; restoring anyway (--force)");
                    None
                }
                Err(error) => {
                    return Err(error.context(
                        "refusing to restore under a running daemon: stop it first \
                         (or pass --force)",
                    ));
                }
            };
            let report = backup::restore(&from, &store_file(&data_dir))
                .with_context(|| format!("restoring {}", from.display()))?;
            println!(
                "restored {} (schema {}, sha256 {}) into {}",
                report.backup.path.display(),
                report.backup.schema_version,
                report.backup.sha256,
                data_dir.display()
            );
            if let Some(previous) = report.previous {
                println!("previous store kept as {}", previous.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
