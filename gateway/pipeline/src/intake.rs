//! The intake pipeline: parsed message → mapping profile → one store commit →
//! outcome.
//!
//! Invariant: [`Pipeline::process`] returns `Ok` only after the store committed
//! the raw bytes (with the case event, or with the rejection reason and
//! diagnostics). `Err` means nothing was committed and the adapter must answer
//! with a retryable negative acknowledgement.
//!
//! Logging carries ids, profile and adapter names, message types and
//! diagnostic codes only — never field values.

use std::sync::Arc;

use gateway_core::adapter::{
    BoxFuture, CommitReceipt, InboundMessage, IntakeOutcome, IntakePipeline, IntakeTicket,
};
use gateway_core::case::{Case, CaseStatus};
use gateway_core::diagnostic::Diagnostic;
use gateway_core::event::CaseEventType;
use gateway_core::{GatewayError, SourceDocument, SourceFormat};
use gateway_mapping::{MapAction, MapContext};
use gateway_store::{
    CaseRequestRecord, Disposition, InboundOutcome, MergeRefused, Merged, NewInbound, Store,
};

use crate::metrics;
use crate::profiles::ProfileSet;

/// Who this gateway is; stamped on every case (overrides profile defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The MSO tenant.
    pub tenant: String,
    /// The practice.
    pub practice: Option<String>,
    /// The site.
    pub site: Option<String>,
}

/// Parses stored raw bytes again, for replays. The daemon implements it with
/// every adapter's parser; the pipeline itself knows no wire format.
pub trait DocumentParser: Send + Sync {
    /// Parses `raw` as received by `adapter` for a profile of `format`.
    fn parse(
        &self,
        adapter: &str,
        format: SourceFormat,
        raw: &[u8],
    ) -> Result<SourceDocument, Vec<Diagnostic>>;
}

/// The gateway's [`IntakePipeline`]: maps with the adapter instance's profile
/// and commits through the store.
#[derive(Clone)]
pub struct Pipeline {
    store: Store,
    profiles: ProfileSet,
    identity: Identity,
    parser: Option<Arc<dyn DocumentParser>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("store", &self.store)
            .field("profiles", &self.profiles)
            .field("identity", &self.identity)
            .finish()
    }
}

impl Pipeline {
    /// A pipeline over `store` with `profiles`, stamping `identity`.
    pub fn new(store: Store, profiles: ProfileSet, identity: Identity) -> Self {
        Pipeline {
            store,
            profiles,
            identity,
            parser: None,
        }
    }

    /// Sets the parser used to re-parse replayed messages.
    pub fn with_parser(mut self, parser: Arc<dyn DocumentParser>) -> Self {
        self.parser = Some(parser);
        self
    }

    /// The store this pipeline commits to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The profiles this pipeline maps with.
    pub fn profiles(&self) -> &ProfileSet {
        &self.profiles
    }

    /// The parser for replays, if one was set.
    pub fn parser(&self) -> Option<&Arc<dyn DocumentParser>> {
        self.parser.as_ref()
    }

    /// Maps and commits one message. `replay_of` re-processes a stored
    /// rejected message in place (see [`crate::replay`]).
    pub async fn process(
        &self,
        message: InboundMessage,
        replay_of: Option<i64>,
    ) -> Result<IntakeOutcome, GatewayError> {
        let adapter = message.adapter.clone();
        let profile_name = message.profile.clone();
        let result = self.process_inner(message, replay_of).await;
        let outcome_label = match &result {
            // Kept messages are acknowledged positively: `accepted` in the
            // issue-9 outcome vocabulary (accepted, rejected, duplicate, error).
            Ok(IntakeOutcome::Accepted { .. } | IntakeOutcome::Kept { .. }) => "accepted",
            Ok(IntakeOutcome::Duplicate { .. }) => "duplicate",
            Ok(IntakeOutcome::Rejected { .. }) => "rejected",
            Err(_) => "error",
        };
        // Each received message is counted once, when it arrives; a replay of
        // a stored message is counted apart so the two never add up twice.
        match replay_of {
            None => metrics::message(adapter.as_str(), &profile_name, outcome_label),
            Some(_) => metrics::replayed(adapter.as_str(), &profile_name, outcome_label),
        }
        result
    }

