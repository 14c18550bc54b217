//! gateway-fhir: the cloud EHR adapter (FHIR R4 + SMART Backend Services).
//!
//! athenahealth, NextGen Office, eClinicalWorks cloud and Elation expose FHIR R4
//! APIs; this crate reads prior-authorization orders (ServiceRequests) from
//! them and writes decisions back where the vendor allows it:
//!
//! **The facade** is [`Fhir`], this crate's [`gateway_seam::Adapter`]: the
//! daemon starts the adapter through it and nothing else ([`SPEC`] is its
//! registry entry, [`FhirConfig`] its `[fhir]` section).
//!
//! Public modules, and why each is public:
//! * [`auth`]: SMART Backend Services (`private_key_jwt`, RS384/ES384) and
//!   client-secret token acquisition — its `AuthConfig` is part of the
//!   `[fhir]` section, and the daemon's soak bench signs with `public_jwks`;
//! * [`client`]: the FHIR REST client (per-EHR concurrency limit, retries,
//!   401 refresh) — the Medplum tests drive it directly;
//! * [`poll`]: `_lastUpdated` polling with a durable watermark — the
//!   conformance runner submits through its `inbound_message` (the daemon's
//!   intake path) and the tests use its watermark stores;
//! * [`bundle`]: the Bundle as a gateway-core source tree — the registry's
//!   FHIR format entry and the never-panics test;
//! * [`profile`]: the vendor differences as data (`adapter/fhir.toml`) — the
//!   golden and Medplum tests load it;
//! * [`writeback`]: a decision as a Task, Communication or DocumentReference
//!   — the Medplum tests write back directly.
//!
//! Private: order assembly (one collection Bundle per ServiceRequest),
//! OperationOutcome summaries and the FHIRPath-style path syntax (both from
//! gateway-fhir-model, shared with the Da Vinci PAS adapter; the syntax
//! re-exported as [`FhirPathSyntax`]), the rest-hook receiver, the service loop
//! ([`FhirAdapter`], [`FhirConfig`], [`SubscriptionConfig`] re-exported) and
//! the error type ([`FhirError`]).
//!
//! FHIR is mapped from the JSON tree, not through typed models: fhirbolt (the
//! only R4 model crate) is unmaintained, mis-parses decimals in typed structs
//! and costs ~6 min / 3.5 GB RAM to build — it is not a dependency.

mod adapter;
mod assemble;
pub mod auth;
pub mod bundle;
pub mod client;
mod error;
pub mod poll;
pub mod profile;
mod service;
mod subscription;
pub mod writeback;

pub use adapter::{Fhir, SPEC};
pub use bundle::{build_document, parse_bundle};
pub use error::FhirError;
use gateway_fhir_model::{outcome, path};
pub use path::FhirPathSyntax;
pub use service::{FhirAdapter, FhirConfig, MIN_HOOK_TOKEN_LEN, SubscriptionConfig};
