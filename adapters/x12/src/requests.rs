//! The outbound 278 request path: a case routed to a payer becomes a 278
//! request, written with the profile's request template and delivered to the
//! route's CORE SOAP partner or outbound folder.
//!
//! This module is the adapter's half: routes ([`Routes`], from
//! `[x12.requests]`), writing the request ([`RequestWriter`]: a fresh random
//! TRN*1 trace per request, control numbers reserved from the durable
//! allocator, refusing a case that would give an invalid 278 by the facts it
//! lacks) and delivering it ([`Route::deliver`]). The durable half — which
//! cases are due, recording the trace on the case *before* delivery, retries
//! with backoff, taking the payer's synchronous 278 response in — is the
//! daemon's submission worker over the store; it calls these in that order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gateway_core::{Case, GatewayError};

use crate::config::{IdentityConfig, PartnerConfig, RouteConfig, X12Config};
use crate::control::{ControlNumberAllocator, Need, reserve};
use crate::outbound::{RequestTemplate, TemplateError};
use crate::soap::client::{CoreClient, CoreReply};
use crate::write::{EnvelopeParams, Stamp};

/// The `case_requests` kind of a written 278 request.
pub const REQUEST_KIND: &str = "x12-278";

/// Why the routes could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RouteSetupError {
    /// A route names a partner that is not configured.
    #[error("x12.requests.routes[{index}].partner: no [[x12.partners]] entry is named `{name}`")]
    UnknownPartner {
        /// The route's index.
        index: usize,
        /// The partner name.
        name: String,
    },
    /// A route has neither or both of `partner` and `outbound`.
    #[error(
        "x12.requests.routes[{0}]: configure exactly one of `partner` (CORE SOAP) and `outbound` (a folder)"
    )]
    Target(usize),
    /// The partner's HTTPS client could not be built.
    #[error("x12.requests.routes[{index}].partner: {source}")]
    Client {
        /// The route's index.
        index: usize,
        /// Why.
        source: crate::soap::client::SoapClientError,
    },
}

/// Where a route's requests go.
#[derive(Debug, Clone)]
pub enum Target {
    /// A CORE SOAP partner (real-time request, the 278 response in the reply).
    Core(Box<CoreClient>),
    /// An outbound folder.
    Folder(PathBuf),
}

/// One configured route with its delivery target.
#[derive(Debug, Clone)]
pub struct Route {
    /// The route's configuration.
    pub config: RouteConfig,
    /// Where its requests go.
    pub target: Target,
}

/// The configured routes, first match wins.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

/// The payer id a route matches on: the first coverage's payer id.
pub fn payer_id(case: &Case) -> Option<&str> {
    case.coverages
        .first()
        .and_then(|c| c.payer.as_ref())
        .and_then(|p| p.id.as_deref())
        .filter(|id| !id.is_empty())
}

impl Routes {
    /// The routes of `section.requests` (none when the section has no
    /// `[x12.requests]`), each with its CORE client built.
    pub fn from_config(section: &X12Config) -> Result<Self, RouteSetupError> {
        let Some(requests) = &section.requests else {
            return Ok(Routes::default());
        };
        let mut routes = Vec::new();
        for (index, config) in requests.routes.iter().enumerate() {
            let target = match (&config.partner, &config.outbound) {
                (Some(name), None) => {
                    let partner = section
                        .partners
                        .iter()
                        .find(|p| &p.name == name)
                        .ok_or_else(|| RouteSetupError::UnknownPartner {
                            index,
                            name: name.clone(),
                        })?;
                    Target::Core(Box::new(
                        CoreClient::new(partner.clone())
                            .map_err(|source| RouteSetupError::Client { index, source })?,
                    ))
                }
                (None, Some(dir)) => Target::Folder(dir.clone()),
                _ => return Err(RouteSetupError::Target(index)),
            };
            routes.push(Route {
                config: config.clone(),
                target,
            });
        }
        Ok(Routes { routes })
    }

    /// True when no route is configured.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route that takes `case` (its payer id, source adapter and profile).
    pub fn route_for(&self, case: &Case) -> Option<&Route> {
        let payer = payer_id(case);
        self.routes.iter().find(|r| {
            r.config
                .takes(payer, &case.source.adapter, &case.source.profile)
        })
    }

    /// Every route, in match order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The route named `name`.
    pub fn named(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.config.name == name)
    }
}

/// A written 278 request and what its recording needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenRequest {
    /// The interchange.
    pub bytes: Vec<u8>,
    /// What a reply echoes (`x12_bht_reference`, `x12_trace`,
    /// `x12_trace_originator`): recorded on the case before it leaves.
    pub references: BTreeMap<String, String>,
    /// The control numbers it carries (`isa13`, `gs06`, `st02`).
    pub control: BTreeMap<String, String>,
}

