//! The PAS HTTPS server: `POST [base]/Claim/$submit`, `POST
//! [base]/Claim/$inquire`, `POST [base]/Subscription`, `GET
//! [base]/Subscription/{id}` and `GET [base]/ClaimResponse/{id}` (what an
//! `id-only` notification points at; only the submitting client's).
//!
//! Served through gateway-http-listener (connection cap, TLS handshake,
//! header, body and idle timeouts), with mutual TLS (see [`crate::auth`]).
//! Every request is attributed to a registered client before its body is
//! read. Refused input gets an `OperationOutcome` with a specific issue and
//! HTTP status — 415 for a content type other than FHIR JSON, 413 over
//! `max_body_kb`, 400 when it is not a FHIR Bundle, 422 when it violates the
//! PAS profiles — and a refused `$submit` body is handed to the pipeline as a
//! failed parse, so the store keeps its raw bytes with the reason (for an
//! oversized body: the first `max_body_kb` KiB), replayable like any refused
//! input. A valid `$submit` is answered only after its commit (`200` with the
//! PAS Response Bundle); nothing is half-stored, because the pipeline commits
//! raw bytes and case event together.
//!
//! Idempotency: a `$submit` whose Claim identifier already names a case of the
//! same client (as its first or latest submission) creates nothing and is
//! answered from the stored case; an identical repeat that reaches the
//! pipeline is its duplicate (same sender, control id and content hash).

// Handlers answer early with a ready `Response` as the error value; it is
// built once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures_util::StreamExt as _;
use gateway_core::adapter::{InboundMessage, IntakeOutcome, IntakePipeline};
use gateway_core::{Case, Diagnostic, GatewayError};
use gateway_fhir_model::{OperationOutcome, OutcomeIssue};
use gateway_http_listener::PeerCertificates;
use serde_json::Value;

use crate::auth::{Authenticator, Client};
use crate::request::{self, Operation, PasRequest, Refusal, codes};
use crate::subscription::{SubscriptionStore, parse_registration};
use crate::{CLAIM_REFERENCE, CaseDirectory, SUBMISSION_REFERENCE};

/// FHIR JSON.
pub const FHIR_JSON: &str = "application/fhir+json";

/// Everything the handlers share.
pub struct PasServer {
    /// Who may call.
    pub auth: Authenticator,
    /// Where `$submit` bodies go.
    pub pipeline: Arc<dyn IntakePipeline>,
    /// Stored cases.
    pub directory: Arc<dyn CaseDirectory>,
    /// Registered subscriptions.
    pub subscriptions: Arc<SubscriptionStore>,
    /// The mapping profile of this instance.
    pub profile: String,
    /// Whether the listener runs TLS (client certificates required).
    pub tls: bool,
    /// Largest body in bytes.
    pub max_body: usize,
    /// Allow `http://` notification endpoints on loopback.
    pub allow_http_endpoints: bool,
}

/// The router, with routes under `base_path` (`/fhir`).
pub fn router(server: Arc<PasServer>, base_path: &str) -> Router {
    let base = base_path.trim_end_matches('/');
    Router::new()
        .route(&format!("{base}/Claim/$submit"), post(submit))
        .route(&format!("{base}/Claim/$inquire"), post(inquire))
        .route(&format!("{base}/Subscription"), post(subscribe))
        .route(
            &format!("{base}/Subscription/{{id}}"),
            get(read_subscription),
        )
        .route(
            &format!("{base}/ClaimResponse/{{id}}"),
            get(read_claim_response),
        )
        .with_state(server)
}

fn fhir(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
        body.to_string(),
    )
        .into_response()
}

fn outcome(status: u16, outcome: &OperationOutcome) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    fhir(status, &outcome.to_value())
}

fn refused(refusal: &Refusal) -> Response {
    outcome(refusal.status, &refusal.outcome())
}

struct Caller {
    client: String,
    peer: SocketAddr,
}

