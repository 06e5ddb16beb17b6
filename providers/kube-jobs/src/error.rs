//! kube errors as the contract's error kinds, with messages that say what
//! to fix.

use std::time::Duration;

use polysync_provider_api::{ErrorKind, ProviderError};

/// The end of a 401's message; cloud providers replace it with their own
/// ([`crate::KubeJobs::with_unauthorized_hint`]).
pub const UNAUTHORIZED_HINT: &str = "check the kubeconfig user, token or cloud credential";

/// Why one API call failed: the cluster answered with an error, or did not
/// answer in time (a server that accepts connections and never answers).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(
        "{endpoint} did not answer within {limit:?}; check that the endpoint is reachable, or raise `request_timeout`"
    )]
    TimedOut { endpoint: String, limit: Duration },
}

impl CallError {
    /// The HTTP status the cluster answered with, if it answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Kube(e) => code(e),
            Self::TimedOut { .. } => None,
        }
    }
}

/// Map a failed call made while doing `what` to the contract.
pub fn from_call(err: CallError, what: &str) -> ProviderError {
    match err {
        CallError::Kube(e) => from_kube(e, what),
        timed_out @ CallError::TimedOut { .. } => {
            ProviderError::new(ErrorKind::Timeout, format!("{what}: {timed_out}"))
        }
    }
}

/// Map a kube error met while doing `what` (e.g. "listing Jobs in default").
pub fn from_kube(err: kube::Error, what: &str) -> ProviderError {
    match err {
        kube::Error::Api(status) => {
            let msg = if status.message.is_empty() { status.reason.clone() } else { status.message.clone() };
            match status.code {
                400 => ProviderError::new(
                    ErrorKind::InvalidInput,
                    format!("{what}: the cluster rejected the request: {msg}"),
                ),
                401 => ProviderError::new(
                    ErrorKind::Unauthorized,
                    format!("{what}: the cluster rejected the credentials (401 {msg}); {UNAUTHORIZED_HINT}"),
                ),
                403 => ProviderError::new(
                    ErrorKind::Forbidden,
                    format!(
                        "{what}: RBAC denied it ({msg}); grant the polysync Role (jobs, cronjobs, pods, pods/log, events) in this namespace"
                    ),
                ),
                404 => ProviderError::new(ErrorKind::NotFound, format!("{what}: {msg}")),
                409 => ProviderError::new(ErrorKind::Conflict, format!("{what}: {msg}")),
                410 => ProviderError::new(ErrorKind::Unavailable, format!("{what}: {msg}; retry")),
                422 => ProviderError::new(
                    ErrorKind::InvalidInput,
                    format!("{what}: the cluster rejected the object: {msg}"),
                ),
                429 => {
                    let after = status.details.as_ref().map(|d| d.retry_after_seconds).filter(|s| *s > 0).unwrap_or(1);
                    ProviderError::new(
                        ErrorKind::Throttled,
                        format!("{what}: the cluster is throttling requests ({msg})"),
                    )
                    .with_retry_after(Duration::from_secs(u64::from(after)))
                }
                500..=599 => ProviderError::new(
                    ErrorKind::Unavailable,
                    format!("{what}: the API server failed ({} {msg}); retry later", status.code),
                ),
                code => ProviderError::new(ErrorKind::Internal, format!("{what}: unexpected answer {code} {msg}")),
            }
        }
        kube::Error::HyperError(e) => unreachable_cluster(what, &e),
        // A token source's own error (no cloud credentials, say) says best
        // what to fix.
        kube::Error::Service(e) => match token_error(&*e) {
            Some(err) => ProviderError::new(err.kind(), format!("{what}: {}", err.message())),
            None => unreachable_cluster(what, &*e),
        },
        kube::Error::Auth(e) => ProviderError::new(
            ErrorKind::Unauthorized,
            format!("{what}: could not get credentials for the cluster: {e}"),
        ),
        other => ProviderError::new(ErrorKind::Internal, format!("{what}: {other}")),
    }
}

fn unreachable_cluster(what: &str, e: &dyn std::error::Error) -> ProviderError {
    let text = polysync_provider_api::error::chain(e);
    ProviderError::new(
        ErrorKind::Unavailable,
        format!("{what}: could not reach the API server ({text}); check the server address, network and TLS settings"),
    )
}

/// The API server refused the TCP connection: nothing was sent.
pub fn connection_refused(err: &kube::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return true;
        }
        current = e.source();
    }
    false
}

/// The HTTP code of an API error, if it is one.
pub fn code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Whether repeating the call may help: throttling, 5xx, transport errors.
pub fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(s) => s.code == 429 || (500..=599).contains(&s.code),
        kube::Error::Service(e) => token_error(&**e).is_none_or(ProviderError::is_retryable),
        kube::Error::HyperError(_) => true,
        _ => false,
    }
}

/// The [`ProviderError`] a [`TokenSource`](crate::bearer::TokenSource)
/// returned, found anywhere in a service error's chain.
fn token_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a ProviderError> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<ProviderError>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod refused_tests {
    #[test]
    fn an_api_error_is_not_a_refused_connection() {
        let e = kube::Error::Api(kube::core::Status { code: 503, message: "m".into(), ..Default::default() }.boxed());
        assert!(!super::connection_refused(&e));
    }
}
