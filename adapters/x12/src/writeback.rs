//! Decision write-back: a decided case this adapter received becomes a 278
//! response for the requester, written to an outbound folder and/or sent to a
//! CORE SOAP partner.
//!
//! The response is built by the profile's response template
//! (`outbound/response.toml`, see [`crate::outbound`]) with control numbers
//! reserved from the durable allocator ([`crate::control`]) right before it is
//! written, so ISA13/GS06/ST02 never repeat even across crashes. It is
//! addressed to the requester: ISA08 is the partner's `isa_receiver_id` when
//! one is configured, else the ISA06 the request came from (the case's
//! `source.sender`).
//!
//! Retries: the daemon's write-back worker retries a retryable error with
//! backoff. The outbound file of a decision has a name derived from the case
//! and a hash of the decision, so a retry after the file was written but the
//! SOAP delivery failed does not drop a second copy for the same decision.
//! A partner answering with a rejecting 999/TA1 or a CORE envelope error is a
//! permanent failure (the same bytes would be rejected again); transport
//! failures and HTTP 5xx/429/408 are retryable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gateway_core::adapter::{BoxFuture, WriteBack, WriteBackReceipt};
use gateway_core::{Case, GatewayError};

use crate::config::{IdentityConfig, WriteBackConfig};
use crate::control::{ControlNumberAllocator, Need, reserve};
use crate::outbound::ResponseTemplate;
use crate::soap::PAYLOAD_278_RESPONSE;
use crate::soap::client::{CoreClient, CoreReply};
use crate::write::{EnvelopeParams, Stamp};

/// The x12 adapter's [`WriteBack`].
pub struct X12WriteBack {
    template: ResponseTemplate,
    identity: IdentityConfig,
    outbound: Option<PathBuf>,
    partner: Option<CoreClient>,
    receiver_qualifier: String,
    numbers: Arc<dyn ControlNumberAllocator>,
}

impl std::fmt::Debug for X12WriteBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X12WriteBack")
            .field("outbound", &self.outbound)
            .field("partner", &self.partner.as_ref().map(|p| &p.partner().name))
            .finish()
    }
}

impl X12WriteBack {
    /// A write-back with a loaded `template`; `partner` is the client of the
    /// partner named in `config.partner` (the caller looks it up).
    pub fn new(
        config: &WriteBackConfig,
        template: ResponseTemplate,
        identity: IdentityConfig,
        partner: Option<CoreClient>,
        numbers: Arc<dyn ControlNumberAllocator>,
    ) -> Self {
        X12WriteBack {
            template,
            identity,
            outbound: config.outbound.clone(),
            partner,
            receiver_qualifier: config.receiver_qualifier.clone(),
            numbers,
        }
    }

    fn envelope(&self, case: &Case) -> EnvelopeParams {
        let (receiver_qualifier, receiver_id) = match self
            .partner
            .as_ref()
            .and_then(|p| p.partner().isa_receiver_id.clone().map(|id| (p, id)))
        {
            Some((p, id)) => (p.partner().isa_receiver_qualifier.clone(), id),
            None => (
                self.receiver_qualifier.clone(),
                case.source
                    .sender
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "UNKNOWN".to_owned()),
            ),
        };
        EnvelopeParams {
            sender_qualifier: self.identity.qualifier.clone(),
            sender_id: self.identity.id.clone(),
            application_sender: self.identity.id.clone(),
            receiver_qualifier,
            application_receiver: receiver_id.clone(),
            receiver_id,
            usage: self.identity.usage,
            ack_requested: false,
            newlines: self.outbound.is_some() && self.partner.is_none(),
            ..EnvelopeParams::default()
        }
    }

    /// Builds the 278 response for `case` with freshly reserved control numbers.
    pub async fn response(&self, case: &Case, stamp: &Stamp) -> Result<Vec<u8>, GatewayError> {
        let reserved = reserve(self.numbers.as_ref(), Need::sets(1)).await?;
        self.template
            .interchange(case, &self.envelope(case), &reserved, stamp)
            .map_err(|e| GatewayError::internal(false, e.to_string()))
    }

    async fn apply_inner(&self, case: &Case) -> Result<WriteBackReceipt, GatewayError> {
        let Some(decision) = &case.decision else {
            return Err(GatewayError::internal(
                false,
                "write-back of a case without a decision",
            ));
        };
        let bytes = self.response(case, &Stamp::now()).await?;
        let mut detail = Vec::new();
        if let Some(dir) = &self.outbound {
            let decision_json = serde_json::to_vec(decision).unwrap_or_default();
            let key = gateway_core::ids::content_hash(&decision_json);
            let name = format!("278-response-{}-{}.x12", case.case_id, &key[..16]);
            let written = write_once(dir, &name, &bytes).map_err(|e| {
                GatewayError::downstream(true, format!("cannot write to {}: {e}", dir.display()))
            })?;
            detail.push(if written {
                format!("278 response written as {name}")
            } else {
                format!("278 response {name} already written")
            });
        }
        if let Some(client) = &self.partner {
            let partner = &client.partner().name;
            let exchange = client
                .send_as(&bytes, PAYLOAD_278_RESPONSE)
                .await
                .map_err(|e| GatewayError::downstream(e.retryable(), e.to_string()))?;
            match exchange.reply {
                CoreReply::Acknowledgment { acks, .. } => {
                    if let Some(ta1) = acks.ta1.iter().find(|t| t.ack_code == "R") {
                        return Err(GatewayError::downstream(
                            false,
                            format!(
                                "partner {partner} rejected the 278 response: TA1 {}",
                                ta1.note_code
                            ),
                        ));
                    }
                    if let Some(g) = acks.functional.iter().find(|g| !g.is_accepted()) {
                        return Err(GatewayError::downstream(
                            false,
                            format!(
                                "partner {partner} rejected the 278 response: 999 AK9 {} {:?}",
                                g.status, g.codes
                            ),
                        ));
                    }
                    let status = acks
                        .functional
                        .first()
                        .map(|g| g.status.clone())
                        .unwrap_or_else(|| "TA1 A".to_owned());
                    detail.push(format!(
                        "278 response sent to {partner} (PayloadID {}), acknowledged {status}",
                        exchange.payload_id
                    ));
                }
                CoreReply::Response278(_) => detail.push(format!(
                    "278 response sent to {partner} (PayloadID {}), answered with a 278",
                    exchange.payload_id
                )),
            }
        }
        if detail.is_empty() {
            return Err(GatewayError::internal(
                false,
                "x12 write-back has neither an outbound folder nor a partner",
            ));
        }
        Ok(WriteBackReceipt {
            detail: detail.join("; "),
        })
    }
}

/// Writes `bytes` as `dir/name` atomically (temporary file, fsync, rename,
/// directory fsync) unless it exists; true when written now.
pub(crate) fn write_once(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<bool> {
    use std::io::Write;
    let target = dir.join(name);
    if target.exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &target)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(true)
}

impl WriteBack for X12WriteBack {
    fn adapter(&self) -> &str {
        gateway_core::adapter::name::X12
    }

    fn apply<'a>(
        &'a self,
        case: &'a Case,
    ) -> BoxFuture<'a, Result<WriteBackReceipt, GatewayError>> {
        Box::pin(self.apply_inner(case))
    }
}
