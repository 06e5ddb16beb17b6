//! [`Cluster`]: the sandbox or the real control plane, as a test sees it.

use std::path::{Path, PathBuf};

use polysync_sandbox::{BackgroundSandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::ClusterError;
use crate::realkube::{RealKube, RealKubeConfig};

/// Which cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// Our own API server (`sandbox/`).
    Sandbox,
    /// etcd + kube-apiserver + kube-controller-manager + kube-scheduler,
    /// built from the official modules, with the node agent.
    Real,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Real => "real",
        }
    }
}

enum Inner {
    Sandbox(BackgroundSandbox),
    Real(Box<RealKube>),
}

/// An API error: the HTTP status and the server's `Status` message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiStatus {
    pub code: u16,
    pub message: String,
}

/// A running cluster with an admin kubeconfig file.
pub struct Cluster {
    inner: Inner,
    kubeconfig: PathBuf,
    client: kube::Client,
    runtime: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("flavor", &self.flavor()).field("kubeconfig", &self.kubeconfig).finish()
    }
}

impl Cluster {
    /// A sandbox.
    pub fn sandbox(config: SandboxConfig) -> Result<Self, ClusterError> {
        let namespace = config.seed.namespace.clone();
        let sandbox = BackgroundSandbox::start(config).map_err(|e| ClusterError::Setup(e.to_string()))?;
        let kubeconfig = sandbox.kubeconfig(&namespace);
        Self::new(Inner::Sandbox(sandbox), &kubeconfig)
    }

    /// A real control plane. Its ports are picked free and handed to etcd
    /// and kube-apiserver, which bind them a moment later; another process
    /// of the machine may take one in between ("address already in use"),
    /// so such a start is tried again with new ports, up to three times.
    pub fn real(config: RealKubeConfig) -> Result<Self, ClusterError> {
        let mut attempt = 0;
        let real = loop {
            attempt += 1;
            match RealKube::start(config.clone()) {
                Ok(real) => break real,
                Err(ClusterError::Exited { log_tail, .. })
                    if attempt < 3 && log_tail.contains("address already in use") =>
                {
                    tracing::info!(attempt, "a port of the real control plane was taken meanwhile; starting again");
                }
                Err(e) => return Err(e),
            }
        };
        let kubeconfig = real.kubeconfig("default");
        Self::new(Inner::Real(Box::new(real)), &kubeconfig)
    }

    /// One of each, with the time scale the tests use.
    pub fn start(flavor: Flavor, time_scale: f64) -> Result<Self, ClusterError> {
        match flavor {
            Flavor::Sandbox => Self::sandbox(SandboxConfig { time_scale, ..SandboxConfig::default() }),
            Flavor::Real => Self::real(RealKubeConfig {
                time_scale,
                etcd_compaction_interval: "1m".into(),
                ..RealKubeConfig::default()
            }),
        }
    }

    /// One of each that also accepts the tokens `validator` accepts (cloud
    /// tokens: EKS's, Entra ID's): the sandbox asks it directly, the real
    /// apiserver through a token-review webhook.
    pub fn with_token_validator(
        flavor: Flavor,
        time_scale: f64,
        validator: polysync_sandbox::TokenValidator,
    ) -> Result<Self, ClusterError> {
        match flavor {
            Flavor::Sandbox => Self::sandbox(SandboxConfig {
                time_scale,
                token_validator: Some(validator),
                ..SandboxConfig::default()
            }),
            Flavor::Real => Self::real(RealKubeConfig {
                time_scale,
                token_webhook: Some(validator),
                etcd_compaction_interval: "1m".into(),
                ..RealKubeConfig::default()
            }),
        }
    }

    /// A client certificate and key (PEM) for `identity`.
    pub fn issue_client_cert(&self, identity: polysync_sandbox::Identity) -> Result<(String, String), ClusterError> {
        match &self.inner {
            Inner::Sandbox(s) => s.issue_client_cert(identity).map_err(|e| ClusterError::Setup(e.to_string())),
            Inner::Real(r) => r.issue_client_cert(&identity.user, &[]),
        }
    }