    async fn process_inner(
        &self,
        message: InboundMessage,
        replay_of: Option<i64>,
    ) -> Result<IntakeOutcome, GatewayError> {
        let InboundMessage {
            adapter,
            profile: profile_name,
            raw,
            received_at,
            peer,
            parsed,
        } = message;
        // The text stored and mapped is `Timestamp`'s RFC 3339 (UTC).
        let adapter = adapter.as_str().to_owned();
        let received_at = received_at.to_string();
        let meta = parsed.as_ref().map(|d| d.meta.clone()).unwrap_or_default();
        let mut stored = NewInbound {
            adapter: adapter.clone(),
            profile: profile_name.clone(),
            sender: meta.sender.clone(),
            control_id: meta.control_id.clone(),
            message_type: meta.message_type.clone(),
            raw,
            received_at: received_at.clone(),
            peer,
            outcome: InboundOutcome::Rejected {
                reason: String::new(),
                diagnostics: Vec::new(),
            },
            replay_of,
        };

        let document = match parsed {
            Ok(document) => document,
            Err(diagnostics) => {
                let reason = first_error(&diagnostics)
                    .map(|d| format!("parse failed: {}", d.code))
                    .unwrap_or_else(|| "parse failed".to_owned());
                return self
                    .reject(stored, GatewayError::sender(reason), diagnostics)
                    .await;
            }
        };

        let Some(profile) = self.profiles.get(&profile_name) else {
            // A configuration problem on our side, not the sender's: kept as
            // `error` and replayable once the profile is loaded.
            let reason = format!("mapping profile `{profile_name}` is not loaded");
            stored.outcome = InboundOutcome::Failed {
                reason: reason.clone(),
                diagnostics: document.diagnostics.clone(),
            };
            let receipt = self.commit(stored).await?;
            tracing::warn!(message_id = receipt.receipt.message_id, profile = %profile_name, "Message kept: profile not loaded.");
            return Ok(IntakeOutcome::Rejected {
                receipt: receipt.receipt,
                error: GatewayError::internal(false, reason),
                diagnostics: document.diagnostics,
            });
        };

        let context = MapContext {
            received_at,
            adapter: Some(adapter.clone()),
            tenant: Some(self.identity.tenant.clone()),
            practice: self.identity.practice.clone(),
            site: self.identity.site.clone(),
            explain: false,
            // Intake reads the case and the diagnostics, never the per-field
            // provenance (that is `map --explain`'s).
            skip_provenance: true,
        };
        let mut outcome = profile.map(&document, &context);
        let mut diagnostics = document.diagnostics;
        diagnostics.extend(outcome.core_diagnostics());

        match (outcome.action, outcome.case.take()) {
            (Some(MapAction::Case), Some(case)) => {
                let file = outcome.mapping_file.as_deref().unwrap_or("");
                let agree = std::mem::take(&mut outcome.agree);
                let adopted = outcome.adopted;
                self.accept_case(stored, case, diagnostics, file, agree, adopted)
                    .await
            }
            (Some(MapAction::PatientUpdate), Some(update)) => {
                self.patient_update(stored, update, diagnostics).await
            }
            (Some(MapAction::Ignore), _) => {
                let file = outcome.mapping_file.as_deref().unwrap_or("?");
                let kept = self
                    .keep(
                        stored,
                        format!("ignored by mapping file {file}"),
                        diagnostics,
                    )
                    .await;
                if replay_of.is_none() && matches!(kept, Ok(IntakeOutcome::Kept { .. })) {
                    metrics::ignored(
                        &adapter,
                        &profile_name,
                        meta.message_type.as_deref().unwrap_or("unknown"),
                        file,
                    );
                }
                kept
            }
            (None, _) => {
                let kind = meta.message_type.as_deref().unwrap_or("unknown");
                let reason = format!(
                    "unsupported message type {kind}: no mapping file of profile {profile_name} matches"
                );
                self.reject(stored, GatewayError::sender(reason), diagnostics)
                    .await
            }
            (Some(_), None) => {
                let reason = first_error(&diagnostics)
                    .map(|d| {
                        let at = d.location.as_deref().unwrap_or("");
                        format!("unmappable: {} {}{}", d.code, d.message, suffix(at))
                    })
                    .unwrap_or_else(|| "unmappable: the mapping produced no case".to_owned());
                self.reject(stored, GatewayError::mapping(reason), diagnostics)
                    .await
            }
        }
    }

