//! Watching many runs with one list+watch of Jobs and one of pods per call,
//! both selected by the `managed-by=polysync` label — never a poll loop per
//! run. When RBAC allows list but not watch, it falls back to one list of
//! each per round for all runs. kube-runtime's watcher resumes from the last resourceVersion,
//! relists on 410, and reconnects with backoff; a change reaches the caller
//! as soon as the API server sends the event.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use polysync_provider_api::{ProviderError, ResultStream, RunState, RunStatus, UnitStatus};

use crate::KubeJobs;
use crate::channel::{self, Sink};
use crate::error::{code, from_kube};
use crate::labels::{RUN, managed_selector};
use crate::status::{JobFacts, status_of};

/// What a watch knows about its runs.
struct Tracker {
    /// The pods of the namespace, read once more when a run ends.
    pods_api: Api<Pod>,
    wanted: HashSet<String>,
    /// What each run's Job and pods say, not the objects: thousands of
    /// runs are followed at once.
    jobs: HashMap<String, JobFacts>,
    pods: HashMap<String, Vec<UnitStatus>>,
    last: HashMap<String, RunStatus>,
    /// Runs finished (terminal status sent, or gone).
    done: HashSet<String>,
}

impl Tracker {
    fn run_of_pod(pod: &Pod) -> Option<String> {
        pod.metadata.labels.as_ref()?.get(RUN).cloned()
    }

    /// Keep a pod's state as a unit of its run (replacing the pod's last).
    fn set_pod(&mut self, run: String, pod: &Pod) {
        let unit = crate::status::unit(pod);
        let units = self.pods.entry(run).or_default();
        match units.iter_mut().find(|u| u.name == unit.name) {
            Some(u) => *u = unit,
            None => units.push(unit),
        }
    }

    /// Send the run's status if it changed.
    async fn emit(&mut self, run: &str, sink: &Sink<RunStatus>) -> bool {
        if self.done.contains(run) {
            return true;
        }
        let Some(job) = self.jobs.get(run) else { return true };
        let mut status = status_of(run, job, self.pods.get(run).cloned().unwrap_or_default());
        if status.state.is_terminal() {
            // The Job's end and its pods' last states come on two watches,
            // in either order: read the pods once more, so the final
            // status carries their exit codes and reasons.
            // The whole pods, not the slim ones: outputs need their specs.
            let params = ListParams::default().labels(&format!("{RUN}={run}"));
            match self.pods_api.list(&params).await {
                Ok(fresh) => {
                    let units: Vec<UnitStatus> = fresh.items.iter().map(crate::status::unit).collect();
                    if let Some(job) = self.jobs.get(run) {
                        status = status_of(run, job, units.clone());
                        (status.outputs, status.output_error) =
                            crate::outputs::read(&self.pods_api, job, &fresh.items).await;
                    }
                    self.pods.insert(run.to_owned(), units);
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

    /// A run whose Job disappeared before it finished was cancelled.
    async fn gone(&mut self, run: &str, sink: &Sink<RunStatus>) -> bool {
        if self.done.contains(run) {
            return true;
        }
        self.done.insert(run.to_owned());
        self.jobs.remove(run);
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

    fn finished(&self) -> bool {
        self.wanted.iter().all(|r| self.done.contains(r))
    }
}

enum Change {
    Job(Box<watcher::Event<Job>>),
    Pod(Box<watcher::Event<Pod>>),
}

/// Fatal watcher errors end the stream; others are retried by the watcher.
fn fatal(err: &watcher::Error, what: &str) -> Option<ProviderError> {
    let kube_err = match err {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            e
        }
        _ => return None,
    };
    matches!(code(kube_err), Some(401 | 403)).then(|| from_kube(clone_error(kube_err), what))
}

/// A watch refused by RBAC after the list was allowed: poll instead.
fn watch_forbidden(err: &watcher::Error) -> bool {
    matches!(err, watcher::Error::WatchStartFailed(e) if code(e) == Some(403))
}

/// The fallback: one list of Jobs and one of pods per round, for all runs.
async fn poll_rounds(k: KubeJobs, client: kube::Client, mut t: Tracker, sink: Sink<RunStatus>) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), &k.namespace);
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
        t.pods.clear();
        for pod in pod_list {
            if let Some(run) = Tracker::run_of_pod(&pod).filter(|r| t.wanted.contains(r)) {
                t.set_pod(run, &pod);
            }
        }
        let mut seen = HashSet::new();
        for job in listed {
            let Some(name) = job.metadata.name.clone().filter(|n| t.wanted.contains(n)) else { continue };
            seen.insert(name.clone());
            t.jobs.insert(name, JobFacts::from(&job));
        }
        let wanted: Vec<String> = t.wanted.iter().cloned().collect();
        for run in wanted {
            let alive = if seen.contains(&run) { t.emit(&run, &sink).await } else { t.gone(&run, &sink).await };
            if !alive {
                return;
            }
        }
        if t.finished() {
            return;
        }
        tokio::time::sleep(k.poll_interval).await;
    }
}

