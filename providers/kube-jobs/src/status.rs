//! A Job and its pods as one normalized status.
//!
//! From `status.conditions[]`, counting only `status == "True"`:
//! `Complete` / `SuccessCriteriaMet` → Success; `Failed` / `FailureTarget`
//! → Failed; `Suspended` → Starting with reason `Queued` while something
//! will resume the Job (it is in a Kueue queue, or `spec.managedBy` names
//! another controller), else Cancelled with reason `Suspended` (a person
//! paused it; polysync keeps following it, so a resume is seen). A Job
//! being deleted is Cancelled.
//! Otherwise `active > 0` or `startTime` set → Running; no true condition and
//! no `startTime` → Starting; anything else → Unknown. While a run is not
//! finished, a pod stuck in ImagePullBackOff, ErrImagePull,
//! CreateContainerConfigError, InvalidImageName (and friends) becomes the
//! status reason, so the user sees why it does not start.

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::{ContainerStatus as K8sContainerStatus, Pod};
use polysync_provider_api::{ContainerStatus, RunState, RunStatus, UnitStatus};

/// Waiting reasons that mean the run will not start on its own.
const STUCK: [&str; 6] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
    "CreateContainerError",
    "CrashLoopBackOff",
];

/// Waiting reasons that can never clear on their own: the run fails at once.
const HOPELESS: [&str; 1] = ["InvalidImageName"];

/// What a Job's status is read from, and nothing else: a watch over
/// thousands of runs keeps one of these per run instead of the Job (whose
/// Rust type alone is ~2.8 KB before any of its contents).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFacts {
    /// The conditions whose status is "True".
    conditions: Vec<JobCondition>,
    /// The Kueue queue it waits in, if any.
    queue: Option<String>,
    managed_by: Option<String>,
    deleting: bool,
    active: i32,
    /// Pods succeeded + failed.
    ended: i32,
    start_time: Option<String>,
    completion_time: Option<String>,
    /// The outputs it declares (`polysync.io/outputs`).
    pub outputs: Vec<String>,
    /// An Indexed Job of more than one completion: outputs per index.
    pub per_index: bool,
}

impl From<&Job> for JobFacts {
    fn from(job: &Job) -> Self {
        let status = job.status.as_ref();
        let spec = job.spec.as_ref();
        Self {
            conditions: status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .filter(|c| c.status == "True")
                .cloned()
                .collect(),
            queue: crate::labels::kueue_queue(&job.metadata).map(|q| q.to_string()),
            managed_by: spec.and_then(|s| s.managed_by.clone()),
            deleting: job.metadata.deletion_timestamp.is_some(),
            active: status.and_then(|s| s.active).unwrap_or(0),
            ended: status.map_or(0, |s| s.succeeded.unwrap_or(0) + s.failed.unwrap_or(0)),
            start_time: status.and_then(|s| s.start_time.as_ref()).map(rfc3339),
            completion_time: status.and_then(|s| s.completion_time.as_ref()).map(rfc3339),
            outputs: crate::outputs::declared(&job.metadata),
            per_index: spec
                .is_some_and(|s| s.completion_mode.as_deref() == Some("Indexed") && s.completions.unwrap_or(1) > 1),
        }
    }
}

/// The state, reason and message of a Job.
pub fn job_state(job: &Job) -> (RunState, Option<String>, Option<String>) {
    JobFacts::from(job).state()
}

impl JobFacts {
    /// The state, reason and message.
    pub fn state(&self) -> (RunState, Option<String>, Option<String>) {
        let find = |types: &[&str]| self.conditions.iter().find(|c| types.contains(&c.type_.as_str()));
        let detail = |c: &JobCondition| (c.reason.clone(), c.message.clone());
        if let Some(c) = find(&["Failed", "FailureTarget"]) {
            let (r, m) = detail(c);
            return (RunState::Failed, r, m);
        }
        if let Some(c) = find(&["Complete", "SuccessCriteriaMet"]) {
            let (r, m) = detail(c);
            return (RunState::Success, r, m);
        }
        if let Some(c) = find(&["Suspended"]) {
            if let Some(queue) = &self.queue {
                let message = format!("suspended until Kueue admits it from queue {queue}");
                return (RunState::Starting, Some("Queued".into()), Some(message));
            }
            if let Some(controller) = self.managed_by.as_deref().filter(|m| *m != "kubernetes.io/job-controller") {
                let message = format!("suspended until {controller}, which manages it, resumes it");
                return (RunState::Starting, Some("Queued".into()), Some(message));
            }
            let (_, m) = detail(c);
            return (RunState::Cancelled, Some("Suspended".into()), m);
        }
        if self.deleting {
            return (RunState::Cancelled, Some("Deleted".into()), Some("the Job is being deleted".into()));
        }
        if self.active > 0 || self.start_time.is_some() {
            (RunState::Running, None, None)
        } else if self.conditions.is_empty() {
            (RunState::Starting, None, None)
        } else {
            (RunState::Unknown, None, None)
        }
    }
}