    /// Commits an accepted case. The merge with the stored case runs inside
    /// the commit's transaction (no separate read round trip, nothing can
    /// change in between), and so does the `[case_id] agree` check of the
    /// mapping file: a document whose listed references differ from the
    /// stored case's, or that lacks one the stored case lacks, is committed
    /// as rejected (G002), never merged.
    ///
    /// A document that adopted one of our case ids (`[case_id] own`, a reply
    /// echoing the id our request carried) fails closed: it is merged only
    /// when its `agree` references match those of a request the gateway knows
    /// — the stored case's own (a request it received, or a reply already
    /// accepted for it) or one the gateway wrote and recorded
    /// (`Store::record_case_request`). Otherwise it is committed as rejected
    /// with G003: knowing a case id gives no power over the case.
    async fn accept_case(
        &self,
        mut stored: NewInbound,
        case: Case,
        diagnostics: Vec<Diagnostic>,
        mapping_file: &str,
        agree: Vec<String>,
        adopted: bool,
    ) -> Result<IntakeOutcome, GatewayError> {
        let profile = case.source.profile.clone();
        stored.outcome = InboundOutcome::Accepted {
            case: Box::new(case),
            event_type: None,
        };
        // Kept with a refused message; cloned only where a refusal can happen.
        let kept_on_refusal = if agree.is_empty() && !adopted {
            Vec::new()
        } else {
            diagnostics.clone()
        };
        let (receipt, merged) = if adopted {
            let check = move |case: &mut Case,
                              existing: Option<Case>,
                              requests: Vec<CaseRequestRecord>| {
                let existing = match existing {
                    Some(existing) => match unknown_request(case, &existing, &requests, &agree) {
                        None => existing,
                        Some(unknown) => return Err(refusal(kept_on_refusal, unknown)),
                    },
                    None => {
                        let unknown = Diagnostic::error(
                            UNKNOWN_REQUEST,
                            format!(
                                "not adopted: no case {} is stored, so the document answers no request this gateway knows",
                                case.case_id
                            ),
                        );
                        return Err(refusal(kept_on_refusal, unknown));
                    }
                };
                keep_absent(case, existing);
                Ok(())
            };
            self.store
                .commit_inbound_adopted(stored, check)
                .await
                .map_err(commit_failed)?
        } else {
            let merge = move |case: &mut Case, existing: Case| {
                if let Some(conflict) = correlation_conflict(case, &existing, &agree) {
                    let mut diagnostics = kept_on_refusal;
                    diagnostics.push(conflict);
                    return Err(MergeRefused {
                        reason: CORRELATION_CONFLICT.to_owned(),
                        diagnostics,
                    });
                }
                keep_absent(case, existing);
                Ok(())
            };
            self.store
                .commit_inbound_merged(stored, merge)
                .await
                .map_err(commit_failed)?
        };
        let status = match merged {
            Merged::Status(status) => status,
            Merged::Refused(refused) => {
                return Ok(rejected(
                    receipt.receipt,
                    GatewayError::sender(refused.reason),
                    refused.diagnostics,
                ));
            }
        };
        let warnings: Vec<Diagnostic> = diagnostics.into_iter().filter(|d| !d.is_error()).collect();
        match receipt.disposition {
            Disposition::Accepted {
                case_id,
                event_type,
                sequence,
                ..
            } => {
                if let Some(status) = status {
                    metrics::case(&profile, status.as_str());
                }
                tracing::info!(
                    message_id = receipt.receipt.message_id,
                    case_id = %case_id,
                    event = event_type.as_str(),
                    sequence,
                    mapping_file,
                    "Message accepted."
                );
                Ok(IntakeOutcome::Accepted {
                    receipt: receipt.receipt,
                    case_id,
                    warnings,
                })
            }
            Disposition::Duplicate { original } => {
                tracing::info!(
                    message_id = receipt.receipt.message_id,
                    original = original.message_id,
                    "Duplicate message acknowledged without a new event."
                );
                Ok(IntakeOutcome::Duplicate { receipt: original })
            }
            Disposition::Rejected | Disposition::Kept => Err(GatewayError::internal(
                false,
                "store reported no case event for an accepted message",
            )),
        }
    }

