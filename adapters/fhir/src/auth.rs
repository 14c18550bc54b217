//! OAuth 2.0 client credentials for the EHR's FHIR API.
//!
//! Most cloud EHRs use **SMART Backend Services**: the client proves itself with a
//! short-lived JWT (`private_key_jwt`) signed by a key whose public half the EHR
//! holds in its JWKS. Per the SMART spec the assertion carries `iss` = `sub` =
//! client id, `aud` = the token URL, `exp` no more than five minutes ahead, a
//! unique `jti`, and the key id in the `kid` header; RS384 and ES384 are the
//! required algorithms. Some vendors instead issue a plain client secret
//! (`client_secret_basic` or `client_secret_post`).
//!
//! [`TokenProvider`] caches the access token and fetches a new one shortly before
//! it expires (a fifth of its lifetime, at most a minute, early) and whenever the
//! FHIR server answers 401 for the token it holds ([`TokenProvider::invalidate`]).
//! One fetch at a time: concurrent callers wait on the same lock instead of
//! stampeding the token endpoint.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk, jwk::JwkSet};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// JWT signing algorithms SMART Backend Services requires servers to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// ECDSA P-384 with SHA-384.
    ES384,
}

impl SigningAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            SigningAlgorithm::RS384 => Algorithm::RS384,
            SigningAlgorithm::ES384 => Algorithm::ES384,
        }
    }
}

/// How a client secret is presented to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretMethod {
    /// HTTP Basic authentication header.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// How the adapter authenticates to the EHR (the `[fhir.auth]` config section).
/// `Debug` redacts the client secret, so printing a config never leaks it.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// SMART Backend Services: client_credentials with a signed client assertion.
    SmartBackend {
        /// The OAuth token endpoint (also the assertion's `aud`).
        token_url: String,
        /// The client id registered with the EHR.
        client_id: String,
        /// PEM file with the private key (PKCS#8 for EC; PKCS#1 or #8 for RSA).
        private_key_file: PathBuf,
        /// RS384 or ES384.
        algorithm: SigningAlgorithm,
        /// Key id published in our JWKS; sent as the JWT `kid` header.
        kid: String,
        /// Scopes to request; the profile's scopes when absent.
        #[serde(default)]
        scopes: Option<Vec<String>>,
    },
    /// OAuth client credentials with a shared secret.
    ClientSecret {
        /// The OAuth token endpoint.
        token_url: String,
        /// The client id.
        client_id: String,
        /// The secret itself (prefer `client_secret_file`).
        #[serde(default)]
        client_secret: Option<String>,
        /// A file holding the secret (trailing whitespace is ignored).
        #[serde(default)]
        client_secret_file: Option<PathBuf>,
        /// Basic header or form post.
        method: SecretMethod,
        /// Scopes to request; the profile's scopes when absent.
        #[serde(default)]
        scopes: Option<Vec<String>>,
    },
    /// No authorization (a FHIR server on a private network, tests).
    None,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthConfig::SmartBackend {
                token_url,
                client_id,
                private_key_file,
                algorithm,
                kid,
                scopes,
            } => f
                .debug_struct("SmartBackend")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .field("private_key_file", private_key_file)
                .field("algorithm", algorithm)
                .field("kid", kid)
                .field("scopes", scopes)
                .finish(),
            AuthConfig::ClientSecret {
                token_url,
                client_id,
                client_secret,
                client_secret_file,
                method,
                scopes,
            } => f
                .debug_struct("ClientSecret")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .field(
                    "client_secret",
                    &client_secret.as_ref().map(|_| "<redacted>"),
                )
                .field("client_secret_file", client_secret_file)
                .field("method", method)
                .field("scopes", scopes)
                .finish(),
            AuthConfig::None => f.write_str("None"),
        }
    }
}

/// Token acquisition failures.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The key or secret could not be loaded.
    #[error("credentials unusable: {0}")]
    Credentials(String),
    /// Signing the client assertion failed.
    #[error("cannot sign client assertion: {0}")]
    Signing(String),
    /// The token endpoint could not be reached or timed out.
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    /// The token endpoint refused the request.
    #[error("token endpoint refused ({status}): {error}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// OAuth `error` code (`invalid_client`, …), never the description.
        error: String,
    },
    /// The token response was not understood.
    #[error("token response unusable: {0}")]
    BadResponse(String),
}

