//! Errors as RFC 9457 problem documents: one status per error kind, a
//! `detail` that says what to do, and `kind` for programs.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use polysync_provider_api::ErrorKind;
use serde::Serialize;

use crate::Error;

/// A problem document (`application/problem+json`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`about:blank` plus `kind`).
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// What happened and what to do.
    pub detail: String,
    /// The error's stable kind (`not_found`, `conflict`, ...).
    pub kind: String,
}

/// An error answered as a problem document.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub detail: String,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self { status, kind, detail: detail.into(), retry_after: None }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
}

/// The status of each error kind.
fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Config(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::InvalidInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        // A problem document is never a success: the API answers a pending
        // run with 202 and the run itself, not with this error.
        Error::Pending(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Catalog { .. } | Error::Io(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Provider(p) => match p.kind() {
            ErrorKind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Throttled => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            // The connection's provider cannot do this at all.
            ErrorKind::Unsupported => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_GATEWAY,
        },
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = status_of(&e);
        // An unauthorized answer from a platform is the platform refusing
        // polysync's credentials, not the caller's: say so.
        let detail = match (&e, status) {
            (Error::Provider(_), StatusCode::UNAUTHORIZED) => {
                format!("the platform refused polysync's credentials for this connection: {e}")
            }
            _ => e.to_string(),
        };
        let retry_after = match &e {
            Error::Provider(p) => p.retry_after().map(|d| d.as_secs().max(1)),
            _ => None,
        };
        Self { status, kind: e.kind(), detail, retry_after }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_owned();
        let problem = Problem {
            type_: format!("https://polysync.invalid/problems/{}", self.kind),
            title,
            status: self.status.as_u16(),
            detail: self.detail,
            kind: self.kind.to_owned(),
        };
        let mut response = (self.status, axum::Json(problem)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::TOO_MANY_REQUESTS || self.status == StatusCode::SERVICE_UNAVAILABLE {
            let secs = self.retry_after.unwrap_or(5).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED && self.kind == "unauthenticated" {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Every error answer of the server is a problem document, also those the
/// HTTP framework makes before a handler runs (a body over the limit, a
/// method the path does not take, a body that is not JSON or not the
/// document's shape, another content type), which it answers in plain text:
/// a client generated from the OpenAPI document expects problem+json for
/// every error and fails on anything else. The framework's own words stay
/// in `detail`, with what to do; the kind is the API's own (`invalid_input`
/// for every request the framework refused), the status says which.
pub async fn framework_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let said = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let said = String::from_utf8_lossy(&said).trim().to_owned();
    let allow = parts.headers.get(header::ALLOW).cloned();
    let (kind, detail) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("invalid_input", format!("the request body is over {} KiB; send a smaller one", super::BODY_LIMIT / 1024))
        }
        StatusCode::METHOD_NOT_ALLOWED => (
            "invalid_input",
            match allow.as_ref().and_then(|a| a.to_str().ok()) {
                Some(allowed) => format!("this path does not take {method}; it takes {allowed}"),
                None => format!("this path does not take {method}; /v1/openapi.json lists each path's methods"),
            },
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("invalid_input", format!("{said}; send the body as JSON with `Content-Type: application/json`"))
        }
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
            ("invalid_input", format!("{said}; see the request's schema in /v1/openapi.json"))
        }
        _ if said.is_empty() => ("error", status.canonical_reason().unwrap_or("error").to_owned()),
        _ => ("error", said),
    };
    let mut answer = ApiError::new(status, kind, detail).into_response();
    if let Some(allow) = allow {
        answer.headers_mut().insert(header::ALLOW, allow);
    }
    answer
}
