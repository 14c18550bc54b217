//! What differs between cloud EHR vendors, as data.
//!
//! athenahealth, NextGen Office, eClinicalWorks cloud and Elation all speak
//! FHIR R4, but differ in how a backend client authenticates, which search
//! parameters work, which resources can be read or written and which identifier
//! systems carry the MRN and NPI. Those facts live in
//! `mappings/<profile>/adapter/fhir.toml` next to the profile's mapping files
//! (a subfolder, because every `*.toml` directly in the profile folder is a
//! mapping file to the mapping engine), so onboarding a vendor is data, not code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::SigningAlgorithm;

/// Where the vendor file lives inside a profile folder.
pub const VENDOR_FILE: &str = "adapter/fhir.toml";

/// A vendor's FHIR facts (one `adapter/fhir.toml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorProfile {
    /// Vendor / product name, for logs and the dashboard.
    pub vendor: String,
    /// Free text: where the facts come from, caveats.
    #[serde(default)]
    pub description: Option<String>,
    /// How backend clients authenticate.
    pub auth: VendorAuth,
    /// Rate and page limits.
    #[serde(default)]
    pub limits: Limits,
    /// How orders are found.
    pub search: SearchProfile,
    /// Which resource types may be read and written.
    pub resources: ResourceAccess,
    /// How a decision is written back.
    pub writeback: WritebackProfile,
    /// Identifier systems the vendor uses.
    pub identifiers: IdentifierSystems,
    /// Subscription (rest-hook) support.
    #[serde(default)]
    pub subscription: SubscriptionProfile,
}

/// Authentication styles a vendor accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthStyle {
    /// SMART Backend Services (`private_key_jwt`).
    SmartBackend,
    /// OAuth client secret (basic or post).
    ClientSecret,
}

/// The `[auth]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorAuth {
    /// Accepted styles, preferred first.
    pub styles: Vec<AuthStyle>,
    /// Accepted client-assertion algorithms.
    #[serde(default)]
    pub algorithms: Vec<SigningAlgorithm>,
    /// Scopes requested by default.
    pub scopes: Vec<String>,
    /// Access-token lifetime the vendor documents, in seconds (informational).
    #[serde(default)]
    pub token_lifetime_seconds: Option<u64>,
}

/// The `[limits]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// `_count` for searches.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

fn default_concurrency() -> usize {
    4
}

fn default_page_size() -> u32 {
    50
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrency: default_concurrency(),
            page_size: default_page_size(),
        }
    }
}

/// How Coverage is found for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageLookup {
    /// Only `ServiceRequest.insurance` references (read if not included).
    InsuranceReference,
    /// `insurance` references, else `Coverage?beneficiary=Patient/x&status=active`.
    BeneficiarySearch,
    /// Coverage is not readable via FHIR.
    None,
}

/// The `[search]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchProfile {
    /// Whether `_lastUpdated=ge…` works on ServiceRequest.
    pub last_updated: bool,
    /// Whether `_sort=_lastUpdated` works; without it the watermark only
    /// advances at the end of a complete pass.
    pub sort_last_updated: bool,
    /// `_include` values the vendor supports (`ServiceRequest:subject`, …).
    #[serde(default)]
    pub include: Vec<String>,
    /// `_revinclude` values the vendor supports.
    #[serde(default)]
    pub revinclude: Vec<String>,
    /// Fixed search parameters (e.g. `status = "active"`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// How coverage is found.
    pub coverage: CoverageLookup,
}

/// The `[resources]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceAccess {
    /// Types the adapter may read (follow-up reads of anything else are skipped).
    pub readable: Vec<String>,
    /// Types the vendor lets a backend client create.
    #[serde(default)]
    pub writable: Vec<String>,
}

/// What a decision becomes in the EHR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// A Task based on the ServiceRequest, status and output set.
    Task,
    /// A Communication about the ServiceRequest.
    Communication,
    /// A DocumentReference holding a text note.
    DocumentReference,
    /// The vendor accepts no FHIR writes; decisions go another way.
    None,
}

impl WriteKind {
    /// The FHIR resource type written, if any.
    pub fn resource_type(self) -> Option<&'static str> {
        match self {
            WriteKind::Task => Some("Task"),
            WriteKind::Communication => Some("Communication"),
            WriteKind::DocumentReference => Some("DocumentReference"),
            WriteKind::None => None,
        }
    }
}

