//! Short-lived bearer tokens for clusters that authenticate with a cloud
//! identity (EKS: a presigned STS URL valid 15 minutes; AKS with Entra ID:
//! an OAuth token valid about an hour).
//!
//! kube's own token refresh only covers kubeconfig `exec` plugins and files,
//! which would mean shelling out to `aws` or `kubelogin`. Instead the plugin
//! gives a [`TokenSource`]; [`client`] builds a `kube::Client` whose outermost
//! layer puts the current token on every request, fetches a new one a margin
//! before it expires, and on a 401 fetches a new one and repeats the request
//! once. A run watched for hours therefore never fails on an expired token,
//! and a token revoked early costs one extra round trip.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::{HeaderValue, Request, Response, StatusCode, header};
use kube::client::Body;
use polysync_provider_api::{ErrorKind, ProviderError};
use tower::{BoxError, Layer, Service, ServiceExt};

/// A bearer token and when the cluster stops accepting it.
#[derive(Clone)]
pub struct Token {
    pub secret: String,
    pub expires_at: SystemTime,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("Token").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// Where tokens come from (a cloud SDK credential, an STS presigner).
#[async_trait]
pub trait TokenSource: Send + Sync + 'static {
    async fn fetch(&self) -> Result<Token, ProviderError>;

    /// The cluster refused the last token: drop any cache of the source's
    /// own (a cloud SDK's), so the next fetch really asks again.
    fn invalidate(&self) {}
}

/// The time, injectable so that expiry is tested without sleeping.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The current token of one connection, fetched again `margin` before it
/// expires or when the cluster has refused it.
pub struct TokenCache {
    source: Box<dyn TokenSource>,
    clock: Box<dyn Clock>,
    margin: Duration,
    current: Mutex<Option<Token>>,
    // Serializes fetches: many concurrent requests after expiry make one.
    fetching: tokio::sync::Mutex<()>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache").field("margin", &self.margin).finish_non_exhaustive()
    }
}

impl TokenCache {
    pub fn new(source: impl TokenSource, margin: Duration) -> Self {
        Self::with_clock(source, margin, SystemClock)
    }

    pub fn with_clock(source: impl TokenSource, margin: Duration, clock: impl Clock) -> Self {
        Self {
            source: Box::new(source),
            clock: Box::new(clock),
            margin,
            current: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<String> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let token = current.as_ref()?;
        let refresh_at = token.expires_at.checked_sub(self.margin)?;
        (self.clock.now() < refresh_at).then(|| token.secret.clone())
    }

    /// A token that is valid for at least the margin.
    pub async fn token(&self) -> Result<String, ProviderError> {
        if let Some(secret) = self.fresh() {
            return Ok(secret);
        }
        let _one_fetch = self.fetching.lock().await;
        if let Some(secret) = self.fresh() {
            return Ok(secret);
        }
        let token = self.source.fetch().await?;
        tracing::debug!(expires_at = ?token.expires_at, "fetched a new cluster token");
        let secret = token.secret.clone();
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
        Ok(secret)
    }

    /// The cluster refused `secret`: forget it unless a newer one already
    /// replaced it.
    pub fn reject(&self, secret: &str) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|t| t.secret == secret) {
            *current = None;
            self.source.invalidate();
        }
    }
}

/// A client for `config` (its own auth is ignored) that authenticates every
/// request with a token from `tokens`. kube's retry layer is off as in
/// [`crate::connect::client`].
pub fn client(mut config: kube::Config, tokens: Arc<TokenCache>) -> Result<kube::Client, ProviderError> {
    config.default_retry = false;
    config.auth_info = Default::default();
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| ProviderError::invalid_input(format!("could not build a Kubernetes client: {e}")))?;
    Ok(builder.with_layer(&BearerLayer { tokens }).build())
}

/// The tower layer behind [`client`].
#[derive(Debug, Clone)]
pub struct BearerLayer {
    tokens: Arc<TokenCache>,
}

impl<S> Layer<S> for BearerLayer
where
    S: Service<Request<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + Sync + 'static,
    S::Response: Send + 'static,
{
    type Service = Bearer<S>;

    fn layer(&self, inner: S) -> Bearer<S> {
        // A 401 repeats the request, so the inner stack must be callable
        // twice from one future: a buffer makes it cloneable.
        Bearer { inner: tower::buffer::Buffer::new(inner, 1024), tokens: self.tokens.clone() }
    }
}

