//! One shared list+watch of the namespace's polysync Jobs and pods per
//! connection — an informer, as Kubernetes controllers have — that every
//! `watch` call reads from.
//!
//! Why shared: a host following thousands of runs reopens its watch each
//! time runs join. With a list+watch per call, every reopen relisted every
//! managed Job and pod of the namespace (thousands of objects through the
//! API server and the plugin); with the informer a reopen costs nothing but
//! a lookup. It keeps what statuses are read from ([`JobFacts`] and pod
//! units), not the objects, and lives while a `watch` uses it and a minute
//! after, so a reopen finds it still synced.
//!
//! kube-runtime's watcher resumes from the last resourceVersion, relists on
//! `410 Gone` and reconnects with backoff; after a relist, Jobs that were
//! not listed again are gone and subscribers hear so.
//!
//! A Job with no pod has its reason in the job controller's `FailedCreate`
//! events, not on any watched object: while such runs exist the informer
//! reads the namespace's refusals now and then ([`crate::refusals`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use polysync_provider_api::{ProviderError, UnitStatus};
use tokio::sync::broadcast;

use crate::error::{code, from_kube};
use crate::labels::{RUN, managed_selector};
use crate::refusals::{self, Probe};
use crate::slim::{SlimJob, SlimPod};
use crate::status::JobFacts;

/// How long an informer nobody reads from stays up.
const LINGER: Duration = Duration::from_secs(60);

/// Where the informer is.
#[derive(Debug, Clone)]
pub enum Phase {
    /// The first listing is under way.
    Listing,
    /// Listed and watching.
    Ready,
    /// RBAC allows list but not watch: each caller polls instead.
    Poll,
    /// It ended with this error (401/403).
    Failed(ProviderError),
}

/// What subscribers hear.
#[derive(Debug, Clone)]
pub enum Note {
    /// These runs' Job or pods changed.
    Changed(Arc<Vec<String>>),
    /// These runs' Jobs no longer exist.
    Gone(Arc<Vec<Ended>>),
    /// The phase changed (listed, relisted, polling, failed).
    Phase,
}

/// A run whose Job is gone, with what its Job and pods last were.
///
/// Why it travels with the note: a Job deleted the moment it ends
/// (`ttlSecondsAfterFinished: 0`) has its last update and its deletion
/// arrive back to back; by the time a subscriber reads the cache for the
/// update, the Job is already out of it. The deletion carries the Job's
/// final state, so the run is reported as it ended, not as cancelled.
#[derive(Debug, Clone)]
pub struct Ended {
    pub run: String,
    pub last: Option<(JobFacts, Vec<UnitStatus>)>,
}

/// The cache: per run, its Job's facts and its pods as units.
#[derive(Debug, Default)]
pub struct Cache {
    pub jobs: HashMap<String, JobFacts>,
    pub pods: HashMap<String, Vec<UnitStatus>>,
    phase: Option<Phase>,
}

impl Cache {
    pub fn phase(&self) -> Phase {
        self.phase.clone().unwrap_or(Phase::Listing)
    }

    /// Keep a pod's state as a unit of its run (replacing the pod's last).
    pub fn set_pod(&mut self, run: String, pod: &Pod) {
        let unit = crate::status::unit(pod);
        let units = self.pods.entry(run).or_default();
        match units.iter_mut().find(|u| u.name == unit.name) {
            Some(u) => *u = unit,
            None => units.push(unit),
        }
    }

    fn remove_pod(&mut self, run: &str, name: &str) {
        if let Some(units) = self.pods.get_mut(run) {
            units.retain(|u| u.name != name);
            if units.is_empty() {
                self.pods.remove(run);
            }
        }
    }
}

/// A running informer.
#[derive(Debug)]
pub struct Informer {
    pub cache: Mutex<Cache>,
    notes: broadcast::Sender<Note>,
}

/// The slot a connection keeps its informer in.
pub type Slot = Arc<Mutex<Option<Arc<Informer>>>>;

fn run_of_pod(pod: &Pod) -> Option<String> {
    pod.metadata.labels.as_ref()?.get(RUN).cloned()
}

