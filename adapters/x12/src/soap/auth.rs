//! Partner authentication of the CORE SOAP server, as CAQH CORE connectivity
//! prescribes: X.509 client certificates (mutual TLS; the chain is verified by
//! rustls against `client_ca`, then the certificate must be on the partner's
//! allowlist — subject alternative names or SHA-256 fingerprints) and/or a
//! WS-Security UsernameToken (PasswordText, over TLS) with a per-partner
//! secret. The CORE `SenderID` of the envelope must then be one of the
//! authenticated partner's.
//!
//! *Why a partner list and not "any verified certificate":* a CA bundle
//! vouches for many organisations; only the ones we trade with may post, and
//! each only under its own SenderID (otherwise one partner could post 278s in
//! another's name).
//!
//! Secrets are compared in constant time (`subtle`, over SHA-256 digests so
//! the length does not leak either). This module reads no file and no
//! environment: the daemon resolves the passwords and hands them in.

use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{SoapPartnerConfig, SoapServerConfig};

/// The CORE envelope error code of an authentication or authorization
/// refusal (CAQH CORE Connectivity Rule, envelope error codes).
pub const UNAUTHORIZED: &str = "UnAuthorized";

/// The WS-Security UsernameToken password type we accept.
pub const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";

/// A UsernameToken read from the SOAP header.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct UsernameToken {
    /// `wsse:Username`.
    pub username: String,
    /// `wsse:Password` text.
    pub password: String,
    /// The `Type` attribute of `wsse:Password` (empty when absent).
    pub password_type: String,
}

impl std::fmt::Debug for UsernameToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsernameToken")
            .field("username", &self.username)
            .field("password_type", &self.password_type)
            .finish_non_exhaustive()
    }
}

/// A configuration problem: the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct AuthConfigError {
    /// The config key (`x12.soap_server.partners[0].username`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A refused request: the HTTP status (401 no or bad credential, 403
/// authenticated but not allowed), the CORE error code and a reason without
/// PHI (names of partners, never secrets or payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 401 or 403.
    pub status: u16,
    /// CORE error code ([`UNAUTHORIZED`]).
    pub code: &'static str,
    /// Why, for the fault text and the audit row.
    pub reason: String,
    /// The partner the credentials matched, when any did.
    pub partner: Option<String>,
}

/// One partner, ready to check requests against.
pub struct Partner {
    name: String,
    sender_ids: Vec<String>,
    names: Vec<ServerName<'static>>,
    fingerprints: Vec<[u8; 32]>,
    username: Option<String>,
    password_digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for Partner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partner")
            .field("name", &self.name)
            .field("sender_ids", &self.sender_ids)
            .finish_non_exhaustive()
    }
}

impl Partner {
    /// Our name for the partner.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn wants_certificate(&self) -> bool {
        !self.names.is_empty() || !self.fingerprints.is_empty()
    }

    fn certificate_allowed(&self, cert: &CertificateDer<'_>) -> bool {
        let digest: [u8; 32] = Sha256::digest(cert.as_ref()).into();
        if self.fingerprints.contains(&digest) {
            return true;
        }
        let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
            return false;
        };
        self.names
            .iter()
            .any(|name| ee.verify_is_valid_for_subject_name(name).is_ok())
    }

    fn token_valid(&self, token: &UsernameToken) -> bool {
        let (Some(username), Some(password)) = (&self.username, &self.password_digest) else {
            return false;
        };
        let user_ok = digest(username).ct_eq(&digest(&token.username));
        let password_ok = password.ct_eq(&digest(&token.password));
        let type_ok = token.password_type.is_empty() || token.password_type == PASSWORD_TEXT;
        bool::from(user_ok & password_ok) && type_ok
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Who may post, built from `[x12.soap_server]` and the resolved passwords.
#[derive(Debug, Default)]
pub struct Authenticator {
    partners: Vec<Partner>,
}

/// Every problem of the partner section that needs no secret: each partner
/// names SenderIDs and at least one way to authenticate, certificate rules
/// need `client_ca`, names and fingerprints parse, a username has exactly one
/// password source.
pub fn check(config: &SoapServerConfig) -> Vec<AuthConfigError> {
    let mut problems = Vec::new();
    for (i, partner) in config.partners.iter().enumerate() {
        let key = |field: &str| format!("x12.soap_server.partners[{i}]{field}");
        let mut problem = |field: &str, message: String| {
            problems.push(AuthConfigError {
                key: key(field),
                message,
            })
        };
        if partner.name.trim().is_empty() {
            problem(".name", "must not be empty".into());
        }
        if partner.sender_ids.iter().all(|s| s.trim().is_empty()) {
            problem(
                ".sender_ids",
                "list the CORE SenderIDs this partner may use".into(),
            );
        }
        let certificate =
            !partner.certificate_names.is_empty() || !partner.certificate_sha256.is_empty();
        if !certificate && partner.username.is_none() {
            problem(
                "",
                "configure `certificate_names`, `certificate_sha256` and/or `username`: a partner must authenticate".into(),
            );
        }
        if certificate && config.client_ca.is_none() {
            problem(
                ".certificate_names",
                "client certificates need `x12.soap_server.client_ca` (the CA bundle that verifies them)".into(),
            );
        }
        for name in &partner.certificate_names {
            if ServerName::try_from(name.clone()).is_err() {
                problem(
                    ".certificate_names",
                    format!("`{name}` is not a DNS name or IP address"),
                );
            }
        }
        for fingerprint in &partner.certificate_sha256 {
            if parse_fingerprint(fingerprint).is_none() {
                problem(
                    ".certificate_sha256",
                    "must be 64 hex digits (`:` separators allowed)".into(),
                );
            }
        }
        match (
            &partner.username,
            &partner.password_file,
            &partner.password_env,
        ) {
            (Some(u), _, _) if u.is_empty() => problem(".username", "must not be empty".into()),
            (Some(_), None, None) => problem(
                ".username",
                "a UsernameToken needs `password_file` or `password_env`".into(),
            ),
            (Some(_), Some(_), Some(_)) => problem(
                ".password_file",
                "give `password_file` or `password_env`, not both".into(),
            ),
            (None, Some(_), _) | (None, _, Some(_)) => problem(
                ".username",
                "a password without a `username` is never used".into(),
            ),
            _ => {}
        }
    }
    problems
}

/// Whether `listen` (HOST:PORT) is a loopback address.
pub fn is_loopback(listen: &str) -> bool {
    listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
}

/// The start rule: a SOAP server on a non-loopback address needs partner
/// authentication (at least one partner).
pub fn check_exposure(config: &SoapServerConfig) -> Option<AuthConfigError> {
    (config.partners.is_empty() && !is_loopback(&config.listen)).then(|| AuthConfigError {
        key: "x12.soap_server.partners".into(),
        message: format!(
            "the CORE SOAP server listens on non-loopback `{}` without partner authentication: configure [[x12.soap_server.partners]] (client certificates with `client_ca`, or a WS-Security UsernameToken)",
            config.listen
        ),
    })
}

fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex_text: String = text.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(hex_text).ok()?;
    bytes.try_into().ok()
}

