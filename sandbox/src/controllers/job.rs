//! The Job controller: pods for each Job, its status fields, and the
//! condition sequence of current Kubernetes.
//!
//! * Success: `SuccessCriteriaMet`, then `Complete` (reason
//!   `CompletionsReached`), with `completionTime`.
//! * Failure: `FailureTarget`, then (after active pods are removed)
//!   `Failed`, reason `BackoffLimitExceeded` or `DeadlineExceeded`.
//! * `suspend: true`: active pods deleted, `Suspended` True; resuming sets it
//!   False (`JobResumed`) and restarts the clock (`startTime`).
//! * Pod failures are retried with the real exponential backoff (10 s
//!   doubling, capped at 6 min, scaled by the sandbox clock) until
//!   `backoffLimit`; `restartPolicy: OnFailure` container restarts count too.
//! * `ttlSecondsAfterFinished` deletes the finished Job (background).
//! * `podFailurePolicy` rules (exit codes, pod conditions): `FailJob` fails
//!   the Job with reason `PodFailurePolicy`, `Ignore` does not count the
//!   failure, `FailIndex` fails the pod's index.
//! * Indexed Jobs: `successPolicy` completes the Job early (reason
//!   `SuccessPolicy`); `backoffLimitPerIndex` retries each index on its own,
//!   lists `failedIndexes`, and fails the Job past `maxFailedIndexes`
//!   (`MaxFailedIndexesExceeded`) or, once every index is done, with
//!   `FailedIndexes`.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::events::record;
use super::gc;
use crate::resources::{Kind, Propagation};
use crate::store::selector::LabelSelector;
use crate::store::{EventType, Key, Mutation, Object, Store};
use crate::time::{Clock, now_rfc3339, parse_ts};
use crate::validation::{self, controller_ref};

const COMPONENT: &str = "job-controller";
const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";

/// The controller's queue: keys of Jobs to reconcile, de-duplicated.
#[derive(Clone, Debug)]
pub struct Queue {
    tx: mpsc::UnboundedSender<Key>,
    pending: Arc<Mutex<HashSet<Key>>>,
}

impl Queue {
    fn push(&self, key: Key) {
        if self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone()) {
            let _ = self.tx.send(key);
        }
    }

    fn push_after(&self, key: Key, after: Duration) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            queue.push(key);
        });
    }
}

fn condition<'a>(job: &'a Value, kind: &str) -> Option<&'a Value> {
    job["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind && c["status"] == "True")
}

fn is_finished(job: &Value) -> bool {
    condition(job, "Complete").is_some() || condition(job, "Failed").is_some()
}

