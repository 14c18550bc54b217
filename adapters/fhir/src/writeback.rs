//! Decision write-back: what the EHR accepts, chosen by the vendor profile.
//!
//! Cloud EHRs rarely let a backend client touch the order itself, but most
//! accept one of: a **Task** based on the ServiceRequest (status and `output`
//! carry the decision, authorization number and period), a **Communication**
//! about it, or a **DocumentReference** holding a text note. The vendor file's
//! `[writeback] kind` picks one and `[resources] writable` must allow it.
//!
//! Every write is a conditional create (`If-None-Exist: identifier=…`) with an
//! identifier derived from the case and the decision, so a retried write-back
//! (the daemon retries with backoff) never creates a second resource.

use std::sync::Arc;

use gateway_core::adapter::{BoxFuture, WriteBack, WriteBackReceipt};
use gateway_core::case::{Decision, DecisionStatus};
use gateway_core::{Case, GatewayError};
use serde_json::{Value, json};

use crate::client::FhirClient;
use crate::profile::{VendorProfile, WriteKind};

/// Writes decided cases back into one EHR.
pub struct FhirWriteBack {
    client: Arc<FhirClient>,
    vendor: Arc<VendorProfile>,
}

impl FhirWriteBack {
    /// A write-back through `client` with the vendor's rules.
    pub fn new(client: Arc<FhirClient>, vendor: Arc<VendorProfile>) -> Self {
        FhirWriteBack { client, vendor }
    }

    /// Builds the resource for `case` without sending it (also used by tests).
    /// `subject` is the ServiceRequest's subject reference, when known.
    pub fn build(
        &self,
        case: &Case,
        service_request: &str,
        subject: Option<&Value>,
        now: &str,
    ) -> Result<(Value, String), GatewayError> {
        let decision = case
            .decision
            .as_ref()
            .ok_or_else(|| GatewayError::mapping("case has no decision to write back"))?;
        let kind = self.vendor.writeback.kind;
        let rtype = kind.resource_type().ok_or_else(|| {
            GatewayError::internal(
                false,
                format!(
                    "profile for {} allows no FHIR write-back",
                    self.vendor.vendor
                ),
            )
        })?;
        if !self.vendor.writable(rtype) {
            return Err(GatewayError::internal(
                false,
                format!("{} does not accept {rtype} writes", self.vendor.vendor),
            ));
        }
        let system = &self.vendor.writeback.identifier_system;
        let value = format!(
            "{}:{}:{}",
            case.case_id,
            status_name(decision.status),
            decision.authorization_number.as_deref().unwrap_or("-")
        );
        let identifier = json!([{"system": system, "value": value}]);
        let based_on = json!([{"reference": service_request}]);
        let summary = summary(decision);
        let mut resource = match kind {
            WriteKind::Task => {
                let mut output = Vec::new();
                if let Some(n) = &decision.authorization_number {
                    output
                        .push(json!({"type": {"text": "authorization-number"}, "valueString": n}));
                }
                if let Some(p) = &decision.effective {
                    let mut period = serde_json::Map::new();
                    if let Some(s) = &p.start {
                        period.insert("start".into(), json!(s));
                    }
                    if let Some(e) = &p.end {
                        period.insert("end".into(), json!(e));
                    }
                    output.push(
                        json!({"type": {"text": "authorization-period"}, "valuePeriod": period}),
                    );
                }
                for code in &decision.reason_codes {
                    output.push(json!({"type": {"text": "reason-code"}, "valueString": code}));
                }
                output.push(json!({"type": {"text": "decision"}, "valueString": status_name(decision.status)}));
                json!({
                    "resourceType": "Task",
                    "identifier": identifier,
                    "status": task_status(decision.status),
                    "businessStatus": {"text": status_name(decision.status)},
                    "intent": "order",
                    "code": {"text": "Prior authorization decision"},
                    "description": summary,
                    "basedOn": based_on,
                    "focus": {"reference": service_request},
                    "authoredOn": now,
                    "lastModified": now,
                    "output": output,
                })
            }
            WriteKind::Communication => json!({
                "resourceType": "Communication",
                "identifier": identifier,
                "status": "completed",
                "basedOn": based_on,
                "category": [{"text": "Prior authorization decision"}],
                "sent": now,
                "payload": [{"contentString": summary}],
            }),
            WriteKind::DocumentReference => {
                let data = base64_encode(summary.as_bytes());
                json!({
                    "resourceType": "DocumentReference",
                    "identifier": identifier,
                    "status": "current",
                    "type": {"text": "Prior authorization decision"},
                    "date": now,
                    "description": "Prior authorization decision",
                    "context": {"related": [{"reference": service_request}]},
                    "content": [{"attachment": {"contentType": "text/plain", "data": data,
                                 "title": "Prior authorization decision"}}],
                })
            }
            WriteKind::None => {
                return Err(GatewayError::internal(false, "no write-back kind"));
            }
        };
        if let (Some(subject), Some(obj)) = (subject, resource.as_object_mut()) {
            let field = match kind {
                WriteKind::Task => "for",
                _ => "subject",
            };
            obj.insert(field.into(), subject.clone());
        }
        let condition = format!("identifier={system}|{value}");
        Ok((resource, condition))
    }
}