impl Authenticator {
    /// Builds the authenticator; `passwords[i]` is the resolved password of
    /// `config.partners[i]` (`None` when it has no username).
    pub fn new(
        config: &SoapServerConfig,
        passwords: &[Option<String>],
    ) -> Result<Self, AuthConfigError> {
        if let Some(problem) = check(config).into_iter().next() {
            return Err(problem);
        }
        if let Some(problem) = check_exposure(config) {
            return Err(problem);
        }
        let mut partners = Vec::new();
        for (i, p) in config.partners.iter().enumerate() {
            let password = passwords.get(i).cloned().flatten();
            if p.username.is_some() && password.as_deref().is_none_or(str::is_empty) {
                return Err(AuthConfigError {
                    key: format!("x12.soap_server.partners[{i}].password_file"),
                    message: "the UsernameToken password is empty or missing".into(),
                });
            }
            partners.push(partner(p, password.as_deref()));
        }
        Ok(Authenticator { partners })
    }

    /// True when partners are configured (requests are authenticated).
    pub fn enforced(&self) -> bool {
        !self.partners.is_empty()
    }

    /// Authenticates a request by its (chain-verified) client certificate
    /// and UsernameToken, then checks `sender_id` belongs to the partner.
    /// `Ok(None)` when no partner is configured (a loopback server).
    pub fn authorize(
        &self,
        certificate: Option<&CertificateDer<'_>>,
        token: Option<&UsernameToken>,
        sender_id: &str,
    ) -> Result<Option<&Partner>, Refused> {
        self.check(certificate, token, Some(sender_id))
    }

    /// Authenticates a request whose envelope could not be read (no
    /// SenderID to check): an allowed partner gets the envelope error, anyone
    /// else the refusal.
    pub fn authenticate(
        &self,
        certificate: Option<&CertificateDer<'_>>,
        token: Option<&UsernameToken>,
    ) -> Result<Option<&Partner>, Refused> {
        self.check(certificate, token, None)
    }

