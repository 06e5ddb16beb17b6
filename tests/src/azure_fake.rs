//! A fake of the two Azure services the aks provider talks to, on one
//! HTTPS port of 127.0.0.1 with its own CA: the Entra ID token endpoint
//! (client credentials) and ARM's managedClusters calls. It records every
//! ARM request and every token it issued, so tests can check paths,
//! api-versions and bearer tokens, revoke tokens, and make ARM refuse.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::json;

pub const TENANT: &str = "72f988bf-0000-4000-8000-000000000001";
pub const CLIENT_ID: &str = "11111111-2222-4333-8444-555555555555";
pub const CLIENT_SECRET: &str = "fake-client-secret";
pub const SUBSCRIPTION: &str = "00000000-0000-4000-8000-00000000c0de";
pub const RESOURCE_GROUP: &str = "batch-rg";
pub const AKS_APP: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

/// An ARM request as the fake saw it.
#[derive(Debug, Clone)]
pub struct ArmRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: String,
}

/// A token the fake issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub scope: String,
    pub expires_at: u64,
}

/// Shared state of the fake.
#[derive(Debug, Default)]
pub struct FakeState {
    /// Cluster name → the kubeconfig (YAML) listClusterUserCredential returns.
    pub clusters: Mutex<HashMap<String, String>>,
    pub arm_requests: Mutex<Vec<ArmRequest>>,
    pub tokens: Mutex<HashMap<String, Issued>>,
    pub revoked: Mutex<Vec<String>>,
    /// Scopes of token requests, in order.
    pub token_requests: Mutex<Vec<String>>,
    /// ARM answers 403 to every credential call while set.
    pub forbid: AtomicBool,
    /// Lifetime of issued tokens, seconds.
    pub lifetime: AtomicU64,
    issued: AtomicUsize,
    /// `https://127.0.0.1:PORT`: ARM's audience and nextLinks' base.
    base: Mutex<String>,
}

impl FakeState {
    /// Whether `token` is an issued, unrevoked, unexpired token for `scope`.
    pub fn valid(&self, token: &str, scope: &str) -> bool {
        let now = now();
        !self.revoked.lock().unwrap().iter().any(|t| t == token)
            && self.tokens.lock().unwrap().get(token).is_some_and(|i| i.scope == scope && i.expires_at > now)
    }

    /// Revoke every token issued so far for `scope`.
    pub fn revoke_all(&self, scope: &str) {
        let tokens = self.tokens.lock().unwrap();
        self.revoked.lock().unwrap().extend(tokens.iter().filter(|(_, i)| i.scope == scope).map(|(t, _)| t.clone()));
    }

    pub fn token_requests_for(&self, scope: &str) -> usize {
        self.token_requests.lock().unwrap().iter().filter(|s| *s == scope).count()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The running fake.
#[derive(Debug)]
pub struct AzureFake {
    pub url: String,
    pub ca_file: std::path::PathBuf,
    /// The service principal's secret, named by `client_secret_file`.
    pub secret_file: std::path::PathBuf,
    pub state: Arc<FakeState>,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

impl AzureFake {
    pub fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let state = Arc::new(FakeState { lifetime: AtomicU64::new(3600), ..FakeState::default() });
        let (ca_pem, server_config) = tls();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("azure-fake-ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let secret_file = dir.path().join("client-secret");
        std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        *state.base.lock().unwrap() = url.clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let shared = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, state) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(req, &state).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        Self { url, ca_file, secret_file, state, _dir: dir, _runtime: runtime }
    }

    /// Settings of the `aks` provider for cluster `name`.
    pub fn settings(&self, name: &str, namespace: &str) -> serde_json::Value {
        json!({
            "subscription_id": SUBSCRIPTION,
            "resource_group": RESOURCE_GROUP,
            "cluster": name,
            "namespace": namespace,
            "credential": "client_secret",
            "tenant_id": TENANT,
            "client_id": CLIENT_ID,
            "client_secret_file": self.secret_file,
            "arm_endpoint": self.url,
            "authority_host": self.url,
            "ca_file": self.ca_file,
        })
    }

    pub fn arm_requests(&self) -> Vec<ArmRequest> {
        self.state.arm_requests.lock().unwrap().clone()
    }
}

/// A kubeconfig that authenticates with a client certificate.
pub fn certificate_kubeconfig(server: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: aks\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\ncontexts:\n- name: aks\n  context:\n    cluster: aks\n    user: clusterAdmin\ncurrent-context: aks\nusers:\n- name: clusterAdmin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem)
    )
}

