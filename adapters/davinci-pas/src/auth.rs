//! Who is calling: every request is attributed to one registered EHR client
//! or refused (401/403 with an OperationOutcome) before anything is read.
//!
//! * **Mutual TLS** (required beyond loopback): the listener verifies the
//!   client certificate against `tls.client_ca`; here the verified end-entity
//!   certificate must also be on a client's allowlist — a SHA-256
//!   fingerprint, or a DNS subject alternative name (checked with
//!   rustls-webpki, as the CORE SOAP server does for its partners). A
//!   certificate the CA signed for someone else is refused.
//! * **SMART Backend Services** (optional, per client with `jwks_file`): the
//!   request must also carry `Authorization: Bearer <JWT>`, a client
//!   assertion signed (RS384/ES384) by a key of the client's registered JWKS,
//!   with `iss` = `sub` = its `client_id`, `aud` = our base URL, an unexpired
//!   `exp` at most five minutes ahead and a `jti` never seen before: an
//!   accepted assertion's `jti` is remembered until its `exp`, so a captured
//!   assertion cannot be replayed. The memory is the process's: after a
//!   restart an assertion from before it could be replayed until its `exp`
//!   (at most five minutes), and only with the client's certificate too.
//!
//! The client's name becomes the case's `source.sender`: a subscription
//! notifies only its own client, and `$inquire` answers only about cases its
//! client submitted (knowing a Claim identifier gives no power).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::PasConfig;

/// One registered client, resolved.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its name.
    pub name: String,
    names: Vec<String>,
    fingerprints: Vec<[u8; 32]>,
    jwks: Option<Arc<JwkSet>>,
    client_id: String,
}

/// Why a caller was refused (no secrets, no PHI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No client certificate, or one on no allowlist.
    #[error("{0}")]
    Certificate(&'static str),
    /// The SMART client assertion is missing or invalid.
    #[error("{0}")]
    Assertion(String),
}

impl AuthError {
    /// 401 for a missing credential, 403 for one that is not allowed.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Certificate(_) => 403,
            AuthError::Assertion(_) => 401,
        }
    }
}

/// Parses `ab:cd:…` or `abcd…` (64 hex digits).
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex_digits: String = text.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(hex_digits).ok()?;
    bytes.try_into().ok()
}

