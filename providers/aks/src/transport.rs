//! The one HTTPS client of the aks provider: hyper + rustls with ring
//! (the TLS stack of the rest of polysync), the system's roots plus an
//! optional extra CA (sovereign and private clouds, TLS-inspecting
//! proxies, tests). It carries both the ARM calls and, as azure_core's
//! transport, the Entra ID token requests.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::{AsyncRawResponse, HttpClient, Request as AzRequest};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use polysync_provider_api::{ErrorKind, ProviderError, Result};

/// An HTTPS client for ARM and Entra ID.
#[derive(Clone)]
pub struct Https {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Https {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Https").finish_non_exhaustive()
    }
}

/// A response: status, headers we need, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Https {
    /// `extra_ca_pem`: more roots to trust besides the system's.
    pub fn new(extra_ca_pem: Option<&[u8]>) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if let Some(pem) = extra_ca_pem {
            let mut added = 0;
            for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(pem) {
                let cert: rustls::pki_types::CertificateDer<'static> = cert.map_err(|e| {
                    ProviderError::invalid_input(format!("setting `ca_file`: not a PEM certificate: {e}"))
                })?;
                roots.add(cert).map_err(|e| ProviderError::invalid_input(format!("setting `ca_file`: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(ProviderError::invalid_input("setting `ca_file`: no certificate in the file"));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ProviderError::internal(format!("TLS set-up: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().build();
        Ok(Self { client: Client::builder(TokioExecutor::new()).build(connector) })
    }

    /// Send one request and read the whole answer.
    pub async fn send(&self, request: http::Request<Full<Bytes>>) -> Result<Answer> {
        let host = request.uri().host().unwrap_or_default().to_owned();
        let response = tokio::time::timeout(std::time::Duration::from_secs(60), self.client.request(request))
            .await
            .map_err(|_| ProviderError::new(ErrorKind::Timeout, format!("{host} did not answer within 60 s")))?
            .map_err(|e| {
                ProviderError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "could not reach {host} ({}); check the network, proxy, `arm_endpoint`/`authority_host` and `ca_file`",
                        polysync_provider_api::error::chain(&e)
                    ),
                )
            })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ProviderError::new(ErrorKind::Unavailable, format!("reading the answer of {host}: {e}")))?
            .to_bytes();
        Ok(Answer { status, headers, body })
    }
}

/// azure_core's transport over [`Https`].
#[async_trait]
impl HttpClient for Https {
    async fn execute_request(&self, request: &AzRequest) -> azure_core::Result<AsyncRawResponse> {
        let body = match request.body() {
            azure_core::http::Body::Bytes(b) => b.clone(),
            #[allow(unreachable_patterns)]
            _ => {
                return Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Other,
                    "streamed request bodies are not used by polysync",
                ));
            }
        };
        let mut builder = http::Request::builder().method(request.method().as_str()).uri(request.url().as_str());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let req = builder
            .body(Full::new(body))
            .map_err(|e| azure_core::Error::with_message(azure_core::error::ErrorKind::Other, e.to_string()))?;
        let answer = self
            .send(req)
            .await
            .map_err(|e| azure_core::Error::with_message(azure_core::error::ErrorKind::Io, e.message().to_owned()))?;
        let mut headers = azure_core::http::headers::Headers::new();
        for (name, value) in &answer.headers {
            if let Ok(value) = value.to_str() {
                headers.insert(name.as_str().to_owned(), value.to_owned());
            }
        }
        Ok(AsyncRawResponse::from_bytes(answer.status.into(), headers, answer.body))
    }
}
