//! Watching many runs: each `watch` call reads the connection's shared
//! informer ([`crate::informer`]: one list+watch of the namespace's polysync
//! Jobs and pods) — never a poll loop per run, and no relist when a host
//! reopens its watch to add runs. A change reaches the caller as soon as the
//! API server sends the event. When RBAC allows list but not watch, each
//! call falls back to one list of Jobs and one of pods per round.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use polysync_provider_api::{ProviderError, ResultStream, RunState, RunStatus, UnitStatus};
use tokio::sync::broadcast::error::RecvError;

use crate::KubeJobs;
use crate::channel::{self, Sink};
use crate::informer::{Cache, Informer, Note, Phase};
use crate::labels::{RUN, managed_selector};
use crate::status::{JobFacts, status_of};

/// Runs looked up directly per request when the informer has not seen them.
const LOOKUP_CHUNK: usize = 50;

/// How long a run whose Job ended waits for its pods' last states on the
/// pod watch before they are read from the API server.
const POD_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// What one watch call knows about its runs.
struct Tracker {
    /// The pods of the namespace, read once more when a run ends.
    pods_api: Api<Pod>,
    wanted: HashSet<String>,
    last: HashMap<String, RunStatus>,
    /// Runs finished (terminal status sent, or gone).
    done: HashSet<String>,
    /// Runs whose Job ended before their pods' last states came: until
    /// when their final status waits for the pod watch.
    waiting: HashMap<String, tokio::time::Instant>,
    /// Whether it follows the informer (so a pod's change comes as a note);
    /// polling rounds read pods anyway.
    defer: bool,
}

impl Tracker {
    /// Send the run's status, as `cache` has it, if it changed.
    async fn emit(&mut self, run: &str, cache: &Mutex<Cache>, sink: &Sink<RunStatus>) -> bool {
        if self.done.contains(run) {
            return true;
        }
        let (job, units) = {
            let c = cache.lock().unwrap_or_else(|p| p.into_inner());
            (c.jobs.get(run).cloned(), c.pods.get(run).cloned().unwrap_or_default())
        };
        // Deleted since it was noted: its Gone note follows with its end.
        let Some(job) = job else { return true };
        self.send(run, &job, units, Some(cache), sink).await
    }

    /// Send the status `job` and `units` make, if it changed. `cache`,
    /// when the Job is still there, keeps the pods read for a final status.
    async fn send(
        &mut self,
        run: &str,
        job: &JobFacts,
        units: Vec<UnitStatus>,
        cache: Option<&Mutex<Cache>>,
        sink: &Sink<RunStatus>,
    ) -> bool {
        let (pods_final, outputs) = (job.pods_final(&units), job.outputs_to_read(&units));
        let mut status = status_of(run, job, units);
        if status.state.is_terminal() && !pods_final && self.defer && cache.is_some() {
            // The Job's end and its pods' last states come on two watches,
            // in either order: the pods' should follow in a moment (a note
            // brings this run here again); past the grace, they are read.
            let now = tokio::time::Instant::now();
            if now < *self.waiting.entry(run.to_owned()).or_insert(now + POD_GRACE) {
                return true;
            }
        }
        self.waiting.remove(run);
        if status.state.is_terminal() && (!pods_final || outputs) {
            // Read the pods once more, so the final status carries their
            // exit codes and reasons: the whole pods, as outputs need their
            // specs. Pods already gone (a TTL-deleted Job's) leave the last
            // units seen. (Read for every ending run, this list cost a
            // loaded real API server 175 ms or more at the median; from the
            // cache the final status takes 0.5 ms.)
            let params = ListParams::default().labels(&format!("{RUN}={run}"));
            match self.pods_api.list(&params).await {
                Ok(fresh) => {
                    if !fresh.items.is_empty() {
                        let units: Vec<UnitStatus> = fresh.items.iter().map(crate::status::unit).collect();
                        status = status_of(run, job, units.clone());
                        if let Some(cache) = cache {
                            cache.lock().unwrap_or_else(|p| p.into_inner()).pods.insert(run.to_owned(), units);
                        }
                    }
                    (status.outputs, status.output_error) =
                        crate::outputs::read(&self.pods_api, job, &fresh.items).await;
                }
                Err(e) => status.output_error = Some(format!("the run's pods could not be read for its outputs: {e}")),
            }
        }
        if self.last.get(run) == Some(&status) {
            return true;
        }
        if status.state.is_terminal() {
            self.done.insert(run.to_owned());
        }
        self.last.insert(run.to_owned(), status.clone());
        sink.send(status).await
    }