impl PasServer {
    fn authenticate(
        &self,
        headers: &HeaderMap,
        chain: Option<&PeerCertificates>,
        peer: SocketAddr,
    ) -> Result<Caller, Response> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let certificate = chain.and_then(|c| c.0.first());
        match self.auth.authenticate(certificate, self.tls, bearer) {
            Ok(Client { name, .. }) => Ok(Caller {
                client: name.clone(),
                peer,
            }),
            Err(e) => {
                tracing::warn!(peer = %peer, status = e.status(), "PAS request refused: {e}");
                let code = if e.status() == 401 {
                    "login"
                } else {
                    "forbidden"
                };
                Err(outcome(
                    e.status(),
                    &OperationOutcome::single(OutcomeIssue::error(code, e.to_string(), None)),
                ))
            }
        }
    }

    /// Keeps a refused `$submit` body in the store with its reason.
    async fn keep_refused(
        &self,
        caller: &Caller,
        raw: Vec<u8>,
        diagnostics: Vec<Diagnostic>,
    ) -> Result<(), Response> {
        let message = inbound(
            &self.profile,
            raw,
            Some(caller.peer.to_string()),
            Err(diagnostics),
        );
        match self.pipeline.submit(message).await {
            Ok(_) => Ok(()),
            Err(e) => Err(unavailable(&e.to_string())),
        }
    }

    /// The case of `claim_id` when it is `caller`'s. Another client's case
    /// is an error for `$submit` (409: it may not be touched) and simply not
    /// found for reads (404: its existence is not disclosed).
    async fn own_case(
        &self,
        caller: &Caller,
        claim_id: &str,
        reading: bool,
    ) -> Result<Option<Case>, Response> {
        let found = lookup(self.directory.as_ref(), &caller.client, claim_id)
            .await
            .map_err(|e| unavailable(&e.to_string()))?;
        match found {
            Lookup::Own(case) => Ok(Some(*case)),
            Lookup::Absent => Ok(None),
            Lookup::Other if reading => Ok(None),
            // Another client's case: never answered, never touched.
            Lookup::Other => Err(outcome(
                409,
                &OperationOutcome::single(OutcomeIssue::error(
                    "conflict",
                    "this Claim identifier cannot be used by this client",
                    Some("Claim.identifier".to_owned()),
                )),
            )),
        }
    }
}

/// Whose the case of a Claim identifier is, seen from one client.
enum Lookup {
    /// The client's own case.
    Own(Box<Case>),
    /// Another client's case.
    Other,
    /// No case has that identifier.
    Absent,
}

/// The case of `claim_id` (as the latest submission, then as the first
/// Claim) and whether it is `client`'s.
async fn lookup(
    directory: &dyn CaseDirectory,
    client: &str,
    claim_id: &str,
) -> Result<Lookup, GatewayError> {
    for name in [SUBMISSION_REFERENCE, CLAIM_REFERENCE] {
        if let Some(case) = directory.case_by_reference(name, claim_id).await? {
            if case.source.sender.as_deref() == Some(client) {
                return Ok(Lookup::Own(Box::new(case)));
            }
            return Ok(Lookup::Other);
        }
    }
    Ok(Lookup::Absent)
}

/// The message a PAS body becomes for the pipeline.
fn inbound(
    profile: &str,
    raw: Vec<u8>,
    peer: Option<String>,
    parsed: Result<gateway_core::SourceDocument, Vec<Diagnostic>>,
) -> InboundMessage {
    InboundMessage {
        adapter: gateway_core::adapter::AdapterName::DAVINCI_PAS,
        profile: profile.to_owned(),
        raw,
        received_at: jiff::Timestamp::now(),
        peer,
        parsed,
    }
}

/// What the server needs of a valid `$submit` body once its source tree
/// went into the [`InboundMessage`].
#[derive(Debug, Clone)]
pub struct SubmitKeys {
    /// `Claim.identifier[0].value`.
    pub claim_id: String,
    /// The prior Claim an update or cancellation names.
    pub prior_claim_id: Option<String>,
    /// The request cancels an earlier one.
    pub cancelled: bool,
    /// Every `Claim.item.sequence`, in order (echoed in the answer).
    pub item_sequences: Vec<u32>,
}