impl AuthError {
    /// Whether trying again later may help (endpoint down, 5xx, 429).
    pub fn retryable(&self) -> bool {
        match self {
            AuthError::Unreachable(_) => true,
            AuthError::Refused { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

enum Credentials {
    Assertion {
        token_url: String,
        client_id: String,
        key: EncodingKey,
        algorithm: SigningAlgorithm,
        kid: String,
    },
    Secret {
        token_url: String,
        client_id: String,
        secret: String,
        method: SecretMethod,
    },
    None,
}

/// Token URL, basic-auth credentials (id, secret) if any, form body.
type TokenRequest<'a> = (&'a str, Option<(&'a str, &'a str)>, String);

struct CachedToken {
    token: String,
    refresh_at: Instant,
}

/// Claims of a SMART Backend Services client assertion.
#[derive(Debug, Serialize, Deserialize)]
pub struct AssertionClaims {
    /// Issuer: the client id.
    pub iss: String,
    /// Subject: the client id.
    pub sub: String,
    /// Audience: the token URL.
    pub aud: String,
    /// Expiry, seconds since the epoch (at most 5 minutes ahead).
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Unique token id (UUID v4).
    pub jti: String,
}

/// Lifetime of a client assertion; SMART allows at most five minutes.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(240);

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenErrorBody {
    error: String,
}

/// Fetches and caches access tokens for one EHR.
pub struct TokenProvider {
    http: reqwest::Client,
    credentials: Credentials,
    scopes: String,
    cache: Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl TokenProvider {
    /// Builds a provider; loads the private key or secret now so that a bad
    /// file fails at startup. `default_scopes` come from the vendor profile and
    /// are used when the config names none.
    pub fn new(
        config: &AuthConfig,
        default_scopes: &[String],
        http: reqwest::Client,
    ) -> Result<Self, AuthError> {
        let pick_scopes = |own: &Option<Vec<String>>| {
            own.as_deref()
                .unwrap_or(default_scopes)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (credentials, scopes) = match config {
            AuthConfig::SmartBackend {
                token_url,
                client_id,
                private_key_file,
                algorithm,
                kid,
                scopes,
            } => {
                let pem = std::fs::read(private_key_file).map_err(|e| {
                    AuthError::Credentials(format!(
                        "cannot read {}: {}",
                        private_key_file.display(),
                        e.kind()
                    ))
                })?;
                let key = load_key(&pem, *algorithm)?;
                (
                    Credentials::Assertion {
                        token_url: token_url.clone(),
                        client_id: client_id.clone(),
                        key,
                        algorithm: *algorithm,
                        kid: kid.clone(),
                    },
                    pick_scopes(scopes),
                )
            }
            AuthConfig::ClientSecret {
                token_url,
                client_id,
                client_secret,
                client_secret_file,
                method,
                scopes,
            } => {
                let secret = match (client_secret, client_secret_file) {
                    (Some(s), None) => s.clone(),
                    (None, Some(path)) => std::fs::read_to_string(path)
                        .map_err(|e| {
                            AuthError::Credentials(format!(
                                "cannot read {}: {}",
                                path.display(),
                                e.kind()
                            ))
                        })?
                        .trim_end()
                        .to_owned(),
                    _ => {
                        return Err(AuthError::Credentials(
                            "set exactly one of client_secret and client_secret_file".into(),
                        ));
                    }
                };
                (
                    Credentials::Secret {
                        token_url: token_url.clone(),
                        client_id: client_id.clone(),
                        secret,
                        method: *method,
                    },
                    pick_scopes(scopes),
                )
            }
            AuthConfig::None => (Credentials::None, String::new()),
        };
        Ok(TokenProvider {
            http,
            credentials,
            scopes,
            cache: Mutex::new(None),
        })
    }

    /// The space-separated scopes this provider requests.
    pub fn scopes(&self) -> &str {
        &self.scopes
    }

    /// A valid access token, fetched if none is cached or the cached one is
    /// close to expiry; `None` when the EHR needs no authorization.
    pub async fn bearer(&self) -> Result<Option<String>, AuthError> {
        if matches!(self.credentials, Credentials::None) {
            return Ok(None);
        }
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() < cached.refresh_at
        {
            return Ok(Some(cached.token.clone()));
        }
        let fetched = self.fetch().await?;
        let token = fetched.token.clone();
        *cache = Some(fetched);
        Ok(Some(token))
    }

    /// Drops `token` from the cache (the server answered 401 for it), so the
    /// next [`TokenProvider::bearer`] fetches a new one. A token another task
    /// already replaced is left alone.
    pub async fn invalidate(&self, token: &str) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| c.token == token) {
            *cache = None;
        }
    }

    /// A fresh signed client assertion (`None` unless SMART Backend Services).
    pub fn client_assertion(&self) -> Result<Option<String>, AuthError> {
        let Credentials::Assertion {
            token_url,
            client_id,
            key,
            algorithm,
            kid,
        } = &self.credentials
        else {
            return Ok(None);
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = AssertionClaims {
            iss: client_id.clone(),
            sub: client_id.clone(),
            aud: token_url.clone(),
            exp: now + ASSERTION_LIFETIME.as_secs(),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(algorithm.jwt());
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, &claims, key)
            .map(Some)
            .map_err(|e| AuthError::Signing(e.to_string()))
    }

    /// The token URL, optional basic credentials and the form body.
    fn token_request(&self) -> Result<TokenRequest<'_>, AuthError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !self.scopes.is_empty() {
            form.append_pair("scope", &self.scopes);
        }
        let (token_url, basic) = match &self.credentials {
            Credentials::Assertion { token_url, .. } => {
                let assertion = self.client_assertion()?.unwrap_or_default();
                form.append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                );
                form.append_pair("client_assertion", &assertion);
                (token_url.as_str(), None)
            }
            Credentials::Secret {
                token_url,
                client_id,
                secret,
                method,
            } => match method {
                SecretMethod::ClientSecretBasic => (
                    token_url.as_str(),
                    Some((client_id.as_str(), secret.as_str())),
                ),
                SecretMethod::ClientSecretPost => {
                    form.append_pair("client_id", client_id);
                    form.append_pair("client_secret", secret);
                    (token_url.as_str(), None)
                }
            },
            Credentials::None => return Err(AuthError::Credentials("no credentials".into())),
        };
        Ok((token_url, basic, form.finish()))
    }

    async fn fetch(&self) -> Result<CachedToken, AuthError> {
        let (token_url, basic, body) = self.token_request()?;
        let mut request = self
            .http
            .post(token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body);
        if let Some((id, secret)) = basic {
            // RFC 6749 §2.3.1: both parts form-urlencoded before base64.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(enc(id), Some(enc(secret)));
        }
        let started = Instant::now();
        let response = request
            .send()
            .await
            .map_err(|e| AuthError::Unreachable(describe_reqwest(&e)))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| AuthError::Unreachable(describe_reqwest(&e)))?;
        if !(200..300).contains(&status) {
            let error = serde_json::from_slice::<TokenErrorBody>(&body)
                .map(|b| b.error)
                .unwrap_or_else(|_| "unspecified".into());
            tracing::warn!(status, error = %error, "token endpoint refused the client");
            return Err(AuthError::Refused { status, error });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| AuthError::BadResponse(format!("not a token response ({e})")))?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(300));
        let margin = (lifetime / 5).min(Duration::from_secs(60));
        tracing::debug!(lifetime_s = lifetime.as_secs(), "access token fetched");
        Ok(CachedToken {
            token: parsed.access_token,
            refresh_at: started + lifetime.saturating_sub(margin),
        })
    }
}

