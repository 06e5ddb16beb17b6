//! A Job and its pods as one normalized status.
//!
//! From `status.conditions[]`, counting only `status == "True"`:
//! `Complete` / `SuccessCriteriaMet` → Success; `Failed` / `FailureTarget`
//! → Failed; `Suspended` → Starting with reason `Queued` while something
//! will resume the Job (it is in a Kueue queue, or `spec.managedBy` names
//! another controller), else Cancelled with reason `Suspended` (a person
//! paused it; polysync keeps following it, so a resume is seen). A Job
//! created suspended for such a resumer is `Queued` from the start: the
//! spec says so before the job controller adds the condition. A Job
//! being deleted is Cancelled.
//!
//! Otherwise the run is Running only once a container has started (a pod's
//! container running or terminated, or pods already finished); a
//! `startTime` or an `active` count alone is not progress. Until then it is
//! Starting **with the reason that holds it**, so neither a person nor a
//! startup timeout waits blind: a container's waiting reason
//! (ImagePullBackOff, CreateContainerConfigError, InvalidImageName — the
//! last fails the run at once), a pod's own reason (`Unschedulable` with
//! the scheduler's message), or, while the Job has no pod at all, the job
//! controller's `FailedCreate` (the API server refused its pods: a missing
//! ServiceAccount, a quota, PodSecurity, a LimitRange).
//!
//! A failed run's message also names what ended its pods when a pod says
//! so: disrupted (evicted, garbage-collected with its Node, preempted) or a
//! container OOMKilled.

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::{ContainerStatus as K8sContainerStatus, Pod, PodStatus};
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
    /// `spec.suspend`: asked to wait, whether or not the job controller
    /// has said so in a condition yet.
    suspend: bool,
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
    /// The job controller's last `FailedCreate` message, while the Job has
    /// no pod: why the API server refused them. Not read from the Job
    /// (events are separate objects); set by whoever looked them up.
    pub refused: Option<String>,
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
            suspend: spec.and_then(|s| s.suspend).unwrap_or(false),
            deleting: job.metadata.deletion_timestamp.is_some(),
            active: status.and_then(|s| s.active).unwrap_or(0),
            ended: status.map_or(0, |s| s.succeeded.unwrap_or(0) + s.failed.unwrap_or(0)),
            start_time: status.and_then(|s| s.start_time.as_ref()).map(rfc3339),
            completion_time: status.and_then(|s| s.completion_time.as_ref()).map(rfc3339),
            outputs: crate::labels::declared(&job.metadata),
            per_index: spec
                .is_some_and(|s| s.completion_mode.as_deref() == Some("Indexed") && s.completions.unwrap_or(1) > 1),
            refused: None,
        }
    }
}

/// The state, reason and message of a Job.
pub fn job_state(job: &Job) -> (RunState, Option<String>, Option<String>) {
    JobFacts::from(job).state()
}

impl JobFacts {
    /// The job controller should have made pods and none exists: no
    /// condition (not suspended, not ended), not being deleted, no pod
    /// active or ended. Its `FailedCreate` events say why.
    pub fn awaits_pods(&self) -> bool {
        self.conditions.is_empty() && !self.suspend && !self.deleting && self.active == 0 && self.ended == 0
    }

    /// Who will resume the Job while it is suspended, as the message of a
    /// `Queued` run: its Kueue queue, or the other controller that
    /// manages it. `None`: only a person would.
    fn resumer(&self) -> Option<String> {
        if let Some(queue) = &self.queue {
            return Some(format!("suspended until Kueue admits it from queue {queue}"));
        }
        let controller = self.managed_by.as_deref().filter(|m| *m != "kubernetes.io/job-controller")?;
        Some(format!("suspended until {controller}, which manages it, resumes it"))
    }

    /// Whether `units` hold the last state of every pod that ended: all of
    /// them Succeeded or Failed, at least as many as the Job counts.
    pub fn pods_final(&self, units: &[UnitStatus]) -> bool {
        let ended = units.iter().filter(|u| matches!(u.phase.as_str(), "Succeeded" | "Failed")).count();
        !units.is_empty() && ended == units.len() && ended as i64 >= i64::from(self.ended)
    }

    /// Whether the pods may hold outputs, which need the whole pods (and
    /// perhaps their logs): some are declared, or a container left a
    /// termination message (which may hold some, or be malformed).
    pub fn outputs_to_read(&self, units: &[UnitStatus]) -> bool {
        !self.outputs.is_empty()
            || units
                .iter()
                .flat_map(|u| &u.containers)
                .any(|c| c.state == "terminated" && c.message.as_deref().is_some_and(|m| !m.is_empty()))
    }

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
            if let Some(message) = self.resumer() {
                return (RunState::Starting, Some("Queued".into()), Some(message));
            }
            let (_, m) = detail(c);
            return (RunState::Cancelled, Some("Suspended".into()), m);
        }
        // Created suspended, before the job controller's condition.
        if self.suspend
            && self.conditions.is_empty()
            && !self.deleting
            && self.active == 0
            && self.ended == 0
            && let Some(message) = self.resumer()
        {
            return (RunState::Starting, Some("Queued".into()), Some(message));
        }
        if self.deleting {
            return (RunState::Cancelled, Some("Deleted".into()), Some("the Job is being deleted".into()));
        }
        // Running for now: `status_of` keeps it Starting until a container
        // of its pods has started.
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

