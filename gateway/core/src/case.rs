//! The canonical prior-authorization case, JSON v1 (contract).
//!
//! Every adapter's input is normalized into a [`Case`]; the central platform
//! consumes it and posts a [`Decision`] back. The shape follows `DESIGN.md`
//! exactly: absent data is omitted (never invented), dates are ISO 8601
//! (`YYYY-MM-DD`) and instants RFC 3339 with an offset. Vocabularies are enums
//! with `snake_case` names so a typo is a parse error, not a silent new value.
//!
//! Unknown fields are rejected on input (`deny_unknown_fields`): a decision or
//! case written by hand with a misspelled key must fail loudly.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The value of [`Case::schema`] for this version of the model.
pub const CASE_SCHEMA_V1: &str = "ehr-gateway/case/v1";

fn default_schema() -> String {
    CASE_SCHEMA_V1.to_owned()
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One prior-authorization case, as the central platform sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Always `ehr-gateway/case/v1` for this model.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Stable id derived from tenant + the source's order/request key
    /// (see [`crate::ids::case_id`]); the same order always gets the same id.
    pub case_id: String,
    /// The MSO the gateway belongs to.
    pub tenant: String,
    /// The practice inside the MSO whose EHR produced the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practice: Option<String>,
    /// The practice's site (location), when it has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Where the case came from: adapter, profile and the source message.
    pub source: CaseSource,
    /// Where the case stands in the prior-authorization workflow.
    pub status: CaseStatus,
    /// How fast the payer must answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    /// The patient the services are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Patient>,
    /// Insurance coverages, in order of sequence (primary first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coverages: Vec<Coverage>,
    /// Ordering, referring, rendering, … providers and facilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<Provider>,
    /// The services (procedures, items) that need authorization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceLine>,
    /// Diagnoses supporting the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnoses: Vec<Diagnosis>,
    /// The payer's decision, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Documents attached to the request (stored, referenced by id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Identifiers of the case in other systems, by name. Well-known keys:
    /// `placer_order`, `filler_order`, `referral`, `service_request`,
    /// `x12_bht_reference`, `x12_trace`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub references: BTreeMap<String, String>,
    /// Free-text notes carried over from the source (order comments).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Case {
    /// A case with only the required fields set; everything else absent.
    pub fn new(case_id: impl Into<String>, tenant: impl Into<String>, source: CaseSource) -> Self {
        Case {
            schema: default_schema(),
            case_id: case_id.into(),
            tenant: tenant.into(),
            practice: None,
            site: None,
            source,
            status: CaseStatus::Requested,
            urgency: None,
            patient: None,
            coverages: Vec::new(),
            providers: Vec::new(),
            services: Vec::new(),
            diagnoses: Vec::new(),
            decision: None,
            attachments: Vec::new(),
            references: BTreeMap::new(),
            notes: Vec::new(),
        }
    }
    /// The position in `providers` of the provider who requests the
    /// authorization (X12 278 2010B, PAS `Claim.provider`): the first with
    /// role `requester`, else the first `ordering` provider (the requester of
    /// an order), else the first `referring` provider (the requester of a
    /// referral). HL7 v2 and FHIR profiles map ordering and referring
    /// providers, never a `requester`; X12-received cases carry one.
    ///
    /// The one rule every outbound writer uses, so a case is sent with the
    /// same requester whichever way it leaves.
    pub fn requesting_provider_index(&self) -> Option<usize> {
        [
            ProviderRole::Requester,
            ProviderRole::Ordering,
            ProviderRole::Referring,
        ]
        .iter()
        .find_map(|role| self.providers.iter().position(|p| p.role == *role))
    }
}

/// Provenance of a case: which adapter and profile produced it from which message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseSource {
    /// Adapter name: `hl7v2`, `fhir`, `x12`, `desktop`.
    pub adapter: String,
    /// Mapping profile name, e.g. `epic`.
    pub profile: String,
    /// Source message type: `ORM^O01`, `ServiceRequest`, `278`, a playbook name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// The sender's control id (MSH-10, ST02/BHT03, resource id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_id: Option<String>,
    /// The sending system (MSH-3^MSH-4, ISA06, FHIR base URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// When the gateway received the message, RFC 3339 with offset.
    pub received_at: String,
}

/// Workflow status of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Being prepared; not yet requested.
    Draft,
    /// Ordered in the EHR; authorization requested.
    Requested,
    /// Submitted to the payer.
    Submitted,
    /// The payer has not decided yet (more information or review pending).
    Pended,
    /// Approved as requested.
    Approved,
    /// Some service lines approved, others not.
    PartiallyApproved,
    /// Approved with changes (quantity, dates, service).
    Modified,
    /// Denied.
    Denied,
    /// Cancelled by the requester or the payer.
    Cancelled,
    /// The request could not be processed (e.g. a payer rejection with AAA codes).
    Error,
}