fn owner_job(pod: &Value) -> Option<String> {
    pod["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == "Job" && r["controller"] == true)
        .and_then(|r| r["name"].as_str().map(str::to_owned))
}

/// Set (or flip) a condition the way the real controller does.
fn set_condition(status: &mut Value, kind: &str, value: &str, reason: &str, message: &str) {
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let now = now_rfc3339();
    let list = status["conditions"].as_array_mut().expect("set above");
    match list.iter_mut().find(|c| c["type"] == kind) {
        Some(c) => {
            if c["status"] != value {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(value);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
            c["lastProbeTime"] = json!(now);
        }
        None => list.push(json!({
            "type": kind,
            "status": value,
            "reason": reason,
            "message": message,
            "lastProbeTime": now,
            "lastTransitionTime": now,
        })),
    }
}

struct Pods {
    active: Vec<Object>,
    succeeded: usize,
    failed: usize,
    /// Failed pods, for `podFailurePolicy`.
    failed_pods: Vec<Object>,
    /// Failures per index (Indexed Jobs).
    failed_per_index: std::collections::BTreeMap<u64, usize>,
    ready: usize,
    completed_indexes: BTreeSet<u64>,
    active_indexes: BTreeSet<u64>,
    last_failure: Option<jiff::Timestamp>,
}

fn index_of(pod: &Value) -> Option<u64> {
    pod["metadata"]["annotations"][INDEX_ANNOTATION].as_str()?.parse().ok()
}

fn classify(job: &Value, pods: &[Object]) -> Pods {
    let on_failure = job.pointer("/spec/template/spec/restartPolicy").and_then(Value::as_str) == Some("OnFailure");
    let mut out = Pods {
        active: Vec::new(),
        succeeded: 0,
        failed: 0,
        failed_pods: Vec::new(),
        failed_per_index: Default::default(),
        ready: 0,
        completed_indexes: BTreeSet::new(),
        active_indexes: BTreeSet::new(),
        last_failure: None,
    };
    for pod in pods {
        let restarts: u64 = pod["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["restartCount"].as_u64().unwrap_or(0))
            .sum();
        match pod["status"]["phase"].as_str() {
            Some("Succeeded") => {
                out.succeeded += 1;
                if let Some(i) = index_of(pod) {
                    out.completed_indexes.insert(i);
                }
            }
            Some("Failed") => {
                out.failed += 1;
                out.failed_pods.push(pod.clone());
                if let Some(i) = index_of(pod) {
                    *out.failed_per_index.entry(i).or_default() += 1;
                }
                let finished = pod["status"]["containerStatuses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["state"]["terminated"]["finishedAt"].as_str().and_then(parse_ts))
                    .max();
                out.last_failure = out.last_failure.max(finished);
            }
            _ => {
                if on_failure {
                    out.failed += restarts as usize;
                }
                let ready = pod["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
                if ready {
                    out.ready += 1;
                }
                if let Some(i) = index_of(pod) {
                    out.active_indexes.insert(i);
                }
                out.active.push(pod.clone());
            }
        }
    }
    out
}

/// What `podFailurePolicy` says about one failed pod.
#[derive(Debug, Clone, PartialEq)]
enum PolicyAction {
    FailJob(String),
    FailIndex,
    Ignore,
    Count,
}

/// The first `podFailurePolicy` rule matching a failed pod (exit codes of
/// terminated containers, or pod conditions), as the real controller
/// evaluates them; `Count` when none matches.
fn pod_failure_action(job: &Value, pod: &Value) -> PolicyAction {
    let Some(rules) = job["spec"]["podFailurePolicy"]["rules"].as_array() else { return PolicyAction::Count };
    let pod_name = format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or_default(),
        pod["metadata"]["name"].as_str().unwrap_or_default()
    );
    for (index, rule) in rules.iter().enumerate() {
        let mut message = None;
        if let Some(on) = rule.get("onExitCodes") {
            let wanted: Vec<i64> = on["values"].as_array().into_iter().flatten().filter_map(Value::as_i64).collect();
            let not_in = on["operator"] == "NotIn";
            for c in pod["status"]["containerStatuses"].as_array().into_iter().flatten() {
                if on["containerName"].as_str().is_some_and(|n| c["name"] != n) {
                    continue;
                }
                let Some(code) = c["state"]["terminated"]["exitCode"].as_i64() else { continue };
                if code != 0 && wanted.contains(&code) != not_in {
                    message = Some(format!(
                        "Container {} for pod {pod_name} failed with exit code {code} matching {} rule at index {index}",
                        c["name"].as_str().unwrap_or_default(),
                        rule["action"].as_str().unwrap_or_default()
                    ));
                    break;
                }
            }
        }
        if let Some(patterns) = rule["onPodConditions"].as_array() {
            let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let hit = patterns.iter().find(|p| {
                conditions
                    .iter()
                    .any(|c| c["type"] == p["type"] && c["status"] == p.get("status").cloned().unwrap_or(json!("True")))
            });
            if let Some(p) = hit {
                message = Some(format!(
                    "Pod {pod_name} has condition {} matching {} rule at index {index}",
                    p["type"].as_str().unwrap_or_default(),
                    rule["action"].as_str().unwrap_or_default()
                ));
            }
        }
        if let Some(m) = message {
            return match rule["action"].as_str() {
                Some("FailJob") => PolicyAction::FailJob(m),
                Some("FailIndex") => PolicyAction::FailIndex,
                Some("Ignore") => PolicyAction::Ignore,
                _ => PolicyAction::Count,
            };
        }
    }
    PolicyAction::Count
}

/// Parse `successPolicy.succeededIndexes` (`0,2-4`).
fn parse_ranges(text: &str) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(i) = part.parse() {
                    out.insert(i);
                }
            }
        }
    }
    out
}

