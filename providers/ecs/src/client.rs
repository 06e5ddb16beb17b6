//! The layer every workflow of the plugin calls ECS and CloudWatch Logs
//! through: DescribeTasks in batches, RunTask with the connection's launch
//! and network settings, the throttling back-off they share, and the
//! request pieces a run's first task and its further attempts are made of.
//! It imports none of the workflows (run, track, attempts, logs,
//! outputs), so they form no circle through it.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::Region;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerOverride, KeyValuePair,
    NetworkConfiguration, Tag, TaskOverride,
};
use polysync_aws::from_sdk;
use polysync_provider_api::{Backoff, ErrorKind, ProviderError, Result};
use rand::RngExt;
use sha2::{Digest, Sha256};

use crate::Ecs;
use crate::settings::Launch;
use crate::status::TaskView;

/// DescribeTasks takes at most this many tasks.
pub const BATCH: usize = 100;

/// How throttled calls are tried again (the plugins' one [`Backoff`]):
/// nine attempts in all, from 200 ms to at most 20 s apart.
pub(crate) const THROTTLED: Backoff =
    Backoff { attempts: 9, base: Duration::from_millis(200), cap: Duration::from_secs(20) };

/// What one DescribeTasks round saw of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Task(Box<TaskView>),
    Missing,
}

