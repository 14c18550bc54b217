//! `service install|uninstall|run`: the Windows service (see `crate::service`,
//! which holds the arguments and the implementation; this file only registers
//! the subcommand).

pub use crate::service::{Args, run};