/// A `$submit` body as the server hands it to the pipeline.
#[derive(Debug)]
pub struct Submission {
    /// The message: the validated source tree with the client as its
    /// sender, or — for a refused body — a failed parse carrying the
    /// refusal's diagnostics (stored with the raw bytes, replayable).
    pub message: InboundMessage,
    /// The keys of a valid request, or why it is refused (HTTP status and
    /// diagnostics of the OperationOutcome the client gets).
    pub request: Result<SubmitKeys, Refusal>,
}

/// Turns a `$submit` body of `client` into the message the pipeline
/// receives: PAS validation, then the client stamped as the sender (the
/// idempotency and ownership key).
///
/// Public so the conformance harness runs exactly this step of the server
/// instead of re-implementing it; the server calls nothing else to build a
/// `$submit` message.
pub fn submission(raw: Vec<u8>, client: &str, profile: &str, peer: Option<String>) -> Submission {
    match request::validate(&raw, Operation::Submit) {
        Ok(mut request) => {
            request.document.meta.sender = Some(client.to_owned());
            let keys = SubmitKeys {
                claim_id: request.claim_id,
                prior_claim_id: request.prior_claim_id,
                cancelled: request.cancelled,
                item_sequences: request.item_sequences,
            };
            Submission {
                message: inbound(profile, raw, peer, Ok(request.document)),
                request: Ok(keys),
            }
        }
        Err(refusal) => Submission {
            message: inbound(profile, raw, peer, Err(refusal.diagnostics.clone())),
            request: Err(refusal),
        },
    }
}

/// An answer of the server: HTTP status and FHIR JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body (a PAS Response Bundle or an OperationOutcome).
    pub body: Value,
}

/// The `$inquire` answer for a validated inquiry and the case it found
/// (`None`: no case of this client has the Claim identifier): `200` with
/// the PAS Response Bundle echoing the inquiry's items, or `404` with a
/// `not-found` OperationOutcome.
pub fn inquire_answer(inquiry: &PasRequest, case: Option<&Case>) -> Answer {
    match case {
        Some(case) => Answer {
            status: 200,
            body: crate::response::response_bundle(case, &inquiry.item_sequences),
        },
        None => Answer {
            status: 404,
            body: OperationOutcome::single(OutcomeIssue::error(
                "not-found",
                "no prior-authorization request of this client has that Claim identifier",
                Some("Claim.identifier".to_owned()),
            ))
            .to_value(),
        },
    }
}

/// Answers an `$inquire` body of `client` from the stored cases: PAS
/// validation (a refusal is answered with its status and OperationOutcome),
/// the client's case by the Claim identifier or, failing that, by the prior
/// Claim it names (another client's case is not disclosed), then
/// [`inquire_answer`]. `Err` only when the directory cannot be read.
///
/// Public so the conformance harness answers inquiries through the
/// server's own code; the HTTP handler adds authentication and the body
/// limits only.
pub async fn answer_inquiry(
    directory: &dyn CaseDirectory,
    client: &str,
    raw: &[u8],
) -> Result<Answer, GatewayError> {
    let inquiry = match request::validate(raw, Operation::Inquire) {
        Ok(r) => r,
        Err(refusal) => {
            return Ok(Answer {
                status: refusal.status,
                body: refusal.outcome().to_value(),
            });
        }
    };
    let mut found = lookup(directory, client, &inquiry.claim_id).await?;
    if !matches!(found, Lookup::Own(_))
        && let Some(prior) = &inquiry.prior_claim_id
    {
        found = lookup(directory, client, prior).await?;
    }
    let case = match found {
        Lookup::Own(case) => Some(case),
        Lookup::Other | Lookup::Absent => None,
    };
    Ok(inquire_answer(&inquiry, case.as_deref()))
}