    /// Applies a patient update to every open case of the patient: each gets
    /// the new patient data (and coverages, when the update carries some) and
    /// an `updated` event. The raw message is stored with the first case's
    /// event; later cases are committed as `#2`, `#3`, … of the same control id
    /// (see ARCHITECTURE.md, known limits).
    async fn patient_update(
        &self,
        stored: NewInbound,
        update: Case,
        diagnostics: Vec<Diagnostic>,
    ) -> Result<IntakeOutcome, GatewayError> {
        let open = match gateway_store::patient_key(&update) {
            Some(key) => self
                .store
                .open_cases_for_patient(&key)
                .await
                .map_err(GatewayError::from)?,
            None => Vec::new(),
        };
        if open.is_empty() {
            let note = "patient update: no open case for this patient".to_owned();
            return self.keep(stored, note, diagnostics).await;
        }
        let warnings: Vec<Diagnostic> = diagnostics.into_iter().filter(|d| !d.is_error()).collect();
        let base_control = stored.control_id.clone();
        let mut first: Option<(CommitReceipt, String)> = None;
        for (index, record) in open.into_iter().enumerate() {
            let mut case = record.case;
            case.patient = update.patient.clone();
            if !update.coverages.is_empty() {
                case.coverages = update.coverages.clone();
            }
            let profile = case.source.profile.clone();
            let status = case.status;
            let mut row = stored.clone();
            if index > 0 {
                row.control_id = Some(format!(
                    "{}#{}",
                    base_control.as_deref().unwrap_or(""),
                    index + 1
                ));
                row.replay_of = None;
            }
            row.outcome = InboundOutcome::Accepted {
                case: Box::new(case),
                event_type: Some(CaseEventType::Updated),
            };
            let receipt = self.commit(row).await?;
            match receipt.disposition {
                Disposition::Accepted { case_id, .. } => {
                    metrics::case(&profile, status.as_str());
                    tracing::info!(
                        message_id = receipt.receipt.message_id,
                        case_id = %case_id,
                        "Patient update applied to an open case."
                    );
                    if first.is_none() {
                        first = Some((receipt.receipt, case_id));
                    }
                }
                Disposition::Duplicate { original } => {
                    return Ok(IntakeOutcome::Duplicate { receipt: original });
                }
                Disposition::Rejected | Disposition::Kept => {}
            }
        }
        match first {
            Some((receipt, case_id)) => Ok(IntakeOutcome::Accepted {
                receipt,
                case_id,
                warnings,
            }),
            None => Err(GatewayError::internal(
                false,
                "patient update committed no event",
            )),
        }
    }

