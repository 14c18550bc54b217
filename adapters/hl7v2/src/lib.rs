//! HL7 v2 adapter for the EHR integration gateway.
//!
//! The parsing side (`parse`, `path`, `fields`, `ack`, `outbound`) turns raw HL7 v2
//! bytes into a [`gateway_core::SourceDocument`] and builds the messages we send back;
//! the transport side (`mllp`) frames, receives and sends them over MLLP.

pub mod ack;
mod adapter;
pub mod fields;
pub mod mllp;
pub mod outbound;
pub mod parse;
pub mod path;

pub use adapter::{Hl7v2, SPEC, Section, WriteBackSection};
