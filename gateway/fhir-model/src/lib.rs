//! gateway-fhir-model: the FHIR R4 JSON that more than one adapter reads.
//!
//! *Why a crate*: the cloud-EHR adapter (`gateway-fhir`, ServiceRequest
//! bundles it polls) and the Da Vinci PAS server (`gateway-davinci-pas`,
//! Claim bundles an EHR posts) both turn a FHIR Bundle into a gateway-core
//! source tree, resolve references inside it, compile the same FHIRPath
//! subset in mapping profiles and speak `OperationOutcome`. Adapters never
//! depend on each other, so that shared part lives here:
//!
//! * [`tree`]: a Bundle (or one resource) as a [`gateway_core::SourceTree`]
//!   with every resource registered under `Type/id`, its versioned key and its
//!   `fullUrl`, the focus resource type first; byte spans of the entries;
//!   reference resolution; JSON errors with byte positions;
//! * [`path`]: [`FhirPathSyntax`], the path syntax of FHIR mapping profiles;
//! * [`outcome`]: reading an `OperationOutcome` ([`outcome::OutcomeSummary`])
//!   and writing one ([`outcome::OperationOutcome`]).
//!
//! FHIR is read from the JSON tree, not typed models (fhirbolt is
//! unmaintained and costs minutes of build time); nothing here does I/O.

pub mod outcome;
pub mod path;
pub mod tree;

pub use outcome::{OperationOutcome, OutcomeIssue, OutcomeSummary};
pub use path::FhirPathSyntax;
pub use tree::{BundleTree, FHIR_VERSION, TreeEntry, build_tree, parse_json};
