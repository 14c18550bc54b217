//! `POST /api/v1/cases/{case_id}/x12-request`: the 278 request for a case,
//! written by the gateway and recorded before it is handed out.
//!
//! *Why through the gateway:* a payer's 278 response names the case it answers
//! by echoing our BHT03 (the case id), and case ids can be computed by anyone
//! who knows the tenant and the order key. So a response is adopted onto a
//! case only when it also echoes the trace of a request the gateway knows
//! (`gateway_pipeline` intake, G003). This endpoint is how the platform gets
//! such a request: each call writes a 278 with the profile's outbound
//! template (`<mappings_dir>/<profile>/outbound/request.toml`), a fresh random
//! TRN02 trace (unguessable, unlike the case id) and control numbers from the
//! store, and records the trace, BHT03 and control numbers on the case
//! (`Store::record_case_request`, with its `x12.request` audit row in the same
//! transaction) before answering. The answer carries the 278, which holds
//! PHI: the caller needs `operator` and `phi:read`.

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_core::Case;
use gateway_store::{NewCaseRequest, StoreError};
use gateway_x12::config::IdentityConfig;
use gateway_x12::control::{ControlNumberAllocator, Need, reserve};
use gateway_x12::outbound::RequestTemplate;
use gateway_x12::requests::{REQUEST_KIND, fresh_trace, request_references};
use gateway_x12::write::{EnvelopeParams, Stamp};
use serde::Deserialize;
use serde_json::json;

use super::AdminState;
use super::access::{Role, require};
use super::audit;
use super::problem::Problem;

/// The audit action of a written 278 request.
pub const X12_REQUEST: &str = "x12.request";

/// Writes 278 requests for cases (built by the daemon from `[x12]`).
pub struct X12RequestWriter {
    template: RequestTemplate,
    identity: IdentityConfig,
    numbers: Arc<dyn ControlNumberAllocator>,
}

impl X12RequestWriter {
    /// The writer for the `[x12]` section's profile, when its outbound
    /// request template exists; `Err` when it exists but does not load.
    pub fn load(
        mappings_dir: &FsPath,
        profile: &str,
        identity: IdentityConfig,
        numbers: Arc<dyn ControlNumberAllocator>,
    ) -> anyhow::Result<Option<Self>> {
        let path = mappings_dir.join(profile).join("outbound/request.toml");
        if !path.is_file() {
            return Ok(None);
        }
        let template = RequestTemplate::load(&path)?;
        Ok(Some(X12RequestWriter {
            template,
            identity,
            numbers,
        }))
    }
}

/// The optional body: who the 278 is addressed to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    /// ISA08/GS03 (default: the case's first payer id, when it fits).
    #[serde(default)]
    receiver_id: Option<String>,
    /// ISA07 (default `ZZ`).
    #[serde(default)]
    receiver_qualifier: Option<String>,
}

