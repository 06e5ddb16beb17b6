//! `polysync serve`: the workflows over HTTP, for schedulers that call an
//! API rather than load a library, and for several replicas on one
//! PostgreSQL catalog.
//!
//! One process per replica loads the plugins once, answers `/v1` (JSON,
//! problem documents, Server-Sent Events; [`api::ApiDoc`] is its OpenAPI
//! 3.1 document), and follows runs in the background: the ones its own
//! requests created at once, and any run no replica holds (new, released,
//! or left by a replica that died) through the catalog's leases.

mod api;
mod auth;
mod metrics;
mod page;
mod problem;
mod sse;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use utoipa::OpenApi;

pub use api::ApiDoc;
pub use auth::Tokens;
pub use metrics::Metrics;

use crate::Host;
use crate::error::{Error, Result};
use crate::runs::{self, WatchEvent};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the server is shared with every request.
#[derive(Clone, Debug)]
pub struct AppState {
    pub host: Arc<Host>,
    pub adopt: tokio::sync::mpsc::UnboundedSender<crate::store::StoredRun>,
    pub metrics: Arc<Metrics>,
    /// Connections whose plugin did not load, and why (for /readyz).
    pub unloaded: Arc<Vec<String>>,
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    /// Bearer tokens (empty: none needed, loopback only).
    pub tokens: Tokens,
    /// How often the catalog is read for runs no replica holds.
    pub claim_every: Duration,
}

/// The router of a server over `state`.
pub fn router(state: AppState, tokens: Arc<Tokens>) -> Router {
    let api = Router::new()
        .route("/v1/connections", get(api::list_connections))
        .route("/v1/connections/{name}/test", post(api::test_connection))
        .route("/v1/connections/{name}/clusters", get(api::list_clusters))
        .route("/v1/connections/{name}/syncs", post(api::start_sync))
        // An entry id may hold slashes (`cronjob/x`): sent as they are (a
        // client that fills the template without escaping) or as `%2F`.
        .route("/v1/connections/{name}/entries/{*entry}", get(api::get_entry))
        .route("/v1/syncs/{id}", get(api::get_sync))
        .route("/v1/entries", get(api::list_entries))
        .route("/v1/runs", post(api::create_run).get(api::list_runs))
        .route("/v1/runs/{id}", get(api::get_run))
        .route("/v1/runs/{id}/cancel", post(api::cancel_run))
        .route("/v1/runs/{id}/logs", get(api::run_logs))
        .route("/v1/runs/{id}/events", get(api::run_events))
        .route("/v1/runs/{id}/status-stream", get(api::run_status_stream))
        .route("/v1/status-stream", get(api::status_stream))
        .route("/metrics", get(metrics))
        .route("/", get(page::index))
        .route("/runs/{id}", get(page::run))
        .route_layer(axum::middleware::from_fn_with_state(tokens, auth::require));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        // No secret in it, and generators fetch it by URL: no token.
        .route("/v1/openapi.json", get(openapi))
        // What a problem document's `type` names: public, as the kinds are.
        .route("/v1/problems", get(|| problem::describe(None)))
        .route("/v1/problems/{kind}", get(|p| problem::describe(Some(p))))
        .merge(api)
        .fallback(|| async {
            problem::ApiError::not_found("no such path; the API is under /v1 (its document: /v1/openapi.json)")
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(problem::framework_errors))
        .with_state(state)
}

/// The API's OpenAPI 3.1 document, as served at `/v1/openapi.json` and
/// printed by `polysync openapi`.
pub fn openapi_document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    streams_as_items(&mut doc);
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// An event stream's response declares its events, not its body: the
/// schema of one event moves to `itemSchema` (as OpenAPI 3.2 writes it,
/// which validators such as schemathesis read in 3.1 documents too), and
/// no `schema` is left. A generated client then hands the caller the raw
/// stream instead of failing to parse it as one JSON document.
fn streams_as_items(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else { return };
    for op in paths.values_mut().filter_map(|item| item.as_object_mut()).flat_map(|item| item.values_mut()) {
        let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else { continue };
        for response in responses.values_mut() {
            let Some(stream) = response.pointer_mut("/content/text~1event-stream").and_then(|c| c.as_object_mut())
            else {
                continue;
            };
            if let Some(schema) = stream.remove("schema") {
                stream.insert("itemSchema".into(), schema);
            }
        }
    }
}

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], openapi_document()).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let Ok(store) = state.host.store().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the catalog is unreachable\n").into_response();
    };
    let text = state.metrics.render(store.as_ref()).await;
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response()
}

