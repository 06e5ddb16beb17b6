//! A local Kubernetes API server that behaves like a real cluster for Jobs.
//!
//! No real kube-apiserver can be installed on our machines, and users need
//! to try polysync without a cluster, so this crate is the embedded default
//! cluster of the demo, the tests and the benchmarks. It serves the
//! discovery documents, `namespaces`, `batch/v1` `jobs` and `cronjobs`, `v1`
//! `pods` (with `log`) and `events` over HTTPS with a generated CA and
//! bearer tokens, with the real verbs, object semantics, selectors, paging,
//! watches and error `Status`es; and it runs the controllers that make Jobs
//! move (job, cronjob, garbage collector) and a simulated kubelet. It is
//! checked with the real `kubectl`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), polysync_sandbox::SandboxError> {
//! let sandbox = polysync_sandbox::Sandbox::start(polysync_sandbox::SandboxConfig::default()).await?;
//! std::fs::write("kubeconfig", sandbox.kubeconfig("default")).unwrap();
//! # Ok(()) }
//! ```

pub mod api;
mod args;
pub mod auth;
pub mod controllers;
pub mod error;
pub mod faults;
pub mod kubelet;
pub mod resources;
pub mod seed;
pub mod stats;
pub mod store;
pub mod time;
pub mod tls;
pub mod validation;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use args::{SandboxArgs, parse_time_scale};
pub use auth::{Access, Identity, TokenValidator};
pub use faults::{FaultSettings, Faults};
pub use stats::Stats;
pub use store::Store;

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("could not listen on {addr}: {source}; pick another port or free this one")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("could not set up TLS: {0}")]
    Tls(String),
    #[error("seed file {}: {message}", path.display())]
    Seed { path: PathBuf, message: String },
}

impl SandboxError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bind { .. } => "bind",
            Self::Tls(_) => "tls",
            Self::Seed { .. } => "seed",
        }
    }
}

/// What to seed the cluster with.
#[derive(Debug, Clone)]
pub struct SeedConfig {
    /// Namespace of generated objects (created if missing).
    pub namespace: String,
    /// Finished Jobs to generate.
    pub jobs: usize,
    /// CronJobs to generate (each with one finished Job it owns).
    pub cronjobs: usize,
    /// A multi-document YAML file of objects to create.
    pub file: Option<PathBuf>,
}

impl Default for SeedConfig {
    fn default() -> Self {
        Self { namespace: "default".into(), jobs: 0, cronjobs: 0, file: None }
    }
}

/// How to run a sandbox. `Default` is HTTPS on an ephemeral 127.0.0.1
/// port, one random admin token, real time, controllers on.
#[derive(Clone)]
pub struct SandboxConfig {
    pub bind: SocketAddr,
    /// Serve HTTPS with a generated CA (plain HTTP when false).
    pub tls: bool,
    /// The admin token (random if `None`).
    pub admin_token: Option<String>,
    /// More tokens (read-only or namespace-limited users).
    pub extra_tokens: Vec<(String, Identity)>,
    pub token_validator: Option<TokenValidator>,
    /// Simulated durations are multiplied by this (0.01: 10 s take 100 ms).
    pub time_scale: f64,
    pub cronjob_controller: bool,
    /// How many changes a watch can resume across.
    pub history: usize,
    pub continue_ttl: Duration,
    pub bookmark_interval: Duration,
    /// Images whose name contains this fail to pull.
    pub unpullable_image: String,
    pub seed: SeedConfig,
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("bind", &self.bind)
            .field("tls", &self.tls)
            .field("time_scale", &self.time_scale)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            admin_token: None,
            extra_tokens: Vec::new(),
            token_validator: None,
            time_scale: 1.0,
            cronjob_controller: true,
            history: 10_000,
            continue_ttl: Duration::from_secs(300),
            bookmark_interval: Duration::from_secs(5),
            unpullable_image: "does-not-exist".into(),
            seed: SeedConfig::default(),
        }
    }
}