    fn check(
        &self,
        certificate: Option<&CertificateDer<'_>>,
        token: Option<&UsernameToken>,
        sender_id: Option<&str>,
    ) -> Result<Option<&Partner>, Refused> {
        if self.partners.is_empty() {
            return Ok(None);
        }
        let matched: Vec<&Partner> = self
            .partners
            .iter()
            .filter(|p| {
                let cert_ok =
                    !p.wants_certificate() || certificate.is_some_and(|c| p.certificate_allowed(c));
                let token_ok = p.username.is_none() || token.is_some_and(|t| p.token_valid(t));
                cert_ok && token_ok
            })
            .collect();
        if matched.is_empty() {
            let (status, reason) = match (certificate, token) {
                (None, None) => (
                    401,
                    "no client certificate and no WS-Security UsernameToken".to_owned(),
                ),
                (Some(_), None) => (
                    403,
                    "the client certificate is not on any partner's allowlist".to_owned(),
                ),
                (_, Some(_)) => (
                    401,
                    "the credentials match no partner (certificate or UsernameToken)".to_owned(),
                ),
            };
            return Err(Refused {
                status,
                code: UNAUTHORIZED,
                reason,
                partner: None,
            });
        }
        let Some(sender_id) = sender_id else {
            return Ok(matched.first().copied());
        };
        match matched
            .iter()
            .find(|p| p.sender_ids.iter().any(|s| s == sender_id))
        {
            Some(partner) => Ok(Some(partner)),
            None => Err(Refused {
                status: 403,
                code: UNAUTHORIZED,
                reason: format!("the SenderID is not one of partner `{}`'s", matched[0].name),
                partner: Some(matched[0].name.clone()),
            }),
        }
    }
}

fn partner(p: &SoapPartnerConfig, password: Option<&str>) -> Partner {
    Partner {
        name: p.name.clone(),
        sender_ids: p.sender_ids.clone(),
        names: p
            .certificate_names
            .iter()
            .filter_map(|n| ServerName::try_from(n.clone()).ok())
            .collect(),
        fingerprints: p
            .certificate_sha256
            .iter()
            .filter_map(|f| parse_fingerprint(f))
            .collect(),
        username: p.username.clone(),
        password_digest: password.map(digest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerTlsConfig;

    fn server(listen: &str, partners: Vec<SoapPartnerConfig>) -> SoapServerConfig {
        SoapServerConfig {
            listen: listen.into(),
            path: "/core".into(),
            tls: ServerTlsConfig {
                cert: "c.pem".into(),
                key: "k.pem".into(),
            },
            core_rule_version: "2.2.0".into(),
            max_body_bytes: 1024,
            client_ca: Some("ca.pem".into()),
            partners,
            handshake_timeout_ms: 1000,
            max_connections: 4,
            header_read_timeout_secs: 10,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
        }
    }

    fn partner_cfg(name: &str, sender: &str) -> SoapPartnerConfig {
        SoapPartnerConfig {
            name: name.into(),
            sender_ids: vec![sender.into()],
            certificate_names: Vec::new(),
            certificate_sha256: Vec::new(),
            username: Some(format!("{name}-user")),
            password_file: Some("pw".into()),
            password_env: None,
        }
    }

    fn token(user: &str, password: &str) -> UsernameToken {
        UsernameToken {
            username: user.into(),
            password: password.into(),
            password_type: PASSWORD_TEXT.into(),
        }
    }

    #[test]
    fn a_public_address_needs_partners_and_partners_need_a_method() {
        let open = server("0.0.0.0:8443", Vec::new());
        let e = check_exposure(&open).expect("refused");
        assert_eq!(e.key, "x12.soap_server.partners");
        assert!(check_exposure(&server("127.0.0.1:8443", Vec::new())).is_none());
        assert!(Authenticator::new(&open, &[]).is_err());

        let mut bare = partner_cfg("a", "A");
        bare.username = None;
        bare.password_file = None;
        let problems = check(&server("0.0.0.0:1", vec![bare]));
        assert!(
            problems
                .iter()
                .any(|p| p.key == "x12.soap_server.partners[0]"),
            "{problems:?}"
        );
    }

    #[test]
    fn username_tokens_authenticate_and_the_sender_id_must_be_the_partners() {
        let config = server(
            "0.0.0.0:8443",
            vec![partner_cfg("a", "SENDERA"), partner_cfg("b", "SENDERB")],
        );
        let auth = Authenticator::new(&config, &[Some("secret-a".into()), Some("secret-b".into())])
            .expect("builds");
        let ok = auth
            .authorize(None, Some(&token("a-user", "secret-a")), "SENDERA")
            .expect("allowed");
        assert_eq!(ok.map(Partner::name), Some("a"));
        let wrong_sender = auth
            .authorize(None, Some(&token("a-user", "secret-a")), "SENDERB")
            .expect_err("another partner's SenderID");
        assert_eq!(
            (wrong_sender.status, wrong_sender.code),
            (403, UNAUTHORIZED)
        );
        let bad_password = auth
            .authorize(None, Some(&token("a-user", "secret-b")), "SENDERA")
            .expect_err("wrong password");
        assert_eq!(bad_password.status, 401);
        let nothing = auth.authorize(None, None, "SENDERA").expect_err("nothing");
        assert_eq!(nothing.status, 401);
        // An unreadable envelope: the credentials alone decide.
        assert!(
            auth.authenticate(None, Some(&token("a-user", "secret-a")))
                .is_ok()
        );
        assert_eq!(
            auth.authenticate(None, None).expect_err("nothing").status,
            401
        );
        let digest_type = UsernameToken {
            password_type: "…#PasswordDigest".into(),
            ..token("a-user", "secret-a")
        };
        assert!(auth.authorize(None, Some(&digest_type), "SENDERA").is_err());
    }
}