    /// Stores a message that is acknowledged but produces no case event.
    async fn keep(
        &self,
        mut stored: NewInbound,
        note: String,
        diagnostics: Vec<Diagnostic>,
    ) -> Result<IntakeOutcome, GatewayError> {
        stored.outcome = InboundOutcome::Kept { note: note.clone() };
        let receipt = self.commit(stored).await?;
        match receipt.disposition {
            Disposition::Duplicate { original } => {
                Ok(IntakeOutcome::Duplicate { receipt: original })
            }
            _ => {
                tracing::info!(
                    message_id = receipt.receipt.message_id,
                    reason = %note,
                    "Message acknowledged and kept without a case event."
                );
                Ok(IntakeOutcome::Kept {
                    receipt: receipt.receipt,
                    reason: note,
                    warnings: diagnostics.into_iter().filter(|d| !d.is_error()).collect(),
                })
            }
        }
    }

    async fn reject(
        &self,
        mut stored: NewInbound,
        error: GatewayError,
        diagnostics: Vec<Diagnostic>,
    ) -> Result<IntakeOutcome, GatewayError> {
        stored.outcome = InboundOutcome::Rejected {
            reason: error.message.clone(),
            diagnostics: diagnostics.clone(),
        };
        let receipt = self.commit(stored).await?;
        Ok(rejected(receipt.receipt, error, diagnostics))
    }

    async fn commit(
        &self,
        stored: NewInbound,
    ) -> Result<gateway_store::InboundReceipt, GatewayError> {
        self.store
            .commit_inbound(stored)
            .await
            .map_err(commit_failed)
    }
}

/// A failed store commit: logged (nothing was acknowledged) and classified.
fn commit_failed(error: gateway_store::StoreError) -> GatewayError {
    tracing::error!(error = %error, "Store commit failed; nothing acknowledged.");
    GatewayError::from(error)
}

impl IntakePipeline for Pipeline {
    fn submit(
        &self,
        message: InboundMessage,
    ) -> BoxFuture<'_, Result<IntakeOutcome, GatewayError>> {
        Box::pin(self.process(message, None))
    }

    fn announce(&self) -> IntakeTicket {
        self.store.intake_ticket()
    }
}

/// The outcome of a message committed as rejected, logged (codes, no PHI).
fn rejected(
    receipt: CommitReceipt,
    error: GatewayError,
    diagnostics: Vec<Diagnostic>,
) -> IntakeOutcome {
    let codes: Vec<&str> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code.as_str())
        .collect();
    tracing::warn!(
        message_id = receipt.message_id,
        kind = error.kind.as_str(),
        reason = %error.message,
        codes = ?codes,
        "Message rejected and kept."
    );
    IntakeOutcome::Rejected {
        receipt,
        error,
        diagnostics,
    }
}

/// The diagnostic code of a reply that adopted one of our case ids but
/// answers no request the gateway knows.
pub const UNKNOWN_REQUEST: &str = "G003";

/// Why a document refused by [`unknown_request`] is rejected.
const UNKNOWN_REQUEST_REASON: &str = "unknown request: the document names one of our case ids but answers no request this gateway received or wrote (see the diagnostics)";

fn refusal(mut diagnostics: Vec<Diagnostic>, unknown: Diagnostic) -> MergeRefused {
    diagnostics.push(unknown);
    MergeRefused {
        reason: UNKNOWN_REQUEST_REASON.to_owned(),
        diagnostics,
    }
}

