//! gateway-fhir: the cloud EHR adapter (FHIR R4 + SMART Backend Services).

pub mod auth;
pub mod client;
pub mod error;
pub mod outcome;
pub mod bundle;
pub mod path;