/// A pod's own reason and message: disrupted (`DisruptionTarget`: evicted
/// through the Eviction API, deleted by pod GC with its Node, preempted),
/// ended by its node (`status.reason`: `Evicted`, `DeadlineExceeded`), or
/// not scheduled (`PodScheduled=False`: `Unschedulable`, `SchedulingGated`).
fn pod_reason(status: Option<&PodStatus>) -> (Option<String>, Option<String>) {
    let conditions = status.and_then(|s| s.conditions.as_ref()).into_iter().flatten();
    let mut unscheduled = None;
    for c in conditions {
        match (c.type_.as_str(), c.status.as_str()) {
            ("DisruptionTarget", "True") => return (c.reason.clone(), c.message.clone()),
            ("PodScheduled", "False") => unscheduled = Some((c.reason.clone(), c.message.clone())),
            _ => {}
        }
    }
    if let Some(reason) = status.and_then(|s| s.reason.clone()) {
        return (Some(reason), status.and_then(|s| s.message.clone()));
    }
    unscheduled.unwrap_or_default()
}

/// A pod as a unit of a run.
pub fn unit(pod: &Pod) -> UnitStatus {
    let status = pod.status.as_ref();
    let init =
        status.and_then(|s| s.init_container_statuses.as_ref()).into_iter().flatten().map(|c| container(c, true));
    let main = status.and_then(|s| s.container_statuses.as_ref()).into_iter().flatten().map(|c| container(c, false));
    let (reason, message) = pod_reason(status);
    UnitStatus {
        name: pod.metadata.name.clone().unwrap_or_default(),
        phase: status.and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".into()),
        containers: init.chain(main).collect(),
        reason,
        message,
    }
}