fn unavailable(reason: &str) -> Response {
    tracing::warn!(reason, "PAS request not committed; the client should retry");
    let mut response = outcome(
        503,
        &OperationOutcome::single(OutcomeIssue::error(
            "transient",
            "the request could not be stored; retry later",
            None,
        )),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

fn content_type_ok(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| v == FHIR_JSON || v == "application/json")
}

/// Reads at most `max` bytes; `Err(prefix)` when the body is longer.
async fn read_body(body: Body, max: usize) -> Result<Result<Vec<u8>, Vec<u8>>, Response> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            outcome(
                400,
                &OperationOutcome::single(OutcomeIssue::error(
                    "incomplete",
                    "the request body could not be read",
                    None,
                )),
            )
        })?;
        if out.len() + chunk.len() > max {
            let room = max - out.len();
            out.extend_from_slice(&chunk[..room]);
            return Ok(Err(out));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Ok(out))
}

/// Content type and size checks shared by the operations: the body, or the
/// refusal (with what to keep).
/// The authenticated caller and the body of a request whose refused bodies
/// are not kept (`$inquire`, Subscription): an unauthenticated caller or an
/// unreadable body is answered here.
async fn caller_and_body(
    server: &PasServer,
    headers: &HeaderMap,
    chain: Option<&PeerCertificates>,
    peer: SocketAddr,
    body: Body,
) -> Result<(Caller, Vec<u8>), Response> {
    let caller = server.authenticate(headers, chain, peer)?;
    let raw = take_body(server, headers, body)
        .await
        .map_err(|(refusal, _)| refused(&refusal))?;
    Ok((caller, raw))
}

async fn take_body(
    server: &PasServer,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, (Refusal, Vec<u8>)> {
    let read = match read_body(body, server.max_body).await {
        Ok(read) => read,
        Err(_) => {
            return Err((
                Refusal::one(400, "F001", "the request body could not be read", "Bundle"),
                Vec::new(),
            ));
        }
    };
    let raw = match read {
        Ok(raw) => raw,
        Err(prefix) => {
            return Err((
                Refusal::one(
                    413,
                    codes::TOO_LARGE,
                    format!(
                        "the body exceeds {} bytes; the first {} bytes are kept",
                        server.max_body,
                        prefix.len()
                    ),
                    "Bundle",
                ),
                prefix,
            ));
        }
    };
    if !content_type_ok(headers) {
        return Err((
            Refusal::one(
                415,
                codes::WRONG_CONTENT_TYPE,
                format!("the content type must be {FHIR_JSON}"),
                "Bundle",
            ),
            raw,
        ));
    }
    Ok(raw)
}

async fn submit(
    State(server): State<Arc<PasServer>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    chain: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = match server.authenticate(&headers, chain.as_deref(), peer) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let raw = match take_body(&server, &headers, body).await {
        Ok(raw) => raw,
        Err((refusal, kept)) => {
            if let Err(r) = server
                .keep_refused(&caller, kept, refusal.diagnostics.clone())
                .await
            {
                return r;
            }
            return refused(&refusal);
        }
    };
    let Submission { message, request } = submission(
        raw,
        &caller.client,
        &server.profile,
        Some(caller.peer.to_string()),
    );
    let request = match request {
        Ok(r) => r,
        Err(refusal) => {
            tracing::info!(client = %caller.client, status = refusal.status, codes = %codes_of(&refusal.diagnostics), "PAS $submit refused");
            if let Err(e) = server.pipeline.submit(message).await {
                return unavailable(&e.to_string());
            }
            return refused(&refusal);
        }
    };
    // Idempotency on the Claim identifier, and ownership of updates.
    let existing = match server.own_case(&caller, &request.claim_id, false).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Some(case) = &existing {
        let cancels_now =
            request.cancelled && case.status != gateway_core::case::CaseStatus::Cancelled;
        if !cancels_now {
            tracing::info!(client = %caller.client, case_id = %case.case_id, "PAS $submit repeated; answered from the stored case");
            return fhir(
                StatusCode::OK,
                &crate::response::response_bundle(case, &request.item_sequences),
            );
        }
    }
    if let Some(prior) = &request.prior_claim_id
        && let Err(r) = server.own_case(&caller, prior, false).await
    {
        return r;
    }
    let _ticket = server.pipeline.announce();
    let outcome_result = server.pipeline.submit(message).await;
    let case = match outcome_result {
        Ok(IntakeOutcome::Accepted { case_id, .. }) => server.directory.case_by_id(&case_id).await,
        Ok(IntakeOutcome::Duplicate { receipt }) => {
            server.directory.case_of_message(receipt.message_id).await
        }
        Ok(IntakeOutcome::Kept { reason, .. }) => {
            return outcome(
                422,
                &OperationOutcome::single(OutcomeIssue::error(
                    "not-supported",
                    format!("kept without a case: {reason}"),
                    None,
                )),
            );
        }
        Ok(IntakeOutcome::Rejected {
            error, diagnostics, ..
        }) => {
            let errors: Vec<Diagnostic> = diagnostics
                .into_iter()
                .filter(Diagnostic::is_error)
                .collect();
            let mut out = request::outcome_of(&errors);
            if out.issues.is_empty() {
                out.issues
                    .push(OutcomeIssue::error("processing", error.to_string(), None));
            }
            tracing::info!(client = %caller.client, codes = %codes_of(&errors), "PAS $submit rejected by the mapping");
            return outcome(422, &out);
        }
        Err(e) => return unavailable(&e.to_string()),
    };
    match case {
        Ok(Some(case)) => {
            tracing::info!(client = %caller.client, case_id = %case.case_id, "PAS $submit committed");
            fhir(
                StatusCode::OK,
                &crate::response::response_bundle(&case, &request.item_sequences),
            )
        }
        Ok(None) => unavailable("committed case not found"),
        Err(e) => unavailable(&e.to_string()),
    }
}

async fn inquire(
    State(server): State<Arc<PasServer>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    chain: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (caller, raw) = match caller_and_body(&server, &headers, chain.as_deref(), peer, body).await
    {
        Ok(read) => read,
        Err(r) => return r,
    };
    match answer_inquiry(server.directory.as_ref(), &caller.client, &raw).await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_REQUEST);
            fhir(status, &answer.body)
        }
        Err(e) => unavailable(&e.to_string()),
    }
}

