//! Errors as RFC 9457 problem documents: one status per error kind, a
//! `detail` that says what to do, and `kind` for programs.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use polysync_provider_api::ErrorKind;
use serde::Serialize;

use crate::Error;

/// A problem document (RFC 9457, `application/problem+json`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// The problem type, a URI reference resolved against the server:
    /// `/v1/problems/{kind}`, a page that describes the kind.
    #[serde(rename = "type")]
    #[schema(format = "uri-reference")]
    pub type_: String,
    /// The HTTP status's name.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened and what to do.
    pub detail: String,
    /// The error's stable kind, for programs: one of those `/v1/problems` lists.
    #[schema(pattern = "^[a-z_]+$")]
    pub kind: String,
}

/// Every kind a problem document (and the CLI's `--output json`) names,
/// what it means and what to do: the page of each problem type.
pub const KINDS: &[(&str, &str)] = &[
    (
        "invalid_input",
        "The request is wrong: a parameter, the body, its size or content type, or the method. `detail` names what and how to fix it; sending it again unchanged fails again.",
    ),
    (
        "config",
        "A connection's configuration is wrong (a setting, a credential reference). Fix the server's configuration file.",
    ),
    (
        "unauthenticated",
        "No bearer token, or one the server does not accept: send `Authorization: Bearer TOKEN` with one of the server's tokens.",
    ),
    (
        "unauthorized",
        "The platform refused polysync's credentials for this connection: they expired or are wrong. Fix them in the server's configuration.",
    ),
    (
        "forbidden",
        "The platform's RBAC or IAM does not allow polysync this action: grant it (docs/configuration.md lists each provider's permissions).",
    ),
    ("not_found", "What the request names does not exist: a connection, an entry (sync first), a run, a sync, a path."),
    (
        "conflict",
        "The request collides with what exists: an Idempotency-Key already used for another request, or a sync of the connection already running.",
    ),
    ("throttled", "The platform throttles polysync: retry after `Retry-After` seconds."),
    (
        "unavailable",
        "The platform cannot be reached or answered that it is unavailable: retry after `Retry-After` seconds.",
    ),
    ("timeout", "The platform did not answer in time: retry."),
    (
        "catalog",
        "polysync's catalog (SQLite or PostgreSQL) cannot be reached or failed: retry after `Retry-After` seconds; `detail` says what to check.",
    ),
    ("io", "A local file or socket could not be used on the server: `detail` names it and the system's reason."),
    ("sandbox", "The embedded sandbox cluster did not start (`polysync demo`, `polysync sandbox`): `detail` says why."),
    (
        "callback",
        "A run's completion callback was not delivered after every attempt; the next follower of the run tries again.",
    ),
    (
        "pending",
        "The platform did not answer a submission: the run is recorded and pending; a replica finishes it with the same key.",
    ),
    (
        "unsupported",
        "The connection's provider cannot do this (for example, list clusters of a plain Kubernetes connection).",
    ),
    ("cancelled", "The platform cancelled the operation."),
    ("internal", "The platform or a plugin failed in a way it did not explain: retry, and report it if it stays."),
    ("unknown", "The platform failed with an error polysync does not know: `detail` has its words."),
];

/// The page of one problem type (`/v1/problems/{kind}`), or of all.
pub async fn describe(path: Option<axum::extract::Path<String>>) -> Response {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let kinds: Vec<&(&str, &str)> = match &path {
        Some(axum::extract::Path(kind)) => KINDS.iter().filter(|(k, _)| k == kind).collect(),
        None => KINDS.iter().collect(),
    };
    if kinds.is_empty() {
        return ApiError::not_found("no such problem type; /v1/problems lists them").into_response();
    }
    let mut body = String::from(
        "<!doctype html><meta charset=utf-8><title>polysync problem types</title><h1>polysync problem types</h1><dl>",
    );
    for (kind, what) in kinds {
        body.push_str(&format!("<dt id=\"{kind}\"><code>{kind}</code></dt><dd>{}</dd>", esc(what)));
    }
    body.push_str("</dl>");
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
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
        Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        // A problem document is never a success: the API answers a pending
        // run with 202 and the run itself, not with this error.
        Error::Pending(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Catalog { .. } | Error::Io { .. } | Error::Sandbox(_) | Error::Callback { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::Task { .. } => StatusCode::INTERNAL_SERVER_ERROR,
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

impl ApiError {
    /// The problem document it is answered as.
    pub fn problem(&self) -> Problem {
        Problem {
            type_: format!("/v1/problems/{}", self.kind),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            kind: self.kind.to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
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
        _ if said.is_empty() => ("internal", status.canonical_reason().unwrap_or("error").to_owned()),
        _ => ("internal", said),
    };
    let mut answer = ApiError::new(status, kind, detail).into_response();
    if let Some(allow) = allow {
        answer.headers_mut().insert(header::ALLOW, allow);
    }
    answer
}

#[cfg(test)]
mod tests {
    use polysync_provider_api::ProviderError;

    use super::*;

    /// Every kind an error can have (the CLI's `--output json` and the
    /// problem documents share them) has a page under /v1/problems.
    #[test]
    fn every_error_kind_has_a_problem_page() {
        let io = || std::io::Error::other("x");
        let task = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async { tokio::spawn(async { panic!("boom") }).await.unwrap_err() });
        let mut errors = vec![
            Error::Config("x".into()),
            Error::InvalidInput("x".into()),
            Error::NotFound(crate::error::Missing::Run { reference: "x".into() }),
            Error::Catalog { store: "s".into(), message: "x".into(), source: None },
            Error::Timeout { run: 1, platform_id: "x".into(), limit: std::time::Duration::from_secs(1) },
            Error::Io { context: "x".into(), source: io() },
            Error::Sandbox(Box::new(io())),
            Error::Task { context: "x", source: task },
            Error::Callback { run: 1, url: "u".into(), last: "x".into(), attempts: 1 },
            Error::Conflict(crate::error::Clash::SyncRunning {
                connection: "x".into(),
                holder: None,
                since: crate::store::Stamp::now(),
            }),
            Error::Pending(crate::error::Unanswered { run: 1, platform_said: "x".into() }),
        ];
        for kind in [
            ErrorKind::InvalidInput,
            ErrorKind::Unauthorized,
            ErrorKind::Forbidden,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Throttled,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Cancelled,
            ErrorKind::Unsupported,
            ErrorKind::Internal,
        ] {
            errors.push(Error::Provider(ProviderError::new(kind, "x")));
        }
        for e in errors {
            assert!(KINDS.iter().any(|(k, _)| *k == e.kind()), "no problem page for {:?} ({e})", e.kind());
        }
    }
}