/// Ready when the catalog answers and every connection's plugin loaded.
async fn readyz(State(state): State<AppState>) -> Response {
    let store = match state.host.store().await {
        Ok(s) => s.runs(&crate::store::RunFilter { limit: Some(1), ..Default::default() }).await.map(drop),
        Err(e) => Err(e),
    };
    match (store, state.unloaded.is_empty()) {
        (Ok(()), true) => (StatusCode::OK, "ready\n").into_response(),
        (Err(e), _) => (StatusCode::SERVICE_UNAVAILABLE, format!("the catalog is unreachable: {e}\n")).into_response(),
        (Ok(()), false) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("plugins not loaded: {}\n", state.unloaded.join("; ")))
                .into_response()
        }
    }
}

/// Whether an address only this machine can reach.
fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Serve until SIGINT or SIGTERM; `bound` is told the address once
/// listening (port 0 picks one).
pub async fn run(host: Arc<Host>, options: Options, bound: impl FnOnce(SocketAddr)) -> Result<()> {
    if options.tokens.is_empty() && !is_loopback(&options.listen) {
        return Err(Error::Config(format!(
            "refusing to serve on {} without tokens: anyone who reaches it could start runs. Configure [serve] tokens or token_files, or set POLYSYNC_API_TOKEN (or listen on 127.0.0.1)",
            options.listen
        )));
    }
    let tls = match (&host.config.serve.tls_cert, &host.config.serve.tls_key) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
        (None, None) => None,
        _ => return Err(Error::Config("[serve] needs both tls_cert and tls_key, or neither".into())),
    };
    // The catalog first: a server that cannot reach it is not started.
    host.store().await?;
    let mut unloaded = Vec::new();
    for name in host.config.connections.keys() {
        if let Err(e) = host.provider(name) {
            tracing::warn!(connection = %name, "plugin not loaded: {e}");
            unloaded.push(format!("{name}: {e}"));
        }
    }
    let metrics = Metrics::new();
    let (adopt_tx, adopt_rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let state =
        AppState { host: host.clone(), adopt: adopt_tx, metrics: metrics.clone(), unloaded: Arc::new(unloaded) };
    let app = router(state, Arc::new(options.tokens.clone()));

    let follower = {
        let host = host.clone();
        let metrics = metrics.clone();
        let service = runs::Service { adopt: adopt_rx, stop: stop_rx, tick: options.claim_every };
        tokio::spawn(async move {
            let on_event = |event: WatchEvent| match event {
                WatchEvent::Batch(n) => {
                    metrics.watch_batches.inc();
                    metrics.lease_claims.inc_by(n as u64);
                }
                WatchEvent::Finished(_, done) if done.called_back => {
                    metrics.callbacks.get_or_create(&metrics::OutcomeLabel { outcome: "delivered".into() }).inc();
                }
                WatchEvent::Failed(run, why) => {
                    metrics.follow_errors.inc();
                    tracing::warn!(run = run.id, "{why}");
                }
                _ => {}
            };
            if let Err(e) = runs::serve(&host, service, on_event).await {
                tracing::error!("following runs stopped: {e}");
            }
        })
    };

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", options.listen)))?;
    let addr = listener.local_addr().map_err(Error::io("reading the listening address"))?;
    bound(addr);
    tracing::info!(%addr, tls = tls.is_some(), "serving");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    };
    match tls {
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await.map_err(Error::io("serving HTTP"))?,
        Some(acceptor) => serve_tls(listener, acceptor, app, shutdown).await,
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), follower).await;
    host.shutdown().await
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect())
        .map_err(|e| Error::Config(format!("[serve] tls_cert {}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Config(format!("[serve] tls_key {}: {e}", key.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Config(format!("[serve] tls_cert/tls_key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tower::ServiceExt as _;
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
            _ = &mut shutdown => return,
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else { return };
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                app.clone().oneshot(request.map(axum::body::Body::new))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}
