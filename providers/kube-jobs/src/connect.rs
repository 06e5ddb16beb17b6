//! How a plugin hands kube-jobs a cluster: a lazily built `kube::Client`
//! (credentials are fetched on first use, not at connection setup, so a
//! bad credential is reported by the first operation with its own message)
//! and the console URLs of its platform.

use async_trait::async_trait;
use polysync_provider_api::ProviderError;
use tokio::sync::OnceCell;

/// Builds the client for a connection.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    async fn connect(&self) -> Result<kube::Client, ProviderError>;
}

/// A connector that builds once and then reuses the client. A failed build
/// is retried on the next call.
pub struct Lazy<C> {
    connector: C,
    client: OnceCell<kube::Client>,
}

impl<C> std::fmt::Debug for Lazy<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lazy").field("connected", &self.client.initialized()).finish()
    }
}

impl<C: Connector> Lazy<C> {
    pub fn new(connector: C) -> Self {
        Self { connector, client: OnceCell::new() }
    }

    pub async fn client(&self) -> Result<kube::Client, ProviderError> {
        self.client.get_or_try_init(|| self.connector.connect()).await.cloned()
    }
}

/// A client for `config` with kube's own retry layer switched off.
///
/// kube 5 retries 429/503/504 up to 15 times with delays up to 1000 s by
/// default: right for a long-lived controller, a multi-minute hang for a
/// command or a scheduler call, and multiplied by our own retries. kube-jobs
/// retries with its own bounded policy ([`RetryPolicy`](crate::RetryPolicy)),
/// so every connector builds its client here.
pub fn client(mut config: kube::Config) -> Result<kube::Client, ProviderError> {
    config.default_retry = false;
    kube::Client::try_from(config)
        .map_err(|e| ProviderError::invalid_input(format!("could not build a Kubernetes client: {e}")))
}

/// Console pages of a platform; `None` where it has none.
pub trait Monitor: Send + Sync + 'static {
    fn entry(&self, namespace: &str, external_id: &str) -> Option<String>;
    fn run(&self, namespace: &str, run_id: &str) -> Option<String>;
}

/// No console (a plain kubeconfig connection without a template).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMonitor;

impl Monitor for NoMonitor {
    fn entry(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn run(&self, _: &str, _: &str) -> Option<String> {
        None
    }
}

/// A URL template with `{namespace}`, `{name}` and `{kind}` (`job` for runs
/// and Job entries, `cronjob` for CronJob entries).
#[derive(Debug, Clone)]
pub struct UrlTemplate(pub String);

impl UrlTemplate {
    fn fill(&self, namespace: &str, name: &str, kind: &str) -> String {
        self.0.replace("{namespace}", namespace).replace("{name}", name).replace("{kind}", kind)
    }
}

impl Monitor for UrlTemplate {
    fn entry(&self, namespace: &str, external_id: &str) -> Option<String> {
        Some(match external_id.strip_prefix(crate::entry::CRONJOB_PREFIX) {
            Some(name) => self.fill(namespace, name, "cronjob"),
            None => self.fill(namespace, external_id, "job"),
        })
    }
    fn run(&self, namespace: &str, run_id: &str) -> Option<String> {
        Some(self.fill(namespace, run_id, "job"))
    }
}

/// A config for an API server at `server` that trusts exactly the CA in
/// `ca_data` (base64 PEM, as in a kubeconfig's `certificate-authority-data`
/// and EKS's DescribeCluster), with no credentials of its own: the cloud
/// providers add a bearer token with [`crate::bearer::client`].
pub async fn server_config(server: &str, ca_data: &str) -> Result<kube::Config, ProviderError> {
    let kubeconfig: kube::config::Kubeconfig = serde_json::from_value(serde_json::json!({
        "clusters": [{"name": "cluster", "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": "none", "user": {}}],
        "contexts": [{"name": "cluster", "context": {"cluster": "cluster", "user": "none"}}],
        "current-context": "cluster",
    }))
    .map_err(|e| ProviderError::internal(format!("could not build a kubeconfig for {server}: {e}")))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| ProviderError::invalid_input(format!("the cluster's endpoint or CA cannot be used: {e}")))
}

/// The clusters a connection's credentials can reach (EKS ListClusters,
/// the AKS clusters of a subscription).
#[async_trait]
pub trait Clusters: Send + Sync + 'static {
    async fn list(
        &self,
        request: polysync_provider_api::ClustersRequest,
    ) -> Result<polysync_provider_api::ClustersPage, ProviderError>;
}
