//! ECS console pages: a task definition family for entries, a task for runs.

use polysync_aws::console_base;

use crate::Ecs;
use crate::status::task_id;

pub(crate) fn entry(ecs: &Ecs, family: &str) -> String {
    let region = ecs.aws.console_region();
    let family = family.split(':').next().unwrap_or(family);
    format!("{}/ecs/v2/task-definitions/{family}?region={region}", console_base(&region))
}

pub(crate) fn run(ecs: &Ecs, task_arn: &str) -> String {
    // The ARN's region wins: it is where the task is.
    let region =
        task_arn.split(':').nth(3).filter(|r| !r.is_empty()).map_or_else(|| ecs.aws.console_region(), str::to_owned);
    format!(
        "{}/ecs/v2/clusters/{}/tasks/{}/configuration?region={region}",
        console_base(&region),
        ecs.settings.cluster_name(),
        task_id(task_arn)
    )
}
