//! Case assembly: one collection Bundle per ServiceRequest.
//!
//! A search page holds ServiceRequests (`search.mode = match`) and whatever the
//! vendor's `_include`s brought along. A case needs more: the subject Patient,
//! Coverage with its payor Organization, the Conditions behind
//! `reasonReference`, the requester Practitioner/PractitionerRole and the
//! performer. What the page does not include is read afterwards (only types the
//! profile marks readable; each reference read once per page), and Coverage is
//! searched by beneficiary where the vendor's orders do not reference it.
//!
//! The result per order is a self-contained `collection` Bundle with the
//! ServiceRequest first and every entry's `fullUrl` under the EHR base. That
//! bundle is the raw message the store keeps: replaying it later reproduces the
//! case without calling the EHR again. A reference that cannot be resolved (404,
//! not readable) is left dangling; [`crate::bundle`] then rejects the bundle
//! with a precise diagnostic and it is kept for replay.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::client::FhirClient;
use crate::error::FhirError;
use crate::profile::{CoverageLookup, VendorProfile};

/// One order ready for the pipeline.
#[derive(Debug, Clone)]
pub struct AssembledOrder {
    /// ServiceRequest id.
    pub id: String,
    /// `meta.versionId` (empty when the server sets none).
    pub version_id: String,
    /// `meta.lastUpdated` as sent.
    pub last_updated: Option<String>,
    /// The collection Bundle (ServiceRequest first).
    pub bundle: Value,
}

impl AssembledOrder {
    /// `ServiceRequest/id/_history/vid`: the watermark's seen-set key.
    pub fn version_key(&self) -> String {
        format!("ServiceRequest/{}/_history/{}", self.id, self.version_id)
    }
}

/// Elements followed from each resource type, transitively.
fn followed(rtype: &str) -> &'static [&'static str] {
    match rtype {
        "ServiceRequest" => &[
            "subject",
            "requester",
            "performer",
            "insurance",
            "reasonReference",
        ],
        "Coverage" => &["payor"],
        "PractitionerRole" => &["practitioner", "organization"],
        _ => &[],
    }
}

/// Literal references in `resource.element` (single or repeated).
fn references<'v>(resource: &'v Value, element: &str) -> Vec<&'v str> {
    match resource.get(element) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.get("reference").and_then(Value::as_str))
            .collect(),
        Some(one) => one
            .get("reference")
            .and_then(Value::as_str)
            .into_iter()
            .collect(),
        None => Vec::new(),
    }
}

/// `Type/id` for a relative or absolute literal reference (history stripped).
fn key_of(reference: &str) -> Option<String> {
    let without_history = reference.split("/_history/").next().unwrap_or(reference);
    let mut parts = without_history.rsplit('/');
    let id = parts.next()?;
    let rtype = parts.next()?;
    (rtype.chars().next().is_some_and(char::is_uppercase) && !id.is_empty())
        .then(|| format!("{rtype}/{id}"))
}

fn key_of_resource(resource: &Value) -> Option<String> {
    Some(format!(
        "{}/{}",
        resource.get("resourceType")?.as_str()?,
        resource.get("id")?.as_str()?
    ))
}

/// Assembles orders from search pages, reading what the pages lack.
pub struct Assembler<'a> {
    client: &'a FhirClient,
    profile: &'a VendorProfile,
    /// Everything known this pass, by `Type/id`; `None` = tried, not available.
    known: HashMap<String, Option<Value>>,
}

impl<'a> Assembler<'a> {
    /// An assembler with an empty cache.
    pub fn new(client: &'a FhirClient, profile: &'a VendorProfile) -> Self {
        Assembler {
            client,
            profile,
            known: HashMap::new(),
        }
    }

    /// The matches of `page`, in page order, each assembled into its bundle.
    pub async fn assemble_page(&mut self, page: &Value) -> Result<Vec<AssembledOrder>, FhirError> {
        let entries = page
            .get("entry")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut matches = Vec::new();
        for entry in entries {
            let Some(resource) = entry.get("resource") else {
                continue;
            };
            let Some(key) = key_of_resource(resource) else {
                continue;
            };
            let is_match = entry.pointer("/search/mode").and_then(Value::as_str) != Some("include")
                && resource.get("resourceType").and_then(Value::as_str) == Some("ServiceRequest");
            if is_match {
                matches.push(resource.clone());
            } else {
                self.known.insert(key, Some(resource.clone()));
            }
        }
        let mut out = Vec::with_capacity(matches.len());
        for sr in matches {
            out.push(self.assemble(sr).await?);
        }
        Ok(out)
    }

