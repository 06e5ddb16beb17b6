//! The node agent: the sandbox's simulated kubelet as the one Node of a
//! real control plane.
//!
//! It registers a Node (address 127.0.0.1, its own HTTPS port as the
//! kubelet endpoint), watches the pods the scheduler binds to it, runs them
//! with the sandbox's kubelet (the small shell, exit codes, pull failures,
//! missing Secrets), writes their status through `pods/status` as a kubelet
//! does, kills and releases pods that are being deleted, and serves
//! `/containerLogs/...` so `kubectl logs` and polysync's logs go through the
//! real apiserver. It authenticates as `system:node:<name>`, so the Node
//! authorizer and NodeRestriction hold it to a kubelet's rights.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher;
use polysync_sandbox::kubelet::logs::{LogBody, LogQuery, container_log};
use polysync_sandbox::kubelet::{Kubelet, LogStore, NodeApi, RefKind};
use polysync_sandbox::store::Key;
use polysync_sandbox::time::{Clock, now_rfc3339};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::ClusterError;

/// The node agent's name for itself.
pub const NODE_NAME: &str = "realkube-node";

/// The cluster seen from the node: pods cached from the watch and from
/// this agent's own writes.
#[derive(Clone)]
pub struct RemoteNode {
    client: kube::Client,
    pods: Arc<Mutex<HashMap<Key, Value>>>,
}

impl std::fmt::Debug for RemoteNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteNode").finish_non_exhaustive()
    }
}

fn pod_path(key: &Key) -> String {
    format!("/api/v1/namespaces/{}/pods/{}", key.namespace, key.name)
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl RemoteNode {
    fn cached(&self, key: &Key) -> Option<Value> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    fn remember(&self, pod: Value) {
        let key = Key::of(&pod);
        let mut pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        // Keep the newer of the two (watch events can trail our own writes).
        let newer = pods.get(&key).is_none_or(|old| rv(old) <= rv(&pod));
        if newer {
            pods.insert(key, pod);
        }
    }

    fn forget(&self, key: &Key) {
        self.pods.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    async fn fetch(&self, key: &Key) -> Option<Value> {
        let req = Request::get(pod_path(key)).body(Vec::new()).ok()?;
        match self.client.request::<Value>(req).await {
            Ok(pod) => {
                self.remember(pod.clone());
                Some(pod)
            }
            Err(_) => None,
        }
    }

    /// The final delete a kubelet sends once a deleted pod's containers are down.
    async fn release(&self, pod: &Value) {
        let key = Key::of(pod);
        let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
            "preconditions": {"uid": pod["metadata"]["uid"]}});
        let Ok(req) = Request::delete(pod_path(&key))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
        else {
            return;
        };
        if let Err(e) = self.client.request::<Value>(req).await
            && !matches!(status_code(&e), Some(404 | 409))
        {
            tracing::warn!(pod = %key.name, error = %e, "node agent: final delete failed");
        }
    }
}

fn rv(pod: &Value) -> u64 {
    pod["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl NodeApi for RemoteNode {
    fn node_name(&self) -> &str {
        NODE_NAME
    }

    fn binds_pods(&self) -> bool {
        false
    }

    async fn get(&self, key: &Key) -> Option<Value> {
        match self.cached(key) {
            Some(p) => Some(p),
            None => self.fetch(key).await,
        }
    }

    async fn update(&self, key: &Key, f: impl Fn(&mut Value) + Send + Sync) -> Option<Value> {
        let mut current = self.get(key).await?;
        for _ in 0..20 {
            let mut next = current.clone();
            f(&mut next);
            if next == current {
                return Some(current);
            }
            let req = Request::put(format!("{}/status", pod_path(key)))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&next).unwrap_or_default())
                .ok()?;
            match self.client.request::<Value>(req).await {
                Ok(written) => {
                    self.remember(written.clone());
                    return Some(written);
                }
                Err(e) if status_code(&e) == Some(409) => current = self.fetch(key).await?,
                Err(e) if status_code(&e) == Some(404) => {
                    self.forget(key);
                    return None;
                }
                Err(e) => {
                    tracing::warn!(pod = %key.name, error = %e, "node agent: status update failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    current = self.fetch(key).await?;
                }
            }
        }
        None
    }

    async fn event(&self, pod: &Value, warning: bool, reason: &str, message: &str) {
        let mut event = polysync_sandbox::controllers::events::build("kubelet", pod, warning, reason, message);
        event["source"]["host"] = json!(NODE_NAME);
        event["reportingInstance"] = json!(NODE_NAME);
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let Ok(req) = Request::post(format!("/api/v1/namespaces/{ns}/events"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&event).unwrap_or_default())
        else {
            return;
        };
        let _ = self.client.request::<Value>(req).await;
    }

    async fn lookup(&self, kind: RefKind, namespace: &str, name: &str) -> Option<BTreeMap<String, String>> {
        let plural = match kind {
            RefKind::Secret => "secrets",
            RefKind::ConfigMap => "configmaps",
        };
        let req = Request::get(format!("/api/v1/namespaces/{namespace}/{plural}/{name}")).body(Vec::new()).ok()?;
        let object: Value = self.client.request(req).await.ok()?;
        let mut data = BTreeMap::new();
        for (k, v) in object["data"].as_object().into_iter().flatten() {
            let text = v.as_str().unwrap_or_default();
            let value = match kind {
                RefKind::Secret => base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default(),
                RefKind::ConfigMap => text.to_owned(),
            };
            data.insert(k.clone(), value);
        }
        for (k, v) in object["stringData"].as_object().into_iter().flatten() {
            data.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
        }
        Some(data)
    }
}

