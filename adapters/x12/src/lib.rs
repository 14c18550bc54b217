//! gateway-x12: the X12 005010X217 278 adapter.
//!
//! Prior-authorization requests and responses travel between practice
//! management systems, clearinghouses and payers as X12 278 transactions,
//! acknowledged with 999 and TA1. No open-source library models the 278 loops,
//! so this crate does it from the bytes up:
//!
//! * [`token`]: delimiters from the ISA, segments/elements/components as spans;
//!   tolerant of BOMs, line breaks, indentation and unpadded ISAs.
//! * [`envelope`]: ISA/GS/ST structure and every control-number check.
//! * [`loops`]: the 278 HL hierarchy and name loops, with parent-link and code checks.
//! * [`decision`]: HCR/AAA → decision status, typed (see its table).
//! * [`tree`]: the source tree for mapping and the `parse` entry points, with
//!   the correlation rule of a 278 to its request ([`tree::Correlation`]: BHT03,
//!   else the 2000E trace; never ISA13).
//! * [`path`]: the X12 path syntax (`2010CA/NM1-09`, `2000F[*]/SV1-01-2`).
//! * [`tr3`]: the TR3-level rule tables (required segments per loop, element
//!   requirements, NM108/NM109 pairing, qualifier code lists), run on what we
//!   receive and on what our writers emit.
//! * [`codes`]: findings with their TA1/999 error codes.
//! * [`ack`]: 999/TA1 generation (from findings) and parsing.
//! * [`write`], [`outbound`]: the X12 writer (envelopes always counted right,
//!   control numbers from a [`write::ControlNumbers`] source) and the Case →
//!   278 request/response template evaluator.
//! * [`control`]: durable control numbers — the [`control::ControlNumberAllocator`]
//!   the daemon implements over the store, reserved per interchange.
//! * [`intake`], [`filedrop`], [`soap`]: transports — a polled file drop and
//!   CAQH CORE real-time SOAP (client and server) over HTTPS.
//! * [`writeback`]: decisions go back to the requester as 278 responses (an
//!   outbound folder and/or a CORE partner), through the daemon's write-back worker.
//! * [`config`]: the daemon's `[x12]` section.
//!
//! Every problem is a [`codes::Finding`]: a diagnostic with a byte span plus the
//! acknowledgment code it maps to. Nothing here panics on any input.

pub mod ack;
pub mod codes;
pub mod config;
pub mod control;
pub mod decision;
pub mod envelope;
#[cfg(feature = "transports")]
pub mod filedrop;
#[cfg(feature = "transports")]
pub mod intake;
pub mod log_safe;
pub mod loops;
pub mod outbound;
pub mod path;
#[cfg(feature = "transports")]
pub mod requests;
#[cfg(feature = "transports")]
pub mod soap;
pub mod token;
pub mod tr3;
pub mod tree;
pub mod write;
#[cfg(feature = "transports")]
pub mod writeback;

pub use path::X12PathSyntax;
pub use tree::{Parsed, parse, parse_documents, parse_interchange};
