//! Runs that outlive a Spot interruption: with `retry_on_interruption = N`,
//! a task stopped with `SpotInterruption` (Fargate Spot) or
//! `TerminationNotice` (EC2 Spot) is started again — same task definition,
//! same overrides, the connection's launch settings — up to N times, as
//! further attempts of the same run. The run keeps its id (the first
//! task's ARN); its status is the current attempt's, with every attempt as
//! a unit and "attempt k of N+1" in the message.
//!
//! Stateless across processes: attempt k of run R is started with
//! `startedBy = polysync-retry-<R's task id>` and a client token derived
//! from R and k, so a second process (another replica, a restarted host)
//! finds the attempts with ListTasks and starting one twice gives the same
//! task.

use std::collections::BTreeMap;

use polysync_provider_api::{ErrorKind, ProviderError, Result, RunState, RunStatus, UnitStatus};

use crate::Ecs;
use crate::client::{Seen, describe};
use crate::definition::Definition;
use crate::status::{OVERRIDES_LOST, OVERRIDES_LOST_STOP, SENT_TAG, TaskView, env_digest, status, task_id};

/// Which attempt a task is (1 is the run's first task).
pub const ATTEMPT_TAG: &str = "polysync:attempt";
/// The task id of the run a further attempt belongs to.
pub const RETRY_OF_TAG: &str = "polysync:retry-of";

/// The attempts of one run after its first task.
#[derive(Debug, Default, Clone)]
pub(crate) struct Chain {
    /// ARNs of the tasks started again, in order.
    pub attempts: Vec<String>,
    /// The units of the tasks before the current one.
    pub earlier: Vec<UnitStatus>,
    /// ListTasks has been asked for attempts an earlier process started.
    pub recovered: bool,
}

impl Chain {
    /// The task the run is now.
    pub fn current<'a>(&'a self, run_id: &'a str) -> &'a str {
        self.attempts.last().map_or(run_id, String::as_str)
    }
}

fn started_by(run_id: &str) -> String {
    format!("polysync-retry-{}", task_id(run_id))
}

/// What a run is now: its status and the task it is.
#[derive(Debug)]
pub(crate) struct Settled {
    pub status: RunStatus,
    pub current: String,
}

/// The status of run `run_id` whose current task is `view`. Starts the
/// next attempt of an interrupted task while attempts remain, and stops a
/// task that runs without its overrides.
pub(crate) async fn settle(
    ecs: &Ecs,
    run_id: &str,
    view: &TaskView,
    def: Option<&Definition>,
    chain: &mut Chain,
) -> Result<Settled> {
    let allowed = ecs.settings.retry_on_interruption;
    let mut view = view.clone();
    if view.interrupted() && allowed > 0 && chain.attempts.is_empty() && !chain.recovered {
        chain.recovered = true;
        let found = recover(ecs, run_id).await?;
        if let Some(last) = found.last().cloned() {
            chain.earlier = std::iter::once(&view).chain(&found[..found.len() - 1]).map(unit).collect();
            chain.attempts = found.iter().map(|v| v.task_arn.clone()).collect();
            view = last;
        }
    }
    let attempt = chain.attempts.len() as u32 + 1;
    if view.interrupted() && attempt <= allowed {
        let next = start_attempt(ecs, run_id, &view, def, attempt + 1).await?;
        chain.earlier.push(unit(&view));
        chain.attempts.push(next.clone());
        let mut s = RunStatus::new(run_id, RunState::Running);
        s.reason = view.stop_code.clone();
        s.message = Some(format!(
            "attempt {} of {} started as task {}: the task before was stopped by {}{}",
            attempt + 1,
            allowed + 1,
            task_id(&next),
            view.stop_code.as_deref().unwrap_or("an interruption"),
            view.stopped_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
        ));
        s.started_at = view.started_at.clone();
        s.units = chain.earlier.clone();
        return Ok(Settled { status: s, current: next });
    }
    let mut s = status(&view, def.map(|d| d.essential.as_slice()));
    if s.reason.as_deref() == Some(OVERRIDES_LOST) && view.last_status != "STOPPED" {
        stop_without_overrides(ecs, &view.task_arn).await?;
    }
    if !chain.attempts.is_empty() {
        s.run_id = run_id.to_owned();
        // A further attempt that is still starting does not take the run
        // back to Starting: it was running before the interruption.
        if s.state == RunState::Starting {
            s.state = RunState::Running;
        }
        let what = format!("attempt {attempt} of {}", allowed + 1);
        s.message = Some(match s.message {
            Some(m) => format!("{what}: {m}"),
            None => what,
        });
        s.units = chain.earlier.iter().cloned().chain(s.units).collect();
    }
    Ok(Settled { status: s, current: view.task_arn.clone() })
}

