//! gateway-fhir: the cloud EHR adapter (FHIR R4 + SMART Backend Services).
//!
//! athenahealth, NextGen Office, eClinicalWorks cloud and Elation expose FHIR R4
//! APIs; this crate reads prior-authorization orders (ServiceRequests) from
//! them and writes decisions back where the vendor allows it:
//!
//! * [`auth`]: SMART Backend Services (`private_key_jwt`, RS384/ES384) and
//!   client-secret token acquisition with caching and refresh;
//! * [`client`]: a FHIR REST client with a per-EHR concurrency limit, retries
//!   (429 `Retry-After`, 5xx, timeouts), 401 refresh and OperationOutcome errors;
//! * [`poll`]: `_lastUpdated` polling with a durable watermark that neither
//!   misses nor repeats orders across restarts;
//! * [`assemble`]: one collection Bundle per ServiceRequest with everything a
//!   case needs (follow-up reads for what searches do not include);
//! * [`bundle`]: the order Bundle as a gateway-core source tree (the tree,
//!   reference resolution, the FHIRPath-style [`path`] syntax and
//!   [`outcome`] live in gateway-fhir-model, shared with the Da Vinci PAS
//!   adapter);
//! * [`writeback`]: a decision as a Task, Communication or DocumentReference;
//! * [`subscription`]: an optional rest-hook that triggers polls;
//! * [`profile`]: the vendor differences as data (`adapter/fhir.toml`);
//! * [`service`]: config and the run loop the daemon embeds.
//!
//! FHIR is mapped from the JSON tree, not through typed models: fhirbolt (the
//! only R4 model crate) is unmaintained, mis-parses decimals in typed structs
//! and costs ~6 min / 3.5 GB RAM to build — it is not a dependency.

pub mod assemble;
pub mod auth;
pub mod bundle;
pub mod client;
pub mod error;
pub mod poll;
pub mod profile;
pub mod service;
pub mod subscription;
pub mod writeback;

pub use bundle::{build_document, parse_bundle};
pub use error::FhirError;
/// The shared FHIR path syntax and OperationOutcome (moved to gateway-fhir-model).
pub use gateway_fhir_model::{outcome, path};
pub use path::FhirPathSyntax;
pub use service::{FhirAdapter, FhirConfig};