fn load_key(pem: &[u8], algorithm: SigningAlgorithm) -> Result<EncodingKey, AuthError> {
    let key = match algorithm {
        SigningAlgorithm::RS384 => EncodingKey::from_rsa_pem(pem),
        SigningAlgorithm::ES384 => EncodingKey::from_ec_pem(pem),
    };
    key.map_err(|e| {
        AuthError::Credentials(format!(
            "private key is not a usable {algorithm:?} PEM key ({e})"
        ))
    })
}

/// The public JWKS for a private key PEM: what is registered with the EHR
/// (and what the test token endpoint verifies against).
pub fn public_jwks(
    pem: &[u8],
    algorithm: SigningAlgorithm,
    kid: &str,
) -> Result<JwkSet, AuthError> {
    let key = load_key(pem, algorithm)?;
    let mut jwk = Jwk::from_encoding_key(&key, algorithm.jwt())
        .map_err(|e| AuthError::Credentials(e.to_string()))?;
    jwk.common.key_id = Some(kid.to_owned());
    Ok(JwkSet { keys: vec![jwk] })
}

/// A transport error in words, without URLs' query strings or bodies.
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body could not be read"
    } else if e.is_request() {
        "request could not be sent"
    } else {
        "transport error"
    };
    match e.status() {
        Some(s) => format!("{what} (status {s})"),
        None => what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret() {
        let config = AuthConfig::ClientSecret {
            token_url: "https://ehr.example/token".into(),
            client_id: "gw".into(),
            client_secret: Some("s3cret-value".into()),
            client_secret_file: None,
            method: SecretMethod::ClientSecretPost,
            scopes: None,
        };
        let text = format!("{config:?}");
        assert!(
            !text.contains("s3cret-value") && text.contains("<redacted>"),
            "{text}"
        );
    }
}
