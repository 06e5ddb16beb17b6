//! A task as one normalized status. Pure: the mapping is tested over
//! recorded DescribeTasks shapes without a network.
//!
//! | lastStatus | → |
//! |---|---|
//! | PROVISIONING, PENDING, ACTIVATING | Starting |
//! | RUNNING, DEACTIVATING, STOPPING, DEPROVISIONING | Running |
//! | STOPPED, stopCode UserInitiated | Cancelled (Failed `OverridesLost` when polysync stopped it for that) |
//! | STOPPED, stopCode TaskFailedToStart | Failed |
//! | STOPPED, stopCode SpotInterruption or TerminationNotice | Failed, with that reason |
//! | started without the overrides polysync sent | Failed `OverridesLost` |
//! | STOPPED, an essential container exited non-zero or without a code | Failed |
//! | STOPPED, otherwise | Success |
//! | anything else | Unknown |

use std::collections::BTreeMap;

use polysync_provider_api::{ContainerStatus, RunState, RunStatus, UnitStatus};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The tag that carries a digest of the environment polysync sent in the
/// task's container override, so a task that lost it can be told.
pub const SENT_TAG: &str = "polysync:overrides";
/// Stop codes of a task whose Spot capacity was taken back.
pub const INTERRUPTIONS: [&str; 2] = ["SpotInterruption", "TerminationNotice"];
/// The reason of a run whose task started without its overrides.
pub const OVERRIDES_LOST: &str = "OverridesLost";
/// How polysync's StopTask of such a task begins its reason.
pub const OVERRIDES_LOST_STOP: &str = "polysync: started without its container overrides";

/// A digest of an override's environment, order-insensitive.
pub fn env_digest<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    pairs.sort();
    let hash = Sha256::digest(pairs.concat().as_bytes());
    hash.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The fields of a DescribeTasks task that decide its status, in the
/// response's own names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskView {
    pub task_arn: String,
    pub last_status: String,
    pub desired_status: String,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub started_at: Option<String>,
    pub stopped_at: Option<String>,
    pub containers: Vec<ContainerView>,
    pub task_definition_arn: Option<String>,
    /// The task's tags (DescribeTasks with `include: TAGS`).
    #[serde(skip)]
    pub tags: BTreeMap<String, String>,
    /// The environment of the task's container overrides, as ECS has them.
    #[serde(skip)]
    pub override_env: Vec<(String, String)>,
}

impl TaskView {
    /// The task is stopped because its Spot capacity was taken back.
    pub fn interrupted(&self) -> bool {
        self.last_status == "STOPPED" && self.stop_code.as_deref().is_some_and(|c| INTERRUPTIONS.contains(&c))
    }