/// A running node agent; dropping it stops it.
#[derive(Debug)]
pub struct NodeAgent {
    tasks: Vec<JoinHandle<()>>,
    pub port: u16,
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// TLS material of the agent's kubelet endpoint.
#[derive(Debug, Clone)]
pub struct AgentTls {
    pub cert_pem: String,
    pub key_pem: String,
    /// Clients must present a certificate signed by this CA (the apiserver's
    /// kubelet client certificate).
    pub ca_pem: String,
}

impl NodeAgent {
    /// Register the Node and start running its pods; `client` authenticates
    /// as the node.
    pub async fn start(
        client: kube::Client,
        tls: AgentTls,
        clock: Clock,
        unpullable: String,
    ) -> Result<Self, ClusterError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| ClusterError::Setup(format!("node agent: no port on 127.0.0.1: {e}")))?;
        let port = listener.local_addr().map_err(|e| ClusterError::Setup(e.to_string()))?.port();
        register_node(&client, port).await?;
        let node = RemoteNode { client: client.clone(), pods: Arc::default() };
        let logs = Arc::new(LogStore::default());
        let kubelet = Arc::new(Kubelet::new(node.clone(), clock, logs.clone(), unpullable));
        let server_config = server_tls(&tls)?;
        let mut tasks = vec![tokio::spawn(serve_logs(listener, server_config, node.clone(), logs))];
        tasks.push(tokio::spawn(run_pods(client.clone(), kubelet)));
        tasks.push(tokio::spawn(heartbeat(client, port)));
        Ok(Self { tasks, port })
    }
}

fn node_object(port: u16) -> Value {
    let now = now_rfc3339();
    let version = crate::realkube::KUBERNETES_VERSION;
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE_NAME, "labels": {
            "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
        }},
        "spec": {},
        "status": {
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "5000", "ephemeral-storage": "1Ti"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "5000", "ephemeral-storage": "1Ti"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available", "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure", "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": "kubelet has sufficient PID available", "lastHeartbeatTime": now, "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now},
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE_NAME}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "polysync node agent",
                "containerRuntimeVersion": "polysync-shell://1", "kubeletVersion": version, "kubeProxyVersion": "",
                "operatingSystem": "linux", "architecture": "amd64",
            },
        },
    })
}

async fn register_node(client: &kube::Client, port: u16) -> Result<(), ClusterError> {
    let body = serde_json::to_vec(&node_object(port)).unwrap_or_default();
    let req = Request::post("/api/v1/nodes")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| ClusterError::Setup(e.to_string()))?;
    match client.request::<Value>(req).await {
        Ok(_) => {}
        Err(e) if status_code(&e) == Some(409) => {}
        Err(e) => return Err(ClusterError::Setup(format!("node agent: registering Node {NODE_NAME}: {e}"))),
    }
    write_node_status(client, port).await
}