    /// Assembles one ServiceRequest.
    pub async fn assemble(&mut self, sr: Value) -> Result<AssembledOrder, FhirError> {
        let id = sr
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let version_id = sr
            .pointer("/meta/versionId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let last_updated = sr
            .pointer("/meta/lastUpdated")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut included: Vec<Value> = Vec::new();
        let mut done: HashSet<String> = HashSet::new();
        if let Some(k) = key_of_resource(&sr) {
            done.insert(k);
        }
        let mut queue: Vec<Value> = vec![sr.clone()];
        while let Some(resource) = queue.pop() {
            let rtype = resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut wanted: Vec<String> = Vec::new();
            for element in followed(&rtype) {
                wanted.extend(
                    references(&resource, element)
                        .into_iter()
                        .filter_map(key_of),
                );
            }
            for key in wanted {
                if !done.insert(key.clone()) {
                    continue;
                }
                if let Some(found) = self.fetch(&key).await? {
                    queue.push(found.clone());
                    included.push(found);
                }
            }
        }
        if self.profile.search.coverage == CoverageLookup::BeneficiarySearch
            && references(&sr, "insurance").is_empty()
            && let Some(patient) = references(&sr, "subject").first().and_then(|r| key_of(r))
            && patient.starts_with("Patient/")
            && self.profile.readable("Coverage")
        {
            for coverage in self.coverages_of(&patient).await? {
                let Some(key) = key_of_resource(&coverage) else {
                    continue;
                };
                if !done.insert(key) {
                    continue;
                }
                for payor in references(&coverage, "payor")
                    .into_iter()
                    .filter_map(key_of)
                {
                    if done.insert(payor.clone())
                        && let Some(org) = self.fetch(&payor).await?
                    {
                        included.push(org);
                    }
                }
                included.push(coverage);
            }
        }
        let base = self.client.base_str();
        let mut entry = vec![entry_for(base, sr)];
        entry.extend(included.into_iter().map(|r| entry_for(base, r)));
        Ok(AssembledOrder {
            id,
            version_id,
            last_updated,
            bundle: json!({"resourceType": "Bundle", "type": "collection", "entry": entry}),
        })
    }

    /// A resource by `Type/id`: from the page, the cache, or a read.
    async fn fetch(&mut self, key: &str) -> Result<Option<Value>, FhirError> {
        if let Some(known) = self.known.get(key) {
            return Ok(known.clone());
        }
        let rtype = key.split('/').next().unwrap_or_default();
        let found = if self.profile.readable(rtype) {
            match self.client.read_reference(key).await {
                Ok(resource) => Some(resource),
                Err(FhirError::Status { status, .. }) if matches!(status, 403 | 404 | 410) => {
                    tracing::info!(
                        resource_type = rtype,
                        status,
                        "referenced resource not available"
                    );
                    None
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        self.known.insert(key.to_owned(), found.clone());
        Ok(found)
    }

    async fn coverages_of(&mut self, patient: &str) -> Result<Vec<Value>, FhirError> {
        let params = vec![
            ("beneficiary".to_owned(), patient.to_owned()),
            ("status".to_owned(), "active".to_owned()),
        ];
        let pages = self.client.search_all("Coverage", &params, 10).await?;
        let mut out = Vec::new();
        for page in pages {
            for entry in page
                .get("entry")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = entry.get("resource")
                    && r.get("resourceType").and_then(Value::as_str) == Some("Coverage")
                {
                    out.push(r.clone());
                }
            }
        }
        // Primary first: Coverage.order, then as returned.
        out.sort_by_key(|c| c.get("order").and_then(Value::as_u64).unwrap_or(u64::MAX));
        Ok(out)
    }
}

fn entry_for(base: &str, resource: Value) -> Value {
    let full_url = key_of_resource(&resource).map(|k| format!("{base}/{k}"));
    match full_url {
        Some(url) => json!({"fullUrl": url, "resource": resource}),
        None => json!({"resource": resource}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_keys() {
        assert_eq!(key_of("Patient/p1").as_deref(), Some("Patient/p1"));
        assert_eq!(
            key_of("https://ehr.example/fhir/r4/Patient/p1/_history/3").as_deref(),
            Some("Patient/p1")
        );
        assert_eq!(key_of("urn:uuid:1234"), None);
        assert_eq!(key_of("#contained"), None);
    }
}
