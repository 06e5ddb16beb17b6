//! A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver (token
//! authentication, Node + RBAC authorization, generated certificates),
//! kube-controller-manager (job, cronjob, garbage collector, resource quota, service
//! account, namespace, pod GC and TTL-after-finished controllers),
//! kube-scheduler, and the [node agent](crate::node_agent) as its one Node.
//! Every port is ephemeral; every process dies with its owner.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use polysync_sandbox::time::Clock;
use serde_json::Value;

use crate::ClusterError;
use crate::node_agent::{AgentTls, NODE_NAME, NodeAgent};
use crate::pki::Pki;
use crate::process::{Child, free_port, scratch_dir, tail};

/// The Kubernetes release `tests/realkube` builds.
pub const KUBERNETES_VERSION: &str = "v1.36.3";

/// How to run a real control plane.
#[derive(Clone)]
pub struct RealKubeConfig {
    /// Directory with etcd, kube-apiserver, kube-controller-manager and
    /// kube-scheduler; `None` finds or builds them ([`binaries`]).
    pub bin_dir: Option<PathBuf>,
    /// The node agent's simulated durations are multiplied by this.
    pub time_scale: f64,
    /// Images whose name contains this fail to pull.
    pub unpullable_image: String,
    /// kube-apiserver's `--etcd-compaction-interval`.
    pub etcd_compaction_interval: String,
    /// Authenticate bearer tokens the static token file does not know with
    /// this (through a token-review webhook): cloud tokens.
    pub token_webhook: Option<polysync_sandbox::TokenValidator>,
}

impl std::fmt::Debug for RealKubeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealKubeConfig")
            .field("bin_dir", &self.bin_dir)
            .field("time_scale", &self.time_scale)
            .field("token_webhook", &self.token_webhook.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for RealKubeConfig {
    fn default() -> Self {
        Self {
            bin_dir: None,
            time_scale: 1.0,
            unpullable_image: "does-not-exist".into(),
            etcd_compaction_interval: "5m".into(),
            token_webhook: None,
        }
    }
}

/// The directory holding the control plane binaries: `POLYSYNC_REALKUBE_BIN`,
/// or what `tests/realkube/build.sh` builds (cached by version, so this is
/// quick after the first time).
pub fn binaries() -> Result<PathBuf, ClusterError> {
    static DIR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let found = DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("POLYSYNC_REALKUBE_BIN") {
            return Ok(PathBuf::from(dir));
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../realkube/build.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!("{} failed ({})", script.display(), out.status));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().last().map(PathBuf::from).ok_or_else(|| format!("{} printed no directory", script.display()))
    });
    let dir = found.clone().map_err(ClusterError::Binaries)?;
    for bin in ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
        if !dir.join(bin).is_file() {
            return Err(ClusterError::Binaries(format!("{} has no {bin}", dir.display())));
        }
    }
    Ok(dir)
}

const DIR_PREFIX: &str = "polysync-realkube-";

struct Processes {
    etcd: Child,
    apiserver: Child,
    controller_manager: Child,
    scheduler: Child,
}

/// A running control plane. Dropping it stops every process.
pub struct RealKube {
    url: String,
    admin_token: String,
    ca_pem: String,
    etcd_url: String,
    bin: PathBuf,
    apiserver_args: Vec<String>,
    processes: Mutex<Processes>,
    agent: Option<NodeAgent>,
    webhook: Option<tokio::task::JoinHandle<()>>,
    pki: Pki,
    runtime: Option<tokio::runtime::Runtime>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for RealKube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealKube").field("url", &self.url).field("dir", &self.dir.path()).finish_non_exhaustive()
    }
}

fn random_token(prefix: &str) -> String {
    format!("{prefix}-{:032x}", rand::random::<u128>())
}

fn token_kubeconfig(url: &str, ca_pem: &str, token: &str) -> String {
    polysync_sandbox::tls::kubeconfig(url, Some(ca_pem), token, "default")
}