/// The `[writeback]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WritebackProfile {
    /// What to write.
    pub kind: WriteKind,
    /// Identifier system of what we write (makes writes idempotent).
    #[serde(default = "default_writeback_system")]
    pub identifier_system: String,
}

fn default_writeback_system() -> String {
    "urn:ehr-gateway:decision".to_owned()
}

/// The `[identifiers]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifierSystems {
    /// System URI of the practice's MRN.
    pub mrn_system: String,
    /// System URI of the NPI (normally `http://hl7.org/fhir/sid/us-npi`).
    pub npi_system: String,
    /// System URI of payer ids on Organization, when the vendor sets one.
    #[serde(default)]
    pub payer_id_system: Option<String>,
}

/// The `[subscription]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionProfile {
    /// Whether the vendor can notify a rest-hook endpoint.
    #[serde(default)]
    pub rest_hook: bool,
    /// Free text: payload style (`id-only`, `full-resource`).
    #[serde(default)]
    pub payload: Option<String>,
}

/// Loading a vendor file failed.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid vendor profile.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (from the TOML parser, with line and column).
        message: String,
    },
}

impl VendorProfile {
    /// Loads `<profile_dir>/adapter/fhir.toml`.
    pub fn load(profile_dir: &Path) -> Result<Self, ProfileError> {
        let path = profile_dir.join(VENDOR_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ProfileError::Io {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ProfileError::Invalid { path, message })
    }

    /// Parses the TOML text of a vendor file and checks it for consistency.
    pub fn parse(text: &str) -> Result<Self, String> {
        let profile: VendorProfile = toml::from_str(text).map_err(|e| e.to_string())?;
        profile.check()?;
        Ok(profile)
    }

    fn check(&self) -> Result<(), String> {
        if self.auth.styles.is_empty() {
            return Err("[auth] styles must name at least one style".into());
        }
        if self.auth.styles.contains(&AuthStyle::SmartBackend) && self.auth.algorithms.is_empty() {
            return Err("[auth] smart_backend needs algorithms".into());
        }
        for rtype in ["ServiceRequest", "Patient"] {
            if !self.resources.readable.iter().any(|r| r == rtype) {
                return Err(format!("[resources] readable must include {rtype}"));
            }
        }
        if let Some(rtype) = self.writeback.kind.resource_type()
            && !self.resources.writable.iter().any(|r| r == rtype)
        {
            return Err(format!(
                "[writeback] kind writes {rtype}, which [resources] writable does not allow"
            ));
        }
        if self.limits.max_concurrency == 0 || self.limits.page_size == 0 {
            return Err("[limits] values must be positive".into());
        }
        Ok(())
    }

    /// Whether a follow-up read of `resource_type` is allowed.
    pub fn readable(&self, resource_type: &str) -> bool {
        self.resources.readable.iter().any(|r| r == resource_type)
    }

    /// Whether the vendor accepts writes of `resource_type`.
    pub fn writable(&self, resource_type: &str) -> bool {
        self.resources.writable.iter().any(|r| r == resource_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
vendor = "Example"
[auth]
styles = ["smart_backend"]
algorithms = ["RS384"]
scopes = ["system/ServiceRequest.read"]
[search]
last_updated = true
sort_last_updated = true
coverage = "beneficiary_search"
[resources]
readable = ["ServiceRequest", "Patient"]
writable = ["Task"]
[writeback]
kind = "task"
[identifiers]
mrn_system = "urn:oid:1.2.3"
npi_system = "http://hl7.org/fhir/sid/us-npi"
"#;

    #[test]
    fn parses_and_checks() {
        let p = VendorProfile::parse(SAMPLE).expect("valid");
        assert_eq!(p.limits.page_size, 50);
        assert!(p.writable("Task") && !p.writable("Communication"));
        let bad = SAMPLE.replace("writable = [\"Task\"]", "writable = []");
        assert!(
            VendorProfile::parse(&bad)
                .expect_err("task not writable")
                .contains("writable")
        );
        let typo = SAMPLE.replace("vendor =", "vendr =");
        assert!(VendorProfile::parse(&typo).is_err());
    }
}