/// A document that adopted the id of `stored` must answer a request the
/// gateway knows: every `agree` reference it carries must equal that of one
/// known request — the stored case's references (a request the gateway
/// received, or a reply it already accepted for it) or those of a request it
/// wrote and recorded. `None` when it does; otherwise the G003 diagnostic
/// (reference names and which requests were compared, never values). With no
/// `agree` list nothing can be verified, and the document is refused.
fn unknown_request(
    case: &Case,
    stored: &Case,
    requests: &[CaseRequestRecord],
    agree: &[String],
) -> Option<Diagnostic> {
    let matches = |known: &std::collections::BTreeMap<String, String>| {
        !agree.is_empty()
            && agree.iter().all(|name| {
                matches!(
                    (case.references.get(name), known.get(name)),
                    (Some(ours), Some(theirs)) if ours == theirs
                )
            })
    };
    if matches(&stored.references) || requests.iter().any(|r| matches(&r.request.references)) {
        return None;
    }
    let names = if agree.is_empty() {
        "the mapping file lists no `[case_id] agree` references to verify it by".to_owned()
    } else {
        format!(
            "its references {} match neither the stored case nor any of the {} request(s) this gateway wrote for it",
            agree
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            requests.len()
        )
    };
    Some(Diagnostic::error(
        UNKNOWN_REQUEST,
        format!("not adopted into case {}: {names}", stored.case_id),
    ))
}

/// Why a document refused by [`correlation_conflict`] is rejected.
const CORRELATION_CONFLICT: &str = "correlation conflict: the stored case with this id carries other references (see the diagnostics)";

/// A document keyed onto a stored case must share the references its mapping
/// file lists in `[case_id] agree` (a 278 response's TRN*2 echo and the trace
/// of the request it answers): an error diagnostic (G002) when a value
/// differs — the document is about another case — and when either side lacks
/// it (fail closed: nothing shows the two are about the same request).
fn correlation_conflict(case: &Case, stored: &Case, agree: &[String]) -> Option<Diagnostic> {
    let conflicts: Vec<String> = agree
        .iter()
        .filter_map(
            |name| match (case.references.get(name), stored.references.get(name)) {
                (Some(ours), Some(theirs)) => (ours != theirs).then(|| {
                    format!("references.{name} is `{ours}` here but `{theirs}` in the stored case")
                }),
                (Some(_), None) => Some(format!(
                    "the stored case has no references.{name} to compare with"
                )),
                (None, Some(_)) => Some(format!(
                    "references.{name} is missing here but set in the stored case"
                )),
                (None, None) => Some(format!("references.{name} is missing on both sides")),
            },
        )
        .collect();
    (!conflicts.is_empty()).then(|| {
        Diagnostic::error(
            "G002",
            format!(
                "not merged into case {}: {}",
                case.case_id,
                conflicts.join("; ")
            ),
        )
    })
}

/// A later document about a stored case (an amended order, a 278 response
/// without 2000F loops) carries only part of it: what it leaves out is kept,
/// never erased — the recorded decision, service lines, diagnoses, coverages,
/// notes, attachments, patient identifiers, references, and providers of a
/// role it does not name.
///
/// A document from another adapter (a payer's 278 response to the request we
/// sent for an HL7 order) updates the case but does not take it over: the
/// case keeps the `source` of the adapter that opened it, which owns it and
/// writes its decisions back into the practice's EHR.
fn keep_absent(case: &mut Case, existing: Case) {
    if case.source.adapter != existing.source.adapter {
        case.source = existing.source;
    }
    if case.decision.is_none()
        && let Some(decision) = existing.decision
    {
        case.status = decision.status.case_status();
        case.decision = Some(decision);
    }
    if !moves_forward(case.status, existing.status) {
        case.status = existing.status;
    }
    fn keep<T>(new: &mut Vec<T>, old: Vec<T>) {
        if new.is_empty() {
            *new = old;
        }
    }
    keep(&mut case.services, existing.services);
    keep(&mut case.diagnoses, existing.diagnoses);
    keep(&mut case.coverages, existing.coverages);
    keep(&mut case.notes, existing.notes);
    keep(&mut case.attachments, existing.attachments);
    match (&mut case.patient, existing.patient) {
        (None, old) => case.patient = old,
        (Some(new), Some(old)) => keep(&mut new.identifiers, old.identifiers),
        (Some(_), None) => {}
    }
    for provider in existing.providers {
        if !case.providers.iter().any(|p| p.role == provider.role) {
            case.providers.push(provider);
        }
    }
    for (key, value) in existing.references {
        case.references.entry(key).or_insert(value);
    }
}

