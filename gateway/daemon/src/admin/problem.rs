//! RFC 9457 problem details (`application/problem+json`): every error the
//! admin server returns is one, with a specific `detail` (no PHI) and, for
//! request-body problems, the JSON pointer of the offending member.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One problem response (boxed: it travels in `Err` variants).
#[derive(Debug, Clone)]
pub struct Problem(Box<Details>);

/// The members of a problem body.
#[derive(Debug, Clone)]
struct Details {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    pointer: Option<String>,
    extra: Option<serde_json::Value>,
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem with `status`, a type slug, a title and a specific detail.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem(Box::new(Details {
            status,
            slug,
            title,
            detail: detail.into(),
            pointer: None,
            extra: None,
            retry_after: None,
        }))
    }

    /// 401: missing or wrong bearer token.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// 403: the caller is known but lacks the role (or the CSRF token).
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// 409: the resource is not in a state that allows this.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// 404: the named resource does not exist.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// 503: a dependency is unavailable; try again.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        );
        p.0.retry_after = Some(5);
        p
    }

    /// Adds the JSON pointer of the offending request member.
    pub fn at(mut self, pointer: impl Into<String>) -> Self {
        self.0.pointer = Some(pointer.into());
        self
    }

    /// 429 with `Retry-After: secs`.
    pub fn too_many(detail: impl Into<String>, secs: u64) -> Self {
        let mut p = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "Too many requests",
            detail,
        );
        p.0.retry_after = Some(secs.max(1));
        p
    }

    /// Adds extension members (merged into the body).
    pub fn with_extra(mut self, extra: serde_json::Value) -> Self {
        self.0.extra = Some(extra);
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The problem type's slug (`invalid-decision`): what an audit row names.
    pub fn slug(&self) -> &'static str {
        self.0.slug
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let this = *self.0;
        let mut body = json!({
            "type": format!("urn:ehr-gateway:problem:{}", this.slug),
            "title": this.title,
            "status": this.status.as_u16(),
            "detail": this.detail,
        });
        if let Some(pointer) = &this.pointer {
            body["errors"] = json!([{ "pointer": pointer, "detail": this.detail }]);
        }
        if let (Some(serde_json::Value::Object(extra)), Some(map)) =
            (this.extra, body.as_object_mut())
        {
            for (k, v) in extra {
                map.insert(k, v);
            }
        }
        let mut response = (this.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if this.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ehr-gateway\""),
            );
        }
        if let Some(secs) = this.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