/// See [`BearerLayer`].
pub struct Bearer<S: Service<Request<Body>>> {
    inner: tower::buffer::Buffer<Request<Body>, S::Future>,
    tokens: Arc<TokenCache>,
}

impl<S: Service<Request<Body>>> fmt::Debug for Bearer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bearer").finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<Body>> for Bearer<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + Sync + 'static,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // `poll_ready` reserved a slot in this instance; the retry uses a
        // fresh clone that waits for its own.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        let tokens = self.tokens.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // Streaming bodies cannot be replayed; kube's are all buffered.
            let replay = body.try_clone();
            let secret = tokens.token().await.map_err(BoxError::from)?;
            let response = send(inner.clone(), &parts, body, &secret).await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let Some(body) = replay else { return Ok(response) };
            tracing::info!("the cluster refused the token (401); fetching a new one and repeating the request");
            tokens.reject(&secret);
            let secret = tokens.token().await.map_err(BoxError::from)?;
            send(inner, &parts, body, &secret).await
        })
    }
}

async fn send<S>(mut inner: S, parts: &http::request::Parts, body: Body, secret: &str) -> Result<S::Response, BoxError>
where
    S: Service<Request<Body>, Error = BoxError>,
{
    let mut request = Request::from_parts(parts.clone(), body);
    let mut value = HeaderValue::from_str(&format!("Bearer {secret}"))
        .map_err(|_| ProviderError::new(ErrorKind::Internal, "the cluster token is not a valid header value"))?;
    value.set_sensitive(true);
    request.headers_mut().insert(header::AUTHORIZATION, value);
    inner.ready().await?.call(request).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// Numbered tokens valid 15 minutes from the (fake) time of fetching.
    struct Counting {
        fetched: Arc<AtomicU64>,
        now: Arc<AtomicU64>,
    }

    #[async_trait]
    impl TokenSource for Counting {
        async fn fetch(&self) -> Result<Token, ProviderError> {
            let n = self.fetched.fetch_add(1, Ordering::SeqCst) + 1;
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(self.now.load(Ordering::SeqCst));
            Ok(Token { secret: format!("token-{n}"), expires_at: now + Duration::from_secs(15 * 60) })
        }
    }

    struct Fake(Arc<AtomicU64>);

    impl Clock for Fake {
        fn now(&self) -> SystemTime {
            SystemTime::UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
        }
    }

    fn cache() -> (TokenCache, Arc<AtomicU64>, Arc<AtomicU64>) {
        let (fetched, now) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(1_000_000)));
        let source = Counting { fetched: fetched.clone(), now: now.clone() };
        (TokenCache::with_clock(source, Duration::from_secs(60), Fake(now.clone())), fetched, now)
    }

    #[tokio::test]
    async fn refreshes_a_margin_before_expiry_and_not_sooner() {
        let (cache, fetched, now) = cache();
        assert_eq!(cache.token().await.unwrap(), "token-1");
        now.fetch_add(13 * 60 + 59, Ordering::SeqCst);
        assert_eq!(cache.token().await.unwrap(), "token-1", "still 61 s left");
        now.fetch_add(1, Ordering::SeqCst);
        assert_eq!(cache.token().await.unwrap(), "token-2", "14 minutes in: a minute before expiry");
        assert_eq!(fetched.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_rejected_token_is_replaced_once() {
        let (cache, fetched, _) = cache();
        let first = cache.token().await.unwrap();
        cache.reject(&first);
        assert_eq!(cache.token().await.unwrap(), "token-2");
        // A late 401 for the old token does not throw away the new one.
        cache.reject(&first);
        assert_eq!(cache.token().await.unwrap(), "token-2");
        assert_eq!(fetched.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_callers_after_expiry_fetch_once() {
        let (cache, fetched, _) = cache();
        let cache = Arc::new(cache);
        let all = futures::future::join_all((0..50).map(|_| {
            let c = cache.clone();
            async move { c.token().await.unwrap() }
        }))
        .await;
        assert!(all.iter().all(|t| t == "token-1"));
        assert_eq!(fetched.load(Ordering::SeqCst), 1);
    }
}