    /// The task got under way without the environment polysync sent
    /// (checked once it runs: users report overrides lost while tasks
    /// wait for a capacity provider in PROVISIONING).
    pub fn overrides_lost(&self) -> bool {
        let ran = matches!(self.last_status.as_str(), "RUNNING" | "DEACTIVATING" | "STOPPING" | "DEPROVISIONING")
            || self.last_status == "STOPPED" && self.stop_code.as_deref() != Some("TaskFailedToStart");
        let stopped_for_it = self.stopped_reason.as_deref().is_some_and(|r| r.starts_with(OVERRIDES_LOST_STOP));
        stopped_for_it
            || ran
                && self.tags.get(SENT_TAG).is_some_and(|sent| {
                    *sent != env_digest(self.override_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerView {
    pub name: String,
    pub last_status: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

impl TaskView {
    pub fn from_sdk(task: &aws_sdk_ecs::types::Task) -> Self {
        let time = |t: Option<&aws_smithy_types::DateTime>| {
            t.and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
        };
        Self {
            task_arn: task.task_arn().unwrap_or_default().to_owned(),
            last_status: task.last_status().unwrap_or_default().to_owned(),
            desired_status: task.desired_status().unwrap_or_default().to_owned(),
            stop_code: task.stop_code().map(|c| c.as_str().to_owned()),
            stopped_reason: task.stopped_reason().map(str::to_owned),
            started_at: time(task.started_at()),
            stopped_at: time(task.stopped_at()),
            containers: task
                .containers()
                .iter()
                .map(|c| ContainerView {
                    name: c.name().unwrap_or_default().to_owned(),
                    last_status: c.last_status().unwrap_or_default().to_owned(),
                    exit_code: c.exit_code(),
                    reason: c.reason().map(str::to_owned),
                })
                .collect(),
            task_definition_arn: task.task_definition_arn().map(str::to_owned),
            tags: task.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect(),
            override_env: task
                .overrides()
                .map(|o| o.container_overrides())
                .unwrap_or_default()
                .iter()
                .flat_map(|c| c.environment())
                .filter_map(|kv| Some((kv.name()?.to_owned(), kv.value().unwrap_or_default().to_owned())))
                .collect(),
        }
    }
}

/// The status of `task`, whose essential containers are `essential` (all
/// of them when the task definition is not known).
pub fn status(task: &TaskView, essential: Option<&[String]>) -> RunStatus {
    let is_essential = |name: &str| essential.is_none_or(|names| names.iter().any(|n| n == name));
    let lost = task.overrides_lost();
    let state = match task.last_status.as_str() {
        _ if lost => RunState::Failed,
        "PROVISIONING" | "PENDING" | "ACTIVATING" => RunState::Starting,
        "RUNNING" | "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" => RunState::Running,
        "STOPPED" => match task.stop_code.as_deref() {
            Some("UserInitiated") => RunState::Cancelled,
            Some("TaskFailedToStart") => RunState::Failed,
            Some(code) if INTERRUPTIONS.contains(&code) => RunState::Failed,
            _ if task.containers.iter().any(|c| is_essential(&c.name) && c.exit_code != Some(0)) => RunState::Failed,
            _ if task.containers.is_empty() => RunState::Failed,
            _ => RunState::Success,
        },
        _ => RunState::Unknown,
    };
    let mut status = RunStatus::new(&task.task_arn, state);
    status.reason = task.stop_code.clone();
    status.message = message(task, &is_essential);
    if lost {
        status.reason = Some(OVERRIDES_LOST.into());
        status.message = Some(format!(
            "ECS started the task without the container overrides polysync sent (its parameters), so it would run with the wrong values; polysync stops it. This happens to tasks placed through a capacity provider; run it again{}",
            task.stopped_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
        ));
    } else if let Some(hint) = hint(task) {
        status.message = Some(match status.message {
            Some(m) => format!("{m}; {hint}"),
            None => hint.to_owned(),
        });
    }
    status.started_at = task.started_at.clone();
    status.finished_at = task.stopped_at.clone().filter(|_| state.is_terminal());
    status.units = vec![UnitStatus {
        name: task_id(&task.task_arn).to_owned(),
        phase: task.last_status.clone(),
        containers: task
            .containers
            .iter()
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                state: c.last_status.clone(),
                reason: c.reason.clone(),
                message: None,
                exit_code: c.exit_code,
                restarts: 0,
                init: false,
            })
            .collect(),
        reason: task.stop_code.clone().filter(|c| !c.is_empty()),
        message: task.stopped_reason.clone().filter(|r| !r.is_empty()),
    }];
    status
}

/// stoppedReason and the exit codes of the containers that decided it.
fn message(task: &TaskView, is_essential: &dyn Fn(&str) -> bool) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(reason) = task.stopped_reason.as_deref().filter(|r| !r.is_empty()) {
        parts.push(reason.to_owned());
    }
    if task.last_status == "STOPPED" {
        for c in task.containers.iter().filter(|c| is_essential(&c.name)) {
            let code = c.exit_code.map_or_else(|| "no exit code".to_owned(), |code| format!("exit code {code}"));
            let reason = c.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            parts.push(format!("container {}: {code}{reason}", c.name));
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// What to do about a stop that was not the job's own doing.
fn hint(task: &TaskView) -> Option<&'static str> {
    if task.interrupted() {
        return Some(
            "the Spot capacity was taken back; set `retry_on_interruption` on the connection to start it again automatically, or run it on on-demand capacity",
        );
    }
    if task.stop_code.as_deref() != Some("TaskFailedToStart") {
        return None;
    }
    let reason = task.stopped_reason.as_deref().unwrap_or_default();
    if reason.contains("Capacity is unavailable") || reason.contains("RESOURCE:") {
        Some(
            "the cluster or capacity provider had no capacity for it; run it again later, in more subnets or availability zones, or with a capacity provider strategy that has on-demand capacity",
        )
    } else if reason.contains("CannotPullContainerError") {
        Some(
            "the image could not be pulled; check its name, the registry's permissions (task execution role) and the network path to the registry",
        )
    } else if reason.contains("ResourceInitializationError") {
        Some(
            "the task's secrets, logs or network could not be set up; check the task execution role and the subnets' route to AWS endpoints",
        )
    } else {
        None
    }
}

/// The task id: the last segment of its ARN.
pub fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A task in the shape DescribeTasks returns it.
    fn task(last: &str, stop_code: Option<&str>, containers: serde_json::Value) -> TaskView {
        serde_json::from_value(json!({
            "taskArn": "arn:aws:ecs:eu-west-1:123456789012:task/batch/0f3e5c",
            "lastStatus": last,
            "desiredStatus": if last == "STOPPED" { "STOPPED" } else { "RUNNING" },
            "stopCode": stop_code,
            "stoppedReason": if last == "STOPPED" { Some("Essential container in task exited") } else { None },
            "startedAt": "2026-11-23T10:00:00Z",
            "containers": containers,
        }))
        .unwrap()
    }

    fn exited(codes: &[(&str, Option<i32>)]) -> serde_json::Value {
        json!(codes.iter().map(|(n, c)| json!({"name": n, "lastStatus": "STOPPED", "exitCode": c})).collect::<Vec<_>>())
    }

    #[test]
    fn every_row_of_the_mapping() {
        let running = exited(&[]);
        for (last, want) in [
            ("PROVISIONING", RunState::Starting),
            ("PENDING", RunState::Starting),
            ("ACTIVATING", RunState::Starting),
            ("RUNNING", RunState::Running),
            ("DEACTIVATING", RunState::Running),
            ("STOPPING", RunState::Running),
            ("DEPROVISIONING", RunState::Running),
            ("DELETED", RunState::Unknown),
        ] {
            assert_eq!(status(&task(last, None, running.clone()), None).state, want, "{last}");
        }
    }

    #[test]
    fn a_spot_interruption_fails_even_when_the_containers_exit_zero() {
        for code in INTERRUPTIONS {
            let t = task("STOPPED", Some(code), exited(&[("main", Some(0))]));
            assert!(t.interrupted());
            let s = status(&t, None);
            assert_eq!((s.state, s.reason.as_deref()), (RunState::Failed, Some(code)));
            assert!(s.message.unwrap().contains("retry_on_interruption"));
        }
    }

    #[test]
    fn a_task_running_without_its_overrides_fails() {
        let mut t = task("PROVISIONING", None, exited(&[]));
        t.tags.insert(SENT_TAG.into(), env_digest([("DATE", "2026-11-30")]));
        assert_eq!(status(&t, None).state, RunState::Starting, "not checked before it runs");
        t.last_status = "RUNNING".into();
        let s = status(&t, None);
        assert_eq!((s.state, s.reason.as_deref()), (RunState::Failed, Some(OVERRIDES_LOST)));
        t.override_env = vec![("DATE".into(), "2026-11-30".into())];
        assert_eq!(status(&t, None).state, RunState::Running, "the same environment, in any order");
        // Once polysync stopped it for that, the stop is not a cancel.
        let mut stopped = task("STOPPED", Some("UserInitiated"), exited(&[("main", Some(143))]));
        stopped.stopped_reason = Some(format!("{OVERRIDES_LOST_STOP}; run it again"));
        assert_eq!(status(&stopped, None).reason.as_deref(), Some(OVERRIDES_LOST));
    }

    #[test]
    fn capacity_failures_to_start_say_what_to_do() {
        let mut t = task("STOPPED", Some("TaskFailedToStart"), exited(&[]));
        t.stopped_reason = Some("Capacity is unavailable at this time. Please try again later".into());
        let s = status(&t, None);
        assert_eq!(s.state, RunState::Failed);
        assert!(s.message.unwrap().contains("had no capacity for it"));
    }

    #[test]
    fn stopped_after_all_essential_containers_exit_zero_is_success() {
        let t = task("STOPPED", Some("EssentialContainerExited"), exited(&[("main", Some(0)), ("sidecar", Some(137))]));
        let s = status(&t, Some(&["main".to_owned()]));
        assert_eq!(s.state, RunState::Success, "a non-essential sidecar's exit does not count");
        assert_eq!(s.finished_at, None, "no stoppedAt in this record");
    }

    #[test]
    fn an_essential_container_exiting_1_fails_the_run_and_says_so() {
        let t = task("STOPPED", Some("EssentialContainerExited"), exited(&[("main", Some(1))]));
        let s = status(&t, Some(&["main".to_owned()]));
        assert_eq!(s.state, RunState::Failed);
        assert_eq!(s.reason.as_deref(), Some("EssentialContainerExited"));
        assert!(s.message.as_deref().unwrap().contains("container main: exit code 1"), "{s:?}");
        assert_eq!(s.units[0].containers[0].exit_code, Some(1));
    }

    #[test]
    fn an_essential_container_without_an_exit_code_fails() {
        let t = task("STOPPED", Some("EssentialContainerExited"), exited(&[("main", None)]));
        let s = status(&t, None);
        assert_eq!(s.state, RunState::Failed);
        assert!(s.message.unwrap().contains("container main: no exit code"));
    }

    #[test]
    fn user_initiated_is_cancelled_even_with_exit_codes() {
        let t = task("STOPPED", Some("UserInitiated"), exited(&[("main", Some(143))]));
        assert_eq!(status(&t, None).state, RunState::Cancelled);
    }

    #[test]
    fn failed_to_start_is_failed_with_the_reason() {
        let mut t = task("STOPPED", Some("TaskFailedToStart"), exited(&[("main", None)]));
        t.stopped_reason = Some("CannotPullContainerError: pull access denied".into());
        let s = status(&t, None);
        assert_eq!(s.state, RunState::Failed);
        assert!(s.message.unwrap().starts_with("CannotPullContainerError"));
    }

    #[test]
    fn the_unit_is_the_task_id() {
        let s = status(&task("RUNNING", None, exited(&[])), None);
        assert_eq!(s.units[0].name, "0f3e5c");
        assert_eq!(s.run_id, "arn:aws:ecs:eu-west-1:123456789012:task/batch/0f3e5c");
    }
}