/// Node status with fresh heartbeats (the apiserver may not keep a status
/// sent on create).
async fn write_node_status(client: &kube::Client, port: u16) -> Result<(), ClusterError> {
    let patch = json!({"status": node_object(port)["status"]});
    let req = Request::patch(format!("/api/v1/nodes/{NODE_NAME}/status"))
        .header(http::header::CONTENT_TYPE, "application/strategic-merge-patch+json")
        .body(serde_json::to_vec(&patch).unwrap_or_default())
        .map_err(|e| ClusterError::Setup(e.to_string()))?;
    client
        .request::<Value>(req)
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::Setup(format!("node agent: writing Node status: {e}")))
}

async fn heartbeat(client: kube::Client, port: u16) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(20)).await;
        if let Err(e) = write_node_status(&client, port).await {
            tracing::debug!(error = %e, "node agent: heartbeat failed; will retry");
        }
    }
}

/// Watch the pods bound to this node and drive the kubelet.
async fn run_pods(client: kube::Client, kubelet: Arc<Kubelet<RemoteNode>>) {
    let api: Api<DynamicObject> = Api::all_with(client, &ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()));
    let config = watcher::Config::default().fields(&format!("spec.nodeName={NODE_NAME}"));
    let mut events = std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(watcher(api, config)));
    let releasing: Arc<Mutex<std::collections::HashSet<Key>>> = Arc::default();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "node agent: pod watch error; retrying");
                continue;
            }
        };
        match event {
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                let Ok(pod) = serde_json::to_value(&obj) else { continue };
                let key = Key::of(&pod);
                kubelet.node().remember(pod.clone());
                if pod["metadata"].get("deletionTimestamp").is_some() {
                    let first = releasing.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone());
                    if first {
                        let kubelet = kubelet.clone();
                        let releasing = releasing.clone();
                        tokio::spawn(async move {
                            kubelet.kill(&key).await;
                            let pod = kubelet.node().get(&key).await.unwrap_or(pod);
                            kubelet.node().release(&pod).await;
                            releasing.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                        });
                    }
                } else if !matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) {
                    kubelet.start(key);
                }
            }
            watcher::Event::Delete(obj) => {
                let Ok(pod) = serde_json::to_value(&obj) else { continue };
                let key = Key::of(&pod);
                kubelet.stop(&key);
                kubelet.node().forget(&key);
                kubelet.logs().remove_pod(&key.namespace, &key.name);
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }
}

fn server_tls(tls: &AgentTls) -> Result<Arc<rustls::ServerConfig>, ClusterError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let err = |e: &dyn std::fmt::Display| ClusterError::Setup(format!("node agent TLS: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(tls.ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| err(&e))?).map_err(|e| err(&e))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| err(&e))?;
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes()).collect::<Result<_, _>>().map_err(|e| err(&e))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(|e| err(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| err(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

type Body = BoxBody<Bytes, std::convert::Infallible>;

fn text(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("static parts")
}

/// The kubelet's `/containerLogs/{namespace}/{pod}/{container}` endpoint.
async fn serve_logs(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    node: RemoteNode,
    logs: Arc<LogStore>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let acceptor = acceptor.clone();
        let node = node.clone();
        let logs = logs.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else { return };
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let node = node.clone();
                let logs = logs.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(req, &node, &logs).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(req: Request<hyper::body::Incoming>, node: &RemoteNode, logs: &LogStore) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["containerLogs", ns, pod, container] = parts.as_slice() else {
        return text(StatusCode::NOT_FOUND, format!("404 page not found: {path}"));
    };
    let query: HashMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
    let number = |k: &str| query.get(k).and_then(|v| v.parse::<u64>().ok());
    let flag = |k: &str| matches!(query.get(k).map(String::as_str), Some("true" | "1"));
    let q = LogQuery {
        container: Some((*container).to_owned()),
        tail_lines: number("tailLines"),
        limit_bytes: number("limitBytes"),
        timestamps: flag("timestamps"),
        follow: flag("follow"),
        previous: flag("previous"),
    };
    let key = Key::new(ns, pod);
    let Some(pod) = node.get(&key).await else {
        return text(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} not found on node {NODE_NAME}"));
    };
    match container_log(logs, &pod, &q) {
        Ok(LogBody::Text(t)) => text(StatusCode::OK, t),
        Ok(LogBody::Follow(stream)) => Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(BodyExt::boxed(StreamBody::new(
                stream.map(|b| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(b))),
            )))
            .expect("static parts"),
        Err(message) => text(StatusCode::BAD_REQUEST, message),
    }
}