/// `POST /api/v1/cases/{case_id}/x12-request`.
pub async fn post_x12_request(
    State(state): State<AdminState>,
    Path(case_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match write_request(&state, &case_id, &headers, &body).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

async fn write_request(
    state: &AdminState,
    case_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Problem> {
    let principal = require(state, headers, Role::Operator).await?;
    if !principal.has(Role::PhiRead) {
        return Err(Problem::forbidden(format!(
            "`{}` lacks the `phi:read` role: the 278 request carries patient data",
            principal.name
        ))
        .with_extra(json!({ "required_role": Role::PhiRead.as_str() })));
    }
    let Some(writer) = state.x12_request.as_deref() else {
        return Err(Problem::conflict(
            "no 278 request can be written: the x12 adapter is not configured or its profile has no outbound/request.toml",
        ));
    };
    let request: RequestBody = if body.iter().all(u8::is_ascii_whitespace) {
        RequestBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            Problem::bad_request(format!(
                "the body must be empty or a JSON object with `receiver_id`, `receiver_qualifier`: {e}"
            ))
        })?
    };
    let record = state
        .store
        .get_case(case_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "Case read failed.");
            Problem::unavailable("the store could not be read")
        })?
        .ok_or_else(|| Problem::not_found(format!("unknown case {case_id}")))?;
    let mut case: Case = record.case;
    let receiver_id = match request.receiver_id {
        Some(id) => id,
        None => case
            .coverages
            .first()
            .and_then(|c| c.payer.as_ref())
            .and_then(|p| p.id.clone())
            .ok_or_else(|| {
                Problem::bad_request(
                    "the case names no payer id: give `receiver_id` (ISA08) in the body",
                )
            })?,
    };
    if receiver_id.is_empty() || receiver_id.len() > 15 || !receiver_id.is_ascii() {
        return Err(Problem::bad_request(
            "`receiver_id` must be 1 to 15 ASCII characters (ISA08)",
        ));
    }
    let receiver_qualifier = request.receiver_qualifier.unwrap_or_else(|| "ZZ".into());
    if receiver_qualifier.len() != 2 || !receiver_qualifier.is_ascii() {
        return Err(Problem::bad_request(
            "`receiver_qualifier` must be 2 ASCII characters (ISA07)",
        ));
    }
    // A fresh trace for every request written: TRN*1 is what the payer
    // echoes as TRN*2, and what the intake compares.
    case.references
        .insert("x12_trace".to_owned(), fresh_trace());
    let envelope = EnvelopeParams {
        sender_qualifier: writer.identity.qualifier.clone(),
        sender_id: writer.identity.id.clone(),
        application_sender: writer.identity.id.clone(),
        receiver_qualifier,
        application_receiver: receiver_id.clone(),
        receiver_id,
        usage: writer.identity.usage,
        ack_requested: false,
        newlines: false,
        ..EnvelopeParams::default()
    };
    let reserved = reserve(writer.numbers.as_ref(), Need::sets(1))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "Control numbers not allocated.");
            Problem::unavailable("control numbers could not be allocated; nothing was written")
        })?;
    let bytes = writer
        .template
        .interchange(&case, &envelope, &reserved, &Stamp::now())
        .map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "x12-request-unwritable",
                "No 278 request for this case",
                format!("the outbound template cannot write this case: {e}"),
            )
        })?;
    // What the payer's answer will echo and the control numbers, read back
    // from the interchange itself (the same reader as the submission worker's).
    let Some((references, control)) = request_references(&bytes) else {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "x12-request-unwritable",
            "No 278 request for this case",
            "the written 278 lacks ISA13, BHT03 or a TRN*1 trace (check outbound/request.toml)",
        ));
    };
    let value =
        |map: &BTreeMap<String, String>, key: &str| map.get(key).cloned().unwrap_or_default();
    let isa13 = value(&control, "isa13");
    let mut answer = json!({
        "case_id": case_id,
        "bht_reference": value(&references, "x12_bht_reference"),
        "trace": value(&references, "x12_trace"),
        "trace_originator": value(&references, "x12_trace_originator"),
        "interchange_control": isa13,
        "group_control": value(&control, "gs06"),
        "transaction_control": value(&control, "st02"),
        "x12": String::from_utf8_lossy(&bytes),
    });
    let entry = audit::entry(
        &principal,
        X12_REQUEST,
        Some(format!("case:{case_id}")),
        Some(case_id.to_owned()),
        Some(format!("278 request ISA13 {isa13}")),
    );
    let request_id = match state
        .store
        .record_case_request(
            NewCaseRequest {
                case_id: case_id.to_owned(),
                kind: REQUEST_KIND.to_owned(),
                references,
                control,
                actor: principal.name.clone(),
            },
            entry,
        )
        .await
    {
        Ok(id) => id,
        Err(StoreError::UnknownCase(id)) => {
            return Err(Problem::not_found(format!("unknown case {id}")));
        }
        Err(e) => {
            tracing::error!(error = %e, "Written 278 request not recorded.");
            return Err(Problem::unavailable(
                "the request could not be recorded; nothing was handed out",
            ));
        }
    };
    tracing::info!(%case_id, request_id, principal = %principal.name, %isa13, "278 request written and recorded.");
    answer["request_id"] = json!(request_id);
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}