/// The SHA-256 fingerprint of a DER certificate, lowercase hex.
pub fn fingerprint_hex(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The registered clients and how to check them.
#[derive(Debug, Clone)]
pub struct Authenticator {
    clients: Vec<Client>,
    plaintext_client: Option<String>,
    audience: String,
    seen: Arc<Mutex<SeenAssertions>>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    jti: String,
    exp: i64,
}

/// The longest an assertion may live (SMART Backend Services: `exp` no more
/// than five minutes in the future).
const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;

/// Clock skew allowed on `exp` (jsonwebtoken's default leeway).
const LEEWAY_SECS: i64 = 60;

/// The `jti`s of accepted assertions, per client, until they expire.
#[derive(Debug, Default)]
struct SeenAssertions {
    /// `(client, jti)` → the assertion's `exp` (seconds).
    seen: HashMap<(String, String), i64>,
    /// When expired entries are dropped next (seconds).
    next_prune: i64,
}

impl SeenAssertions {
    /// Remembers `jti` of `client` until `exp`; `false` when it is already
    /// remembered (a replay).
    fn first_use(&mut self, client: &str, jti: &str, exp: i64, now: i64) -> bool {
        if now >= self.next_prune {
            self.seen.retain(|_, until| *until + LEEWAY_SECS >= now);
            self.next_prune = now + 30;
        }
        let key = (client.to_owned(), jti.to_owned());
        if self.seen.contains_key(&key) {
            return false;
        }
        self.seen.insert(key, exp);
        true
    }
}

impl Authenticator {
    /// Builds the authenticator; `jwks` are the JWKS file contents per client
    /// (by name), read by the daemon.
    pub fn new(config: &PasConfig, jwks: &[(String, Vec<u8>)]) -> Result<Self, String> {
        let mut clients = Vec::new();
        for c in &config.clients {
            let jwks = match jwks.iter().find(|(name, _)| name == &c.name) {
                Some((_, bytes)) => Some(Arc::new(
                    serde_json::from_slice::<JwkSet>(bytes)
                        .map_err(|e| format!("clients `{}`: JWKS is not valid: {e}", c.name))?,
                )),
                None if c.jwks_file.is_some() => {
                    return Err(format!("clients `{}`: JWKS file not read", c.name));
                }
                None => None,
            };
            clients.push(Client {
                name: c.name.clone(),
                names: c.san.clone(),
                fingerprints: c
                    .fingerprints
                    .iter()
                    .filter_map(|f| parse_fingerprint(f))
                    .collect(),
                jwks,
                client_id: c.client_id.clone().unwrap_or_else(|| c.name.clone()),
            });
        }
        Ok(Authenticator {
            clients,
            plaintext_client: config.plaintext_client.clone(),
            audience: config.base_url(),
            seen: Arc::default(),
        })
    }

    /// The client making a request: from its verified certificate (mutual
    /// TLS), or the plaintext client on a loopback listener without TLS; then
    /// its client assertion when it has a JWKS.
    pub fn authenticate(
        &self,
        certificate: Option<&CertificateDer<'_>>,
        tls: bool,
        bearer: Option<&str>,
    ) -> Result<&Client, AuthError> {
        let client = match (tls, certificate) {
            (true, None) => return Err(AuthError::Certificate("a client certificate is required")),
            (true, Some(cert)) => self
                .clients
                .iter()
                .find(|c| certificate_allowed(c, cert))
                .ok_or(AuthError::Certificate(
                    "the client certificate is not on any client's allowlist",
                ))?,
            (false, _) => {
                let name = self.plaintext_client.as_deref().unwrap_or("");
                self.clients
                    .iter()
                    .find(|c| c.name == name)
                    .ok_or(AuthError::Certificate("no client for plain HTTP"))?
            }
        };
        if let Some(jwks) = &client.jwks {
            let token = bearer.ok_or_else(|| {
                AuthError::Assertion(
                    "a SMART Backend Services client assertion (Bearer) is required".into(),
                )
            })?;
            self.check_assertion(client, jwks, token)?;
        }
        Ok(client)
    }

    fn check_assertion(
        &self,
        client: &Client,
        jwks: &JwkSet,
        token: &str,
    ) -> Result<(), AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Assertion("the client assertion is not a JWT".into()))?;
        if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
            return Err(AuthError::Assertion(
                "client assertions must be RS384 or ES384".into(),
            ));
        }
        let jwk = match header.kid.as_deref() {
            Some(kid) => jwks.find(kid),
            None => jwks.keys.first(),
        }
        .ok_or_else(|| {
            AuthError::Assertion("no registered key matches the assertion's kid".into())
        })?;
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|_| AuthError::Assertion("the registered key is unusable".into()))?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[self.audience.as_str()]);
        validation.set_issuer(&[client.client_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            AuthError::Assertion(format!("client assertion refused: {:?}", e.kind()))
        })?;
        if data.claims.sub != client.client_id {
            return Err(AuthError::Assertion(
                "client assertion refused: sub is not the client_id".into(),
            ));
        }
        let now = jiff::Timestamp::now().as_second();
        if data.claims.exp > now + MAX_ASSERTION_LIFETIME_SECS + LEEWAY_SECS {
            return Err(AuthError::Assertion(
                "client assertion refused: exp is more than five minutes ahead".into(),
            ));
        }
        if data.claims.jti.is_empty() {
            return Err(AuthError::Assertion(
                "client assertion refused: jti is empty".into(),
            ));
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.first_use(&client.name, &data.claims.jti, data.claims.exp, now) {
            return Err(AuthError::Assertion(
                "client assertion refused: its jti was already used".into(),
            ));
        }
        Ok(())
    }
}

