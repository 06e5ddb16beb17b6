//! An ECS world for the ecs tests: a cluster in moto with task definition
//! families that log to CloudWatch Logs, and helpers to read moto's state.

use crate::moto::{Moto, REGION};

/// The log group every test task definition writes to.
pub const LOG_GROUP: &str = "/polysync/ecs-tests";
pub const LOG_PREFIX: &str = "batch";

/// A moto ECS cluster with `families` task definition families
/// (`report-00`, `report-01`, ...) plus `quick`, `long`, `plain` (no
/// CloudWatch logs), `reporter` (declares outputs in a docker label) and
/// `counter` (declares `COUNT`, also an input, in a tag). Each world has a
/// moto of its own: task definition families belong to the account, not to
/// a cluster, so two worlds in one moto would discover each other's.
#[derive(Debug)]
pub struct EcsWorld {
    pub moto: Moto,
    pub cluster: String,
}

impl EcsWorld {
    pub fn start(cluster: &str, families: usize) -> Self {
        let moto = Moto::start();
        // Task states through moto's state manager: one step per
        // DescribeTasks, so a run passes RUNNING, DEACTIVATING, STOPPING
        // and DEPROVISIONING before STOPPED, as tracking would see it.
        moto.api(
            "/moto-api/state-manager/set-transition",
            &serde_json::json!({"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1}}),
        );
        moto.python(&format!(
            r#"
import boto3
ecs = boto3.client("ecs", endpoint_url={url:?}, region_name={REGION:?})
logs = boto3.client("logs", endpoint_url={url:?}, region_name={REGION:?})
ecs.create_cluster(clusterName={cluster:?})
try:
    logs.create_log_group(logGroupName={LOG_GROUP:?})
except logs.exceptions.ResourceAlreadyExistsException:
    pass
def family(name, env, sidecar=False, awslogs=True, label=None, tag=None):
    main = {{
        "name": "main", "image": "busybox:1.36", "essential": True, "cpu": 128, "memory": 256,
        "entryPoint": ["sh", "-c"], "command": ["echo $GREETING; sleep $SLEEP_SECONDS"],
        "environment": [{{"name": k, "value": v}} for k, v in env],
    }}
    if label:
        main["dockerLabels"] = {{"polysync.io/outputs": label}}
    if awslogs:
        main["logConfiguration"] = {{"logDriver": "awslogs", "options": {{
            "awslogs-group": {LOG_GROUP:?}, "awslogs-region": {REGION:?}, "awslogs-stream-prefix": {LOG_PREFIX:?}}}}}
    containers = [main]
    if sidecar:
        containers.append({{"name": "sidecar", "image": "busybox:1.36", "essential": False, "cpu": 64, "memory": 64}})
    tags = [{{"key": "polysync.io/outputs", "value": tag}}] if tag else []
    ecs.register_task_definition(family=name, containerDefinitions=containers, cpu="256", memory="512", tags=tags)
family("quick", [("GREETING", "hello"), ("SLEEP_SECONDS", "1")], sidecar=True)
family("long", [("GREETING", "hello"), ("SLEEP_SECONDS", "1")])
family("plain", [("GREETING", "hello")], awslogs=False)
family("reporter", [("GREETING", "hello")], label="ROWS, REPORT_URL")
family("counter", [("COUNT", "1")], tag="COUNT")
for i in range({families}):
    family(f"report-{{i:02}}", [("DATE", "2026-11-23"), ("MODE", "full")])
"#,
            url = moto.url
        ));
        Self { moto, cluster: cluster.to_owned() }
    }

    /// Settings of the `ecs` provider for this world.
    pub fn settings(&self) -> serde_json::Value {
        crate::moto::with_aws(
            serde_json::json!({
                "cluster": self.cluster,
                "launch_type": "FARGATE",
                "poll_interval_ms": 100,
            }),
            &self.moto.url,
        )
    }

    /// Write `lines` to the task's `main` container log stream.
    pub fn write_log(&self, task_arn: &str, lines: &[&str]) {
        let task_id = task_arn.rsplit('/').next().unwrap();
        let stream = format!("{LOG_PREFIX}/main/{task_id}");
        self.moto.python(&format!(
            r#"
import boto3, time
logs = boto3.client("logs", endpoint_url={url:?}, region_name={REGION:?})
logs.create_log_stream(logGroupName={LOG_GROUP:?}, logStreamName={stream:?})
now = int(time.time() * 1000)
logs.put_log_events(logGroupName={LOG_GROUP:?}, logStreamName={stream:?},
    logEvents=[{{"timestamp": now + i, "message": m}} for i, m in enumerate({lines:?})])
"#,
            url = self.moto.url,
            lines = lines.iter().map(|l| l.to_string()).collect::<Vec<_>>()
        ));
    }
}
