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

mod channel;
pub mod connect;
mod discover;
pub mod entry;
pub mod error;
mod events;
pub mod labels;
mod logs;
pub mod naming;
pub mod retry;
mod run;
pub mod spec;
pub mod status;
mod watch;

use std::sync::Arc;

use async_trait::async_trait;
use polysync_provider_api::{
    CancelOutcome, CancelRequest, DiscoverPage, DiscoverRequest, EventsRequest, LogChunk, LogRequest, Manifest,
    MonitorUrl, PollRequest, Provider, Result, ResultStream, RunEvent, RunHandle, RunRequest, RunStatus, UrlRequest,
    WatchRequest,
};

pub use connect::{Connector, Lazy, Monitor, NoMonitor, UrlTemplate};
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
        discover::discover(self, request).await
    }

    async fn run(&self, request: RunRequest) -> Result<RunHandle> {
        run::run(self, request).await
    }

    async fn poll(&self, request: PollRequest) -> Result<RunStatus> {
        run::poll(self, &request.run_id).await
    }

    async fn watch(&self, request: WatchRequest) -> Result<ResultStream<RunStatus>> {
        watch::watch(self, request.run_ids).await
    }

    async fn cancel(&self, request: CancelRequest) -> Result<CancelOutcome> {
        run::cancel(self, &request.run_id, request.delete).await
    }

    async fn monitor_url(&self, request: UrlRequest) -> Result<MonitorUrl> {
        let url = match request {
            UrlRequest::Entry { external_id } => self.monitor.entry(&self.namespace, &external_id),
            UrlRequest::Run { run_id } => self.monitor.run(&self.namespace, &run_id),
        };
        Ok(MonitorUrl { url })
    }

    async fn logs(&self, request: LogRequest) -> Result<ResultStream<LogChunk>> {
        logs::logs(self, request).await
    }

    async fn events(&self, request: EventsRequest) -> Result<ResultStream<RunEvent>> {
        events::events(self, request).await
    }
}

/// Manifest capabilities every kube-jobs provider has.
pub fn capabilities() -> Vec<polysync_provider_api::Capability> {
    use polysync_provider_api::Capability;
    vec![Capability::PushWatch, Capability::FollowLogs, Capability::FallbackRun]
}
