//! What tracking needs of a task definition, described once per ARN (task
//! definitions are immutable, so the cache is never stale): which
//! containers are essential (does a stop mean failure), which outputs it
//! declares and where container[0] logs (where its outputs are read).

use std::sync::Arc;

use aws_sdk_ecs::types::{ContainerDefinition, Tag, TaskDefinition, TaskDefinitionField};
use polysync_provider_api::outputs::DECLARE;

use crate::Ecs;

/// Where a container's `awslogs` events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AwsLogs {
    pub container: String,
    pub group: String,
    pub prefix: String,
    pub region: Option<String>,
}

impl AwsLogs {
    /// The `awslogs` settings of a container with a stream prefix, if any.
    pub fn of(c: &ContainerDefinition) -> Option<Self> {
        let options =
            c.log_configuration().filter(|l| l.log_driver().as_str() == "awslogs").and_then(|l| l.options())?;
        Some(Self {
            container: c.name()?.to_owned(),
            group: options.get("awslogs-group")?.clone(),
            prefix: options.get("awslogs-stream-prefix")?.clone(),
            region: options.get("awslogs-region").cloned(),
        })
    }

    /// The container's stream of one task.
    pub fn stream(&self, task_id: &str) -> String {
        format!("{}/{}/{task_id}", self.prefix, self.container)
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Definition {
    /// container[0]'s name: the one parameters override.
    pub main: Option<String>,
    pub essential: Vec<String>,
    pub declared: Vec<String>,
    pub main_log: Option<AwsLogs>,
}

/// The outputs a task definition declares: container[0]'s docker label
/// `polysync.io/outputs`, else the task definition's tag of that name.
pub(crate) fn declared(td: &TaskDefinition, tags: &[Tag]) -> Vec<String> {
    let label = td.container_definitions().first().and_then(|c| c.docker_labels()).and_then(|l| l.get(DECLARE));
    let tag = tags.iter().find(|t| t.key() == Some(DECLARE)).and_then(|t| t.value());
    let Some(value) = label.map(String::as_str).or(tag) else { return Vec::new() };
    let (names, invalid) = polysync_provider_api::outputs::declared(value);
    if !invalid.is_empty() {
        tracing::warn!(
            family = td.family().unwrap_or_default(),
            "{DECLARE} lists names that are not valid output names, skipped: {}",
            invalid.join(", ")
        );
    }
    names
}

impl Definition {
    fn of(td: &TaskDefinition, tags: &[Tag]) -> Self {
        let containers = td.container_definitions();
        Self {
            main: containers.first().and_then(|c| c.name()).map(str::to_owned),
            essential: containers
                .iter()
                .filter(|c| c.essential().unwrap_or(true))
                .filter_map(|c| c.name().map(str::to_owned))
                .collect(),
            declared: declared(td, tags),
            main_log: containers.first().and_then(AwsLogs::of),
        }
    }
}

/// Keep what a described task definition says.
pub(crate) fn remember(ecs: &Ecs, td: &TaskDefinition, tags: &[Tag]) -> Arc<Definition> {
    let def = Arc::new(Definition::of(td, tags));
    if let Some(arn) = td.task_definition_arn() {
        ecs.definitions.lock().unwrap_or_else(|e| e.into_inner()).insert(arn.to_owned(), def.clone());
    }
    def
}

/// A task definition by ARN, described (with its tags) on first use.
pub(crate) async fn get(ecs: &Ecs, arn: Option<&str>) -> Option<Arc<Definition>> {
    let arn = arn?;
    if let Some(known) = ecs.definitions.lock().unwrap_or_else(|e| e.into_inner()).get(arn) {
        return Some(known.clone());
    }
    let client = ecs.client().await.ok()?;
    let out =
        client.describe_task_definition().task_definition(arn).include(TaskDefinitionField::Tags).send().await.ok()?;
    Some(remember(ecs, out.task_definition.as_ref()?, out.tags()))
}