fn rfc3339(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> String {
    t.0.to_string()
}

/// No container of the pod has run yet.
fn not_started(u: &UnitStatus) -> bool {
    u.phase == "Pending" && u.containers.iter().all(|c| c.state == "waiting" || c.state == "unknown")
}

/// The reason of a run whose Job's pods the API server refused.
pub const REFUSED: &str = "FailedCreate";

/// What ended a failed run's pods, when a pod says: disrupted or ended by
/// its node, or a container OOMKilled. The Job's own reason
/// (`BackoffLimitExceeded`) says only that pods failed.
fn pod_cause(units: &[UnitStatus]) -> Option<String> {
    if let Some(u) = units.iter().find(|u| u.reason.is_some() && u.phase != "Pending") {
        let reason = u.reason.as_deref().unwrap_or_default();
        return Some(match &u.message {
            Some(m) => format!("pod {} {reason}: {m}", u.name),
            None => format!("pod {} {reason}", u.name),
        });
    }
    units.iter().find_map(|u| {
        let c = u.containers.iter().find(|c| c.state == "terminated" && c.reason.as_deref() == Some("OOMKilled"))?;
        let code = c.exit_code.map(|e| format!(" (exit {e})")).unwrap_or_default();
        Some(format!("container {} of pod {} was OOMKilled{code}: it used more memory than its limit", c.name, u.name))
    })
}

/// The normalized status of run `run_id` from its Job and pods.
pub fn run_status(run_id: &str, job: &Job, pods: &[Pod]) -> RunStatus {
    status_of(run_id, &JobFacts::from(job), pods.iter().map(unit).collect())
}

/// The normalized status of run `run_id` from what its Job and pods say.
pub fn status_of(run_id: &str, job: &JobFacts, mut units: Vec<UnitStatus>) -> RunStatus {
    let (mut state, mut reason, mut message) = job.state();
    units.sort_by(|a, b| a.name.cmp(&b.name));
    // A Job has a startTime (and active pods) as soon as its controller
    // syncs it; the run has started only once a container has. No pod yet
    // (refused by the API server), pods still pulling or unschedulable keep
    // the run Starting, so a startup timeout can see it.
    if state == RunState::Running && job.ended == 0 && units.iter().all(not_started) {
        state = RunState::Starting;
    }
    if state == RunState::Starting && reason.is_none() {
        if let Some(u) = units.iter().find(|u| u.reason.is_some()) {
            reason = u.reason.clone();
            message = Some(format!("pod {}: {}", u.name, u.message.as_deref().unwrap_or("not scheduled yet")));
        } else if let Some(refused) = job.refused.as_ref().filter(|_| units.is_empty()) {
            reason = Some(REFUSED.into());
            message = Some(refused.clone());
        }
    }
    if state == RunState::Failed
        && let Some(cause) = pod_cause(&units)
    {
        message = Some(match message {
            Some(m) => format!("{m}; {cause}"),
            None => cause,
        });
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
    fn a_job_created_suspended_for_a_queue_is_queued_before_its_condition() {
        let mut j = job(json!({}));
        j.spec.as_mut().unwrap().suspend = Some(true);
        j.metadata.labels = Some([(crate::labels::KUEUE_QUEUE.to_owned(), "team-a".to_owned())].into());
        let (state, reason, message) = job_state(&j);
        assert_eq!((state, reason.as_deref()), (RunState::Starting, Some("Queued")));
        assert!(message.unwrap().contains("queue team-a"));
        assert!(!JobFacts::from(&j).awaits_pods(), "no FailedCreate is looked for: it is not meant to have pods");
        // Admitted (suspend off) before the controller caught up: Starting,
        // as any Job without pods yet.
        j.spec.as_mut().unwrap().suspend = Some(false);
        assert_eq!(job_state(&j), (RunState::Starting, None, None));
        // Suspended with no one to resume it, no condition yet: not queued.
        let mut j = job(json!({}));
        j.spec.as_mut().unwrap().suspend = Some(true);
        assert_eq!(job_state(&j).1, None);
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

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "j-abcde"}, "status": status})).unwrap()
    }

    /// "Running" means a container started: a startTime without pods is a
    /// Job whose pods the API server refused, and says why.
    #[test]
    fn a_job_without_pods_is_starting_with_the_controllers_refusal() {
        let started = job(json!({"startTime": "2026-01-01T00:00:00Z"}));
        let s = run_status("j", &started, &[]);
        assert_eq!((s.state, s.reason.as_deref()), (RunState::Starting, None));
        let mut facts = JobFacts::from(&started);
        assert!(facts.awaits_pods());
        facts.refused = Some("Error creating: pods \"j-x\" is forbidden: error looking up service account".into());
        let s = status_of("j", &facts, vec![]);
        assert_eq!((s.state, s.reason.as_deref()), (RunState::Starting, Some(REFUSED)));
        assert!(s.message.unwrap().contains("service account"));
        // Once a pod exists, the refusal no longer holds the run.
        let running =
            pod(json!({"phase": "Running", "containerStatuses": [{"name": "main", "image": "x", "imageID": "",
            "ready": true, "restartCount": 0, "state": {"running": {}}}]}));
        let s = status_of("j", &facts, vec![unit(&running)]);
        assert_eq!((s.state, s.reason), (RunState::Running, None));
    }

    #[test]
    fn an_unschedulable_pod_is_the_reason_with_the_schedulers_message() {
        let pending = pod(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."}]}));
        let s = run_status("j", &job(json!({"active": 1, "startTime": "2026-01-01T00:00:00Z"})), &[pending]);
        assert_eq!((s.state, s.reason.as_deref()), (RunState::Starting, Some("Unschedulable")));
        assert!(s.message.unwrap().contains("0/1 nodes are available"));
    }

    #[test]
    fn a_failed_runs_message_names_a_disruption_or_an_oom_kill() {
        let failed = job(json!({"conditions": [cond("Failed", "True")], "failed": 1}));
        let evicted = pod(json!({"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True",
            "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}]}));
        let s = run_status("j", &failed, &[evicted]);
        assert_eq!(s.units[0].reason.as_deref(), Some("EvictionByEvictionAPI"));
        assert!(s.message.unwrap().contains("pod j-abcde EvictionByEvictionAPI: Eviction API: evicting"));
        let oom = pod(json!({"phase": "Failed", "containerStatuses": [{"name": "main", "image": "x", "imageID": "",
            "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}));
        let s = run_status("j", &failed, &[oom]);
        assert_eq!(s.reason.as_deref(), Some("FailedReason"), "the Job's own reason stays");
        assert!(s.message.unwrap().contains("container main of pod j-abcde was OOMKilled (exit 137)"));
    }

    impl JobFacts {
        fn settled_by(&self, units: &[UnitStatus]) -> bool {
            self.pods_final(units) && !self.outputs_to_read(units)
        }
    }

    #[test]
    fn a_final_status_needs_no_read_only_when_the_cache_has_every_ended_pod_and_no_output() {
        let done = JobFacts::from(&job(json!({"conditions": [cond("SuccessCriteriaMet", "True")], "succeeded": 1})));
        let terminated = |message: &str| {
            pod(json!({"phase": "Succeeded", "containerStatuses": [{"name": "main", "image": "x", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": message}}}]}))
        };
        let running = pod(json!({"phase": "Running"}));
        assert!(done.settled_by(&[unit(&terminated(""))]));
        assert!(!done.settled_by(&[]), "no pod seen yet");
        assert!(!done.settled_by(&[unit(&running)]), "the pod's last state has not come");
        assert!(!done.settled_by(&[unit(&terminated("ROWS=42"))]), "a termination message may hold outputs");
        assert!(!done.settled_by(&[unit(&terminated("a log tail"))]), "or be malformed, which is said");
        let two = JobFacts::from(&job(json!({"conditions": [cond("Complete", "True")], "succeeded": 2})));
        assert!(!two.settled_by(&[unit(&terminated(""))]), "one of two ended pods seen");
        let mut declared = done.clone();
        declared.outputs = vec!["ROWS".into()];
        assert!(!declared.settled_by(&[unit(&terminated(""))]), "declared outputs are read");
    }
}
