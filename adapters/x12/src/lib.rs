//! gateway-x12: the X12 005010X217 278 adapter.
//!
//! Prior-authorization requests and responses travel between practice
//! management systems, clearinghouses and payers as X12 278 transactions,
//! acknowledged with 999 and TA1. No open-source library models the 278 loops,
//! so this crate does it from the bytes up:
//!
//! * [`token`]: delimiters from the ISA, segments/elements/components as spans;
//!   tolerant of BOMs, line breaks, indentation and unpadded ISAs.
//! * `envelope` (internal): ISA/GS/ST structure and every control-number check.
//! * `loops` (internal): the 278 HL hierarchy and name loops, with parent-link and code checks.
//! * `decision` (internal): HCR/AAA → decision status, typed (see its table).
//! * [`tree`]: the source tree for mapping and the `parse` entry points, with
//!   the correlation rule of a 278 to its request ([`tree::Correlation`]: BHT03,
//!   else the 2000E trace; never ISA13).
//! * `path` (internal): the X12 path syntax (`2010CA/NM1-09`, `2000F[*]/SV1-01-2`).
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
//! * `writeback` (internal): decisions go back to the requester as 278 responses (an
//!   outbound folder and/or a CORE partner), through the daemon's write-back worker.
//! * [`requests`]: the outbound 278 request path — payer routes, the request
//!   writer (fresh trace per request) and delivery to a CORE partner or a folder.
//! * [`X12`] (`adapter`, internal): **the facade** — this crate's
//!   [`gateway_seam::Adapter`], with its registry entry [`SPEC`] and its
//!   `[x12]` [`Section`]; it starts the adapter through [`start`] with
//!   control numbers and audit rows from the seam's `Host`.
//! * [`start`]: what the facade assembles (transports, write-back, request
//!   routes) from a section and plain trait objects, so tests can start the
//!   adapter without a host.
//! * [`config`]: the daemon's `[x12]` section.
//!
//! Every problem is a [`codes::Finding`]: a diagnostic with a byte span plus the
//! acknowledgment code it maps to. Nothing here panics on any input.
//!
//! ## What is public, and why
//!
//! The host (the daemon) needs only [`X12`] (the seam facade: transports,
//! write-back, outbound request routes from the `[x12]` section), [`config`]
//! (the section it embeds), [`start::RequestPath`] (the handle its durable
//! submission worker gets), [`requests`] (the request writer and routes that
//! worker drives, and `request_references`/`fresh_trace`, which the admin
//! API's 278 request uses too), [`intake`] (how that worker takes a payer's
//! 278 response in) and [`HostControlNumbers`] with [`control`] (control
//! numbers over the seam's host, for the admin API's 278 request). The rest is public for this crate's CLI commands
//! (`x12 ack|request|response`, `inspect`, `map`: [`tree`], [`ack`],
//! [`outbound`], [`write`]), the conformance runner ([`tree`], [`intake`]),
//! the registry's path syntax ([`X12PathSyntax`]), and its own tests, benches
//! and fuzz targets ([`token`], [`tr3`], [`filedrop`], [`soap`]: the SOAP
//! server and client are driven directly by the transport tests, and by
//! daemon tests as a stand-in payer or requester endpoint). The loop model,
//! envelope reader, decision table, path syntax module, log hashing and the
//! write-back are internal; their types reach callers only as fields and
//! return values of the above. [`codes`] is public as the reference of every
//! finding's TA1/999 code (the tables name codes we do not emit yet).

pub mod ack;
#[cfg(feature = "transports")]
mod adapter;
pub mod codes;
pub mod config;
pub mod control;
mod decision;
mod envelope;
#[cfg(feature = "transports")]
pub mod filedrop;
#[cfg(feature = "transports")]
pub mod intake;
#[cfg(feature = "transports")]
mod log_safe;
mod loops;
pub mod outbound;
mod path;
#[cfg(feature = "transports")]
pub mod requests;
#[cfg(feature = "transports")]
pub mod soap;
#[cfg(feature = "transports")]
pub mod start;
pub mod token;
pub mod tr3;
pub mod tree;
pub mod write;
#[cfg(feature = "transports")]
mod writeback;

#[cfg(feature = "transports")]
pub use adapter::{HostControlNumbers, SOAP_REFUSED, SPEC, Section, X12};
pub use path::X12PathSyntax;
pub use tree::{Parsed, parse, parse_documents, parse_interchange};