fn certificate_allowed(client: &Client, cert: &CertificateDer<'_>) -> bool {
    let digest: [u8; 32] = Sha256::digest(cert.as_ref()).into();
    if client.fingerprints.contains(&digest) {
        return true;
    }
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    client.names.iter().any(|name| {
        rustls::pki_types::ServerName::try_from(name.as_str())
            .is_ok_and(|n| ee.verify_is_valid_for_subject_name(&n).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex64 = "ab".repeat(32);
        assert!(parse_fingerprint(&hex64).is_some());
        let colons: Vec<String> = (0..32).map(|_| "AB".to_owned()).collect();
        assert_eq!(
            parse_fingerprint(&colons.join(":")),
            parse_fingerprint(&hex64)
        );
        assert!(parse_fingerprint("abc").is_none());
    }
}

#[cfg(test)]
mod assertion_tests {
    use super::*;
    use crate::config::PasConfig;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    fn key() -> (EncodingKey, JwkSet) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
        let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("pem");
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES384).expect("jwk");
        jwk.common.key_id = Some("k1".to_owned());
        (key, JwkSet { keys: vec![jwk] })
    }

    fn config() -> PasConfig {
        serde_json::from_value::<PasConfig>(json!({
            "listen": "127.0.0.1:9443", "allow_plaintext": true, "plaintext_client": "ehr-one",
            "clients": [{"name": "ehr-one", "jwks_file": "/unused/jwks.json", "client_id": "ehr-one-id"}]
        }))
        .expect("config")
    }

    fn token(key: &EncodingKey, aud: &str, sub: &str, exp_offset: i64) -> String {
        let jti = uuid::Uuid::new_v4().to_string();
        signed(
            key,
            json!({"iss": "ehr-one-id", "sub": sub, "aud": aud,
                           "exp": jiff::Timestamp::now().as_second() + exp_offset, "jti": jti}),
        )
    }

    fn signed(key: &EncodingKey, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES384);
        header.kid = Some("k1".to_owned());
        jsonwebtoken::encode(&header, &claims, key).expect("sign")
    }

    #[test]
    fn a_jti_is_remembered_per_client_until_its_assertion_expires() {
        let mut seen = SeenAssertions::default();
        assert!(seen.first_use("ehr-one", "j1", 1_000, 900));
        assert!(!seen.first_use("ehr-one", "j1", 1_000, 901), "a replay");
        assert!(
            seen.first_use("ehr-two", "j1", 1_000, 901),
            "another client's"
        );
        // Long after the exp (and the leeway) the entry is gone: such an
        // assertion is refused as expired before its jti is looked at.
        assert!(seen.first_use("ehr-one", "j1", 2_000, 1_000 + LEEWAY_SECS + 31));
        assert_eq!(seen.seen.len(), 1, "expired entries are dropped");
    }

    #[test]
    fn client_assertions_are_checked_against_the_registered_jwks() {
        let (key, jwks) = key();
        let config = config();
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        let jwks_bytes = serde_json::to_vec(&jwks).expect("jwks");
        let auth =
            Authenticator::new(&config, &[("ehr-one".to_owned(), jwks_bytes)]).expect("auth");
        let audience = config.base_url();
        assert_eq!(audience, "http://127.0.0.1:9443/fhir");

        let good = token(&key, &audience, "ehr-one-id", 300);
        assert_eq!(
            auth.authenticate(None, false, Some(&good))
                .expect("accepted")
                .name,
            "ehr-one"
        );
        let missing = auth.authenticate(None, false, None).expect_err("missing");
        assert_eq!(missing.status(), 401);
        for bad in [
            token(&key, "https://elsewhere.test/fhir", "ehr-one-id", 300),
            token(&key, &audience, "someone-else", 300),
            token(&key, &audience, "ehr-one-id", -600),
            token(&self::key().0, &audience, "ehr-one-id", 300),
            "not.a.jwt".to_owned(),
        ] {
            let refused = auth
                .authenticate(None, false, Some(&bad))
                .expect_err("refused");
            assert_eq!(refused.status(), 401, "{refused}");
        }
        // The same assertion again is a replay; a fresh one is accepted.
        let replay = auth
            .authenticate(None, false, Some(&good))
            .expect_err("replayed");
        assert_eq!(replay.status(), 401);
        assert!(replay.to_string().contains("jti"), "{replay}");
        let fresh = token(&key, &audience, "ehr-one-id", 300);
        assert!(auth.authenticate(None, false, Some(&fresh)).is_ok());
        // A replay through a clone of the authenticator (the server shares one).
        assert!(
            auth.clone()
                .authenticate(None, false, Some(&fresh))
                .is_err()
        );
        // Without a jti, or living longer than five minutes: refused.
        let now = jiff::Timestamp::now().as_second();
        for bad in [
            signed(
                &key,
                json!({"iss": "ehr-one-id", "sub": "ehr-one-id", "aud": audience,
                                "exp": now + 120}),
            ),
            signed(
                &key,
                json!({"iss": "ehr-one-id", "sub": "ehr-one-id", "aud": audience,
                                "exp": now + 3600, "jti": "long-lived"}),
            ),
        ] {
            let refused = auth
                .authenticate(None, false, Some(&bad))
                .expect_err("refused");
            assert_eq!(refused.status(), 401, "{refused}");
        }
        // Over TLS a client certificate is required before anything else.
        let no_cert = auth
            .authenticate(None, true, Some(&good))
            .expect_err("no cert");
        assert_eq!(no_cert.status(), 403);
    }

    #[test]
    fn the_section_refuses_what_cannot_be_safe() {
        let mut c = config();
        c.listen = "0.0.0.0:9443".to_owned();
        let keys: Vec<String> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["allow_plaintext"]);
        c.allow_plaintext = false;
        c.tls = Some(gateway_http_listener::tls::TlsFiles {
            cert: "/x/cert.pem".into(),
            key: "/x/key.pem".into(),
            client_ca: None,
        });
        c.clients[0].fingerprints = vec!["zz".to_owned()];
        let keys: Vec<String> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["tls.client_ca", "clients[0].fingerprints"]);
        c.clients[0].fingerprints.clear();
        let keys: Vec<String> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["tls.client_ca", "clients[0]"]);
    }
}