    /// A run whose Job disappeared: ended, if its Job's last state says so
    /// (deleted by `ttlSecondsAfterFinished` as it ended); otherwise
    /// cancelled, or vanished if it was never seen.
    async fn gone(&mut self, run: &str, last: Option<&(JobFacts, Vec<UnitStatus>)>, sink: &Sink<RunStatus>) -> bool {
        if self.done.contains(run) {
            return true;
        }
        if let Some((job, units)) = last
            && status_of(run, job, units.clone()).state.is_terminal()
        {
            return self.send(run, job, units.clone(), None, sink).await;
        }
        self.done.insert(run.to_owned());
        let mut status = self.last.get(run).cloned().unwrap_or_else(|| RunStatus::new(run, RunState::Cancelled));
        let seen = self.last.contains_key(run);
        status.state = if seen { RunState::Cancelled } else { RunState::Unknown };
        status.reason = Some(if seen { "Deleted" } else { polysync_provider_api::REASON_VANISHED }.into());
        status.message = Some(if seen {
            "the run's Job was deleted before it finished".into()
        } else {
            "the run's Job no longer exists (deleted, e.g. by ttlSecondsAfterFinished, before its end was seen); its last known state stands".into()
        });
        sink.send(status).await
    }

    /// Emit every wanted run; those `cache` lacks are gone.
    async fn all(&mut self, cache: &Mutex<Cache>, sink: &Sink<RunStatus>) -> bool {
        let mut wanted: Vec<String> = self.wanted.iter().cloned().collect();
        wanted.sort();
        for run in wanted {
            let present = cache.lock().unwrap_or_else(|p| p.into_inner()).jobs.contains_key(&run);
            let alive = if present { self.emit(&run, cache, sink).await } else { self.gone(&run, None, sink).await };
            if !alive {
                return false;
            }
        }
        true
    }

    fn finished(&self) -> bool {
        self.wanted.iter().all(|r| self.done.contains(r))
    }
}

/// The fallback: one list of Jobs and one of pods per round, for all runs.
async fn poll_rounds(k: KubeJobs, client: kube::Client, mut t: Tracker, sink: Sink<RunStatus>) {
    t.defer = false;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &k.namespace);
    let events: Api<Event> = Api::namespaced(client.clone(), &k.namespace);
    let pods: Api<Pod> = Api::namespaced(client, &k.namespace);
    let params = ListParams::default().labels(&managed_selector());
    let what = format!("polling runs in namespace {}", k.namespace);
    tracing::info!("{what}: RBAC allows list but not watch; polling every {:?}", k.poll_interval);
    loop {
        let listed = match k.retry.call(&what, || jobs.list(&params)).await {
            Ok(l) => l.items,
            Err(e) => return sink.fail(e).await,
        };
        let pod_list = match k.retry.call(&what, || pods.list(&params)).await {
            Ok(l) => l.items,
            Err(e) => return sink.fail(e).await,
        };
        let cache = Mutex::new(Cache::default());
        {
            let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
            for pod in &pod_list {
                if let Some(run) =
                    pod.metadata.labels.as_ref().and_then(|l| l.get(RUN)).filter(|r| t.wanted.contains(*r))
                {
                    c.set_pod(run.clone(), pod);
                }
            }
            for job in &listed {
                if let Some(name) = job.metadata.name.clone().filter(|n| t.wanted.contains(n)) {
                    c.jobs.insert(name, JobFacts::from(job));
                }
            }
        }
        // Runs with no pod: why, from one list of the namespace's refusals.
        let waiting = {
            let c = cache.lock().unwrap_or_else(|p| p.into_inner());
            c.jobs.iter().any(|(run, f)| f.awaits_pods() && !c.pods.contains_key(run))
        };
        if waiting {
            match crate::refusals::read(&events, None).await {
                Ok(mut refused) => {
                    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
                    for (run, facts) in c.jobs.iter_mut() {
                        facts.refused = refused.remove(run);
                    }
                }
                Err(e) => tracing::debug!("{what}: the job controller's events could not be read: {e}"),
            }
        }
        if !t.all(&cache, &sink).await || t.finished() {
            return;
        }
        tokio::time::sleep(k.poll_interval).await;
    }
}