fn clone_error(e: &kube::Error) -> kube::Error {
    match e {
        kube::Error::Api(s) => kube::Error::Api(s.clone()),
        other => {
            kube::Error::Api(kube::core::Status { code: 500, message: other.to_string(), ..Default::default() }.boxed())
        }
    }
}

pub(crate) async fn watch(k: &KubeJobs, run_ids: Vec<String>) -> Result<ResultStream<RunStatus>, ProviderError> {
    let wanted: HashSet<String> = run_ids.into_iter().collect();
    if wanted.is_empty() {
        return Ok(futures::stream::empty().boxed());
    }
    let client = k.client().await?;
    let ns = k.namespace.clone();
    let (poll_k, poll_client) = (k.clone(), client.clone());
    let config = watcher::Config::default().labels(&managed_selector());
    let jobs = watcher(Api::<Job>::namespaced(client.clone(), &ns), config.clone())
        .default_backoff()
        .map(|e| e.map(|e| Change::Job(Box::new(e))))
        .boxed();
    let pods_api = Api::<Pod>::namespaced(client.clone(), &ns);
    let pods = watcher(Api::<Pod>::namespaced(client, &ns), config)
        .default_backoff()
        .map(|e| e.map(|e| Change::Pod(Box::new(e))))
        .boxed();
    let mut changes = futures::stream::select(jobs, pods);
    Ok(channel::stream(move |sink| async move {
        let mut t = Tracker {
            pods_api: pods_api.clone(),
            wanted,
            jobs: HashMap::new(),
            pods: HashMap::new(),
            last: HashMap::new(),
            done: HashSet::new(),
        };
        let mut listed_jobs = false;
        let mut listed_pods = false;
        let mut relist: Option<HashSet<String>> = None;
        let what = format!("watching runs in namespace {ns}");
        while let Some(change) = changes.next().await {
            let change = match change {
                Ok(c) => c,
                Err(e) if watch_forbidden(&e) => {
                    drop(changes);
                    return poll_rounds(poll_k, poll_client, t, sink).await;
                }
                Err(e) => {
                    if let Some(err) = fatal(&e, &what) {
                        sink.fail(err).await;
                        return;
                    }
                    tracing::debug!("{what}: {e}; the watcher retries");
                    continue;
                }
            };
            let mut touched: Vec<String> = Vec::new();
            let ready_before = listed_jobs && listed_pods;
            match change {
                Change::Job(event) => match *event {
                    watcher::Event::Init => relist = Some(HashSet::new()),
                    watcher::Event::InitApply(job) | watcher::Event::Apply(job) => {
                        let Some(name) = job.metadata.name.clone() else { continue };
                        if let Some(seen) = relist.as_mut() {
                            seen.insert(name.clone());
                        }
                        if t.wanted.contains(&name) {
                            t.jobs.insert(name.clone(), JobFacts::from(&job));
                            touched.push(name);
                        }
                    }
                    watcher::Event::Delete(job) => {
                        let name = job.metadata.name.clone().unwrap_or_default();
                        if t.wanted.contains(&name) && !t.gone(&name, &sink).await {
                            return;
                        }
                    }
                    watcher::Event::InitDone => {
                        let seen = relist.take().unwrap_or_default();
                        let first = !listed_jobs;
                        listed_jobs = true;
                        // None of the runs exists: the caller asked about
                        // runs that are not there (NotFound, as the contract
                        // says). Some missing among others: those vanished
                        // (TTL-deleted before anyone watched); the rest go on.
                        let missing: Vec<String> = t.wanted.iter().filter(|r| !seen.contains(*r)).cloned().collect();
                        if first && missing.len() == t.wanted.len() {
                            let list: Vec<_> = missing.iter().map(String::as_str).collect();
                            sink.fail(ProviderError::not_found(format!(
                                "no run {} exists in namespace {ns} (deleted, or never created here)",
                                list.join(", ")
                            )))
                            .await;
                            return;
                        }
                        for run in missing {
                            if !t.gone(&run, &sink).await {
                                return;
                            }
                        }
                        touched.extend(t.wanted.iter().cloned());
                    }
                },
                Change::Pod(event) => match *event {
                    watcher::Event::Init => {}
                    watcher::Event::InitDone => listed_pods = true,
                    watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                        if let Some(run) = Tracker::run_of_pod(&pod).filter(|r| t.wanted.contains(r)) {
                            t.set_pod(run.clone(), &pod);
                            touched.push(run);
                        }
                    }
                    watcher::Event::Delete(pod) => {
                        if let Some(run) = Tracker::run_of_pod(&pod).filter(|r| t.wanted.contains(r)) {
                            if let Some(units) = t.pods.get_mut(&run) {
                                let name = pod.metadata.name.as_deref().unwrap_or_default();
                                units.retain(|u| u.name != name);
                            }
                            touched.push(run);
                        }
                    }
                },
            }
            // Report only once both listings are in, so the first status of
            // each run already carries its pods.
            if !(listed_jobs && listed_pods) {
                continue;
            }
            if !ready_before {
                touched.extend(t.wanted.iter().cloned());
            }
            touched.sort();
            touched.dedup();
            for run in touched {
                if !t.emit(&run, &sink).await {
                    return;
                }
            }
            if t.finished() {
                return;
            }
        }
    }))
}
