//! gateway-core: the vocabulary every other crate of the gateway shares.
//!
//! * [`case`]: the canonical prior-authorization **Case v1** (a contract with the
//!   central platform; its JSON Schema is checked in at `schema/case.v1.json`).
//! * [`event`]: the CloudEvents 1.0 envelope case events travel in.
//! * [`source`]: the format-neutral tree every adapter turns its input into, with
//!   byte spans back into the raw bytes, so that a mapping can explain itself.
//! * [`path`]: compiled source paths (the steps a format's path syntax compiles
//!   to) and their evaluation over a [`source::SourceTree`].
//! * [`adapter`]: the traits adapters implement and the intake pipeline they call.
//! * [`phi`]: which Case fields are PHI, and the least-PHI view built from that table.
//! * [`facts`]: NPI (Luhn) and code-shape checks shared by the mapping engine
//!   and every writer: identifiers and codes are validated, never copied or guessed.
//! * [`error`]: error kinds classified by who caused them and whether a retry helps.
//!
//! This crate does no I/O, reads no clock and holds no global state: callers pass
//! time and randomness in. That keeps it usable from every adapter, the mapping
//! engine, the store and the conformance runner alike.

pub mod adapter;
pub mod case;
pub mod diagnostic;
pub mod error;
pub mod event;
pub mod facts;
pub mod ids;
pub mod json_tree;
pub mod metrics;
pub mod path;
pub mod phi;
pub mod schema;
pub mod source;
pub mod vocabulary;

pub use case::Case;
pub use diagnostic::{Diagnostic, Severity};
pub use error::{ErrorKind, GatewayError};
pub use source::{NodeId, SourceDocument, SourceFormat, SourceTree, Span};
