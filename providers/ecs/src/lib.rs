//! The `ecs` provider: ECS task definitions as catalog entries, tasks as
//! runs. It shows the contract is not Kubernetes-shaped: the same
//! operations, answered by ListTaskDefinitionFamilies, RunTask,
//! DescribeTasks (batched, 100 tasks a call), StopTask and CloudWatch Logs.
//!
//! An entry's external id is the task definition family (the latest ACTIVE
//! revision runs) or `family:revision` (that revision runs). A run id is
//! the task ARN.

mod attempts;
mod client;
mod console;
mod definition;
mod discover;
mod events;
mod logs;
mod outputs;
mod run;
pub mod settings;
pub mod status;
pub mod track;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use polysync_aws::{Connection, from_sdk};
use polysync_provider_api::{
    CancelOutcome, CancelRequest, Capability, ClustersPage, ClustersRequest, DiscoverPage, DiscoverRequest,
    EventsRequest, LogChunk, LogRequest, Manifest, MonitorUrl, PollRequest, Provider, Result, ResultStream, RunEvent,
    RunHandle, RunRequest, RunStatus, UrlRequest, WatchRequest,
};

use crate::settings::Settings;

/// One ECS cluster behind the provider contract.
#[derive(Debug, Clone)]
pub struct Ecs {
    pub(crate) settings: Arc<Settings>,
    pub(crate) aws: Arc<Connection>,
    /// What tracking needs of each task definition, by ARN.
    pub(crate) definitions: Arc<Mutex<HashMap<String, Arc<definition::Definition>>>>,
    pub(crate) poll_interval: Duration,
}

impl Ecs {
    pub fn new(settings: Settings) -> Self {
        let aws = Connection::new(settings.aws.clone());
        Self { settings: Arc::new(settings), aws, definitions: Arc::default(), poll_interval: Duration::from_secs(2) }
    }

    /// How often watch and followed events describe the tracked tasks.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    pub(crate) async fn client(&self) -> Result<aws_sdk_ecs::Client> {
        Ok(aws_sdk_ecs::Client::new(self.aws.config().await?))
    }
}

fn manifest() -> Manifest {
    let mut m = Manifest::new("ecs", env!("CARGO_PKG_VERSION"));
    m.description = "Amazon ECS task definitions as entries, tasks as runs, logs from CloudWatch Logs".into();
    m.settings = settings::Raw::docs();
    m.settings.extend(polysync_aws::AwsSettings::docs());
    m.capabilities = vec![Capability::FollowLogs, Capability::ListClusters];
    m
}

/// Validate settings and build the provider (no network yet).
pub fn build(value: serde_json::Value) -> Result<Ecs> {
    let settings = Settings::parse(value)?;
    let interval = settings.poll_interval;
    Ok(Ecs::new(settings).with_poll_interval(interval))
}

#[async_trait]
impl Provider for Ecs {
    fn manifest(&self) -> Manifest {
        manifest()
    }

    async fn discover(&self, request: DiscoverRequest) -> Result<DiscoverPage> {
        discover::discover(self, request).await
    }

    async fn run(&self, request: RunRequest) -> Result<RunHandle> {
        run::run(self, request).await
    }

    async fn poll(&self, request: PollRequest) -> Result<RunStatus> {
        track::poll(self, &request.run_id).await
    }

    async fn watch(&self, request: WatchRequest) -> Result<ResultStream<RunStatus>> {
        track::watch(self, request.run_ids).await
    }

    async fn cancel(&self, request: CancelRequest) -> Result<CancelOutcome> {
        run::cancel(self, &request.run_id, request.reason.as_deref()).await
    }

    async fn monitor_url(&self, request: UrlRequest) -> Result<MonitorUrl> {
        let url = match request {
            UrlRequest::Entry { external_id } => console::entry(self, &external_id),
            UrlRequest::Run { run_id } => console::run(self, &run_id),
        };
        Ok(MonitorUrl { url: Some(url) })
    }

    async fn logs(&self, request: LogRequest) -> Result<ResultStream<LogChunk>> {
        logs::logs(self, request).await
    }

    async fn events(&self, request: EventsRequest) -> Result<ResultStream<RunEvent>> {
        events::events(self, request).await
    }

    async fn list_clusters(&self, request: ClustersRequest) -> Result<ClustersPage> {
        let region = polysync_aws::region(self.aws.config().await?);
        let page = self
            .client()
            .await?
            .list_clusters()
            .set_next_token(request.page_token)
            .max_results(polysync_aws::page_size(request.page_size))
            .send()
            .await
            .map_err(|e| from_sdk(e, "ecs:ListClusters", &format!("listing ECS clusters in {region}")))?;
        Ok(polysync_aws::clusters_page(&region, page.cluster_arns.unwrap_or_default(), page.next_token))
    }
}

polysync_provider_api::export_provider!(manifest = manifest, build = build);