/// The index of the first `successPolicy` rule the completed indexes meet.
fn success_policy_met(job: &Value, completed: &BTreeSet<u64>) -> Option<usize> {
    let rules = job["spec"]["successPolicy"]["rules"].as_array()?;
    rules.iter().position(|rule| {
        let count = rule["succeededCount"].as_u64();
        match rule["succeededIndexes"].as_str() {
            Some(text) => {
                let wanted = parse_ranges(text);
                let met = wanted.intersection(completed).count() as u64;
                match count {
                    Some(c) => met >= c,
                    None => met == wanted.len() as u64,
                }
            }
            None => count.is_some_and(|c| completed.len() as u64 >= c),
        }
    })
}

/// The Job controller.
#[derive(Debug)]
pub struct JobController {
    store: Arc<Store>,
    clock: Clock,
    queue: Queue,
}

impl JobController {
    /// Start the controller: it reconciles every Job now and after every
    /// change to a Job or its pods.
    pub fn spawn(store: Arc<Store>, clock: Clock) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let queue = Queue { tx, pending: Arc::default() };
        let controller = Arc::new(Self { store: store.clone(), clock, queue: queue.clone() });
        let mut changes = store.subscribe();
        // Jobs that exist at start and are not finished.
        for job in store.list(Kind::Job, None, None, None, Some(&|j: &Value| !is_finished(j)), &[]).items {
            queue.push(Key::of(&job));
        }
        let feeder = queue.clone();
        let feed_store = store.clone();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(change) => match change.kind {
                        Kind::Job if change.event != EventType::Deleted => feeder.push(Key::of(&change.object)),
                        Kind::Pod => {
                            if let Some(job) = owner_job(&change.object) {
                                let ns = change.object["metadata"]["namespace"].as_str().unwrap_or_default();
                                feeder.push(Key::new(ns, &job));
                            }
                        }
                        _ => {}
                    },
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        for job in
                            feed_store.list(Kind::Job, None, None, None, Some(&|j: &Value| !is_finished(j)), &[]).items
                        {
                            feeder.push(Key::of(&job));
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        tokio::spawn(async move {
            while let Some(key) = rx.recv().await {
                controller.queue.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                controller.reconcile(&key);
            }
        });
    }

    fn pods_of(&self, job: &Value) -> Vec<Object> {
        let ns = job["metadata"]["namespace"].as_str().unwrap_or_default();
        let uid = job["metadata"]["uid"].as_str().unwrap_or_default();
        let selector = LabelSelector::from_object(&job["spec"]["selector"]);
        let mut pods = self.store.owned_by(Kind::Pod, uid);
        pods.retain(|p| p["metadata"]["namespace"] == ns && selector.matches(p));
        pods
    }

    fn write_status(&self, key: &Key, f: impl FnOnce(&mut Value)) -> Option<Object> {
        self.store
            .mutate(Kind::Job, key, |job| {
                let before = job["status"].clone();
                if !job["status"].is_object() {
                    job["status"] = json!({});
                }
                f(&mut job["status"]);
                Ok(if job["status"] == before { Mutation::Unchanged } else { Mutation::Changed })
            })
            .ok()
    }

    fn delete_pods(&self, job: &Value, pods: &[Object]) {
        for pod in pods {
            if gc::delete(&self.store, Kind::Pod, &Key::of(pod), Propagation::Background).is_ok() {
                let name = pod["metadata"]["name"].as_str().unwrap_or_default();
                record(&self.store, COMPONENT, job, false, "SuccessfulDelete", &format!("Deleted pod: {name}"));
            }
        }
    }