/// Read runs the informer has not seen (created a moment ago, their events
/// still on the way) straight from the API server into its cache.
async fn look_up(
    k: &KubeJobs,
    client: &kube::Client,
    informer: &Informer,
    runs: &[String],
) -> Result<(), ProviderError> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), &k.namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &k.namespace);
    for chunk in runs.chunks(LOOKUP_CHUNK) {
        let selector = format!("{},{RUN} in ({})", managed_selector(), chunk.join(","));
        let params = ListParams::default().labels(&selector);
        let what = format!("reading runs in namespace {}", k.namespace);
        let found = k.retry.call(&what, || jobs.list(&params)).await?.items;
        let found_pods = k.retry.call(&what, || pods.list(&params)).await?.items;
        let mut cache = informer.lock();
        for job in &found {
            if let Some(name) = job.metadata.name.clone() {
                cache.jobs.entry(name).or_insert_with(|| JobFacts::from(job));
            }
        }
        for pod in &found_pods {
            if let Some(run) = pod.metadata.labels.as_ref().and_then(|l| l.get(RUN))
                && !cache.pods.get(run).is_some_and(|u| u.iter().any(|u| Some(&u.name) == pod.metadata.name.as_ref()))
            {
                cache.set_pod(run.clone(), pod);
            }
        }
    }
    Ok(())
}

/// One watch call: wait for the informer's listing, answer for every run,
/// then follow the informer's notes.
async fn follow(
    k: KubeJobs,
    client: kube::Client,
    informer: Arc<Informer>,
    mut notes: tokio::sync::broadcast::Receiver<Note>,
    mut t: Tracker,
    sink: Sink<RunStatus>,
) {
    let ns = k.namespace.clone();
    loop {
        let phase = informer.lock().phase();
        match phase {
            Phase::Ready => break,
            Phase::Poll => return poll_rounds(k, client, t, sink).await,
            Phase::Failed(e) => return sink.fail(e).await,
            Phase::Listing => {
                if let Err(RecvError::Closed) = notes.recv().await {
                    return;
                }
            }
        }
    }
    let missing: Vec<String> = {
        let cache = informer.lock();
        let mut m: Vec<String> = t.wanted.iter().filter(|r| !cache.jobs.contains_key(*r)).cloned().collect();
        m.sort();
        m
    };
    if !missing.is_empty() {
        if let Err(e) = look_up(&k, &client, &informer, &missing).await {
            return sink.fail(e).await;
        }
        // None of the runs exists: the caller asked about runs that are not
        // there (NotFound, as the contract says). Some missing among others:
        // those vanished (TTL-deleted before anyone watched); the rest go on.
        let none = {
            let cache = informer.lock();
            t.wanted.iter().all(|r| !cache.jobs.contains_key(r))
        };
        if none {
            let list: Vec<_> = missing.iter().map(String::as_str).collect();
            return sink
                .fail(ProviderError::not_found(format!(
                    "no run {} exists in namespace {ns} (deleted, or never created here)",
                    list.join(", ")
                )))
                .await;
        }
    }
    if !t.all(&informer.cache, &sink).await || t.finished() {
        return;
    }
    loop {
        // Wake for the next note, or for the first run whose pods' last
        // states did not come within the grace.
        let next = t.waiting.values().min().copied();
        let note = tokio::select! {
            note = notes.recv() => Some(note),
            () = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => None,
        };
        let Some(note) = note else {
            let now = tokio::time::Instant::now();
            let mut due: Vec<String> = t.waiting.iter().filter(|(_, at)| **at <= now).map(|(r, _)| r.clone()).collect();
            due.sort();
            let mut alive = true;
            for run in due {
                if alive {
                    alive = t.emit(&run, &informer.cache, &sink).await;
                }
            }
            if !alive || t.finished() {
                return;
            }
            continue;
        };
        let alive = match note {
            Ok(Note::Changed(runs)) => {
                let mut alive = true;
                for run in runs.iter() {
                    if alive && t.wanted.contains(run) {
                        alive = t.emit(run, &informer.cache, &sink).await;
                    }
                }
                alive
            }
            Ok(Note::Gone(ended)) => {
                let mut alive = true;
                for e in ended.iter() {
                    if alive && t.wanted.contains(&e.run) {
                        alive = t.gone(&e.run, e.last.as_ref(), &sink).await;
                    }
                }
                alive
            }
            Ok(Note::Phase) => {
                let phase = informer.lock().phase();
                match phase {
                    Phase::Poll => return poll_rounds(k, client, t, sink).await,
                    Phase::Failed(e) => return sink.fail(e).await,
                    // Listed again: read everything again.
                    Phase::Ready | Phase::Listing => t.all(&informer.cache, &sink).await,
                }
            }
            // Missed notes: read everything again.
            Err(RecvError::Lagged(_)) => t.all(&informer.cache, &sink).await,
            Err(RecvError::Closed) => return,
        };
        if !alive || t.finished() {
            return;
        }
    }
}