/// A running sandbox. Dropping it stops the server and the controllers.
#[derive(Debug)]
pub struct Sandbox {
    url: String,
    token: String,
    ca_pem: Option<String>,
    store: Arc<Store>,
    faults: Arc<Faults>,
    stats: Arc<Stats>,
    client_certs: Option<Arc<tls::ClientCerts>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Sandbox {
    /// Start on the current tokio runtime.
    pub async fn start(config: SandboxConfig) -> Result<Self, SandboxError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = Arc::new(Store::new(config.history));
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease", config.seed.namespace.as_str()] {
            seed::ensure_namespace(&store, ns);
        }
        seed::generate(&store, &config.seed.namespace, config.seed.jobs, config.seed.cronjobs);
        if let Some(file) = &config.seed.file {
            seed::load_file(&store, file, &config.seed.namespace)?;
        }
        let token = config.admin_token.clone().unwrap_or_else(|| format!("sandbox-{}", uuid::Uuid::new_v4().simple()));
        let mut auth = auth::Auth::default();
        auth.add(token.clone(), Identity { user: "sandbox-admin".into(), access: Access::Admin });
        for (t, identity) in &config.extra_tokens {
            auth.add(t.clone(), identity.clone());
        }
        if let Some(v) = &config.token_validator {
            auth.set_validator(v.clone());
        }
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| SandboxError::Bind { addr: config.bind, source })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind { addr: config.bind, source })?;
        let (tls, ca_pem, client_certs) = if config.tls {
            let tls = tls::Tls::generate()?;
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
            (Some((acceptor, tls.clients.clone())), Some(tls.ca_pem), Some(tls.clients))
        } else {
            (None, None, None)
        };
        let url = format!("{}://{addr}", if config.tls { "https" } else { "http" });
        let faults = Arc::new(Faults::default());
        let stats = Arc::new(Stats::default());
        let logs = Arc::new(kubelet::LogStore::default());
        let clock = time::Clock::new(config.time_scale);
        let server = Arc::new(api::Server {
            store: store.clone(),
            auth,
            faults: faults.clone(),
            stats: stats.clone(),
            logs: logs.clone(),
            continue_ttl: config.continue_ttl,
            bookmark_interval: config.bookmark_interval,
        });
        let mut tasks = vec![tokio::spawn(api::serve(listener, tls, server))];
        tasks.push(tokio::spawn(controllers::gc::run(store.clone())));
        if config.cronjob_controller {
            tasks.push(tokio::spawn(controllers::cronjob::run(store.clone())));
        }
        controllers::job::JobController::spawn(store.clone(), clock);
        kubelet::Kubelet::spawn_for_store(store.clone(), clock, logs, config.unpullable_image.clone());
        tracing::info!(%url, "sandbox listening");
        Ok(Self { url, token, ca_pem, client_certs, store, faults, stats, tasks })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client certificate and key (PEM) that authenticate as `identity`
    /// (HTTPS sandboxes only).
    pub fn issue_client_cert(&self, identity: Identity) -> Result<(String, String), SandboxError> {
        let certs =
            self.client_certs.as_ref().ok_or_else(|| SandboxError::Tls("this sandbox serves plain HTTP".into()))?;
        certs.issue(identity)
    }

    /// The admin bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The CA certificate (PEM), if serving HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A kubeconfig (YAML) for the admin, with `namespace` as the default.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        tls::kubeconfig(&self.url, self.ca_pem.as_deref(), &self.token, namespace)
    }

    /// A kubeconfig for another token.
    pub fn kubeconfig_for(&self, token: &str, namespace: &str) -> String {
        tls::kubeconfig(&self.url, self.ca_pem.as_deref(), token, namespace)
    }

    /// Write the admin kubeconfig to `path`, readable by the owner only.
    pub fn write_kubeconfig(&self, path: &std::path::Path, namespace: &str) -> std::io::Result<()> {
        write_private(path, &self.kubeconfig(namespace))
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Write `text` to `path` for its owner only: created 0600 (never readable
/// by others, not even for a moment), an existing file truncated and made
/// 0600, and never through a symlink (a planted link is refused, not
/// followed).
pub fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    /// `O_NOFOLLOW` on Linux.
    const O_NOFOLLOW: i32 = 0o400000;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(40) {
                std::io::Error::new(
                    e.kind(),
                    format!("{} is a symbolic link; refusing to write credentials through it", path.display()),
                )
            } else {
                e
            }
        })?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// A sandbox on its own runtime thread, for synchronous callers (tests that
/// drive `kubectl`, the CLI's `sandbox` command).
#[derive(Debug)]
pub struct BackgroundSandbox {
    sandbox: Option<Sandbox>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BackgroundSandbox {
    pub fn start(config: SandboxConfig) -> Result<Self, SandboxError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("polysync-sandbox")
            .enable_all()
            .build()
            .map_err(|e| SandboxError::Bind { addr: config.bind, source: e })?;
        let sandbox = runtime.block_on(Sandbox::start(config))?;
        Ok(Self { sandbox: Some(sandbox), runtime: Some(runtime) })
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("present until drop")
    }
}

impl std::ops::Deref for BackgroundSandbox {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        self.sandbox.as_ref().expect("present until drop")
    }
}

impl Drop for BackgroundSandbox {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            let _guard = rt.enter();
            drop(self.sandbox.take());
            rt.shutdown_background();
        }
    }
}
