//! gateway-desktop: the desktop automation bridge for legacy EHRs with no
//! integration point.
//!
//! The bridge drives the EHR's own screens the way staff do — keyboard, mouse,
//! clipboard — to read orders out and type decisions in:
//!
//! * [`playbook`]: flows of UI steps as TOML data, validated completely on load.
//! * [`context`]: context checks — is the screen on the case's patient and
//!   record? — and how screen values are compared with the case.
//! * [`engine`]: runs a playbook against a [`driver::Driver`] with the safety
//!   rules (one run at a time, focused-window check before every input, abort
//!   with a screenshot, timeouts, no PHI in logs).
//! * [`driver`]: the trait the engine drives; `x11` is the X11 implementation
//!   (enigo + x11rb + arboard), `windows` the Win32 one (enigo's SendInput
//!   backend + windows-sys + arboard). The engine holds no platform types, and
//!   the same playbook files drive both.
//! * [`capture`]: a read's captured values → a source document (format
//!   `desktop`) for the mapping profile.
//! * [`bridge`]: what the daemon embeds — configuration, scheduled reads into an
//!   [`gateway_core::adapter::IntakePipeline`] and [`gateway_core::adapter::WriteBack`]
//!   of decisions.
//! * [`bounded`]: hard time bounds on every desktop call (a hung or vanished
//!   display server aborts the run instead of blocking it forever).
//! * [`dry_run`]: the redacted listing behind `desktop run --dry-run`.
//!
//! **The facade** is [`Desktop`], this crate's [`gateway_seam::Adapter`]: the
//! daemon starts the bridge through it and nothing else ([`SPEC`] is its
//! registry entry, `bridge::DesktopConfig` its `[desktop]` section, and
//! [`ReadTrigger`] the "read now" handle it leaves in `Started::handles`).
//!
//! Why the modules are public: the daemon's `desktop run`/`--dry-run`
//! command drives a playbook directly ([`playbook`], [`engine`], [`bounded`],
//! [`dry_run`], [`capture`], `x11`/`windows`); the registry's desktop format
//! entry uses [`capture`]; the engine, driver and bridge tests script a fake
//! [`driver::Driver`] with [`keys`], [`png`], [`context`] and [`template`];
//! the daemon's and this crate's X11 tests start `xvfb` and the
//! [`legacy_app`]. Window-title patterns are private.

mod adapter;
pub mod bounded;
pub mod bridge;
pub mod capture;
pub mod context;
pub mod driver;
pub mod dry_run;
pub mod engine;
#[cfg(any(unix, windows))]
mod input;
pub mod keys;
pub mod legacy_app;
mod pattern;
pub mod playbook;
pub mod png;
pub mod template;
#[cfg(windows)]
pub mod windows;
#[cfg(unix)]
pub mod x11;
#[cfg(unix)]
pub mod xvfb;

pub use adapter::{Desktop, ReadTrigger, SPEC};
pub use bounded::{BoundedDriver, Bounds};
pub use capture::{ADAPTER, DesktopPathSyntax};
pub use driver::{Driver, DriverError, Screenshot, WindowId, WindowInfo};
pub use engine::{Abort, AbortReason, RunOptions, RunReport, run_playbook};
pub use playbook::{Playbook, PlaybookError, PlaybookKind};