crate::vocabulary::vocabulary!(CaseStatus, "case status" {
    Draft => "draft",
    Requested => "requested",
    Submitted => "submitted",
    Pended => "pended",
    Approved => "approved",
    PartiallyApproved => "partially_approved",
    Modified => "modified",
    Denied => "denied",
    Cancelled => "cancelled",
    Error => "error",
});

/// How fast the payer must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Standard review time.
    Routine,
    /// Expedited review.
    Urgent,
    /// Emergency; often retrospective.
    Emergency,
}

crate::vocabulary::vocabulary!(Urgency, "urgency" {
    Routine => "routine",
    Urgent => "urgent",
    Emergency => "emergency",
});

/// Administrative sex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// Male.
    Male,
    /// Female.
    Female,
    /// Other.
    Other,
    /// Unknown or not disclosed.
    Unknown,
}

crate::vocabulary::vocabulary!(Sex, "sex" {
    Male => "male",
    Female => "female",
    Other => "other",
    Unknown => "unknown",
});

/// The patient.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Patient {
    /// Medical record numbers, member ids and other identifiers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    /// Legal name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<PersonName>,
    /// Date of birth, ISO 8601 date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date"))]
    pub birth_date: Option<String>,
    /// Administrative sex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<Sex>,
    /// Home address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// Primary phone number as given by the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// An identifier with its type and issuing authority.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    /// Identifier type code (HL7 table 0203: `MR`, `MB`, `NPI`, `SS`, …).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The identifier itself.
    pub value: String,
    /// Assigning authority (HL7 CX-4) or FHIR identifier system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigner: Option<String>,
}

/// A person's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonName {
    /// Family (last) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Given names, first then middle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<String>,
    /// Prefix such as `Dr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Suffix such as `Jr` or `MD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
}

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State or province code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// ZIP or postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country code, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// One insurance coverage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// 1 = primary, 2 = secondary, …
    pub sequence: u32,
    /// The payer (insurance company).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<Payer>,
    /// The member (subscriber) id on the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    /// Group number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_number: Option<String>,
    /// Plan name or type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_name: Option<String>,
    /// The patient's relationship to the subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_relationship: Option<SubscriberRelationship>,
}

/// A payer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Payer {
    /// Payer id (e.g. the clearinghouse payer id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Payer name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Patient's relationship to the insurance subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriberRelationship {
    /// The patient is the subscriber.
    #[serde(rename = "self")]
    SelfInsured,
    /// Spouse of the subscriber.
    Spouse,
    /// Child of the subscriber.
    Child,
    /// Any other relationship.
    Other,
}

crate::vocabulary::vocabulary!(SubscriberRelationship, "subscriber relationship" {
    SelfInsured => "self",
    Spouse => "spouse",
    Child => "child",
    Other => "other",
});

/// A provider or facility involved in the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// What the provider does in this case.
    pub role: ProviderRole,
    /// National Provider Identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npi: Option<String>,
    /// Person name (for individual providers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<PersonName>,
    /// Organization name (for facilities and groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Other identifiers (tax id, local ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// Provider roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderRole {
    /// Ordered the service.
    Ordering,
    /// Referred the patient.
    Referring,
    /// Renders the service.
    Rendering,
    /// Services the request (X12 servicing provider).
    Servicing,
    /// Facility where the service happens.
    Facility,
    /// Submits the request (X12 requester).
    Requester,
}

crate::vocabulary::vocabulary!(ProviderRole, "provider role" {
    Ordering => "ordering",
    Referring => "referring",
    Rendering => "rendering",
    Servicing => "servicing",
    Facility => "facility",
    Requester => "requester",
});

/// A coded concept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// The code system.
    pub system: CodeSystem,
    /// The code, normalized (ICD-10 with its dot: `I50.9`).
    pub code: String,
    /// Human-readable text from the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// Code systems a Case may use.
///
/// Consumers of Case v1 must accept code-system values they do not know:
/// systems are added to v1 (additively, the schema id stays
/// `ehr-gateway/case/v1`) when feeds need them (`ICD-9`, `CDT` and
/// `X12-service-type` were added this way). Treat an unknown value as `local`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CodeSystem {
    /// Current Procedural Terminology.
    #[serde(rename = "CPT")]
    Cpt,
    /// HCPCS Level II.
    #[serde(rename = "HCPCS")]
    Hcpcs,
    /// ICD-10 Clinical Modification (diagnoses).
    #[serde(rename = "ICD-10-CM")]
    Icd10Cm,
    /// ICD-10 Procedure Coding System.
    #[serde(rename = "ICD-10-PCS")]
    Icd10Pcs,
    /// ICD-9-CM (legacy diagnoses and procedures, still sent by older feeds).
    #[serde(rename = "ICD-9")]
    Icd9,
    /// Current Dental Terminology (`D0120`).
    #[serde(rename = "CDT")]
    Cdt,
    /// X12 service type codes (EB03/UM03 values such as `1` medical care).
    #[serde(rename = "X12-service-type")]
    X12ServiceType,
    /// LOINC.
    #[serde(rename = "LOINC")]
    Loinc,
    /// SNOMED CT.
    #[serde(rename = "SNOMED")]
    Snomed,
    /// National Drug Code.
    #[serde(rename = "NDC")]
    Ndc,
    /// A site-local code.
    #[serde(rename = "local")]
    Local,
}