fn container(c: &K8sContainerStatus, init: bool) -> ContainerStatus {
    let state = c.state.as_ref();
    let (name, reason, message, exit_code) = if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        ("waiting", w.reason.clone(), w.message.clone(), None)
    } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        ("terminated", t.reason.clone(), t.message.clone(), Some(t.exit_code))
    } else if state.and_then(|s| s.running.as_ref()).is_some() {
        ("running", None, None, None)
    } else {
        ("unknown", None, None, None)
    };
    ContainerStatus {
        name: c.name.clone(),
        state: name.into(),
        reason,
        message,
        exit_code,
        restarts: u32::try_from(c.restart_count).unwrap_or(0),
        init,
    }
}

/// A pod as a unit of a run.
pub fn unit(pod: &Pod) -> UnitStatus {
    let status = pod.status.as_ref();
    let init =
        status.and_then(|s| s.init_container_statuses.as_ref()).into_iter().flatten().map(|c| container(c, true));
    let main = status.and_then(|s| s.container_statuses.as_ref()).into_iter().flatten().map(|c| container(c, false));
    UnitStatus {
        name: pod.metadata.name.clone().unwrap_or_default(),
        phase: status.and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".into()),
        containers: init.chain(main).collect(),
    }
}

fn rfc3339(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> String {
    t.0.to_string()
}

/// No container of the pod has run yet.
fn not_started(u: &UnitStatus) -> bool {
    u.phase == "Pending" && u.containers.iter().all(|c| c.state == "waiting" || c.state == "unknown")
}

/// The normalized status of run `run_id` from its Job and pods.
pub fn run_status(run_id: &str, job: &Job, pods: &[Pod]) -> RunStatus {
    status_of(run_id, &JobFacts::from(job), pods.iter().map(unit).collect())
}

/// The normalized status of run `run_id` from what its Job and pods say.
pub fn status_of(run_id: &str, job: &JobFacts, mut units: Vec<UnitStatus>) -> RunStatus {
    let (mut state, mut reason, mut message) = job.state();
    units.sort_by(|a, b| a.name.cmp(&b.name));
    // A Job has a startTime (and active pods) as soon as its pods exist;
    // the run has started only once a container has. Pods still pulling or
    // unschedulable keep the run Starting, so a startup timeout can see it.
    if state == RunState::Running && job.ended == 0 && !units.is_empty() && units.iter().all(not_started) {
        state = RunState::Starting;
    }
    if !state.is_terminal() {
        let stuck = units
            .iter()
            .flat_map(|u| &u.containers)
            .find(|c| c.state == "waiting" && c.reason.as_deref().is_some_and(|r| STUCK.contains(&r)));
        if let Some(c) = stuck {
            reason = c.reason.clone();
            message = Some(match &c.message {
                Some(m) => format!("container {}: {m}", c.name),
                None => format!("container {} is waiting: {}", c.name, c.reason.as_deref().unwrap_or_default()),
            });
        }
        if stuck.is_some_and(|c| c.reason.as_deref().is_some_and(|r| HOPELESS.contains(&r))) {
            state = RunState::Failed;
        }
    }
    let finished_at = job.completion_time.clone().or_else(|| {
        state.is_terminal().then(|| {
            job.conditions
                .iter()
                .filter(|c| matches!(c.type_.as_str(), "Failed" | "Complete" | "Suspended"))
                .filter_map(|c| c.last_transition_time.as_ref().map(rfc3339))
                .max()
        })?
    });
    RunStatus {
        run_id: run_id.to_owned(),
        state,
        reason,
        message,
        started_at: job.start_time.clone(),
        finished_at,
        units,
        outputs: Default::default(),
        output_error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn job(status: Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": {"template": {}}, "status": status})).unwrap()
    }

    fn cond(t: &str, s: &str) -> Value {
        json!({"type": t, "status": s, "reason": format!("{t}Reason"), "message": format!("{t} message")})
    }

    #[test]
    fn every_row_of_the_mapping() {
        let rows: Vec<(Value, RunState, Option<&str>)> = vec![
            (json!({}), RunState::Starting, None),
            (json!({"conditions": []}), RunState::Starting, None),
            (json!({"active": 1}), RunState::Running, None),
            (json!({"startTime": "2026-01-01T00:00:00Z"}), RunState::Running, None),
            (json!({"conditions": [cond("Complete", "True")]}), RunState::Success, Some("CompleteReason")),
            (
                json!({"conditions": [cond("SuccessCriteriaMet", "True")]}),
                RunState::Success,
                Some("SuccessCriteriaMetReason"),
            ),
            (
                json!({"conditions": [cond("SuccessCriteriaMet", "True"), cond("Complete", "True")]}),
                RunState::Success,
                Some("SuccessCriteriaMetReason"),
            ),
            (json!({"conditions": [cond("Failed", "True")]}), RunState::Failed, Some("FailedReason")),
            (json!({"conditions": [cond("FailureTarget", "True")]}), RunState::Failed, Some("FailureTargetReason")),
            (json!({"conditions": [cond("Suspended", "True")]}), RunState::Cancelled, Some("Suspended")),
            // Conditions count only when True.
            (json!({"conditions": [cond("Complete", "False")]}), RunState::Starting, None),
            (json!({"conditions": [cond("Failed", "False")], "active": 1}), RunState::Running, None),
            (
                json!({"conditions": [cond("Suspended", "False")], "startTime": "2026-01-01T00:00:00Z"}),
                RunState::Running,
                None,
            ),
            (json!({"conditions": [cond("Failed", "Unknown")]}), RunState::Starting, None),
            // A true condition of a type we do not know, not started: Unknown.
            (json!({"conditions": [cond("SomethingNew", "True")]}), RunState::Unknown, None),
            // Failure wins over success when both are true (FailureTarget while pods finish).
            (
                json!({"conditions": [cond("Complete", "True"), cond("FailureTarget", "True")]}),
                RunState::Failed,
                Some("FailureTargetReason"),
            ),
        ];
        for (status, state, reason) in rows {
            let (got, r, _) = job_state(&job(status.clone()));
            assert_eq!(got, state, "{status}");
            assert_eq!(r.as_deref(), reason, "{status}");
        }
    }

    #[test]
    fn a_queued_job_is_starting_not_cancelled() {
        let suspended = json!({"conditions": [cond("Suspended", "True")]});
        let mut j = job(suspended.clone());
        j.metadata.labels = Some([(crate::labels::KUEUE_QUEUE.to_owned(), "team-a".to_owned())].into());
        let (state, reason, message) = job_state(&j);
        assert_eq!((state, reason.as_deref()), (RunState::Starting, Some("Queued")));
        assert!(message.unwrap().contains("Kueue admits it from queue team-a"));
        let mut j = job(suspended);
        j.spec.as_mut().unwrap().managed_by = Some("kueue.x-k8s.io/multikueue".into());
        assert_eq!(job_state(&j).0, RunState::Starting);
        j.spec.as_mut().unwrap().managed_by = Some("kubernetes.io/job-controller".into());
        assert_eq!(job_state(&j).0, RunState::Cancelled);
    }

    #[test]
    fn a_job_being_deleted_is_cancelled() {
        let mut j = job(json!({"active": 1}));
        j.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(job_state(&j).0, RunState::Cancelled);
    }

    #[test]
    fn a_stuck_pod_is_the_reason_while_starting() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "j-abcde"},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}
            }]}
        }))
        .unwrap();
        let s = run_status("j", &job(json!({})), std::slice::from_ref(&pod));
        assert_eq!(s.state, RunState::Starting);
        assert_eq!(s.reason.as_deref(), Some("ImagePullBackOff"));
        assert!(s.message.unwrap().contains("Back-off pulling image"));
        assert_eq!(s.units[0].containers[0].state, "waiting");
        // Once finished, the job's own reason wins.
        let s = run_status("j", &job(json!({"conditions": [cond("Failed", "True")]})), &[pod]);
        assert_eq!(s.reason.as_deref(), Some("FailedReason"));
    }

    #[test]
    fn exit_codes_and_restarts_are_reported() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Failed",
                "initContainerStatuses": [{"name": "init", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                "containerStatuses": [{"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 2, "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}
        }))
        .unwrap();
        let u = unit(&pod);
        assert_eq!(u.phase, "Failed");
        assert_eq!((u.containers[0].init, u.containers[0].exit_code), (true, Some(0)));
        assert_eq!((u.containers[1].exit_code, u.containers[1].restarts), (Some(3), 2));
    }
}
