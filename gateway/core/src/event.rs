//! Case events as CloudEvents 1.0 (structured JSON mode) — a contract with the
//! central platform.
//!
//! `id` is the event id and doubles as the idempotency key the forwarder sends
//! with every delivery attempt; `subject` is the case id; `data` is the Case.

use serde::{Deserialize, Serialize};

use crate::case::Case;

/// What happened to the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseEventType {
    /// First time the gateway saw this case.
    Created,
    /// New facts about a known case (an ADT update, an amended order).
    Updated,
    /// A decision was recorded.
    Decided,
}

crate::vocabulary::vocabulary!(CaseEventType, "case event type" {
    Created => "created",
    Updated => "updated",
    Decided => "decided",
});

impl CaseEventType {
    /// The CloudEvents `type`, e.g. `org.ehr-gateway.case.created`.
    pub fn cloud_event_type(self) -> &'static str {
        match self {
            CaseEventType::Created => "org.ehr-gateway.case.created",
            CaseEventType::Updated => "org.ehr-gateway.case.updated",
            CaseEventType::Decided => "org.ehr-gateway.case.decided",
        }
    }

    /// Parses the short name back.
    pub fn from_name(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

/// A CloudEvents 1.0 envelope around a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// Always `1.0`.
    pub specversion: String,
    /// Event id; the idempotency key.
    pub id: String,
    /// URI-reference naming this gateway: `/ehr-gateway/{tenant}/{practice}`.
    pub source: String,
    /// `org.ehr-gateway.case.created|updated|decided`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The case id.
    pub subject: String,
    /// When the event was recorded, RFC 3339.
    pub time: String,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The case.
    pub data: Case,
}

impl CloudEvent {
    /// Wraps `case` as an event of `kind` with the given id and time.
    pub fn new(
        id: impl Into<String>,
        kind: CaseEventType,
        time: impl Into<String>,
        case: Case,
    ) -> Self {
        let source = match &case.practice {
            Some(p) => format!("/ehr-gateway/{}/{}", case.tenant, p),
            None => format!("/ehr-gateway/{}", case.tenant),
        };
        CloudEvent {
            specversion: "1.0".to_owned(),
            id: id.into(),
            source,
            kind: kind.cloud_event_type().to_owned(),
            subject: case.case_id.clone(),
            time: time.into(),
            datacontenttype: "application/json".to_owned(),
            data: case,
        }
    }
}