/// A kube client for a kubeconfig's text.
pub async fn client_for(kubeconfig: &str) -> Result<kube::Client, ClusterError> {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).map_err(|e| ClusterError::Setup(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| ClusterError::Setup(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| ClusterError::Setup(e.to_string()))
}

impl RealKube {
    /// Start every component and wait until pods can run.
    pub fn start(config: RealKubeConfig) -> Result<Self, ClusterError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let started = Instant::now();
        let bin = match &config.bin_dir {
            Some(d) => d.clone(),
            None => binaries()?,
        };
        let dir = scratch_dir(DIR_PREFIX)?;
        let d = dir.path();
        let pki = Pki::generate(d)?;
        let admin_token = random_token("admin");
        let kcm_token = random_token("kcm");
        let scheduler_token = random_token("scheduler");
        let node_token = random_token("node");
        let tokens = format!(
            "{admin_token},realkube-admin,realkube-admin,\"system:masters\"\n\
             {kcm_token},system:kube-controller-manager,kcm,\"\"\n\
             {scheduler_token},system:kube-scheduler,scheduler,\"\"\n\
             {node_token},system:node:{NODE_NAME},node,\"system:nodes\"\n"
        );
        let tokens_file = d.join("tokens.csv");
        std::fs::write(&tokens_file, tokens).map_err(|e| ClusterError::io(&tokens_file, e))?;

        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let s = |p: &Path| p.display().to_string();
        let mut etcd = Child::spawn(
            "etcd",
            &bin.join("etcd"),
            &[
                "--name=realkube".into(),
                format!("--data-dir={}", s(&d.join("etcd"))),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=realkube={peer_url}"),
                "--unsafe-no-fsync".into(),
                "--log-level=warn".into(),
            ],
            &d.join("etcd.log"),
        )?;
        wait_for("etcd", &mut etcd, Duration::from_secs(30), || {
            http_plain(etcd_port, "GET", "/health", None).is_ok_and(|b| b.contains("\"health\":\"true\""))
        })?;

        let url = format!("https://127.0.0.1:{api_port}");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("polysync-realkube")
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Setup(format!("tokio runtime: {e}")))?;
        let mut webhook_task = None;
        let mut webhook_args = Vec::new();
        if let Some(validator) = config.token_webhook.clone() {
            let (cert, key) = pki.issue_server("polysync-token-webhook")?;
            let (port, task) = runtime.block_on(crate::webhook::start(validator, &cert, &key))?;
            webhook_task = Some(task);
            let file = d.join("token-webhook.kubeconfig");
            let kubeconfig = polysync_sandbox::tls::kubeconfig(
                &format!("https://127.0.0.1:{port}/tokenreview"),
                Some(&pki.ca_pem),
                "unused",
                "default",
            );
            std::fs::write(&file, kubeconfig).map_err(|e| ClusterError::io(&file, e))?;
            webhook_args = vec![
                format!("--authentication-token-webhook-config-file={}", s(&file)),
                "--authentication-token-webhook-version=v1".into(),
                "--authentication-token-webhook-cache-ttl=1s".into(),
            ];
        }
        let apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--tls-cert-file={}", s(&pki.apiserver_cert)),
            format!("--tls-private-key-file={}", s(&pki.apiserver_key)),
            format!("--client-ca-file={}", s(&pki.ca_cert)),
            format!("--token-auth-file={}", s(&tokens_file)),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", s(&pki.sa_pub)),
            format!("--service-account-signing-key-file={}", s(&pki.sa_key)),
            "--service-cluster-ip-range=10.96.0.0/24".into(),
            format!("--kubelet-client-certificate={}", s(&pki.kubelet_client_cert)),
            format!("--kubelet-client-key={}", s(&pki.kubelet_client_key)),
            "--kubelet-preferred-address-types=InternalIP".into(),
            format!("--etcd-compaction-interval={}", config.etcd_compaction_interval),
            "--endpoint-reconciler-type=none".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            "--v=1".into(),
        ]
        .into_iter()
        .chain(webhook_args)
        .collect::<Vec<String>>();
        let admin_kubeconfig = token_kubeconfig(&url, &pki.ca_pem, &admin_token);
        let admin = runtime.block_on(client_for(&admin_kubeconfig))?;
        let mut apiserver = Child::spawn(
            "kube-apiserver",
            &bin.join("kube-apiserver"),
            &apiserver_args,
            &d.join("kube-apiserver.log"),
        )?;
        wait_apiserver(&runtime, &admin, &mut apiserver)?;

        let write_kubeconfig = |name: &str, token: &str| -> Result<PathBuf, ClusterError> {
            let path = d.join(name);
            std::fs::write(&path, token_kubeconfig(&url, &pki.ca_pem, token))
                .map_err(|e| ClusterError::io(&path, e))?;
            Ok(path)
        };
        let kcm_kubeconfig = write_kubeconfig("controller-manager.kubeconfig", &kcm_token)?;
        let scheduler_kubeconfig = write_kubeconfig("scheduler.kubeconfig", &scheduler_token)?;
        let controller_manager = Child::spawn(
            "kube-controller-manager",
            &bin.join("kube-controller-manager"),
            &[
                format!("--kubeconfig={}", s(&kcm_kubeconfig)),
                "--controllers=job-controller,cronjob-controller,garbage-collector-controller,resourcequota-controller,serviceaccount-controller,serviceaccount-token-controller,namespace-controller,pod-garbage-collector-controller,ttl-after-finished-controller,root-ca-certificate-publisher-controller,clusterrole-aggregation-controller".into(),
                format!("--service-account-private-key-file={}", s(&pki.sa_key)),
                format!("--root-ca-file={}", s(&pki.ca_cert)),
                "--use-service-account-credentials=true".into(),
                "--kube-api-qps=200".into(),
                "--kube-api-burst=400".into(),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                "--v=1".into(),
            ],
            &d.join("kube-controller-manager.log"),
        )?;
        let scheduler = Child::spawn(
            "kube-scheduler",
            &bin.join("kube-scheduler"),
            &[
                format!("--kubeconfig={}", s(&scheduler_kubeconfig)),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                "--v=1".into(),
            ],
            &d.join("kube-scheduler.log"),
        )?;
        let node_client = runtime.block_on(client_for(&token_kubeconfig(&url, &pki.ca_pem, &node_token)))?;
        let agent = runtime.block_on(NodeAgent::start(
            node_client,
            AgentTls {
                cert_pem: pki.node_cert_pem.clone(),
                key_pem: pki.node_key_pem.clone(),
                ca_pem: pki.ca_pem.clone(),
            },
            Clock::new(config.time_scale),
            config.unpullable_image.clone(),
        ))?;
        // The TaintNodesByCondition admission plugin registers every Node
        // with the not-ready taint; the node lifecycle controller (not run
        // here: it would evict pods whenever a loaded test machine delays a
        // heartbeat) lifts it once the Node is Ready. Lift it as that
        // controller would.
        let untaint = http::Request::patch(format!("/api/v1/nodes/{NODE_NAME}"))
            .header(http::header::CONTENT_TYPE, "application/merge-patch+json")
            .body(br#"{"spec":{"taints":null}}"#.to_vec())
            .expect("static");
        runtime
            .block_on(admin.request::<Value>(untaint))
            .map_err(|e| ClusterError::Setup(format!("removing the not-ready taint of {NODE_NAME}: {e}")))?;
        let mut cluster = Self {
            url,
            admin_token,
            ca_pem: pki.ca_pem.clone(),
            etcd_url,
            bin,
            apiserver_args,
            processes: Mutex::new(Processes { etcd, apiserver, controller_manager, scheduler }),
            agent: Some(agent),
            webhook: webhook_task,
            pki: pki.clone(),
            runtime: Some(runtime),
            dir,
        };
        cluster.wait_until_pods_can_run(&admin)?;
        tracing::info!(url = %cluster.url, secs = started.elapsed().as_secs_f64(), "real control plane ready");
        Ok(cluster)
    }

    /// Pods need the namespace's `default` ServiceAccount (created by the
    /// controller manager) before admission lets them in.
    fn wait_until_pods_can_run(&mut self, admin: &kube::Client) -> Result<(), ClusterError> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            self.check()?;
            let req = http::Request::get("/api/v1/namespaces/default/serviceaccounts/default")
                .body(Vec::new())
                .expect("static");
            if self.runtime().block_on(admin.request::<Value>(req)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ClusterError::NotReady {
                    what: "kube-controller-manager (the default ServiceAccount)".into(),
                    secs: 90,
                    hint: format!("see {}", self.dir.path().join("kube-controller-manager.log").display()),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("present until drop")
    }

    /// `Err` if a component has exited.
    pub fn check(&self) -> Result<(), ClusterError> {
        let mut p = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        p.etcd.check()?;
        p.apiserver.check()?;
        p.controller_manager.check()?;
        p.scheduler.check()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The admin token (group `system:masters`).
    pub fn token(&self) -> &str {
        &self.admin_token
    }

    /// An admin kubeconfig with `namespace` as its default.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        polysync_sandbox::tls::kubeconfig(&self.url, Some(&self.ca_pem), &self.admin_token, namespace)
    }

    /// A kubeconfig that sends `token`.
    pub fn kubeconfig_for(&self, token: &str, namespace: &str) -> String {
        polysync_sandbox::tls::kubeconfig(&self.url, Some(&self.ca_pem), token, namespace)
    }

    /// Where the components' logs are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stop kube-apiserver and start it again on the same port (watches
    /// break; resource versions from before may be too old).
    pub fn restart_apiserver(&self) -> Result<(), ClusterError> {
        let mut p = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        p.apiserver.kill();
        p.apiserver = Child::spawn(
            "kube-apiserver",
            &self.bin.join("kube-apiserver"),
            &self.apiserver_args,
            &self.dir.path().join("kube-apiserver.log"),
        )?;
        let admin = self.runtime().block_on(client_for(&self.kubeconfig("default")))?;
        wait_apiserver(self.runtime(), &admin, &mut p.apiserver)
    }

    /// Compact etcd's history up to its current revision, so every older
    /// resourceVersion is gone from storage (a real `410 Gone` for any
    /// watch that has to go back to etcd). Returns the revision.
    pub fn compact_etcd(&self) -> Result<u64, ClusterError> {
        let port: u16 = self.etcd_url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let range = http_plain(port, "POST", "/v3/kv/range", Some(r#"{"key":"AA=="}"#))
            .map_err(|e| ClusterError::Setup(format!("etcd range: {e}")))?;
        let v: Value = serde_json::from_str(&range).map_err(|e| ClusterError::Setup(format!("etcd range: {e}")))?;
        let revision: u64 = v["header"]["revision"].as_str().and_then(|r| r.parse().ok()).unwrap_or(0);
        let body = format!(r#"{{"revision":"{revision}","physical":true}}"#);
        http_plain(port, "POST", "/v3/kv/compaction", Some(&body))
            .map_err(|e| ClusterError::Setup(format!("etcd compaction: {e}")))?;
        Ok(revision)
    }

    /// A client certificate and key (PEM) for `user`, signed by the CA the
    /// apiserver trusts (`--client-ca-file`).
    pub fn issue_client_cert(&self, user: &str, groups: &[&str]) -> Result<(String, String), ClusterError> {
        self.pki.issue_client(user, groups)
    }

    /// The node agent's kubelet port.
    pub fn node_port(&self) -> u16 {
        self.agent.as_ref().map_or(0, |a| a.port)
    }
}

impl Drop for RealKube {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            let _guard = rt.enter();
            drop(self.agent.take());
            if let Some(w) = self.webhook.take() {
                w.abort();
            }
            rt.shutdown_background();
        }
        // Children are killed by their own Drop, in field order.
    }
}

fn wait_apiserver(
    rt: &tokio::runtime::Runtime,
    admin: &kube::Client,
    apiserver: &mut Child,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        apiserver.check()?;
        let req = http::Request::get("/readyz").body(Vec::new()).expect("static");
        if rt.block_on(admin.request_text(req)).is_ok_and(|t| t.trim() == "ok") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ClusterError::NotReady {
                what: "kube-apiserver".into(),
                secs: 120,
                hint: format!("the end of its log:\n{}", tail(apiserver.log_path())),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for(
    name: &str,
    child: &mut Child,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + limit;
    loop {
        child.check()?;
        if ready() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ClusterError::NotReady {
                what: name.into(),
                secs: limit.as_secs(),
                hint: format!("the end of its log:\n{}", tail(child.log_path())),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A one-shot plain HTTP/1.1 request to 127.0.0.1 (etcd's client port);
/// the response body.
fn http_plain(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, rest) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(head.lines().next().unwrap_or_default().to_owned()));
    }
    // etcd answers small bodies with Content-Length; decode chunked just in case.
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        return Ok(out);
    }
    Ok(rest.to_owned())
}