crate::vocabulary::vocabulary!(CodeSystem, "code system" {
    Cpt => "CPT",
    Hcpcs => "HCPCS",
    Icd10Cm => "ICD-10-CM",
    Icd10Pcs => "ICD-10-PCS",
    Icd9 => "ICD-9",
    Cdt => "CDT",
    X12ServiceType => "X12-service-type",
    Loinc => "LOINC",
    Snomed => "SNOMED",
    Ndc => "NDC",
    Local => "local",
});

impl CodeSystem {}

/// A date range; either end may be open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// First day, ISO 8601 date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date"))]
    pub start: Option<String>,
    /// Last day, ISO 8601 date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date"))]
    pub end: Option<String>,
}

/// One service line needing authorization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceLine {
    /// Line number, from 1.
    pub line: u32,
    /// Procedure code.
    pub code: Code,
    /// Procedure modifiers (CPT/HCPCS), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modifiers: Vec<String>,
    /// Units or visits requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<serde_json::Number>,
    /// Unit of the quantity (`UN` units, `VS` visits, `DA` days), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// When the service is planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_date: Option<Period>,
    /// CMS place-of-service code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_of_service: Option<String>,
}

/// A diagnosis supporting the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Diagnosis {
    /// The diagnosis code.
    pub code: Code,
    /// True for the principal diagnosis.
    #[serde(default, skip_serializing_if = "is_false")]
    pub primary: bool,
}

/// The payer's decision on a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The outcome.
    pub status: DecisionStatus,
    /// Authorization (certification) number, when approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_number: Option<String>,
    /// Period the authorization is valid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<Period>,
    /// Payer reason codes (HCR03, AAA03), as sent.
    #[serde(default)]
    pub reason_codes: Vec<String>,
    /// Payer trace numbers (TRN segments, payer reference ids).
    #[serde(default)]
    pub payer_trace: Vec<String>,
    /// Per-line decisions that differ from the case-level one.
    #[serde(default)]
    pub service_decisions: Vec<ServiceDecision>,
    /// When the payer decided, RFC 3339 with offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// Free-text explanation from the payer or reviewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The outcome of a decision; maps onto the [`CaseStatus`] of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionStatus {
    /// Not decided yet.
    Pended,
    /// Approved as requested.
    Approved,
    /// Some lines approved.
    PartiallyApproved,
    /// Approved with changes.
    Modified,
    /// Denied.
    Denied,
    /// Cancelled.
    Cancelled,
    /// Rejected as unprocessable (e.g. X12 AAA): not a denial.
    Error,
}

crate::vocabulary::vocabulary!(DecisionStatus, "decision status" {
    Pended => "pended",
    Approved => "approved",
    PartiallyApproved => "partially_approved",
    Modified => "modified",
    Denied => "denied",
    Cancelled => "cancelled",
    Error => "error",
});

impl DecisionStatus {
    /// The case status a case takes when this decision arrives.
    pub fn case_status(self) -> CaseStatus {
        match self {
            DecisionStatus::Pended => CaseStatus::Pended,
            DecisionStatus::Approved => CaseStatus::Approved,
            DecisionStatus::PartiallyApproved => CaseStatus::PartiallyApproved,
            DecisionStatus::Modified => CaseStatus::Modified,
            DecisionStatus::Denied => CaseStatus::Denied,
            DecisionStatus::Cancelled => CaseStatus::Cancelled,
            DecisionStatus::Error => CaseStatus::Error,
        }
    }
}

/// A decision for one service line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceDecision {
    /// The [`ServiceLine::line`] this applies to.
    pub line: u32,
    /// The outcome for that line.
    pub status: DecisionStatus,
    /// Line-level authorization number, when different.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_number: Option<String>,
    /// Approved quantity, when changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<serde_json::Number>,
    /// Approved period for that line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<Period>,
    /// Reason codes for that line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reason_codes: Vec<String>,
}

/// A document attached to the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// What it is: `clinical-note`, `imaging-report`, `lab-result`, …
    pub kind: String,
    /// MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Where the bytes are: `store:blob/<id>` or a URL in the source system.
    pub reference: String,
    /// Title or description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}
