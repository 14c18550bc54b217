//! HL7 v2 adapter for the EHR integration gateway.
//!
//! **The facade** is [`Hl7v2`], this crate's [`gateway_seam::Adapter`]: the
//! daemon starts MLLP listeners and write-back senders through it and
//! nothing else ([`SPEC`] is its registry entry, [`Section`] its `[hl7v2]`
//! section).
//!
//! The parsing side turns raw HL7 v2 bytes into a
//! [`gateway_core::SourceDocument`] and builds the messages we send back; the
//! transport side frames, receives and sends them over MLLP. Public modules,
//! and why each is public:
//! * [`parse`], [`path`], [`fields`]: the registry's HL7 v2 format entry
//!   (parse, parse for intake, path syntax, `inspect` rendering), the fuzz
//!   targets, benches and golden tests;
//! * [`ack`]: ACK parsing for the conformance runner and the tests;
//! * [`outbound`]: decision messages from templates, for the conformance
//!   runner's write-back check and the tests;
//! * [`mllp`]: framing, listener, sender and TLS — the CLI's `send mllp`,
//!   the conformance runner (its `Responder` is the listener's intake path),
//!   the daemon's end-to-end tests and the MLLP benches.

pub mod ack;
mod adapter;
pub mod fields;
pub mod mllp;
pub mod outbound;
pub mod parse;
pub mod path;

pub use adapter::{Hl7v2, SPEC, Section, WriteBackSection};