    fn reconcile(&self, key: &Key) {
        let Some(job) = self.store.get(Kind::Job, key) else { return };
        if job["metadata"].get("deletionTimestamp").is_some() {
            return;
        }
        if is_finished(&job) {
            self.schedule_ttl(key, &job);
            return;
        }
        let spec = &job["spec"];
        let pods = self.pods_of(&job);
        let counts = classify(&job, &pods);

        if spec["suspend"] == true {
            self.delete_pods(&job, &counts.active);
            let already = condition(&job, "Suspended").is_some();
            self.write_status(key, |s| {
                set_condition(s, "Suspended", "True", "JobSuspended", "Job suspended");
                s["active"] = json!(0);
                s["ready"] = json!(0);
                if let Some(o) = s.as_object_mut() {
                    o.remove("startTime");
                }
            });
            if !already {
                record(&self.store, COMPONENT, &job, false, "Suspended", "Job suspended");
            }
            return;
        }
        let resumed = job["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Suspended" && c["status"] == "True"));
        if resumed {
            self.write_status(key, |s| set_condition(s, "Suspended", "False", "JobResumed", "Job resumed"));
            record(&self.store, COMPONENT, &job, false, "Resumed", "Job resumed");
        }

        let now = jiff::Timestamp::now();
        let started = job["status"]["startTime"].as_str().and_then(parse_ts).filter(|_| !resumed);
        let start = started.unwrap_or(now);

        if let Some(deadline) = spec["activeDeadlineSeconds"].as_u64() {
            let allowed = self.clock.real(Duration::from_secs(deadline));
            let elapsed = now.duration_since(start).unsigned_abs();
            if elapsed >= allowed {
                return self.fail(
                    key,
                    &job,
                    &counts,
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                );
            }
            self.queue.push_after(key.clone(), allowed - elapsed + Duration::from_millis(5));
        }
        // podFailurePolicy: FailJob ends the Job; Ignore does not count.
        let mut counts = counts;
        let mut failed_indexes: BTreeSet<u64> = BTreeSet::new();
        for pod in counts.failed_pods.clone() {
            match pod_failure_action(&job, &pod) {
                PolicyAction::FailJob(message) => {
                    return self.fail(key, &job, &counts, "PodFailurePolicy", &message);
                }
                PolicyAction::Ignore => {
                    counts.failed -= 1;
                    if let Some(i) = index_of(&pod)
                        && let Some(n) = counts.failed_per_index.get_mut(&i)
                    {
                        *n -= 1;
                    }
                }
                PolicyAction::FailIndex => {
                    if let Some(i) = index_of(&pod) {
                        failed_indexes.insert(i);
                    }
                }
                PolicyAction::Count => {}
            }
        }
        let per_index = spec["backoffLimitPerIndex"].as_u64();
        if let Some(limit) = per_index {
            for (i, n) in &counts.failed_per_index {
                if *n as u64 > limit {
                    failed_indexes.insert(*i);
                }
            }
            let failed_list = ranges(&failed_indexes);
            self.write_status(key, |s| s["failedIndexes"] = json!(failed_list));
            if let Some(max) = spec["maxFailedIndexes"].as_u64()
                && failed_indexes.len() as u64 > max
            {
                return self.fail(
                    key,
                    &job,
                    &counts,
                    "MaxFailedIndexesExceeded",
                    "Job has exceeded the specified maximal number of failed indexes",
                );
            }
        }
        let backoff_limit =
            spec["backoffLimit"].as_u64().unwrap_or(if per_index.is_some() { i32::MAX as u64 } else { 6 }) as usize;
        if counts.failed > backoff_limit {
            return self.fail(
                key,
                &job,
                &counts,
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            );
        }