/// Describe `arns`, 100 a call; every ARN gets an answer.
pub async fn describe(ecs: &Ecs, arns: &[String]) -> Result<HashMap<String, (Seen, Option<String>)>> {
    let client = ecs.client().await?;
    let mut out = HashMap::new();
    for chunk in arns.chunks(BATCH) {
        let answer = with_backoff(|| async {
            client
                .describe_tasks()
                .cluster(&ecs.settings.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .include(aws_sdk_ecs::types::TaskField::Tags)
                .send()
                .await
                .map_err(|e| from_sdk(e, "ecs:DescribeTasks", "describing tasks"))
        })
        .await?;
        for task in answer.tasks() {
            let view = TaskView::from_sdk(task);
            // Callers may name a task by id or ARN; answer under their name.
            let key = chunk
                .iter()
                .find(|a| *a == &view.task_arn || view.task_arn.ends_with(&format!("/{a}")))
                .cloned()
                .unwrap_or_else(|| view.task_arn.clone());
            out.insert(key, (Seen::Task(Box::new(view)), task.task_definition_arn().map(str::to_owned)));
        }
        for arn in chunk {
            out.entry(arn.clone()).or_insert((Seen::Missing, None));
        }
    }
    Ok(out)
}

/// Retry a call while it is throttled ([`THROTTLED`]), never sooner than
/// the service asked.
pub async fn with_backoff<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Err(e) if e.kind() == ErrorKind::Throttled && THROTTLED.again(attempt) => {
                let wait = THROTTLED.wait(attempt, e.retry_after(), rand::rng().random_range(0.5..=1.0));
                tracing::debug!("{}; retrying in {wait:?}", e.message());
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// A CloudWatch Logs client of the connection's credentials, in `region`
/// when a container logs to another region than the cluster's.
pub(crate) async fn logs_client(ecs: &Ecs, region: Option<&str>) -> Result<aws_sdk_cloudwatchlogs::Client> {
    let config = ecs.aws.config().await?;
    let mut builder = aws_sdk_cloudwatchlogs::config::Builder::from(config);
    if let Some(r) = region {
        builder = builder.region(Region::new(r.to_owned()));
    }
    Ok(aws_sdk_cloudwatchlogs::Client::from_conf(builder.build()))
}

/// ECS's limit on the JSON of a task's overrides.
pub const OVERRIDES_LIMIT: usize = 8192;

/// One RunTask: a run's first task, or a further attempt of it.
pub(crate) struct Task<'a> {
    pub task_definition: &'a str,
    pub overrides: TaskOverride,
    /// ECS answers a repeated RunTask with the same token with the first task.
    pub client_token: &'a str,
    pub started_by: &'a str,
    pub tags: Vec<Tag>,
}

/// Start `task` with the connection's launch and network settings; a
/// throttled call is retried with backoff (the client token keeps it to
/// one task), a placement failure comes back with its reason and what to do.
pub(crate) async fn start_task(ecs: &Ecs, client: &aws_sdk_ecs::Client, task: Task<'_>, what: &str) -> Result<String> {
    let mut call = client
        .run_task()
        .cluster(&ecs.settings.cluster)
        .task_definition(task.task_definition)
        .overrides(task.overrides)
        .client_token(task.client_token)
        .started_by(task.started_by)
        .count(1)
        .set_tags(Some(task.tags))
        .set_platform_version(ecs.settings.platform_version.clone());
    call = match &ecs.settings.launch {
        Launch::Default => call,
        Launch::Type(t) => call.launch_type(t.clone()),
        Launch::Strategy(items) => call.set_capacity_provider_strategy(Some(
            items
                .iter()
                .map(|i| {
                    CapacityProviderStrategyItem::builder()
                        .capacity_provider(&i.capacity_provider)
                        .set_weight(i.weight)
                        .set_base(i.base)
                        .build()
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| ProviderError::invalid_input(format!("setting `capacity_provider_strategy`: {e}")))?,
        )),
    };
    if let Some(n) = &ecs.settings.network {
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(n.subnets.clone()))
            .set_security_groups(Some(n.security_groups.clone()).filter(|g| !g.is_empty()))
            .set_assign_public_ip(
                n.assign_public_ip.map(|on| if on { AssignPublicIp::Enabled } else { AssignPublicIp::Disabled }),
            )
            .build()
            .map_err(|e| ProviderError::invalid_input(format!("setting `network_configuration`: {e}")))?;
        call = call.network_configuration(NetworkConfiguration::builder().awsvpc_configuration(vpc).build());
    }
    let out =
        with_backoff(|| async { call.clone().send().await.map_err(|e| from_sdk(e, "ecs:RunTask", what)) }).await?;
    if let Some(f) = out.failures().first() {
        return Err(placement_failure(f.reason().unwrap_or("unknown"), f.detail(), what));
    }
    out.tasks()
        .first()
        .and_then(|t| t.task_arn())
        .map(str::to_owned)
        .ok_or_else(|| ProviderError::internal(format!("{what}: RunTask answered no task and no failure")))
}

/// A RunTask `failures[]` entry as an error that says what to do. ECS's
/// reasons: `RESOURCE:CPU|MEMORY|PORTS|ENI|GPU` (no instance has room),
/// `AGENT` (the instance's agent is disconnected), `ATTRIBUTE` (placement
/// constraints match no instance), `MISSING`, and capacity provider or
/// Fargate capacity messages.
pub fn placement_failure(reason: &str, detail: Option<&str>, what: &str) -> ProviderError {
    let detail_text = detail.map(|d| format!(" ({d})")).unwrap_or_default();
    let (kind, advice) = match reason {
        r if r.starts_with("RESOURCE:") => {
            let resource = r.trim_start_matches("RESOURCE:").to_ascii_lowercase();
            (
                ErrorKind::Unavailable,
                format!(
                    "no container instance of the cluster has enough free {resource} for the task; add instances or capacity, wait for running tasks to end, or lower the task definition's {resource}"
                ),
            )
        }
        "AGENT" => (
            ErrorKind::Unavailable,
            "the ECS agent of the chosen container instance is disconnected; check the instances' agent and their route to ECS".into(),
        ),
        "ATTRIBUTE" => (
            ErrorKind::InvalidInput,
            "no container instance has the attributes the task definition's placement constraints require; fix the constraints or add matching instances".into(),
        ),
        "MISSING" => (ErrorKind::NotFound, "ECS does not know the cluster or task definition; check the connection's cluster and run `polysync discover` again".into()),
        _ if format!("{reason}{detail_text}").to_ascii_lowercase().contains("capacity") => (
            ErrorKind::Unavailable,
            "the capacity provider (or Fargate) has no capacity now; run it again later, or use a capacity provider strategy with on-demand capacity or more availability zones".into(),
        ),
        _ => (ErrorKind::Unavailable, "check the cluster's capacity and the launch settings".into()),
    };
    ProviderError::new(kind, format!("{what}: ECS could not place the task: {reason}{detail_text}; {advice}"))
}

/// The container override, refused before any call if ECS would refuse it.
pub fn overrides(container: &str, parameters: &std::collections::BTreeMap<String, String>) -> Result<TaskOverride> {
    // The JSON ECS measures: {"containerOverrides":[{"name":..,"environment":[..]}]}
    let json = serde_json::json!({"containerOverrides": [{
        "name": container,
        "environment": parameters.iter().map(|(k, v)| serde_json::json!({"name": k, "value": v})).collect::<Vec<_>>(),
    }]});
    let size = json.to_string().len();
    if size > OVERRIDES_LIMIT {
        return Err(ProviderError::invalid_input(format!(
            "the parameter values make the task's overrides {size} characters; ECS allows {OVERRIDES_LIMIT}. Shorten them, or keep large values in the task definition or in S3/SSM and pass their names"
        )));
    }
    let env = parameters.iter().map(|(k, v)| KeyValuePair::builder().name(k).value(v).build()).collect();
    Ok(TaskOverride::builder()
        .container_overrides(ContainerOverride::builder().name(container).set_environment(Some(env)).build())
        .build())
}

/// hex(sha256(key)): 64 characters, what clientToken allows.
pub fn digest(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}