impl Informer {
    /// The connection's informer, started on first use.
    pub fn get(slot: &Slot, client: &kube::Client, namespace: &str) -> Arc<Informer> {
        let mut current = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = current.as_ref() {
            return i.clone();
        }
        let informer = Arc::new(Informer { cache: Mutex::default(), notes: broadcast::channel(4096).0 });
        *current = Some(informer.clone());
        tokio::spawn(run(informer.clone(), slot.clone(), client.clone(), namespace.to_owned()));
        informer
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Note> {
        self.notes.subscribe()
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note(&self, note: Note) {
        let _ = self.notes.send(note);
    }

    fn set_phase(&self, phase: Phase) {
        self.lock().phase = Some(phase);
        self.note(Note::Phase);
    }
}

enum Change {
    Job(Box<watcher::Event<SlimJob>>),
    Pod(Box<watcher::Event<SlimPod>>),
}

/// Fatal watcher errors end the informer; others are retried by the watcher.
fn fatal(err: &watcher::Error, what: &str) -> Option<ProviderError> {
    let kube_err = match err {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            e
        }
        _ => return None,
    };
    matches!(code(kube_err), Some(401 | 403)).then(|| from_kube(clone_error(kube_err), what))
}

/// A watch refused by RBAC after the list was allowed.
fn watch_forbidden(err: &watcher::Error) -> bool {
    matches!(err, watcher::Error::WatchStartFailed(e) if code(e) == Some(403))
}

fn clone_error(e: &kube::Error) -> kube::Error {
    match e {
        kube::Error::Api(s) => kube::Error::Api(s.clone()),
        other => {
            kube::Error::Api(kube::core::Status { code: 500, message: other.to_string(), ..Default::default() }.boxed())
        }
    }
}

/// Read why the runs without pods have none, and tell the subscribers of
/// those whose reason changed. Inline in the informer's task: one list,
/// made only while runs wait for pods, at most every few seconds.
async fn read_refusals(informer: &Informer, events: &Api<Event>, probe: &mut Probe, what: &str) {
    {
        let cache = informer.lock();
        probe
            .waiting
            .retain(|run| cache.jobs.get(run).is_some_and(JobFacts::awaits_pods) && !cache.pods.contains_key(run));
    }
    if !probe.waiting.is_empty() {
        match refusals::read(events, None).await {
            Ok(mut refused) => {
                let mut changed = Vec::new();
                {
                    let mut cache = informer.lock();
                    for run in &probe.waiting {
                        if let Some(facts) = cache.jobs.get_mut(run) {
                            let now = refused.remove(run);
                            if facts.refused != now {
                                facts.refused = now;
                                changed.push(run.clone());
                            }
                        }
                    }
                }
                if !changed.is_empty() {
                    informer.note(Note::Changed(Arc::new(changed)));
                }
            }
            Err(e) if matches!(code(&e), Some(401 | 403)) => {
                tracing::info!(
                    "{what}: the job controller's events cannot be listed ({e}); a run whose pods the API server refuses shows Starting without the reason"
                );
                probe.stop();
                return;
            }
            Err(e) => tracing::debug!("{what}: reading the job controller's refusals: {e}; read again later"),
        }
    }
    probe.done(tokio::time::Instant::now());
}

/// The informer's task: apply every event to the cache and tell the
/// subscribers; end when nobody has listened for [`LINGER`].
async fn run(informer: Arc<Informer>, slot: Slot, client: kube::Client, ns: String) {
    let config = watcher::Config::default().labels(&managed_selector());
    let jobs = watcher(Api::<SlimJob>::namespaced_with(client.clone(), &ns, &SlimJob::resource()), config.clone())
        .default_backoff()
        .map(|e| e.map(|e| Change::Job(Box::new(e))));
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let mut probe = Probe::default();
    let pods = watcher(Api::<SlimPod>::namespaced_with(client, &ns, &SlimPod::resource()), config)
        .default_backoff()
        .map(|e| e.map(|e| Change::Pod(Box::new(e))));
    let mut changes = futures::stream::select(jobs.boxed(), pods.boxed());
    let what = format!("watching runs in namespace {ns}");
    let mut listed_jobs = false;
    let mut listed_pods = false;
    // A relist: the Jobs cached when it began, and those it listed. Only
    // the former can be gone: a Job cached during the relist (a run looked
    // up the moment it was created) may postdate the list's snapshot.
    let mut job_relist: Option<(HashSet<String>, HashSet<String>)> = None;
    let mut pod_relist: Option<HashSet<(String, String)>> = None;
    let mut idle_since: Option<tokio::time::Instant> = None;
    let mut check = tokio::time::interval(Duration::from_secs(5));
    let mut idle = false;
    loop {
        let change = tokio::select! {
            change = changes.next() => change,
            _ = check.tick() => {
                if informer.notes.receiver_count() > 0 {
                    idle_since = None;
                } else if idle_since.get_or_insert_with(tokio::time::Instant::now).elapsed() >= LINGER
                    || Arc::strong_count(&slot) == 1
                {
                    idle = true;
                    break;
                }
                continue;
            }
            _ = tokio::time::sleep_until(probe.due().unwrap_or_else(tokio::time::Instant::now)), if probe.due().is_some() => {
                read_refusals(&informer, &events, &mut probe, &what).await;
                continue;
            }
        };
        let Some(change) = change else { break };
        let change = match change {
            Ok(c) => c,
            Err(e) if watch_forbidden(&e) => {
                tracing::info!("{what}: RBAC allows list but not watch; each watch polls instead");
                informer.set_phase(Phase::Poll);
                break;
            }
            Err(e) => {
                if let Some(err) = fatal(&e, &what) {
                    informer.set_phase(Phase::Failed(err));
                    break;
                }
                tracing::debug!("{what}: {e}; the watcher retries");
                continue;
            }
        };
        let ready = listed_jobs && listed_pods;
        let mut changed: Vec<String> = Vec::new();
        let mut gone: Vec<Ended> = Vec::new();
        let mut relisted = false;
        {
            let mut cache = informer.lock();
            match change {
                Change::Job(event) => match *event {
                    watcher::Event::Init => job_relist = Some((cache.jobs.keys().cloned().collect(), HashSet::new())),
                    watcher::Event::InitApply(job) | watcher::Event::Apply(job) => {
                        let job = job.into_job();
                        if let Some(name) = job.metadata.name.clone() {
                            if let Some((_, seen)) = job_relist.as_mut() {
                                seen.insert(name.clone());
                            }
                            let mut facts = JobFacts::from(&job);
                            if facts.awaits_pods() {
                                // Refusals come from events: keep the last read.
                                facts.refused = cache.jobs.get(&name).and_then(|f| f.refused.clone());
                                if !cache.pods.contains_key(&name) {
                                    probe.saw(&name, tokio::time::Instant::now());
                                }
                            }
                            cache.jobs.insert(name.clone(), facts);
                            changed.push(name);
                        }
                    }
                    watcher::Event::Delete(job) => {
                        let job = job.into_job();
                        let name = job.metadata.name.clone().unwrap_or_default();
                        cache.jobs.remove(&name);
                        let units = cache.pods.remove(&name).unwrap_or_default();
                        gone.push(Ended { run: name, last: Some((JobFacts::from(&job), units)) });
                    }
                    watcher::Event::InitDone => {
                        let (before, seen) = job_relist.take().unwrap_or_default();
                        let missing: Vec<String> = before.into_iter().filter(|n| !seen.contains(n)).collect();
                        for run in missing {
                            // Deleted while the watch was away: its last
                            // known state is what the cache had.
                            let facts = cache.jobs.remove(&run);
                            let units = cache.pods.remove(&run).unwrap_or_default();
                            gone.push(Ended { run, last: facts.map(|f| (f, units)) });
                        }
                        listed_jobs = true;
                        relisted = true;
                    }
                },
                Change::Pod(event) => match *event {
                    watcher::Event::Init => pod_relist = Some(HashSet::new()),
                    watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                        let pod = pod.into_pod();
                        if let Some(run) = run_of_pod(&pod) {
                            let name = pod.metadata.name.clone().unwrap_or_default();
                            if let Some(seen) = pod_relist.as_mut() {
                                seen.insert((run.clone(), name));
                            }
                            cache.set_pod(run.clone(), &pod);
                            changed.push(run);
                        }
                    }
                    watcher::Event::Delete(pod) => {
                        let pod = pod.into_pod();
                        if let Some(run) = run_of_pod(&pod) {
                            cache.remove_pod(&run, pod.metadata.name.as_deref().unwrap_or_default());
                            changed.push(run);
                        }
                    }
                    watcher::Event::InitDone => {
                        // Pods deleted while the watch was away.
                        let seen = pod_relist.take().unwrap_or_default();
                        for (run, units) in cache.pods.iter_mut() {
                            units.retain(|u| seen.contains(&(run.clone(), u.name.clone())));
                        }
                        cache.pods.retain(|_, units| !units.is_empty());
                        listed_pods = true;
                        relisted = true;
                    }
                },
            }
        }
        if !(listed_jobs && listed_pods) {
            continue;
        }
        if !ready || relisted {
            // Listed (again): everyone re-reads what they follow.
            informer.set_phase(Phase::Ready);
        } else if !changed.is_empty() {
            informer.note(Note::Changed(Arc::new(changed)));
        }
        if !gone.is_empty() {
            informer.note(Note::Gone(Arc::new(gone)));
        }
    }
    if !idle && matches!(informer.lock().phase(), Phase::Listing | Phase::Ready) {
        informer.set_phase(Phase::Failed(ProviderError::new(
            polysync_provider_api::ErrorKind::Unavailable,
            format!("{what}: the watch ended; watch the runs again"),
        )));
    }
    // Leave the slot to a fresh informer.
    let mut current = slot.lock().unwrap_or_else(|p| p.into_inner());
    if current.as_ref().is_some_and(|i| Arc::ptr_eq(i, &informer)) {
        *current = None;
    }
}
