//! gateway-pipeline: what happens between an adapter receiving a message and
//! the adapter acknowledging it, and between the central platform posting a
//! decision and the EHR seeing it.
//!
//! * [`Pipeline`] implements [`gateway_core::adapter::IntakePipeline`]: it picks
//!   the adapter instance's mapping profile from the [`ProfileSet`], maps the
//!   parsed document, and commits the raw bytes together with the case event
//!   (or the rejection reason and diagnostics) through `gateway-store` in one
//!   transaction. The [`gateway_core::adapter::IntakeOutcome`] is returned only
//!   after that commit, so an adapter that acknowledges from it never
//!   acknowledges anything that is not durable.
//! * Patient updates (a mapping file whose action is `patient_update`, e.g. an
//!   HL7 ADT) update every open case of the same patient with an `updated` event.
//! * Replays: rejected messages queued with `messages replay` are parsed again
//!   (through a [`DocumentParser`] the daemon supplies) and re-run through the
//!   *current* profiles, so a fixed mapping turns them into cases.
//! * [`decision`]: decision intake (validation, durable record, cycle-time
//!   metric) and [`writeback`]: a registry of [`gateway_core::adapter::WriteBack`]
//!   implementations keyed by adapter (and optionally profile) plus the task
//!   that applies pending decisions with retry and backoff, recording each
//!   result in the store.
//!
//! This crate reads no configuration and installs nothing global: the daemon
//! (or the conformance runner) builds it from plain values. It emits metrics
//! through the `metrics` facade (names in [`metrics`]).

pub mod decision;
pub mod intake;
pub mod metrics;
pub mod profiles;
pub mod replay;
pub mod writeback;

pub use decision::{DecisionError, DecisionIntake};
pub use intake::{DocumentParser, Identity, Pipeline};
pub use profiles::ProfileSet;
pub use writeback::{WriteBackRegistry, WriteBackWorker};