/// A task's unit, as its status shows it.
fn unit(view: &TaskView) -> UnitStatus {
    status(view, None).units.into_iter().next().unwrap_or_default()
}

/// The attempts after a run's first task `first`, in attempt order: none
/// unless that task was interrupted and the connection starts runs again.
pub(crate) async fn further(ecs: &Ecs, run_id: &str, first: &TaskView) -> Result<Vec<TaskView>> {
    if ecs.settings.retry_on_interruption == 0 || !first.interrupted() {
        return Ok(Vec::new());
    }
    recover(ecs, run_id).await
}

/// Attempts an earlier process started, in attempt order.
async fn recover(ecs: &Ecs, run_id: &str) -> Result<Vec<TaskView>> {
    use aws_sdk_ecs::types::DesiredStatus;
    let client = ecs.client().await?;
    let mut arns = Vec::new();
    for desired in [DesiredStatus::Running, DesiredStatus::Stopped] {
        let out = client
            .list_tasks()
            .cluster(&ecs.settings.cluster)
            .started_by(started_by(run_id))
            .desired_status(desired)
            .send()
            .await
            .map_err(|e| polysync_aws::from_sdk(e, "ecs:ListTasks", "looking for further attempts of a run"))?;
        arns.extend(out.task_arns().iter().cloned());
    }
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let mut views: Vec<TaskView> = describe(ecs, &arns)
        .await?
        .into_values()
        .filter_map(|(seen, _)| match seen {
            Seen::Task(v) => Some(*v),
            Seen::Missing => None,
        })
        .collect();
    views.sort_by_key(|v| v.tags.get(ATTEMPT_TAG).and_then(|a| a.parse::<u32>().ok()).unwrap_or(0));
    Ok(views)
}

/// Start attempt `attempt` of `run_id` like the interrupted task `view`.
async fn start_attempt(
    ecs: &Ecs,
    run_id: &str,
    view: &TaskView,
    def: Option<&Definition>,
    attempt: u32,
) -> Result<String> {
    let what = format!("starting attempt {attempt} of run {}", task_id(run_id));
    let td = view.task_definition_arn.as_deref().ok_or_else(|| {
        ProviderError::internal(format!("{what}: ECS did not say which task definition the interrupted task ran"))
    })?;
    let container = def.and_then(|d| d.main.as_deref()).ok_or_else(|| {
        ProviderError::new(ErrorKind::Unavailable, format!("{what}: the task definition {td} could not be read"))
    })?;
    let parameters: BTreeMap<String, String> = view.override_env.iter().cloned().collect();
    let overrides = crate::client::overrides(container, &parameters)?;
    let sent = env_digest(parameters.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let token = crate::client::digest(&format!("{run_id}#{attempt}"));
    let by = started_by(run_id);
    let mut tags: Vec<_> = ["polysync:managed-by", "polysync:source", "polysync:run-key"]
        .into_iter()
        .filter_map(|k| Some(crate::client::tag(k, view.tags.get(k)?)))
        .collect();
    tags.push(crate::client::tag(SENT_TAG, &sent));
    tags.push(crate::client::tag(ATTEMPT_TAG, &attempt.to_string()));
    tags.push(crate::client::tag(RETRY_OF_TAG, task_id(run_id)));
    let task = crate::client::Task { task_definition: td, overrides, client_token: &token, started_by: &by, tags };
    let client = ecs.client().await?;
    crate::client::start_task(ecs, &client, task, &what).await
}

/// Stop a task that runs without the overrides it was sent, saying why.
async fn stop_without_overrides(ecs: &Ecs, task_arn: &str) -> Result<()> {
    ecs.client()
        .await?
        .stop_task()
        .cluster(&ecs.settings.cluster)
        .task(task_arn)
        .reason(format!("{OVERRIDES_LOST_STOP}; run it again"))
        .send()
        .await
        .map_err(|e| polysync_aws::from_sdk(e, "ecs:StopTask", &format!("stopping task {task_arn}")))?;
    tracing::warn!(task = task_arn, "stopped: ECS started it without its container overrides");
    Ok(())
}