pub(crate) async fn watch(k: &KubeJobs, run_ids: Vec<String>) -> Result<ResultStream<RunStatus>, ProviderError> {
    let wanted: HashSet<String> = run_ids.into_iter().collect();
    if wanted.is_empty() {
        return Ok(futures::stream::empty().boxed());
    }
    let client = k.client().await?;
    let informer = Informer::get(&k.informer, &client, &k.namespace);
    // Subscribed before anything is read, so no change falls in between.
    let notes = informer.subscribe();
    let t = Tracker {
        pods_api: Api::namespaced(client.clone(), &k.namespace),
        wanted,
        last: HashMap::new(),
        done: HashSet::new(),
        waiting: HashMap::new(),
        defer: true,
    };
    let k = k.clone();
    Ok(channel::stream(move |sink| follow(k, client, informer, notes, t, sink)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn facts(status: Value) -> JobFacts {
        let job: Job =
            serde_json::from_value(json!({"metadata": {"name": "r"}, "spec": {"template": {}}, "status": status}))
                .unwrap();
        JobFacts::from(&job)
    }

    /// Pods as an API server with none left would list them.
    fn no_pods() -> Api<Pod> {
        let service = tower::service_fn(|_: http::Request<kube::client::Body>| async {
            let list = br#"{"apiVersion":"v1","kind":"PodList","metadata":{},"items":[]}"#;
            Ok::<_, std::convert::Infallible>(http::Response::new(kube::client::Body::from(list.to_vec())))
        });
        Api::namespaced(kube::Client::new(service, "ns"), "ns")
    }

    /// A pod whose container runs: the run has started.
    fn started() -> Vec<UnitStatus> {
        let container = polysync_provider_api::ContainerStatus {
            name: "main".into(),
            state: "running".into(),
            ..Default::default()
        };
        vec![UnitStatus {
            name: "r-abcde".into(),
            phase: "Running".into(),
            containers: vec![container],
            ..Default::default()
        }]
    }

    fn tracker() -> Tracker {
        Tracker {
            pods_api: no_pods(),
            wanted: ["r".to_owned()].into(),
            last: HashMap::new(),
            done: HashSet::new(),
            waiting: HashMap::new(),
            defer: true,
        }
    }

    /// `ttlSecondsAfterFinished: 0`: the Job's end and its deletion are both
    /// in the cache before the subscriber reads the note of its end.
    #[tokio::test]
    async fn a_job_deleted_as_it_ends_is_reported_as_it_ended_not_cancelled() {
        let cache = Mutex::new(Cache::default());
        let running = facts(json!({"active": 1, "startTime": "2026-01-01T00:00:00Z"}));
        let complete = json!({"conditions": [
            {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}
        ], "succeeded": 1, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:05Z"});
        let units = vec![UnitStatus {
            name: "r-abcde".into(),
            phase: "Succeeded".into(),
            containers: vec![],
            ..Default::default()
        }];
        let ended = (facts(complete), units.clone());
        let statuses = channel::stream(move |sink| async move {
            let mut t = tracker();
            cache.lock().unwrap().jobs.insert("r".into(), running);
            cache.lock().unwrap().pods.insert("r".into(), started());
            assert!(t.emit("r", &cache, &sink).await);
            cache.lock().unwrap().jobs.remove("r");
            assert!(t.emit("r", &cache, &sink).await, "the note of its end, read after the deletion");
            assert!(t.gone("r", Some(&ended), &sink).await);
            assert!(t.finished());
        })
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .await;
        let states: Vec<_> = statuses.iter().map(|s| (s.state, s.reason.as_deref())).collect();
        assert_eq!(states, [(RunState::Running, None), (RunState::Success, Some("CompletionsReached"))]);
        assert_eq!(statuses[1].units, units, "the pods are gone; their last states stand");
    }

    /// A Job that ended before its pods' last states came waits for them on
    /// the pod watch (no status yet, no read of the API server: this
    /// tracker's pods API answers nothing), then ends with their exit codes.
    #[tokio::test]
    async fn a_final_status_waits_for_the_pods_last_states_instead_of_reading_them() {
        let cache = Mutex::new(Cache::default());
        let complete = json!({"conditions": [{"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"}],
            "succeeded": 1, "startTime": "2026-01-01T00:00:00Z"});
        let ended = vec![UnitStatus {
            name: "r-abcde".into(),
            phase: "Succeeded".into(),
            containers: vec![polysync_provider_api::ContainerStatus {
                name: "main".into(),
                state: "terminated".into(),
                exit_code: Some(0),
                ..Default::default()
            }],
            ..Default::default()
        }];
        let want = ended.clone();
        let statuses = channel::stream(move |sink| async move {
            let mut t = tracker();
            cache.lock().unwrap().jobs.insert("r".into(), facts(complete));
            cache.lock().unwrap().pods.insert("r".into(), started());
            assert!(t.emit("r", &cache, &sink).await);
            assert!(t.waiting.contains_key("r"), "waits for the pod watch");
            cache.lock().unwrap().pods.insert("r".into(), ended);
            assert!(t.emit("r", &cache, &sink).await, "the pod's note");
            assert!(t.finished() && t.waiting.is_empty());
        })
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .await;
        assert_eq!(statuses.len(), 1, "nothing before the pods' last states: {statuses:?}");
        assert_eq!((statuses[0].state, &statuses[0].units), (RunState::Success, &want));
    }

    /// A Job deleted while it ran was cancelled; one never seen vanished.
    #[tokio::test]
    async fn a_job_deleted_before_its_end_is_cancelled_and_one_never_seen_vanished() {
        let cache = Mutex::new(Cache::default());
        let running = facts(json!({"active": 1, "startTime": "2026-01-01T00:00:00Z"}));
        let last = (running.clone(), vec![]);
        let statuses = channel::stream(move |sink| async move {
            let mut t = tracker();
            cache.lock().unwrap().jobs.insert("r".into(), running);
            cache.lock().unwrap().pods.insert("r".into(), started());
            assert!(t.emit("r", &cache, &sink).await);
            assert!(t.gone("r", Some(&last), &sink).await);
            let mut unseen = tracker();
            assert!(unseen.gone("r", None, &sink).await);
        })
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .await;
        let states: Vec<_> = statuses.iter().map(|s| (s.state, s.reason.as_deref())).collect();
        assert_eq!(
            states,
            [
                (RunState::Running, None),
                (RunState::Cancelled, Some("Deleted")),
                (RunState::Unknown, Some(polysync_provider_api::REASON_VANISHED)),
            ]
        );
    }
}
