//! A fresh CA and server certificate for every sandbox, and the kubeconfig
//! that trusts exactly that CA.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

use crate::SandboxError;
use crate::auth::Identity;

/// The CA (PEM, for kubeconfigs), the TLS server configuration, and the
/// client certificates issued by the CA.
#[derive(Debug)]
pub struct Tls {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
    pub clients: Arc<ClientCerts>,
}

/// Client certificates the sandbox issued, and whom each identifies (a
/// kubeconfig's `client-certificate-data`, as AKS's local accounts use).
/// A client that presents none authenticates with a bearer token instead.
pub struct ClientCerts {
    issuer: Issuer<'static, KeyPair>,
    issued: Mutex<HashMap<Vec<u8>, Identity>>,
}

impl std::fmt::Debug for ClientCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCerts").finish_non_exhaustive()
    }
}

impl ClientCerts {
    /// A certificate and key (PEM) that authenticate as `identity`.
    pub fn issue(&self, identity: Identity) -> Result<(String, String), SandboxError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        params.distinguished_name.push(DnType::CommonName, identity.user.clone());
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(tls_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(tls_error)?;
        self.issued.lock().unwrap_or_else(|e| e.into_inner()).insert(cert.der().to_vec(), identity);
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Who the verified certificate `der` identifies.
    pub fn identity(&self, der: &[u8]) -> Option<Identity> {
        self.issued.lock().unwrap_or_else(|e| e.into_inner()).get(der).cloned()
    }
}

fn tls_error(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Tls(e.to_string())
}

impl Tls {
    /// A CA valid for this sandbox only, and a server certificate for
    /// `127.0.0.1` and `localhost` signed by it.
    pub fn generate() -> Result<Self, SandboxError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "polysync-sandbox-ca");
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(tls_error)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_error)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca_cert.der().to_vec())).map_err(tls_error)?;

        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).map_err(tls_error)?;
        params.distinguished_name.push(DnType::CommonName, "polysync-sandbox");
        let key = KeyPair::generate().map_err(tls_error)?;
        let cert = params.signed_by(&key, &issuer).map_err(tls_error)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Client certificates are optional: tokens remain the main way in.
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(tls_error)?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(tls_error)?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let clients = Arc::new(ClientCerts { issuer, issued: Mutex::default() });
        Ok(Self { ca_pem: ca_cert.pem(), server: Arc::new(server), clients })
    }
}

/// A kubeconfig for `server` that trusts `ca_pem` (if any) and sends `token`.
pub fn kubeconfig(server: &str, ca_pem: Option<&str>, token: &str, namespace: &str) -> String {
    let mut cluster = json!({"server": server});
    match ca_pem {
        Some(pem) => cluster["certificate-authority-data"] = json!(STANDARD.encode(pem)),
        None => cluster["insecure-skip-tls-verify"] = json!(false),
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "polysync-sandbox", "cluster": cluster}],
        "contexts": [{"name": "polysync-sandbox", "context": {"cluster": "polysync-sandbox", "user": "polysync-sandbox", "namespace": namespace}}],
        "current-context": "polysync-sandbox",
        "users": [{"name": "polysync-sandbox", "user": {"token": token}}],
        "preferences": {},
    });
    serde_yaml_ng::to_string(&config).unwrap_or_default()
}