/// Whether an update's status may replace the stored one. An EHR update
/// (SIU^S13 reschedule, S14 modification, a changed order) says `requested`
/// because that is all the EHR knows; it never takes a case that is already
/// submitted, pended, decided or cancelled back to `requested`. After an
/// `error` (a payer rejection) the corrected request is requested again.
fn moves_forward(update: CaseStatus, stored: CaseStatus) -> bool {
    let restates_request = matches!(update, CaseStatus::Draft | CaseStatus::Requested);
    let past_request = !matches!(
        stored,
        CaseStatus::Draft | CaseStatus::Requested | CaseStatus::Error
    );
    !(restates_request && past_request)
}

fn first_error(diagnostics: &[Diagnostic]) -> Option<&Diagnostic> {
    diagnostics.iter().find(|d| d.is_error())
}

fn suffix(location: &str) -> String {
    if location.is_empty() {
        String::new()
    } else {
        format!(" at {location}")
    }
}

#[cfg(test)]
mod tests {
    use super::{correlation_conflict, keep_absent, unknown_request};
    use gateway_core::Case;
    use gateway_store::{CaseRequestRecord, NewCaseRequest};
    use serde_json::json;

    fn case(value: serde_json::Value) -> Case {
        serde_json::from_value(value).expect("a Case v1")
    }

    #[test]
    fn an_update_never_takes_a_case_back_to_requested() {
        let id = "case-0123456789abcdef01234567";
        let stored = |status: &str| {
            case(json!({
                "schema": "ehr-gateway/case/v1", "case_id": id, "tenant": "mso-demo",
                "source": {"adapter": "hl7v2", "profile": "epic", "message_type": "SIU^S12",
                           "control_id": "S12", "received_at": "2026-11-22T10:00:00Z"},
                "status": status,
                "references": {"placer_order": "ORD1001"}
            }))
        };
        let update = |status: &str| {
            let mut c = stored(status);
            c.source.message_type = Some("SIU^S14".to_owned());
            c
        };
        for (before, incoming, after) in [
            ("submitted", "requested", "submitted"),
            ("pended", "requested", "pended"),
            ("cancelled", "requested", "cancelled"),
            ("denied", "draft", "denied"),
            ("requested", "requested", "requested"),
            ("draft", "requested", "requested"),
            ("error", "requested", "requested"),
            ("submitted", "cancelled", "cancelled"),
            ("pended", "approved", "approved"),
        ] {
            let mut next = update(incoming);
            keep_absent(&mut next, stored(before));
            assert_eq!(next.status.as_str(), after, "{before} + {incoming}");
        }
    }

    #[test]
    fn another_adapters_document_updates_the_case_without_taking_it_over() {
        let id = "case-0123456789abcdef01234567";
        let order = case(json!({
            "schema": "ehr-gateway/case/v1", "case_id": id, "tenant": "mso-demo",
            "source": {"adapter": "hl7v2", "profile": "epic", "message_type": "ORM^O01",
                       "control_id": "MSG0001", "received_at": "2026-11-22T10:00:00Z"},
            "status": "requested",
            "services": [{"line": 1, "code": {"system": "CPT", "code": "78452"}}],
            "references": {"placer_order": "ORD1001"}
        }));
        let mut reply = case(json!({
            "schema": "ehr-gateway/case/v1", "case_id": id, "tenant": "mso-demo",
            "source": {"adapter": "x12", "profile": "x12-278", "message_type": "278",
                       "control_id": id, "received_at": "2026-11-22T11:00:00Z"},
            "status": "approved",
            "decision": {"status": "approved", "authorization_number": "AUTH0001"},
            "references": {"x12_trace": "T-1"}
        }));
        keep_absent(&mut reply, order.clone());
        assert_eq!(reply.source, order.source);
        assert_eq!(reply.status.as_str(), "approved");
        assert_eq!(
            reply
                .decision
                .as_ref()
                .and_then(|d| d.authorization_number.as_deref()),
            Some("AUTH0001")
        );
        assert_eq!(reply.services, order.services);
        assert_eq!(reply.references.len(), 2);

        // The same adapter's later document is the case's newest source.
        let mut amended = order.clone();
        amended.source.control_id = Some("MSG0002".to_owned());
        keep_absent(&mut amended, order);
        assert_eq!(amended.source.control_id.as_deref(), Some("MSG0002"));
    }

