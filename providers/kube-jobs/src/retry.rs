//! Bounded, jittered retries of transient API errors (429 honouring
//! `Retry-After`, 5xx, connection resets). 401/403 and other client errors
//! are returned at once.

use std::future::Future;
use std::time::Duration;

use polysync_provider_api::{Backoff, ProviderError};
use rand::RngExt;

use crate::error::{CallError, from_call, from_kube, is_transient};

/// How often and how long to retry (the plugins' one [`Backoff`]), and
/// how long one request may take.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    /// One request (not a watch or a followed log) gets no answer in this
    /// long: it fails at once, naming `endpoint`, instead of hanging. A
    /// server that accepts connections and never answers is not retried.
    pub timeout: Option<Duration>,
    /// The API server, for messages.
    pub endpoint: String,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            backoff: Backoff { attempts: 6, base: Duration::from_millis(100), cap: Duration::from_secs(5) },
            timeout: Some(Duration::from_secs(30)),
            endpoint: "the API server".into(),
        }
    }
}

impl RetryPolicy {
    /// Run `call` until it succeeds, fails for good, or attempts run out;
    /// the last error is returned as kube reported it (or as no answer).
    pub async fn run<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = match self.timeout {
                Some(limit) => match tokio::time::timeout(limit, call()).await {
                    Ok(a) => a,
                    Err(_) => return Err(CallError::TimedOut { endpoint: self.endpoint.clone(), limit }),
                },
                None => call().await,
            };
            match answer {
                Err(e) if is_transient(&e) && self.backoff.again(attempt) => {
                    let mapped = from_kube(e, what);
                    let wait = self.backoff.wait(attempt, mapped.retry_after(), rand::rng().random_range(0.5..=1.0));
                    tracing::debug!(attempt, ?wait, "retrying: {}", mapped.message());
                    tokio::time::sleep(wait).await;
                }
                other => return other.map_err(CallError::from),
            }
        }
    }

    /// [`run`](Self::run), with the error mapped to the contract.
    pub async fn call<T, F, Fut>(&self, what: &str, call: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        self.run(what, call).await.map_err(|e| from_call(e, what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(kube::core::Status { code, message: "m".into(), ..Default::default() }.boxed())
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_then_gives_up() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::default();
        let result: Result<(), _> = policy
            .call("listing", || async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err(api_error(503))
            })
            .await;
        assert_eq!(calls.load(Ordering::Relaxed), policy.backoff.attempts);
        assert_eq!(result.unwrap_err().kind(), polysync_provider_api::ErrorKind::Unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_auth_errors() {
        for (code, kind) in
            [(401, polysync_provider_api::ErrorKind::Unauthorized), (403, polysync_provider_api::ErrorKind::Forbidden)]
        {
            let calls = AtomicU32::new(0);
            let result: Result<(), _> = RetryPolicy::default()
                .call("x", || async {
                    calls.fetch_add(1, Ordering::Relaxed);
                    Err(api_error(code))
                })
                .await;
            assert_eq!(calls.load(Ordering::Relaxed), 1);
            assert_eq!(result.unwrap_err().kind(), kind);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn recovers_after_throttling() {
        let calls = AtomicU32::new(0);
        let result = RetryPolicy::default()
            .call("x", || async { if calls.fetch_add(1, Ordering::Relaxed) < 2 { Err(api_error(429)) } else { Ok(7) } })
            .await;
        assert_eq!(result.unwrap(), 7);
    }
}