/// A kubeconfig that runs kubelogin, as Entra ID-enabled clusters return.
pub fn kubelogin_kubeconfig(server: &str, ca_pem: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: aks\n  cluster:\n    server: {server}\n    certificate-authority-data: {b64}\ncontexts:\n- name: aks\n  context:\n    cluster: aks\n    user: clusterUser\ncurrent-context: aks\nusers:\n- name: clusterUser\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubelogin\n      args:\n      - get-token\n      - --environment\n      - AzurePublicCloud\n      - --server-id\n      - {AKS_APP}\n      - --client-id\n      - 80faf920-1908-4b52-b5ef-a8e7bedfc67a\n      - --tenant-id\n      - {TENANT}\n      - --login\n      - devicecode\n      interactiveMode: IfAvailable\n      provideClusterInfo: false\n"
    )
}

fn tls() -> (String, rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "polysync-azure-fake-ca");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(cert.der().to_vec())],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca_cert.pem(), config)
}

fn reply(status: u16, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn answer(req: Request<hyper::body::Incoming>, state: &FakeState) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let authorization = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();

    if path == format!("/{TENANT}/oauth2/v2.0/token") {
        let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
        if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
            || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
        {
            return reply(
                401,
                json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
            );
        }
        let scope = form.get("scope").cloned().unwrap_or_default();
        state.token_requests.lock().unwrap().push(scope.clone());
        let n = state.issued.fetch_add(1, Ordering::SeqCst);
        let lifetime = state.lifetime.load(Ordering::SeqCst);
        let token = format!("entra-token-{n}");
        state.tokens.lock().unwrap().insert(token.clone(), Issued { scope, expires_at: now() + lifetime });
        return reply(
            200,
            json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}),
        );
    }

    let base = state.base.lock().unwrap().clone();
    state.arm_requests.lock().unwrap().push(ArmRequest {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        authorization: authorization.clone(),
    });
    let token = authorization.strip_prefix("Bearer ").unwrap_or_default();
    if !state.valid(token, &format!("{base}/.default")) {
        return reply(
            401,
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}}),
        );
    }
    let clusters_prefix = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.ContainerService/managedClusters/"
    );
    if let Some(rest) = path.strip_prefix(&clusters_prefix) {
        let (name, action) = rest.split_once('/').unwrap_or((rest, ""));
        if method != "POST" || !matches!(action, "listClusterUserCredential" | "listClusterAdminCredential") {
            return reply(400, json!({"error": {"code": "BadRequest", "message": "unsupported"}}));
        }
        if state.forbid.load(Ordering::SeqCst) {
            return reply(
                403,
                json!({"error": {"code": "AuthorizationFailed", "message": format!("The client '{CLIENT_ID}' with object id '{CLIENT_ID}' does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/{action}/action' over scope '{path}' or the scope is invalid.")}}),
            );
        }
        let Some(kubeconfig) = state.clusters.lock().unwrap().get(name).cloned() else {
            return reply(
                404,
                json!({"error": {"code": "ResourceNotFound", "message": format!("The Resource 'Microsoft.ContainerService/managedClusters/{name}' under resource group '{RESOURCE_GROUP}' was not found.")}}),
            );
        };
        let value = base64::engine::general_purpose::STANDARD.encode(kubeconfig);
        let user = if action == "listClusterAdminCredential" { "clusterAdmin" } else { "clusterUser" };
        return reply(200, json!({"kubeconfigs": [{"name": user, "value": value}]}));
    }
    if path == format!("/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerService/managedClusters") {
        let mut names: Vec<String> = state.clusters.lock().unwrap().keys().cloned().collect();
        names.sort();
        let skip: usize = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "$skipToken")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let page: Vec<_> = names
            .iter()
            .skip(skip)
            .take(2)
            .map(|n| json!({"name": n, "location": "westeurope", "id": format!("{clusters_prefix}{n}")}))
            .collect();
        let mut out = json!({"value": page});
        if skip + 2 < names.len() {
            out["nextLink"] = json!(format!("{base}{path}?api-version=2024-09-01&$skipToken={}", skip + 2));
        }
        return reply(200, out);
    }
    reply(404, json!({"error": {"code": "NotFound", "message": path}}))
}
