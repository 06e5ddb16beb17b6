//! Completion callbacks: when a run that carries a callback URL is
//! finished, the host that finishes it POSTs the run's final status there,
//! signed with HMAC-SHA256 over the body (`X-Polysync-Signature:
//! sha256=<hex>`), with an event id that is the same on every delivery of
//! that event (`X-Polysync-Event-Id`), so a receiver deduplicates. Failed
//! deliveries are retried with backoff; a run whose callback was not
//! delivered is not finalized, so another host delivers it later: at least
//! once.

use std::time::Duration;

use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::{Error, Result};
use crate::secrets::SecretNames;
use crate::store::StoredRun;

/// Attempts per delivery before it is left to a later finish.
const ATTEMPTS: u32 = 5;

/// Signs and delivers callbacks.
#[derive(Clone)]
pub struct Callbacks {
    secret: Vec<u8>,
    names: SecretNames,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    first_backoff: Duration,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks").finish_non_exhaustive()
    }
}

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `body`).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The id of a run's final-status event: the same on every delivery.
pub fn event_id(run: &StoredRun) -> String {
    format!("run-{}-{}", run.id, run.state.as_str().to_ascii_lowercase())
}

/// Check a callback URL before a run is recorded with it.
pub fn check_url(url: &str) -> Result<()> {
    let ok = url
        .parse::<http::Uri>()
        .ok()
        .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!("callback_url {url:?} is not an http(s) URL with a host")))
    }
}

impl Callbacks {
    pub fn new(secret: Vec<u8>, names: SecretNames) -> Result<Self> {
        let tls = crate::tls::client_config("callbacks")?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self { secret, names, client, first_backoff: Duration::from_millis(250) })
    }

    /// The body POSTed for `run`: its event id and the run as the API shows
    /// it, secret parameter values redacted.
    pub fn body(&self, run: &StoredRun) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "event_id": event_id(run),
            "type": "run.finished",
            "run": super::RunView::of(self.names.run(run)),
        }))
        .unwrap_or_default()
    }

    /// Deliver `run`'s final status to its callback URL, retrying with
    /// backoff; an error means it was not delivered.
    pub async fn deliver(&self, run: &StoredRun) -> Result<()> {
        let Some(url) = run.callback_url.as_deref() else { return Ok(()) };
        let body = self.body(run);
        let sig = signature(&self.secret, &body);
        let mut backoff = self.first_backoff;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let request = http::Request::post(url)
                .header("content-type", "application/json")
                .header("user-agent", concat!("polysync/", env!("CARGO_PKG_VERSION")))
                .header("x-polysync-event-id", event_id(run))
                .header("x-polysync-signature", &sig)
                .body(Full::new(Bytes::from(body.clone())))
                .map_err(|e| Error::InvalidInput(format!("callback_url {url:?}: {e}")))?;
            let sent = tokio::time::timeout(Duration::from_secs(15), self.client.request(request)).await;
            match sent {
                Ok(Ok(response)) if response.status().is_success() => return Ok(()),
                Ok(Ok(response)) => {
                    let status = response.status();
                    let _ = response.into_body().collect().await;
                    last = format!("answered {status}");
                }
                Ok(Err(e)) => last = format!("failed: {e}"),
                Err(_) => last = "did not answer within 15 s".into(),
            }
            tracing::warn!(run = run.id, attempt, "callback to {url} {last}");
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(Error::Callback { run: run.id, url: url.to_string(), last, attempts: ATTEMPTS })
    }
}
