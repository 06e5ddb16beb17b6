//! The HTTP(S) API server: authentication, discovery, the resource verbs,
//! watches, pod logs, and the sandbox's own `/sandbox/*` switches.

mod admin;
mod discovery;
mod logs;
pub mod patch;
mod protobuf;
pub mod request;
mod resource;
pub mod response;
mod table;
mod watch;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::auth::{Auth, Identity, authorize};
use crate::error::ApiError;
use crate::faults::Faults;
use crate::kubelet::LogStore;
use crate::stats::Stats;
use crate::store::Store;
use request::{Query, Target};
use response::Body;

/// Largest request body accepted (the real server's limit).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Everything a request handler can reach.
#[derive(Debug)]
pub(crate) struct Server {
    pub store: Arc<Store>,
    pub auth: Auth,
    pub faults: Arc<Faults>,
    pub stats: Arc<Stats>,
    pub logs: Arc<LogStore>,
    /// How long a `continue` token stays valid.
    pub continue_ttl: Duration,
    /// How often a watch that asked for them gets a BOOKMARK.
    pub bookmark_interval: Duration,
}

/// Accept connections until the task is aborted.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<(TlsAcceptor, Arc<crate::tls::ClientCerts>)>,
    server: Arc<Server>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        let server = server.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = |client: Option<Identity>| {
                hyper::service::service_fn(move |req| {
                    let (server, client) = (server.clone(), client.clone());
                    async move { Ok::<_, Infallible>(server.handle(req, client).await) }
                })
            };
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let result = match tls {
                Some((acceptor, clients)) => match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let client = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|certs| certs.first())
                            .and_then(|der| clients.identity(der));
                        builder.serve_connection(TokioIo::new(stream), service(client)).await
                    }
                    Err(e) => {
                        tracing::debug!("TLS handshake failed: {e}");
                        return;
                    }
                },
                None => builder.serve_connection(TokioIo::new(tcp), service(None)).await,
            };
            if let Err(e) = result {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

/// The verb of a resource request, as RBAC names it.
fn verb(method: &Method, target: &Target, query: &Query) -> Result<&'static str, ApiError> {
    Ok(match (method.as_str(), target.name.is_some()) {
        ("GET", false) if query.flag("watch") => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (m, _) => return Err(ApiError::method_not_allowed(m)),
    })
}

impl Server {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, client: Option<Identity>) -> Response<Body> {
        match self.route(req, client).await {
            Ok(response) => response,
            Err(err) => response::error(&err),
        }
    }

    async fn route(
        self: &Arc<Self>,
        req: Request<Incoming>,
        client: Option<Identity>,
    ) -> Result<Response<Body>, ApiError> {
        let path = req.uri().path().to_owned();
        if matches!(path.as_str(), "/healthz" | "/livez" | "/readyz") {
            return Ok(response::bytes(StatusCode::OK, "text/plain", "ok"));
        }
        let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let identity = match (authorization, client) {
            // A verified client certificate, and no token to override it.
            (None, Some(identity)) => identity,
            _ => self.auth.authenticate(authorization)?,
        };
        let query = Query::parse(req.uri().query());
        if let Some(rest) = path.strip_prefix("/sandbox/") {
            if identity.access != crate::auth::Access::Admin {
                return Err(ApiError::forbidden_path(&identity.user, &path));
            }
            let method = req.method().clone();
            let body = read_body(req).await?;
            return admin::handle(self, &method, rest, &body);
        }
        if let Some(doc) = discovery::document(&path) {
            return Ok(response::json(StatusCode::OK, &doc));
        }
        let target = request::parse_path(&path)?.ok_or_else(|| ApiError::not_found_path(&path))?;
        let verb = verb(req.method(), &target, &query)?;
        let resource = match &target.subresource {
            Some(sub) => format!("{}/{sub}", target.kind.plural()),
            None => target.kind.plural().to_owned(),
        };
        // Counted before authorization: refused requests are load too.
        self.stats.count(verb, &resource);
        authorize(&identity, verb, target.kind, target.namespace.as_deref())?;
        self.faults.before_request().await?;
        let as_table = table::wanted(req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()))
            .then(|| table::Include::from_query(query.get("includeObject")))
            .transpose()?;
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_owned();
        let mut body = read_body(req).await?;
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if !body.is_empty() && media == "application/vnd.kubernetes.protobuf" {
            body = Bytes::from(serde_json::to_vec(&protobuf::decode(&body)?).unwrap_or_default());
        } else if !body.is_empty() && !media.ends_with("json") {
            return Err(ApiError::unsupported_media_type(media));
        }
        match verb {
            "get" if target.subresource.as_deref() == Some("log") => logs::handle(self, &target, &query),
            "get" => resource::get(self, &target, as_table),
            "list" => resource::list(self, &target, &query, as_table),
            "watch" => watch::watch(self, &target, &query, as_table),
            "create" => resource::create(self, &target, &query, &body),
            "update" => resource::update(self, &target, &query, &body),
            "patch" => resource::patch(self, &target, &query, &content_type, &body),
            "delete" => resource::delete(self, &target, &query, &body),
            _ => resource::delete_collection(self, &target, &query, &body),
        }
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    if req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY)
    {
        return Err(ApiError::too_large());
    }
    let bytes = req
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?
        .to_bytes();
    if bytes.len() > MAX_BODY {
        return Err(ApiError::too_large());
    }
    Ok(bytes)
}
