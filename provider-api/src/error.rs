//! The one error type that crosses the contract.
//!
//! A provider reports every failure as one [`ErrorKind`] from a fixed list
//! plus a message written for the person running the command: what failed
//! and what to do about it. The kind is what hosts branch on (retry, exit
//! code); the message is what they show.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The fixed list of failure kinds. New kinds may be appended in a minor API
/// version; a host that does not know one sees [`ErrorKind::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is wrong: a bad parameter, a malformed config field.
    InvalidInput,
    /// No credentials, or the platform rejected them (HTTP 401).
    Unauthorized,
    /// Authenticated but not allowed (HTTP 403, AccessDenied, RBAC).
    Forbidden,
    /// The entry, run or cluster does not exist.
    NotFound,
    /// A name or idempotency conflict the provider could not resolve itself.
    Conflict,
    /// The platform asked us to slow down; see [`ProviderError::retry_after`].
    Throttled,
    /// The platform could not be reached or answered 5xx.
    Unavailable,
    /// The operation did not finish in the time it was given.
    Timeout,
    /// The call was aborted by the caller.
    Cancelled,
    /// The provider does not implement this operation or option.
    Unsupported,
    /// A bug: a panic, a broken invariant, undecodable data.
    Internal,
    /// A kind this build does not know (sent by a newer peer).
    #[serde(other)]
    Unknown,
}

impl ErrorKind {
    /// Whether repeating the same call later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Throttled | Self::Unavailable | Self::Timeout)
    }

    /// Stable wire name (the serde spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "InvalidInput",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "NotFound",
            Self::Conflict => "Conflict",
            Self::Throttled => "Throttled",
            Self::Unavailable => "Unavailable",
            Self::Timeout => "Timeout",
            Self::Cancelled => "Cancelled",
            Self::Unsupported => "Unsupported",
            Self::Internal => "Internal",
            Self::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure reported by a provider. Serializes as
/// `{"kind": "...", "message": "...", "retry_after_ms": 1500}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    kind: ErrorKind,
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
    /// The platform certainly did not act on the request: it failed before
    /// anything was asked of the platform that could make something (the
    /// server refused the connection, the source could not be read). A host
    /// need not keep such a submission pending. API 1.4.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    not_applied: bool,
}

/// Shorthand used throughout the contract.
pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

impl ProviderError {
    /// An error of `kind` with a message that says what failed and what to do.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), retry_after_ms: None, not_applied: false }
    }

    /// Attach the platform's `Retry-After` (meaningful with `Throttled`).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after_ms = Some(after.as_millis().try_into().unwrap_or(u64::MAX));
        self
    }

    /// Say that the platform certainly did not act on the request.
    pub fn not_applied(mut self) -> Self {
        self.not_applied = true;
        self
    }

    /// The platform certainly did not act on the request (see
    /// [`not_applied`](Self::not_applied)); `false` when it may have.
    pub fn was_not_applied(&self) -> bool {
        self.not_applied
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms.map(Duration::from_millis)
    }

    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "the call was cancelled by the caller")
    }
}

/// An error and all its sources on one line (`a: b: c`). Transport
/// libraries keep the useful part (the OS or TLS reason) in the sources.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kind_from_a_newer_peer_decodes() {
        let e: ProviderError = serde_json::from_str(r#"{"kind":"QuotaExceeded","message":"m","extra":1}"#).unwrap();
        assert_eq!(e.kind(), ErrorKind::Unknown);
        assert_eq!(e.message(), "m");
    }

    #[test]
    fn retry_after_round_trips() {
        let e = ProviderError::new(ErrorKind::Throttled, "slow down").with_retry_after(Duration::from_millis(1500));
        let back: ProviderError = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back.retry_after(), Some(Duration::from_millis(1500)));
        assert!(back.is_retryable());
        assert!(!ProviderError::invalid_input("x").is_retryable());
    }
}