impl WrittenRequest {
    /// ISA13.
    pub fn isa13(&self) -> &str {
        self.control.get("isa13").map(String::as_str).unwrap_or("")
    }
}

/// Why no request was written.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The case cannot be written as a valid 278: each entry names a fact it
    /// lacks. Retrying cannot help; nothing was written and no control
    /// number used.
    #[error("refused: {}", .0.join("; "))]
    Refused(Vec<String>),
    /// The template failed on this case (not a TR3 finding).
    #[error("unwritable: {0}")]
    Unwritable(String),
    /// Control numbers could not be allocated (the store): retry later.
    #[error("control numbers not allocated: {0}")]
    Numbers(GatewayError),
}

/// Writes 278 requests with the profile's request template.
#[derive(Debug, Clone)]
pub struct RequestWriter {
    template: RequestTemplate,
    identity: IdentityConfig,
}

/// A fresh trace number: 122 random bits (a v4 UUID from the OS-seeded
/// generator) as 32 upper-case hex digits (TRN02 allows 50). Unguessable,
/// unlike the case id BHT03 carries.
pub fn fresh_trace() -> String {
    uuid::Uuid::new_v4().simple().to_string().to_uppercase()
}

impl RequestWriter {
    /// A writer with a loaded template.
    pub fn new(template: RequestTemplate, identity: IdentityConfig) -> Self {
        RequestWriter { template, identity }
    }

    /// The envelope a request on `route` for `case` goes out with: ISA08
    /// is the route's `receiver_id`, else the partner's `isa_receiver_id`,
    /// else the case's payer id.
    fn envelope(&self, case: &Case, route: &Route) -> Result<EnvelopeParams, RequestError> {
        let partner: Option<&PartnerConfig> = match &route.target {
            Target::Core(client) => Some(client.partner()),
            Target::Folder(_) => None,
        };
        let receiver_id = route
            .config
            .receiver_id
            .clone()
            .or_else(|| partner.and_then(|p| p.isa_receiver_id.clone()))
            .or_else(|| payer_id(case).map(str::to_owned))
            .ok_or_else(|| RequestError::Refused(vec!["case has no payer id".to_owned()]))?;
        if receiver_id.len() > 15 || !receiver_id.is_ascii() {
            return Err(RequestError::Refused(vec![format!(
                "the payer id is not 1 to 15 ASCII characters (ISA08): set `receiver_id` on route `{}`",
                route.config.name
            )]));
        }
        let receiver_qualifier = route
            .config
            .receiver_qualifier
            .clone()
            .or_else(|| partner.map(|p| p.isa_receiver_qualifier.clone()))
            .unwrap_or_else(|| "ZZ".to_owned());
        Ok(EnvelopeParams {
            sender_qualifier: self.identity.qualifier.clone(),
            sender_id: self.identity.id.clone(),
            application_sender: self.identity.id.clone(),
            receiver_qualifier,
            application_receiver: receiver_id.clone(),
            receiver_id,
            usage: self.identity.usage,
            ack_requested: false,
            // Files are read by people too; a SOAP payload stays one line.
            newlines: matches!(route.target, Target::Folder(_)),
            ..EnvelopeParams::default()
        })
    }

    /// Writes the 278 request for `case` on `route` with a fresh trace and
    /// control numbers from `numbers` (reserved only once the case is known
    /// to give a valid 278).
    pub async fn write(
        &self,
        case: &Case,
        route: &Route,
        numbers: &dyn ControlNumberAllocator,
        stamp: &Stamp,
    ) -> Result<WrittenRequest, RequestError> {
        let mut case = case.clone();
        // BHT03 is our case id, whatever reference the case arrived with (a
        // 278 received from a provider carries theirs): the payer echoes it,
        // and the intake adopts the answer onto this case (`[case_id] own`)
        // when its TRN*2 echoes the fresh trace recorded for this request.
        case.references.remove("x12_bht_reference");
        case.references
            .insert("x12_trace".to_owned(), fresh_trace());
        let envelope = self.envelope(&case, route)?;
        // Check first with throwaway numbers: a refused case uses none.
        self.template
            .interchange(
                &case,
                &envelope,
                &crate::write::MemoryControlNumbers::new(),
                stamp,
            )
            .map_err(template_error)?;
        let reserved = reserve(numbers, Need::sets(1))
            .await
            .map_err(RequestError::Numbers)?;
        let bytes = self
            .template
            .interchange(&case, &envelope, &reserved, stamp)
            .map_err(template_error)?;
        let (references, control) = request_references(&bytes).ok_or_else(|| {
            RequestError::Unwritable(
                "the written 278 lacks ISA13, BHT03 or a TRN*1 trace (check outbound/request.toml)"
                    .to_owned(),
            )
        })?;
        Ok(WrittenRequest {
            bytes,
            references,
            control,
        })
    }
}

fn template_error(e: TemplateError) -> RequestError {
    match e {
        TemplateError::Refused(facts) => RequestError::Refused(facts),
        other => RequestError::Unwritable(other.to_string()),
    }
}