async fn subscribe(
    State(server): State<Arc<PasServer>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    chain: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (caller, raw) = match caller_and_body(&server, &headers, chain.as_deref(), peer, body).await
    {
        Ok(read) => read,
        Err(r) => return r,
    };
    let registration = match parse_registration(&raw, server.allow_http_endpoints) {
        Ok(r) => r,
        Err(refusal) => return refused(&refusal),
    };
    match server.subscriptions.add(&caller.client, registration) {
        Ok(record) => {
            tracing::info!(client = %caller.client, subscription = %record.id, payload = record.payload.as_str(), "PAS subscription registered");
            let mut response = fhir(StatusCode::CREATED, &record.resource());
            if let Ok(location) = HeaderValue::from_str(&format!("Subscription/{}", record.id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(e) => unavailable(&e.to_string()),
    }
}

async fn read_subscription(
    State(server): State<Arc<PasServer>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    chain: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match server.authenticate(&headers, chain.as_deref(), peer) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match server.subscriptions.get(&caller.client, &id) {
        Some(record) => fhir(StatusCode::OK, &record.resource()),
        None => outcome(
            404,
            &OperationOutcome::single(OutcomeIssue::error(
                "not-found",
                "no such subscription",
                None,
            )),
        ),
    }
}

async fn read_claim_response(
    State(server): State<Arc<PasServer>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    chain: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match server.authenticate(&headers, chain.as_deref(), peer) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let not_found = || {
        outcome(
            404,
            &OperationOutcome::single(OutcomeIssue::error(
                "not-found",
                "no such ClaimResponse",
                None,
            )),
        )
    };
    if !gateway_core::ids::is_case_id(&id) {
        return not_found();
    }
    match server.directory.case_by_id(&id).await {
        Ok(Some(case))
            if case.source.adapter == crate::ADAPTER
                && case.source.sender.as_deref() == Some(caller.client.as_str()) =>
        {
            fhir(StatusCode::OK, &crate::response::claim_response(&case, &[]))
        }
        Ok(_) => not_found(),
        Err(e) => unavailable(&e.to_string()),
    }
}

fn codes_of(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| d.code.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
