//! The `ecs` provider: ECS task definitions as catalog entries, tasks as
//! runs. It shows the contract is not Kubernetes-shaped: the same
//! operations, answered by ListTaskDefinitionFamilies, RunTask,
//! DescribeTasks (batched, 100 tasks a call), StopTask and CloudWatch Logs.
//!
//! An entry's external id is the task definition family (the latest ACTIVE
//! revision runs) or `family:revision` (that revision runs). A run id is
//! the task ARN.

mod console;
mod discover;
mod events;
mod logs;
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
    EventsRequest, LogChunk, LogRequest, Manifest, MonitorUrl, PollRequest, Provider, ProviderError, Result,
    ResultStream, RunEvent, RunHandle, RunRequest, RunStatus, SettingDoc, UrlRequest, WatchRequest,
};

use crate::settings::Settings;

/// One ECS cluster behind the provider contract.
#[derive(Debug, Clone)]
pub struct Ecs {
    pub(crate) settings: Arc<Settings>,
    pub(crate) aws: Arc<Connection>,
    /// Essential container names by task definition ARN: decides whether a
    /// stopped task failed. Task definitions are immutable, so never stale.
    pub(crate) essentials: Arc<Mutex<HashMap<String, Vec<String>>>>,
    pub(crate) poll_interval: Duration,
}

impl Ecs {
    pub fn new(settings: Settings) -> Self {
        let aws = Connection::new(settings.aws.clone());
        Self { settings: Arc::new(settings), aws, essentials: Arc::default(), poll_interval: Duration::from_secs(2) }
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
    let doc = |name: &str, required: bool, description: &str| SettingDoc {
        name: name.into(),
        required,
        description: description.into(),
    };
    m.settings = vec![
        doc("cluster", true, "ECS cluster name or ARN"),
        doc("launch_type", false, "FARGATE, EC2 or EXTERNAL (else the cluster's default capacity provider strategy)"),
        doc("capacity_provider_strategy", false, "[{capacity_provider, weight, base}] instead of launch_type"),
        doc("network_configuration", false, "awsvpc {subnets, security_groups, assign_public_ip}"),
        doc("family_prefix", false, "discover only families starting with this"),
        doc("platform_version", false, "Fargate platform version (default LATEST)"),
        doc("poll_interval_ms", false, "how often runs are described while watched (default 2000)"),
    ];
    m.settings.extend(polysync_aws::AwsSettings::docs("ECS, CloudWatch Logs and STS"));
    m.capabilities = vec![Capability::FollowLogs, Capability::ListClusters];
    m
}

/// Validate settings and build the provider (no network yet).
pub fn build(mut value: serde_json::Value) -> Result<Ecs> {
    let interval = match value.as_object_mut().and_then(|m| m.remove("poll_interval_ms")) {
        None => Duration::from_secs(2),
        Some(v) => match v.as_u64() {
            Some(ms) if ms >= 100 => Duration::from_millis(ms),
            _ => return Err(ProviderError::invalid_input("setting `poll_interval_ms` must be a whole number >= 100")),
        },
    };
    Ok(Ecs::new(Settings::parse(value)?).with_poll_interval(interval))
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