/// The references a reply to a 278 request we wrote echoes (BHT03, the
/// TRN*1 trace and its originator) and its control numbers (ISA13, GS06,
/// ST02), read back from the interchange itself; `None` when one of ISA13,
/// BHT03 or the trace is missing.
pub fn request_references(
    bytes: &[u8],
) -> Option<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let parsed = crate::tree::parse_interchange(bytes).ok()?;
    let text = std::str::from_utf8(bytes).ok()?;
    let d = parsed.tokens.delimiters;
    let (element, terminator) = (char::from(d.element), char::from(d.segment));
    let mut refs = BTreeMap::new();
    let mut control = BTreeMap::new();
    for segment in text.split(terminator) {
        let fields: Vec<&str> = segment.trim().split(element).collect();
        let field = |i: usize| {
            fields
                .get(i)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        match fields.first().copied() {
            Some("ISA") => {
                control.insert("isa13".to_owned(), field(13));
            }
            Some("GS") => {
                control.insert("gs06".to_owned(), field(6));
            }
            Some("ST") => {
                control.insert("st02".to_owned(), field(2));
            }
            Some("BHT") => {
                refs.insert("x12_bht_reference".to_owned(), field(3));
            }
            Some("TRN") if field(1) == "1" => {
                refs.insert("x12_trace".to_owned(), field(2));
                refs.insert("x12_trace_originator".to_owned(), field(3));
            }
            _ => {}
        }
    }
    let present = |m: &BTreeMap<String, String>, k: &str| m.get(k).is_some_and(|v| !v.is_empty());
    (present(&control, "isa13")
        && present(&refs, "x12_bht_reference")
        && present(&refs, "x12_trace"))
    .then_some((refs, control))
}

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The request was written into the folder under this name (or was
    /// already there from an earlier attempt).
    Written(String),
    /// The partner answered with a 278 response (to take in as a received
    /// 278: it carries the decision).
    Answered {
        /// The 278 response interchange.
        response: Vec<u8>,
        /// Our envelope's PayloadID.
        payload_id: String,
    },
    /// The partner acknowledged the request (999/TA1 accepting it): the
    /// decision comes later, pushed to our SOAP server or file drop.
    Acknowledged(String),
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Sending again later may succeed (transport, HTTP 5xx/429/408, a
    /// folder that cannot be written).
    #[error("{0}")]
    Retryable(String),
    /// The partner refused the request for good (a rejecting 999/TA1, a CORE
    /// envelope error): the same bytes would be refused again.
    #[error("{0}")]
    Permanent(String),
}

impl Route {
    /// Delivers the request `bytes` (for `case_id`, carrying ISA13 `isa13`).
    /// A folder gets `278-request-<case id>-<ISA13>.x12`, written once
    /// atomically: delivering the same request again writes nothing new.
    pub async fn deliver(
        &self,
        case_id: &str,
        isa13: &str,
        bytes: &[u8],
    ) -> Result<Delivery, DeliveryError> {
        match &self.target {
            Target::Folder(dir) => {
                let name = format!("278-request-{case_id}-{isa13}.x12");
                crate::writeback::write_once(dir, &name, bytes).map_err(|e| {
                    DeliveryError::Retryable(format!("cannot write to {}: {e}", dir.display()))
                })?;
                Ok(Delivery::Written(name))
            }
            Target::Core(client) => {
                let partner = &client.partner().name;
                let exchange = client.send(bytes).await.map_err(|e| {
                    if e.retryable() {
                        DeliveryError::Retryable(e.to_string())
                    } else {
                        DeliveryError::Permanent(e.to_string())
                    }
                })?;
                match exchange.reply {
                    CoreReply::Response278(response) => Ok(Delivery::Answered {
                        response,
                        payload_id: exchange.payload_id,
                    }),
                    CoreReply::Acknowledgment { acks, .. } => {
                        if let Some(ta1) = acks.ta1.iter().find(|t| t.ack_code == "R") {
                            return Err(DeliveryError::Permanent(format!(
                                "partner {partner} rejected the 278 request: TA1 {}",
                                ta1.note_code
                            )));
                        }
                        if let Some(g) = acks.functional.iter().find(|g| !g.is_accepted()) {
                            return Err(DeliveryError::Permanent(format!(
                                "partner {partner} rejected the 278 request: 999 AK9 {} {:?}",
                                g.status, g.codes
                            )));
                        }
                        Ok(Delivery::Acknowledged(format!(
                            "partner {partner} acknowledged the 278 request (PayloadID {})",
                            exchange.payload_id
                        )))
                    }
                }
            }
        }
    }

    /// The folder, for a folder route.
    pub fn folder(&self) -> Option<&Path> {
        match &self.target {
            Target::Folder(dir) => Some(dir),
            Target::Core(_) => None,
        }
    }
}
