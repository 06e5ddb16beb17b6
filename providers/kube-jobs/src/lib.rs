//! Everything about Kubernetes Jobs that the `kubernetes`, `aks` and `eks`
//! providers share.
//!
//! A plugin turns its connection settings into a [`Connector`] (how to get
//! a `kube::Client`) and a [`Monitor`] (its console URLs), and hands them to
//! [`KubeJobs`], which implements the whole [`Provider`] contract:
//!
//! * discover Jobs and CronJobs page by page, skipping what polysync made
//!   and what CronJobs own ([`entry`], `discover`);
//! * run a clone of the source with the server's fields stripped and the
//!   parameters overlaid, named from the idempotency key, adopting the Job a
//!   retried create already made ([`spec`], [`naming`]);
//! * map a Job and its pods to one status ([`status`]) and watch many runs
//!   with one list+watch per call;
//! * cancel (Background delete), logs, pod events;
//! * retry transient API errors with jittered backoff ([`retry`]).

pub mod bearer;
mod channel;
pub mod connect;
mod discover;
pub mod entry;
pub mod error;
mod events;
mod informer;
pub mod labels;
mod logs;
pub mod naming;
pub mod outputs;
mod refusals;
pub mod retry;
mod run;
mod slim;
pub mod spec;
pub mod status;
mod watch;

use std::sync::Arc;

use async_trait::async_trait;
use polysync_provider_api::{
    CancelOutcome, CancelRequest, ClustersPage, ClustersRequest, DiscoverPage, DiscoverRequest, ErrorKind,
    EventsRequest, LogChunk, LogRequest, Manifest, MonitorUrl, PollRequest, Provider, ProviderError, Result,
    ResultStream, RunEvent, RunHandle, RunRequest, RunStatus, UrlRequest, WatchRequest,
};

pub use connect::{Clusters, Connector, Lazy, Monitor, NoMonitor, UrlTemplate};
pub use retry::RetryPolicy;

#[async_trait]
impl Connector for Box<dyn Connector> {
    async fn connect(&self) -> Result<kube::Client> {
        (**self).connect().await
    }
}

/// The Jobs of one namespace of one cluster, behind the provider contract.
#[derive(Clone)]
pub struct KubeJobs {
    manifest: Manifest,
    pub(crate) namespace: String,
    client: Arc<Lazy<Box<dyn Connector>>>,
    pub(crate) monitor: Arc<dyn Monitor>,
    pub(crate) retry: RetryPolicy,
    pub(crate) include_cronjobs: bool,
    pub(crate) poll_interval: std::time::Duration,
    clusters: Option<Arc<dyn Clusters>>,
    unauthorized_hint: Option<&'static str>,
    /// The namespace's shared list+watch, while runs are watched.
    pub(crate) informer: informer::Slot,
}

impl std::fmt::Debug for KubeJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeJobs")
            .field("provider", &self.manifest.name)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl KubeJobs {
    pub fn new(
        manifest: Manifest,
        namespace: impl Into<String>,
        connector: impl Connector,
        monitor: impl Monitor,
    ) -> Self {
        Self {
            manifest,
            namespace: namespace.into(),
            client: Arc::new(Lazy::new(Box::new(connector) as Box<dyn Connector>)),
            monitor: Arc::new(monitor),
            retry: RetryPolicy::default(),
            include_cronjobs: true,
            poll_interval: std::time::Duration::from_secs(2),
            clusters: None,
            unauthorized_hint: None,
            informer: Arc::default(),
        }
    }

    /// Whether discovery lists CronJobs too (default true).
    pub fn with_cronjobs(mut self, include: bool) -> Self {
        self.include_cronjobs = include;
        self
    }

    /// How often watch polls when RBAC allows list but not watch (default 2 s).
    pub fn with_poll_interval(mut self, interval: std::time::Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Answer `list_clusters` with `clusters`.
    pub fn with_clusters(mut self, clusters: impl Clusters) -> Self {
        self.clusters = Some(Arc::new(clusters));
        self
    }

    /// What to fix when the cluster answers 401, in this platform's terms
    /// (the default speaks of kubeconfig users and tokens).
    pub fn with_unauthorized_hint(mut self, hint: &'static str) -> Self {
        self.unauthorized_hint = Some(hint);
        self
    }

    fn explain(&self, err: ProviderError) -> ProviderError {
        match self.unauthorized_hint {
            Some(hint)
                if err.kind() == ErrorKind::Unauthorized && err.message().ends_with(error::UNAUTHORIZED_HINT) =>
            {
                let message = err.message().strip_suffix(error::UNAUTHORIZED_HINT).unwrap_or_default();
                ProviderError::new(ErrorKind::Unauthorized, format!("{message}{hint}"))
            }
            _ => err,
        }
    }

    fn explain_stream<T: Send + 'static>(&self, stream: ResultStream<T>) -> ResultStream<T> {
        let this = self.clone();
        futures::StreamExt::boxed(futures::StreamExt::map(stream, move |item| item.map_err(|e| this.explain(e))))
    }

    pub(crate) async fn client(&self) -> Result<kube::Client> {
        self.client.client().await
    }
}

#[async_trait]
impl Provider for KubeJobs {
    fn manifest(&self) -> Manifest {
        self.manifest.clone()
    }

    async fn discover(&self, request: DiscoverRequest) -> Result<DiscoverPage> {
        discover::discover(self, request).await.map_err(|e| self.explain(e))
    }

    async fn run(&self, request: RunRequest) -> Result<RunHandle> {
        run::run(self, request).await.map_err(|e| self.explain(e))
    }

    async fn poll(&self, request: PollRequest) -> Result<RunStatus> {
        run::poll(self, &request.run_id).await.map_err(|e| self.explain(e))
    }

    async fn watch(&self, request: WatchRequest) -> Result<ResultStream<RunStatus>> {
        watch::watch(self, request.run_ids).await.map(|s| self.explain_stream(s)).map_err(|e| self.explain(e))
    }

    async fn cancel(&self, request: CancelRequest) -> Result<CancelOutcome> {
        run::cancel(self, &request.run_id, request.delete).await.map_err(|e| self.explain(e))
    }

    async fn monitor_url(&self, request: UrlRequest) -> Result<MonitorUrl> {
        let url = match request {
            UrlRequest::Entry { external_id } => self.monitor.entry(&self.namespace, &external_id),
            UrlRequest::Run { run_id } => self.monitor.run(&self.namespace, &run_id),
        };
        Ok(MonitorUrl { url })
    }

    async fn logs(&self, request: LogRequest) -> Result<ResultStream<LogChunk>> {
        logs::logs(self, request).await.map(|s| self.explain_stream(s)).map_err(|e| self.explain(e))
    }

    async fn events(&self, request: EventsRequest) -> Result<ResultStream<RunEvent>> {
        events::events(self, request).await.map(|s| self.explain_stream(s)).map_err(|e| self.explain(e))
    }

    async fn list_clusters(&self, request: ClustersRequest) -> Result<ClustersPage> {
        match &self.clusters {
            Some(clusters) => clusters.list(request).await,
            None => Err(ProviderError::unsupported(format!(
                "the {} provider cannot list clusters; set the cluster by name",
                self.manifest.name
            ))),
        }
    }
}

/// Manifest capabilities every kube-jobs provider has.
pub fn capabilities() -> Vec<polysync_provider_api::Capability> {
    use polysync_provider_api::Capability;
    vec![Capability::PushWatch, Capability::FollowLogs, Capability::FallbackRun]
}