/// The ServiceRequest a case came from: `references.service_request`
/// (`ServiceRequest/id` or a bare id), else a `ServiceRequest/...` control id.
pub fn service_request_of(case: &Case) -> Option<String> {
    let raw = case
        .references
        .get("service_request")
        .cloned()
        .or_else(|| {
            case.source
                .control_id
                .clone()
                .filter(|c| c.starts_with("ServiceRequest/"))
        })?;
    let raw = raw.split("/_history/").next().unwrap_or(&raw).to_owned();
    let key = if raw.contains('/') {
        let mut parts = raw.rsplit('/');
        let id = parts.next()?;
        let rtype = parts.next()?;
        format!("{rtype}/{id}")
    } else {
        format!("ServiceRequest/{raw}")
    };
    key.starts_with("ServiceRequest/").then_some(key)
}

impl WriteBack for FhirWriteBack {
    fn adapter(&self) -> &str {
        crate::poll::ADAPTER
    }

    fn apply<'a>(
        &'a self,
        case: &'a Case,
    ) -> BoxFuture<'a, Result<WriteBackReceipt, GatewayError>> {
        Box::pin(async move {
            let service_request = service_request_of(case).ok_or_else(|| {
                GatewayError::mapping(
                    "case carries no ServiceRequest reference (references.service_request)",
                )
            })?;
            // The subject makes the note show up in the patient's chart.
            let order = self.client.read_reference(&service_request).await?;
            let subject = order.get("subject").cloned();
            let now = jiff::Timestamp::now().to_string();
            let (resource, condition) =
                self.build(case, &service_request, subject.as_ref(), &now)?;
            let created = self.client.create(&resource, Some(&condition)).await?;
            let rtype = resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("resource");
            let id = created.get("id").and_then(Value::as_str).unwrap_or("?");
            tracing::info!(case_id = %case.case_id, resource_type = rtype, "decision written back");
            Ok(WriteBackReceipt {
                detail: format!("{rtype}/{id} for {service_request}"),
            })
        })
    }
}

fn status_name(status: DecisionStatus) -> &'static str {
    status.case_status().as_str()
}

/// Task.status for a decision: finished decisions complete the task.
fn task_status(status: DecisionStatus) -> &'static str {
    match status {
        DecisionStatus::Approved | DecisionStatus::PartiallyApproved | DecisionStatus::Modified => {
            "completed"
        }
        DecisionStatus::Denied => "rejected",
        DecisionStatus::Pended => "on-hold",
        DecisionStatus::Cancelled => "cancelled",
        DecisionStatus::Error => "failed",
    }
}

/// One line a clinician can read in the chart.
fn summary(decision: &Decision) -> String {
    let mut text = format!(
        "Prior authorization {}.",
        status_name(decision.status).replace('_', " ")
    );
    if let Some(n) = &decision.authorization_number {
        text.push_str(&format!(" Authorization number {n}."));
    }
    if let Some(p) = &decision.effective {
        match (&p.start, &p.end) {
            (Some(s), Some(e)) => text.push_str(&format!(" Valid {s} to {e}.")),
            (Some(s), None) => text.push_str(&format!(" Valid from {s}.")),
            (None, Some(e)) => text.push_str(&format!(" Valid until {e}.")),
            (None, None) => {}
        }
    }
    if !decision.reason_codes.is_empty() {
        text.push_str(&format!(
            " Reason codes: {}.",
            decision.reason_codes.join(", ")
        ));
    }
    if let Some(note) = &decision.note {
        text.push(' ');
        text.push_str(note);
    }
    text
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::case::{CaseSource, Period};

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected);
        }
    }

    #[test]
    fn finds_the_service_request() {
        let source = CaseSource {
            adapter: "fhir".into(),
            profile: "athenahealth".into(),
            message_type: Some("ServiceRequest".into()),
            control_id: Some("ServiceRequest/sr9".into()),
            sender: None,
            received_at: "2026-11-23T10:00:00Z".into(),
        };
        let mut case = Case::new("case-1", "mso", source);
        assert_eq!(
            service_request_of(&case).as_deref(),
            Some("ServiceRequest/sr9")
        );
        case.references.insert(
            "service_request".into(),
            "https://ehr.example/fhir/ServiceRequest/sr1/_history/2".into(),
        );
        assert_eq!(
            service_request_of(&case).as_deref(),
            Some("ServiceRequest/sr1")
        );
        case.references
            .insert("service_request".into(), "Patient/p1".into());
        assert_eq!(service_request_of(&case), None);
        let decision = Decision {
            status: DecisionStatus::Approved,
            authorization_number: Some("AUTH0001".into()),
            effective: Some(Period {
                start: Some("2026-12-01".into()),
                end: Some("2027-02-28".into()),
            }),
            reason_codes: vec![],
            payer_trace: vec![],
            service_decisions: vec![],
            decided_at: None,
            note: None,
        };
        assert_eq!(
            summary(&decision),
            "Prior authorization approved. Authorization number AUTH0001. Valid 2026-12-01 to 2027-02-28."
        );
    }
}
