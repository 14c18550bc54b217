//! gateway-davinci-pas: the gateway as the practice EHR's Da Vinci PAS
//! (Prior Authorization Support, IG 2.2.1) endpoint.
//!
//! *Why*: under CMS-0057-F EHRs ship PAS clients, while payers keep X12 278
//! between trading partners. The gateway sits between them: it serves
//! `Claim/$submit` and `Claim/$inquire` to the EHR, turns the PAS Request
//! Bundle into a Case through a mapping profile (`mappings/davinci-pas/`), and
//! answers from the Case — pended (X12 306 review action `A4`) until a
//! decision exists, then the decision — whichever way the decision arrived
//! (the platform's decision API, an X12 278 response, the admin API).
//!
//! * [`request`]: reading and validating a PAS Request Bundle (the `$submit`
//!   and `$inquire` input): one [`gateway_core::Diagnostic`] per problem with
//!   the HTTP status and FHIR issue code it is answered with; the source tree
//!   the mapping profile reads ([`request::parse_request`], the
//!   `davinci-pas` format);
//! * [`response`]: a Case as a PAS Response Bundle (ClaimResponse with the
//!   review action per item, `preAuthRef`, reason codes);
//! * [`outbound`]: any Case as a PAS Request Bundle (`ehr-gateway pas
//!   request`), for payers that run a PAS API of their own;
//! * [`auth`]: who the client is — a mutual-TLS certificate on a client's SAN
//!   or fingerprint allowlist, and optionally a SMART Backend Services client
//!   assertion checked against the client's registered JWKS;
//! * [`subscription`]: R4-backport topic-based rest-hook subscriptions and
//!   their notification bundles (id-only, full-resource);
//! * [`server`]: the HTTPS server (through gateway-http-listener);
//! * [`writeback`]: the adapter's `WriteBack`: a decision on a case submitted
//!   here sends the subscription notifications; the daemon's write-back
//!   worker retries it durably.
//!
//! **The facade** is [`DavinciPas`], this crate's [`gateway_seam::Adapter`]
//! ([`SPEC`] its registry entry, [`PasConfig`] its `[davinci_pas]` section).
//! Like every adapter it depends on gateway-core and the seam only (plus the
//! shared FHIR model and the HTTP listener). Stored cases are read through
//! [`CaseDirectory`] ([`HostDirectory`]: the seam's `Host`, which the daemon
//! implements over its store).

mod adapter;
pub mod auth;
pub mod config;
pub mod outbound;
pub mod request;
pub mod response;
pub mod server;
pub mod subscription;
pub mod writeback;

use gateway_core::adapter::BoxFuture;
use gateway_core::{Case, GatewayError};

pub use adapter::{DavinciPas, HostDirectory, SPEC, Section};
pub use config::PasConfig;
pub use request::parse_request;

/// The adapter name (case sources, metrics, logs).
pub const ADAPTER: &str = gateway_core::adapter::name::DAVINCI_PAS;

/// The `references` entry holding the identifier value of the Claim that
/// opened the case (the key an update's `Claim.related` points at).
pub const CLAIM_REFERENCE: &str = "pas_claim";

/// The `references` entry holding the identifier value of the latest Claim
/// submitted for the case (the original, or the latest update).
pub const SUBMISSION_REFERENCE: &str = "pas_submission";

/// Canonical URLs of the guide.
pub mod urls {
    /// The PAS subscription topic (notifications about pended requests).
    pub const TOPIC: &str =
        "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic";
    /// Review action extension (on `ClaimResponse.item.adjudication`).
    pub const REVIEW_ACTION: &str =
        "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewAction";
    /// Review action code extension (inside [`REVIEW_ACTION`]).
    pub const REVIEW_ACTION_CODE: &str =
        "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewActionCode";
    /// X12 306 (action codes: A1, A2, A3, A4, A6, C).
    pub const X12_306: &str = "https://codesystem.x12.org/005010/306";
    /// X12 886 (review decision reason codes).
    pub const X12_886: &str = "https://codesystem.x12.org/external/886";
    /// PAS Request Bundle profile.
    pub const REQUEST_BUNDLE: &str =
        "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-pas-request-bundle";
    /// PAS Response Bundle profile.
    pub const RESPONSE_BUNDLE: &str =
        "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-pas-response-bundle";
    /// PAS Claim profile.
    pub const CLAIM: &str = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim";
    /// PAS ClaimResponse profile.
    pub const CLAIM_RESPONSE: &str =
        "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claimresponse";
    /// R4 backport: payload content extension on `Subscription.channel.payload`.
    pub const BACKPORT_PAYLOAD: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
    /// R4 backport: the notification status profile (a Parameters resource).
    pub const BACKPORT_STATUS: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4";
    /// R4 backport: the notification bundle profile.
    pub const BACKPORT_NOTIFICATION: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4";
    /// US NPI identifier system.
    pub const NPI: &str = "http://hl7.org/fhir/sid/us-npi";
}

/// Stored cases, as the PAS server needs them. Implemented by the daemon
/// over its store (adapters never see the store).
pub trait CaseDirectory: Send + Sync {
    /// The case with this id.
    fn case_by_id<'a>(
        &'a self,
        case_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Case>, GatewayError>>;

    /// The case whose `references[name]` is `value` (most recently updated
    /// first when several match).
    fn case_by_reference<'a>(
        &'a self,
        name: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Option<Case>, GatewayError>>;

    /// The case a stored message produced (a duplicate answers the
    /// original's message id).
    fn case_of_message(&self, message_id: i64)
    -> BoxFuture<'_, Result<Option<Case>, GatewayError>>;
}