    /// Let every identity limited to `namespace` (the token validator's
    /// `Access::Namespaces`) do everything there: on the real cluster a
    /// RoleBinding of its webhook group; the sandbox enforces the access
    /// itself.
    pub fn grant_namespace(&self, namespace: &str) {
        self.grant_subject(json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": crate::webhook::namespace_group(namespace)}), namespace);
    }

    /// Let `user` do everything in `namespace` (real cluster RBAC).
    pub fn grant_user(&self, user: &str, namespace: &str) {
        self.grant_subject(json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}), namespace);
    }

    fn grant_subject(&self, subject: Value, namespace: &str) {
        self.ensure_namespace(namespace);
        if !self.is_real() {
            return;
        }
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"generateName": "polysync-admin-"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [subject],
        });
        match self.call(
            "POST",
            &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings"),
            Some(binding),
        ) {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => panic!("granting {namespace}: {e}"),
        }
    }

    fn new(inner: Inner, kubeconfig_text: &str) -> Result<Self, ClusterError> {
        let dir = tempfile::tempdir().map_err(|e| ClusterError::Setup(format!("temp dir: {e}")))?;
        let kubeconfig = dir.path().join("kubeconfig");
        write_private(&kubeconfig, kubeconfig_text)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("polysync-cluster-client")
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Setup(format!("tokio runtime: {e}")))?;
        let client = runtime.block_on(crate::realkube::client_for(kubeconfig_text))?;
        Ok(Self { inner, kubeconfig, client, runtime: Some(runtime), _dir: dir })
    }

    pub fn flavor(&self) -> Flavor {
        match self.inner {
            Inner::Sandbox(_) => Flavor::Sandbox,
            Inner::Real(_) => Flavor::Real,
        }
    }

    pub fn is_real(&self) -> bool {
        self.flavor() == Flavor::Real
    }

    /// The admin kubeconfig file (default namespace `default`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// An admin kubeconfig (text) with `namespace` as its default.
    pub fn kubeconfig_text(&self, namespace: &str) -> String {
        match &self.inner {
            Inner::Sandbox(s) => s.kubeconfig(namespace),
            Inner::Real(r) => r.kubeconfig(namespace),
        }
    }

    /// A kubeconfig (text) that sends `token`.
    pub fn kubeconfig_for(&self, token: &str, namespace: &str) -> String {
        match &self.inner {
            Inner::Sandbox(s) => s.kubeconfig_for(token, namespace),
            Inner::Real(r) => r.kubeconfig_for(token, namespace),
        }
    }

    /// Connection settings of the `kubernetes` provider for `namespace`.
    pub fn settings(&self, namespace: &str) -> Value {
        json!({"kubeconfig": self.kubeconfig, "namespace": namespace})
    }

    pub fn url(&self) -> &str {
        match &self.inner {
            Inner::Sandbox(s) => s.url(),
            Inner::Real(r) => r.url(),
        }
    }

    pub fn ca_pem(&self) -> Option<&str> {
        match &self.inner {
            Inner::Sandbox(s) => s.ca_pem(),
            Inner::Real(r) => Some(r.ca_pem()),
        }
    }

    /// The sandbox, for what only it can do (fault injection, counters).
    pub fn as_sandbox(&self) -> Option<&BackgroundSandbox> {
        match &self.inner {
            Inner::Sandbox(s) => Some(s),
            Inner::Real(_) => None,
        }
    }

    /// The real control plane, for what only it can do (restarts, compaction).
    pub fn as_real(&self) -> Option<&RealKube> {
        match &self.inner {
            Inner::Real(r) => Some(r),
            Inner::Sandbox(_) => None,
        }
    }

    /// One request as the admin, run on the cluster's own runtime.
    fn spawn_request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<tokio::task::JoinHandle<Result<Value, ApiStatus>>, ApiStatus> {
        let client = self.client.clone();
        let content_type = if method == "PATCH" { "application/merge-patch+json" } else { "application/json" };
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body.map(|b| serde_json::to_vec(&b).unwrap_or_default()).unwrap_or_default())
            .map_err(|e| ApiStatus { code: 0, message: e.to_string() })?;
        Ok(self.runtime.as_ref().expect("present until drop").spawn(async move {
            match client.request_text(req).await {
                Ok(text) if text.is_empty() => Ok(Value::Null),
                Ok(text) => serde_json::from_str(&text).or(Ok(Value::String(text))),
                Err(kube::Error::Api(s)) => Err(ApiStatus { code: s.code, message: s.message.clone() }),
                Err(e) => Err(ApiStatus { code: 0, message: e.to_string() }),
            }
        }))
    }

    /// One request as the admin; the JSON answer or the error `Status`.
    /// Await it from any tokio runtime.
    pub async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, ApiStatus> {
        let task = self.spawn_request(method, path, body)?;
        task.await.unwrap_or_else(|e| Err(ApiStatus { code: 0, message: e.to_string() }))
    }

    /// [`Cluster::request`] for sync code, also safe inside another
    /// runtime's `block_on` (it waits on a plain channel, not on a tokio
    /// future, so tokio's cooperative budget cannot starve it).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, ApiStatus> {
        let (tx, rx) = std::sync::mpsc::channel();
        let task = self.spawn_request(method, path, body)?;
        self.runtime.as_ref().expect("present until drop").spawn(async move {
            let _ = tx.send(task.await.unwrap_or_else(|e| Err(ApiStatus { code: 0, message: e.to_string() })));
        });
        rx.recv().unwrap_or_else(|_| Err(ApiStatus { code: 0, message: "the cluster's runtime stopped".into() }))
    }

    /// Create the namespace if it does not exist.
    pub fn ensure_namespace(&self, namespace: &str) {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        match self.call("POST", "/api/v1/namespaces", Some(body)) {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => panic!("creating namespace {namespace}: {e}"),
        }
        if self.is_real() {
            // Pods are admitted once the namespace's default ServiceAccount exists.
            for _ in 0..300 {
                if self.call("GET", &format!("/api/v1/namespaces/{namespace}/serviceaccounts/default"), None).is_ok() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            panic!("namespace {namespace} got no default ServiceAccount");
        }
    }

    /// Create a batch/v1 Job in `namespace`.
    pub fn create_job(&self, namespace: &str, job: Value) -> Value {
        self.call("POST", &format!("/apis/batch/v1/namespaces/{namespace}/jobs"), Some(job))
            .unwrap_or_else(|e| panic!("creating a Job in {namespace}: {e}"))
    }

    /// The Job, if it exists.
    pub fn job(&self, namespace: &str, name: &str) -> Option<Value> {
        self.call("GET", &format!("/apis/batch/v1/namespaces/{namespace}/jobs/{name}"), None).ok()
    }

    /// Items of a list path (e.g. `/api/v1/namespaces/x/pods?labelSelector=...`).
    pub fn list(&self, path: &str) -> Vec<Value> {
        self.call("GET", path, None)
            .map(|l| l["items"].as_array().cloned().unwrap_or_default())
            .unwrap_or_else(|e| panic!("listing {path}: {e}"))
    }

    /// Pods of `namespace` whose labels match `selector`.
    pub fn pods(&self, namespace: &str, selector: &str) -> Vec<Value> {
        let q: String = form_urlencoded::Serializer::new(String::new()).append_pair("labelSelector", selector).finish();
        self.list(&format!("/api/v1/namespaces/{namespace}/pods?{q}"))
    }

    /// Jobs of `namespace` whose labels match `selector`.
    pub fn jobs(&self, namespace: &str, selector: &str) -> Vec<Value> {
        let q: String = form_urlencoded::Serializer::new(String::new()).append_pair("labelSelector", selector).finish();
        self.list(&format!("/apis/batch/v1/namespaces/{namespace}/jobs?{q}"))
    }

    /// Merge-patch a Job.
    pub fn patch_job(&self, namespace: &str, name: &str, patch: Value) -> Value {
        self.call("PATCH", &format!("/apis/batch/v1/namespaces/{namespace}/jobs/{name}"), Some(patch))
            .unwrap_or_else(|e| panic!("patching Job {namespace}/{name}: {e}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Write a file readable by its owner only (see [`polysync_sandbox::write_private`]).
pub fn write_private(path: &Path, text: &str) -> Result<(), ClusterError> {
    polysync_sandbox::write_private(path, text).map_err(|e| ClusterError::io(path, e))
}