        let indexed = spec["completionMode"] == "Indexed";
        let completions = spec["completions"].as_u64();
        let parallelism = spec["parallelism"].as_u64().unwrap_or(1);
        let done = match (indexed, completions) {
            (true, Some(c)) => (0..c).all(|i| counts.completed_indexes.contains(&i) || failed_indexes.contains(&i)),
            (false, Some(c)) => counts.succeeded as u64 >= c,
            (_, None) => counts.succeeded > 0 && counts.active.is_empty(),
        };
        if done {
            if !failed_indexes.is_empty() {
                return self.fail(key, &job, &counts, "FailedIndexes", "Job has failed indexes");
            }
            return self.complete(
                key,
                &job,
                &counts,
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            );
        }
        if indexed && let Some(rule) = success_policy_met(&job, &counts.completed_indexes) {
            self.delete_pods(&job, &counts.active);
            return self.complete(key, &job, &counts, "SuccessPolicy", &format!("Matched rules at index {rule}"));
        }

        // Pods still wanted.
        let mut to_create: Vec<Option<u64>> = Vec::new();
        if indexed {
            let c = completions.unwrap_or(1);
            let free = parallelism.saturating_sub(counts.active.len() as u64);
            to_create = (0..c)
                .filter(|i| {
                    !counts.completed_indexes.contains(i)
                        && !counts.active_indexes.contains(i)
                        && !failed_indexes.contains(i)
                })
                .take(free as usize)
                .map(Some)
                .collect();
        } else {
            let remaining = completions.map_or(if counts.succeeded > 0 { 0 } else { parallelism }, |c| {
                c.saturating_sub(counts.succeeded as u64)
            });
            let want = parallelism.min(remaining);
            let n = want.saturating_sub(counts.active.len() as u64);
            to_create.resize(n as usize, None);
        }
        let mut delay = None;
        if !to_create.is_empty() && counts.failed > 0 {
            let backoff = Duration::from_secs(10)
                .saturating_mul(1 << (counts.failed - 1).min(6) as u32)
                .min(Duration::from_secs(360));
            let wait = self.clock.real(backoff);
            let since = counts.last_failure.map_or(Duration::MAX, |t| now.duration_since(t).unsigned_abs());
            if since < wait {
                delay = Some(wait - since);
            }
        }
        match delay {
            Some(d) => self.queue.push_after(key.clone(), d + Duration::from_millis(1)),
            None => {
                for index in to_create {
                    self.create_pod(&job, index);
                }
            }
        }
        let pods = self.pods_of(&job);
        let counts = classify(&job, &pods);
        let start_time = crate::time::format_ts(start);
        self.write_status(key, |s| {
            s["startTime"] = json!(start_time);
            s["active"] = json!(counts.active.len());
            s["ready"] = json!(counts.ready);
            s["succeeded"] = json!(counts.succeeded);
            s["failed"] = json!(counts.failed);
            s["terminating"] = json!(0);
            s["uncountedTerminatedPods"] = json!({});
            if indexed {
                s["completedIndexes"] = json!(ranges(&counts.completed_indexes));
            }
        });
    }

    fn create_pod(&self, job: &Value, index: Option<u64>) {
        let name = job["metadata"]["name"].as_str().unwrap_or_default();
        let ns = job["metadata"]["namespace"].as_str().unwrap_or_default();
        let template = &job["spec"]["template"];
        let mut meta = template["metadata"].clone();
        if !meta.is_object() {
            meta = json!({});
        }
        meta["generateName"] = json!(match index {
            Some(i) => format!("{name}-{i}-"),
            None => format!("{name}-"),
        });
        meta["namespace"] = json!(ns);
        meta["ownerReferences"] = json!([controller_ref(job)]);
        if let Some(o) = meta.as_object_mut() {
            o.remove("name");
        }
        let mut spec = template["spec"].clone();
        if let Some(i) = index {
            // As the real controller: an Indexed pod's hostname is its index's.
            if spec["hostname"].as_str().is_none_or(str::is_empty) {
                spec["hostname"] = json!(format!("{name}-{i}"));
            }
            meta["annotations"][INDEX_ANNOTATION] = json!(i.to_string());
            meta["labels"][INDEX_ANNOTATION] = json!(i.to_string());
            for list in ["initContainers", "containers"] {
                for c in spec[list].as_array_mut().into_iter().flatten() {
                    if !c["env"].is_array() {
                        c["env"] = json!([]);
                    }
                    c["env"]
                        .as_array_mut()
                        .expect("set above")
                        .push(json!({"name": "JOB_COMPLETION_INDEX", "value": i.to_string()}));
                }
            }
        }
        let mut pod = json!({"metadata": meta, "spec": spec});
        // As the real controller's pod control: a refused create is a
        // Warning `FailedCreate` on the Job, and the Job stays without it.
        match validation::prepare_create(Kind::Pod, Some(ns), &mut pod).and_then(|()| self.store.create(Kind::Pod, pod))
        {
            Ok(created) => {
                let pod_name = created["metadata"]["name"].as_str().unwrap_or_default();
                record(&self.store, COMPONENT, job, false, "SuccessfulCreate", &format!("Created pod: {pod_name}"));
            }
            Err(e) => {
                record(&self.store, COMPONENT, job, true, "FailedCreate", &format!("Error creating: {}", e.message))
            }
        }
    }

    fn fail(&self, key: &Key, job: &Value, counts: &Pods, reason: &str, message: &str) {
        self.write_status(key, |s| set_condition(s, "FailureTarget", "True", reason, message));
        self.delete_pods(job, &counts.active);
        let (succeeded, failed) = (counts.succeeded, counts.failed);
        let updated = self.write_status(key, |s| {
            set_condition(s, "Failed", "True", reason, message);
            s["active"] = json!(0);
            s["ready"] = json!(0);
            s["terminating"] = json!(0);
            s["succeeded"] = json!(succeeded);
            s["failed"] = json!(failed.max(1));
        });
        record(&self.store, COMPONENT, job, true, reason, message);
        if let Some(job) = updated {
            self.schedule_ttl(key, &job);
        }
    }

    fn complete(&self, key: &Key, job: &Value, counts: &Pods, reason: &str, message: &str) {
        self.write_status(key, |s| set_condition(s, "SuccessCriteriaMet", "True", reason, message));
        let (succeeded, failed) = (counts.succeeded, counts.failed);
        let indexed = job["spec"]["completionMode"] == "Indexed";
        let completed = ranges(&counts.completed_indexes);
        let updated = self.write_status(key, |s| {
            set_condition(s, "Complete", "True", reason, message);
            s["completionTime"] = json!(now_rfc3339());
            s["active"] = json!(0);
            s["ready"] = json!(0);
            s["terminating"] = json!(0);
            s["succeeded"] = json!(succeeded);
            s["failed"] = json!(failed);
            if indexed {
                s["completedIndexes"] = json!(completed);
            }
        });
        record(&self.store, COMPONENT, job, false, "Completed", "Job completed");
        if let Some(job) = updated {
            self.schedule_ttl(key, &job);
        }
    }

    fn schedule_ttl(&self, key: &Key, job: &Value) {
        let Some(ttl) = job["spec"]["ttlSecondsAfterFinished"].as_u64() else { return };
        let finished = job["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
            .filter_map(|c| c["lastTransitionTime"].as_str().and_then(parse_ts))
            .max()
            .unwrap_or_else(jiff::Timestamp::now);
        let due = self.clock.real(Duration::from_secs(ttl));
        let elapsed = jiff::Timestamp::now().duration_since(finished).unsigned_abs();
        if elapsed >= due {
            // Foreground, as the real TTL controller deletes: the Job is
            // marked first, its pods go, then it does.
            let _ = gc::delete(&self.store, Kind::Job, key, Propagation::Foreground);
        } else {
            self.queue.push_after(key.clone(), due - elapsed + Duration::from_millis(1));
        }
    }
}

/// `1,3-5,7`: completed indexes as the real `completedIndexes` string.
fn ranges(set: &BTreeSet<u64>) -> String {
    let mut parts = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().expect("peeked");
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    #[test]
    fn completed_index_ranges() {
        let set = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(super::ranges(&set), "0-2,4,6-7");
    }
}