    fn with_refs(id: &str, refs: serde_json::Value) -> Case {
        case(json!({
            "schema": "ehr-gateway/case/v1", "case_id": id, "tenant": "mso-demo",
            "source": {"adapter": "x12", "profile": "x12-278", "message_type": "278",
                       "control_id": "1", "received_at": "2026-11-22T11:00:00Z"},
            "status": "approved",
            "references": refs
        }))
    }

    #[test]
    fn an_adopted_reply_must_echo_a_known_requests_trace() {
        let id = "case-0123456789abcdef01234567";
        let agree = vec!["x12_trace".to_owned()];
        let hl7_case = with_refs(id, json!({"placer_order": "ORD1"}));
        let reply = with_refs(id, json!({"x12_trace": "T-WRITTEN"}));
        let recorded = |trace: &str| CaseRequestRecord {
            id: 1,
            at: jiff::Timestamp::UNIX_EPOCH,
            request: NewCaseRequest {
                case_id: id.into(),
                kind: "x12-278".into(),
                references: [("x12_trace".to_owned(), trace.to_owned())].into(),
                control: Default::default(),
                actor: "t".into(),
            },
        };
        // Nothing recorded, the stored case has no trace: refused (G003).
        let refused = unknown_request(&reply, &hl7_case, &[], &agree).expect("refused");
        assert_eq!(refused.code, "G003");
        // Another request's trace: refused.
        assert!(unknown_request(&reply, &hl7_case, &[recorded("T-OTHER")], &agree).is_some());
        // The recorded request's trace: adopted.
        assert!(unknown_request(&reply, &hl7_case, &[recorded("T-WRITTEN")], &agree).is_none());
        // A stored case that carries the trace (a request it received): adopted.
        let x12_case = with_refs(id, json!({"x12_trace": "T-WRITTEN"}));
        assert!(unknown_request(&reply, &x12_case, &[], &agree).is_none());
        // No `agree` list: nothing can be verified, refused.
        assert!(unknown_request(&reply, &x12_case, &[recorded("T-WRITTEN")], &[]).is_some());
        // A reply without a trace never matches.
        let bare = with_refs(id, json!({}));
        assert!(unknown_request(&bare, &x12_case, &[recorded("T-WRITTEN")], &agree).is_some());
    }

    #[test]
    fn agree_refuses_when_either_side_lacks_the_reference() {
        let id = "case-0123456789abcdef01234567";
        let agree = vec!["x12_trace".to_owned()];
        let traced = with_refs(id, json!({"x12_trace": "T-1"}));
        let bare = with_refs(id, json!({}));
        assert!(correlation_conflict(&traced, &traced, &agree).is_none());
        for (doc, stored) in [(&traced, &bare), (&bare, &traced), (&bare, &bare)] {
            let conflict = correlation_conflict(doc, stored, &agree).expect("refused");
            assert_eq!(conflict.code, "G002");
        }
        let other = with_refs(id, json!({"x12_trace": "T-2"}));
        assert!(correlation_conflict(&other, &traced, &agree).is_some());
    }
}
