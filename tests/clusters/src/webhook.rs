//! A token-review webhook for kube-apiserver
//! (`--authentication-token-webhook-config-file`), so a real control plane
//! accepts the tokens a cloud issues — EKS's `k8s-aws-v1.` presigned STS
//! URLs, Entra ID tokens for AKS — checked by the same validators the
//! sandbox uses. A valid token's user is who the validator says; an admin
//! is put in `system:masters`, anyone else gets what RBAC grants them.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use polysync_sandbox::{Access, TokenValidator};
use serde_json::{Value, json};

use crate::ClusterError;

/// Serve TokenReviews on 127.0.0.1 with `cert_pem`/`key_pem`; returns the port.
pub async fn start(
    validator: TokenValidator,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(u16, tokio::task::JoinHandle<()>), ClusterError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let err = |e: &dyn std::fmt::Display| ClusterError::Setup(format!("token webhook: {e}"));
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>().map_err(|e| err(&e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| err(&e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err(&e))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| err(&e))?;
    let port = listener.local_addr().map_err(|e| err(&e))?.port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (acceptor, validator) = (acceptor.clone(), validator.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else { return };
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let validator = validator.clone();
                    async move { Ok::<_, std::convert::Infallible>(review(req, &validator).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((port, task))
}

/// The group a webhook user limited to `namespace` is in; bind it with
/// [`Cluster::grant_namespace`](crate::Cluster::grant_namespace).
pub fn namespace_group(namespace: &str) -> String {
    format!("polysync:namespace:{namespace}")
}

async fn review(req: Request<hyper::body::Incoming>, validator: &TokenValidator) -> Response<Full<Bytes>> {
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let token = request["spec"]["token"].as_str().unwrap_or_default();
    let status = match validator(token) {
        Some(identity) => {
            let mut groups = vec!["system:authenticated".to_owned()];
            match &identity.access {
                Access::Admin => groups.push("system:masters".into()),
                Access::Namespaces(list) => groups.extend(list.iter().map(|ns| namespace_group(ns))),
                _ => {}
            }
            json!({"authenticated": true, "user": {"username": identity.user, "groups": groups}})
        }
        None => json!({"authenticated": false, "error": "the token was not accepted"}),
    };
    let answer = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status});
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&answer).unwrap_or_default())))
        .expect("static parts")
}
