//! Following runs to their end through the provider's watch, with
//! startup deadlines, vanished runs settled, and only while this host
//! holds them.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use polysync_provider_api::{CancelRequest, ErrorKind, Provider, RunState, RunStatus, WatchRequest};
use tokio::time::Instant;

use super::Leases;
use crate::error::{Error, Result};
use crate::store::{DeleteAfter, Store, StoredRun};

/// When a run's startup deadline passes, if it has one.
fn startup_deadline(run: &StoredRun) -> Option<jiff::Timestamp> {
    let ms = run.startup_timeout_ms?;
    Some(run.created_at.after_ms(ms))
}

/// Follow `runs` (all of one connection) through the provider's watch
/// until each is final, recording every status; `on_status` sees each change. A run still
/// `Starting` past its startup timeout is failed with its last waiting
/// reason (ImagePullBackOff, Unschedulable, ...) and its Job deleted (it
/// holds a pending pod and quota) unless `delete_after` is an explicit
/// `never`.
pub async fn follow(
    store: &dyn Store,
    provider: &dyn Provider,
    runs: &[StoredRun],
    leases: Option<&Leases>,
    on_status: impl FnMut(&StoredRun, &RunStatus),
) -> Result<()> {
    follow_more(store, provider, runs.to_vec(), None, leases, on_status).await
}

/// Most watches one follow keeps open at once before it folds them into
/// one: a fold re-sends every open run's status, a part costs a provider
/// that polls (ECS) a call per round, so the bound grows with the runs
/// followed, from 8 to 32.
fn max_parts(open: usize) -> usize {
    (open / 100).clamp(8, 32)
}

/// How long newly arrived runs are gathered before their watch opens.
const GATHER: Duration = Duration::from_millis(200);
/// How long a part the platform ended waits before it is opened again.
const REST: Duration = Duration::from_millis(500);

/// What one of the follow's watches yields: a status, or that it ended.
type PartItem = (u64, Option<polysync_provider_api::Result<RunStatus>>);

/// [`follow`], also taking the runs that arrive on `more` while it goes on,
/// and not ended while `more` is open.
///
/// A platform watch names its runs up front, so runs that arrive later get
/// a watch of their own (a *part*), merged with the others into one stream.
/// Reopening one watch for every run instead re-sent the status of each
/// followed run every time runs joined: with 5,000 followed, ~0.6 s of CPU
/// each time, the serve benchmark's worst stalls. Parts are folded into one
/// watch when there are more than [`max_parts`].
pub async fn follow_more(
    store: &dyn Store,
    provider: &dyn Provider,
    runs: Vec<StoredRun>,
    mut more: Option<&mut tokio::sync::mpsc::UnboundedReceiver<Vec<StoredRun>>>,
    leases: Option<&Leases>,
    mut on_status: impl FnMut(&StoredRun, &RunStatus),
) -> Result<()> {
    let mut by_run_id: HashMap<String, StoredRun> = HashMap::new();
    let mut open: HashMap<String, Option<RunStatus>> = HashMap::new();
    // Startup deadlines in time order, read per status: finding the next
    // by going over every open run cost O(runs) per status (with 5,000
    // followed, more CPU than the rest of the follow). An entry whose run
    // ended or started is dropped when it comes first.
    let mut deadlines: BTreeSet<(jiff::Timestamp, String)> = BTreeSet::new();
    let starting = |open: &HashMap<String, Option<RunStatus>>, id: &str| {
        open.get(id).is_some_and(|last| last.as_ref().is_none_or(|s| s.state == RunState::Starting))
    };
    // Adds a batch; returns the runs not followed before.
    let add = |batch: Vec<StoredRun>,
               by_run_id: &mut HashMap<String, StoredRun>,
               open: &mut HashMap<String, Option<RunStatus>>,
               deadlines: &mut BTreeSet<(jiff::Timestamp, String)>| {
        let mut fresh = Vec::new();
        for r in batch {
            if let Some(id) = r.run_id.clone() {
                if !open.contains_key(&id) {
                    open.insert(id.clone(), None);
                    if let Some(d) = startup_deadline(&r) {
                        deadlines.insert((d, id.clone()));
                    }
                    fresh.push(id.clone());
                }
                by_run_id.insert(id, r);
            }
        }
        fresh
    };
    let mut parts = Parts::default();
    let mut pending = add(runs, &mut by_run_id, &mut open, &mut deadlines);
    // New runs wait for a watch until this moment, so a burst of them gets
    // one; statuses keep flowing meanwhile.
    let mut gather_until: Option<Instant> = None;
    // Runs whose watch the platform ended while they went on, reopened
    // after a breath (a platform that keeps ending it is not hammered);
    // in time order, as every breath is as long.
    let mut resting: VecDeque<(Instant, Vec<String>)> = VecDeque::new();
    loop {
        let now = Instant::now();
        while resting.front().is_some_and(|(at, _)| *at <= now) {
            pending.extend(resting.pop_front().map(|(_, runs)| runs).unwrap_or_default());
        }
        // Runs waiting for a watch: folded into one with every open run
        // when there are too many parts, else a part of their own. A watch
        // refused with NotFound means none of its runs exists on the
        // platform any more (a Job deleted by its TTL before anyone
        // watched): they are settled as vanished one by one.
        pending.retain(|id| open.contains_key(id));
        if !pending.is_empty() && gather_until.is_none_or(|at| at <= now) {
            gather_until = None;
            if parts.count() >= max_parts(open.len()) {
                parts = Parts::default();
                resting.clear();
                pending = open.keys().cloned().collect();
            }
            match parts.open(provider, std::mem::take(&mut pending)).await {
                Ok(()) => {}
                Err(Refused { runs, error }) => {
                    settle_vanished(store, provider, &by_run_id, &mut open, &runs, &mut on_status, error).await?;
                    pending = runs;
                    continue;
                }
                Err(Failed(e)) => return Err(e.into()),
            }
        }
        if open.is_empty() {
            parts = Parts::default();
            resting.clear();
            gather_until = None;
            let Some(rx) = more.as_mut() else { return Ok(()) };
            match rx.recv().await {
                Some(batch) => pending = add(batch, &mut by_run_id, &mut open, &mut deadlines),
                None => return Ok(()),
            }
            continue;
        }
        let next_deadline = loop {
            match deadlines.first() {
                Some((d, id)) if starting(&open, id) => break Some(*d),
                Some(_) => {
                    deadlines.pop_first();
                }
                None => break None,
            }
        };
        let deadline = next_deadline.map(|d| {
            let left = jiff::Timestamp::now().duration_until(d);
            now + Duration::try_from(left).unwrap_or(Duration::ZERO)
        });
        let gathered = gather_until.filter(|_| !pending.is_empty());
        let wake = [deadline, gathered, resting.front().map(|(at, _)| *at)].into_iter().flatten().min();
        let more_runs = async {
            match more.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            item = parts.next() => Some(item),
            _ = sleep => None,
            batch = more_runs => {
                match batch {
                    Some(batch) => {
                        pending.extend(add(batch, &mut by_run_id, &mut open, &mut deadlines));
                        // Gather what else arrives in a moment: one watch
                        // for all of it.
                        gather_until.get_or_insert(Instant::now() + GATHER);
                    }
                    None => more = None,
                }
                continue;
            }
        };
        match event {
            Some((part, Some(Err(e)))) if e.kind() == ErrorKind::NotFound => {
                let runs = parts.retire(part);
                settle_vanished(store, provider, &by_run_id, &mut open, &runs, &mut on_status, e).await?;
                pending.extend(runs);
            }
            Some((_, Some(status))) => {
                let status = status?;
                if let Some(run) = by_run_id.get(&status.run_id) {
                    if leases.is_some_and(|l| !l.holds(run.id)) {
                        // Another host took the run over (this one
                        // stalled past its lease): it is theirs now.
                        open.remove(&status.run_id);
                    } else if open.contains_key(&status.run_id) {
                        // A change only in the pods' detail (a container
                        // started, a pod went Pending → Running) leaves
                        // every stored column as it is: no write.
                        let last = open.get(&status.run_id).and_then(Option::as_ref);
                        if !same_stored(last, &status) {
                            store.record_status(run.id, &status).await?;
                        }
                        on_status(run, &status);
                        if status.state.is_terminal()
                            || status.reason.as_deref() == Some(polysync_provider_api::REASON_VANISHED)
                        {
                            open.remove(&status.run_id);
                        } else if let Some(last) = open.get_mut(&status.run_id) {
                            *last = Some(status);
                        }
                    }
                }
            }
            // A watch ended. One the platform ended while some of its runs
            // go on rests, then is opened again; the other parts go on.
            Some((part, None)) => {
                let runs = parts.retire(part);
                if runs.iter().any(|id| open.contains_key(id)) {
                    resting.push_back((Instant::now() + REST, runs));
                }
            }
            None => {
                let now = jiff::Timestamp::now();
                let mut expired: Vec<String> = Vec::new();
                while let Some((d, _)) = deadlines.first()
                    && *d <= now
                {
                    if let Some((_, id)) = deadlines.pop_first()
                        && starting(&open, &id)
                    {
                        expired.push(id);
                    }
                }
                for id in expired {
                    let run = &by_run_id[&id];
                    let last = open.remove(&id).flatten();
                    let status = startup_failure(run, last.as_ref());
                    store.record_status(run.id, &status).await?;
                    on_status(run, &status);
                    if run.delete_after != DeleteAfter::Never {
                        let cancel =
                            CancelRequest { run_id: id.clone(), reason: Some("startup timeout".into()), delete: true };
                        if let Err(e) = provider.cancel(cancel).await {
                            tracing::warn!(run = run.id, "could not delete the run that did not start: {e}");
                        }
                    }
                }
            }
        }
    }
}

/// Why a part could not be opened.
enum OpenError {
    /// NotFound: none of `runs` exists on the platform.
    Refused {
        runs: Vec<String>,
        error: polysync_provider_api::ProviderError,
    },
    Failed(polysync_provider_api::ProviderError),
}
use OpenError::{Failed, Refused};

/// The follow's open watches, merged into one stream of [`PartItem`]s;
/// each ends with `(part, None)`.
#[derive(Default)]
struct Parts {
    streams: futures::stream::SelectAll<futures::stream::BoxStream<'static, PartItem>>,
    /// The runs each live part watches.
    runs: HashMap<u64, Vec<String>>,
    next_id: u64,
}

impl Parts {
    fn count(&self) -> usize {
        self.runs.len()
    }

    async fn open(&mut self, provider: &dyn Provider, runs: Vec<String>) -> std::result::Result<(), OpenError> {
        let stream = match provider.watch(WatchRequest { run_ids: runs.clone() }).await {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(Refused { runs, error: e }),
            Err(e) => return Err(Failed(e)),
        };
        let id = self.next_id;
        self.next_id += 1;
        self.runs.insert(id, runs);
        let tagged = stream.map(move |s| (id, Some(s))).chain(futures::stream::once(async move { (id, None) }));
        self.streams.push(tagged.boxed());
        Ok(())
    }

    /// The next item of any part; pending forever when none is open.
    async fn next(&mut self) -> PartItem {
        loop {
            match self.streams.next().await {
                // A retired part's end says nothing more.
                Some((id, None)) if !self.runs.contains_key(&id) => continue,
                Some(item) => return item,
                None => std::future::pending().await,
            }
        }
    }

    /// Forget part `id`; returns the runs it watched. (Its stream, if it
    /// goes on, only repeats statuses.)
    fn retire(&mut self, id: u64) -> Vec<String> {
        self.runs.remove(&id).unwrap_or_default()
    }
}

/// Settle those of `candidates` (open runs) the platform no longer has
/// (each polled: NotFound means vanished), or give up with `err` if every
/// one still exists.
async fn settle_vanished(
    store: &dyn Store,
    provider: &dyn Provider,
    by_run_id: &HashMap<String, StoredRun>,
    open: &mut HashMap<String, Option<RunStatus>>,
    candidates: &[String],
    on_status: &mut impl FnMut(&StoredRun, &RunStatus),
    err: polysync_provider_api::ProviderError,
) -> Result<()> {
    let mut settled = 0;
    let ids: Vec<String> = candidates.iter().filter(|id| open.contains_key(*id)).cloned().collect();
    for id in ids {
        match provider.poll(polysync_provider_api::PollRequest { run_id: id.clone() }).await {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let run = &by_run_id[&id];
                let mut status = RunStatus::new(id.clone(), RunState::Unknown);
                status.reason = Some(polysync_provider_api::REASON_VANISHED.into());
                status.message = Some(
                    "the run no longer exists on the platform (deleted, e.g. by ttlSecondsAfterFinished, before its end was seen)".into(),
                );
                store.record_status(run.id, &status).await?;
                on_status(run, &status);
                open.remove(&id);
                settled += 1;
            }
            _ => {}
        }
    }
    if settled == 0 {
        return Err(Error::Provider(err));
    }
    Ok(())
}

/// The status of a run that did not start in time.
fn startup_failure(run: &StoredRun, last: Option<&RunStatus>) -> RunStatus {
    let limit = Duration::from_millis(run.startup_timeout_ms.unwrap_or(0) as u64);
    let mut status =
        last.cloned().unwrap_or_else(|| RunStatus::new(run.run_id.clone().unwrap_or_default(), RunState::Starting));
    let waiting = status.reason.clone();
    status.state = RunState::Failed;
    status.reason = Some(waiting.clone().unwrap_or_else(|| "StartupTimeout".into()));
    status.message = Some(match (&waiting, last.and_then(|s| s.message.clone())) {
        (Some(r), Some(m)) => format!("did not start within {limit:?}: {r}: {m}"),
        (Some(r), None) => format!("did not start within {limit:?}: {r}"),
        _ => format!("did not start within {limit:?}"),
    });
    status
}

/// Whether `status` would store exactly what `last` did: same state,
/// reason and message, not final, nothing of its outputs.
fn same_stored(last: Option<&RunStatus>, status: &RunStatus) -> bool {
    last.is_some_and(|l| {
        l.state == status.state
            && l.reason == status.reason
            && l.message == status.message
            && !status.state.is_terminal()
            && status.outputs.is_empty()
            && status.output_error.is_none()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use polysync_provider_api::{
        CancelOutcome, DiscoverPage, DiscoverRequest, EventsRequest, LogChunk, LogRequest, Manifest, MonitorUrl,
        PollRequest, ProviderError, REASON_VANISHED, ResultStream, RunEvent, RunHandle, RunRequest, RunSource,
        UrlRequest, async_trait,
    };
    use tokio::sync::mpsc;

    use super::*;
    use crate::config::CatalogLocation;
    use crate::store::NewRun;

    type Sender = mpsc::UnboundedSender<polysync_provider_api::Result<RunStatus>>;

    /// A platform whose watches the test drives: each call's runs are
    /// recorded and its stream fed by hand; runs in `gone` do not exist.
    #[derive(Default)]
    struct Scripted {
        calls: Mutex<Vec<Vec<String>>>,
        streams: Mutex<Vec<Sender>>,
        gone: Mutex<HashSet<String>>,
        /// How many streams the follow has read to their end.
        ended: Arc<std::sync::atomic::AtomicUsize>,
    }

    #[async_trait]
    impl Provider for Scripted {
        fn manifest(&self) -> Manifest {
            Manifest::new("scripted", "0")
        }
        async fn discover(&self, _: DiscoverRequest) -> polysync_provider_api::Result<DiscoverPage> {
            Err(ProviderError::unsupported("discover"))
        }
        async fn run(&self, _: RunRequest) -> polysync_provider_api::Result<RunHandle> {
            Err(ProviderError::unsupported("run"))
        }
        async fn poll(&self, request: PollRequest) -> polysync_provider_api::Result<RunStatus> {
            match self.gone.lock().unwrap().contains(&request.run_id) {
                true => Err(ProviderError::not_found("gone")),
                false => Ok(RunStatus::new(request.run_id, RunState::Running)),
            }
        }
        async fn watch(&self, request: WatchRequest) -> polysync_provider_api::Result<ResultStream<RunStatus>> {
            let mut ids = request.run_ids;
            ids.sort();
            self.calls.lock().unwrap().push(ids.clone());
            if ids.iter().all(|id| self.gone.lock().unwrap().contains(id)) {
                return Err(ProviderError::not_found("none of these runs exists"));
            }
            let (tx, rx) = mpsc::unbounded_channel();
            self.streams.lock().unwrap().push(tx);
            let ended = self.ended.clone();
            Ok(futures::stream::unfold(rx, move |mut rx| {
                let ended = ended.clone();
                async move {
                    let next = rx.recv().await;
                    if next.is_none() {
                        ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    next.map(|s| (s, rx))
                }
            })
            .boxed())
        }
        async fn cancel(&self, _: CancelRequest) -> polysync_provider_api::Result<CancelOutcome> {
            Err(ProviderError::unsupported("cancel"))
        }
        async fn monitor_url(&self, _: UrlRequest) -> polysync_provider_api::Result<MonitorUrl> {
            Err(ProviderError::unsupported("monitor_url"))
        }
        async fn logs(&self, _: LogRequest) -> polysync_provider_api::Result<ResultStream<LogChunk>> {
            Err(ProviderError::unsupported("logs"))
        }
        async fn events(&self, _: EventsRequest) -> polysync_provider_api::Result<ResultStream<RunEvent>> {
            Err(ProviderError::unsupported("events"))
        }
    }

    async fn submitted(store: &dyn Store, n: usize) -> Vec<StoredRun> {
        let mut runs = Vec::new();
        for i in 0..n {
            let new = NewRun {
                connection: "c".into(),
                external_id: "job".into(),
                idempotency_key: format!("k{i}"),
                parameters: Default::default(),
                delete_after: DeleteAfter::Never,
                startup_timeout: None,
                callback_url: None,
            };
            let run = store.record_intent(&new, "me", Duration::from_secs(60)).await.unwrap().run;
            let handle = RunHandle {
                run_id: format!("r{i:02}"),
                external_id: "job".into(),
                source: RunSource::Live,
                adopted: false,
                monitor_url: None,
            };
            runs.push(store.record_submitted(run.id, &handle).await.unwrap());
        }
        runs
    }

    fn ids(runs: &[&str]) -> Vec<String> {
        runs.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn runs_that_join_get_a_watch_of_their_own_folded_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&CatalogLocation::Sqlite(dir.path().join("c.db"))).await.unwrap();
        let runs = submitted(store.as_ref(), 11).await;
        let provider = Arc::new(Scripted::default());
        provider.gone.lock().unwrap().insert("r09".into());
        let (more_tx, mut more_rx) = mpsc::unbounded_channel();
        let seen: Mutex<Vec<RunStatus>> = Mutex::default();
        // How many watches had been opened when r00 was seen running.
        let running_at: Mutex<Option<usize>> = Mutex::default();

        let first = vec![runs[0].clone()];
        let following = follow_more(store.as_ref(), provider.as_ref(), first, Some(&mut more_rx), None, |_, s| {
            if s.run_id == "r00" && s.state == RunState::Running {
                *running_at.lock().unwrap() = Some(provider.calls.lock().unwrap().len());
            }
            seen.lock().unwrap().push(s.clone())
        });
        let calls = || provider.calls.lock().unwrap().clone();
        let ended = |id: &str| seen.lock().unwrap().iter().any(|s| s.run_id == id && s.state.is_terminal());
        // Waits (polling, up to 10 s) for what the follow does next, so the
        // test does not lean on timing.
        async fn until(what: &str, done: impl Fn() -> bool) {
            for _ in 0..500 {
                if done() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("timed out waiting until {what}");
        }
        let driving = async {
            until("the first watch opens", || calls().len() == 1).await;
            // Seven more batches of one, each sent once the last one's watch
            // opened: eight parts, each watching only its own runs (nothing
            // re-sent for the others).
            for (i, run) in runs[1..8].iter().enumerate() {
                more_tx.send(vec![run.clone()]).unwrap();
                until("the batch's watch opens", || calls().len() == i + 2).await;
            }
            let want: Vec<Vec<String>> = (0..8).map(|i| vec![format!("r{i:02}")]).collect();
            assert_eq!(calls(), want, "one watch per batch, of its runs only");
            // One run ends on its own watch.
            provider.streams.lock().unwrap()[3].send(Ok(RunStatus::new("r03", RunState::Success))).unwrap();
            until("r03 ends", || ended("r03")).await;
            // The ninth batch passes the bound (8): one watch for every run
            // still open, the ended one left out.
            more_tx.send(vec![runs[8].clone()]).unwrap();
            until("the fold", || calls().len() == 9).await;
            assert_eq!(calls()[8], ids(&["r00", "r01", "r02", "r04", "r05", "r06", "r07", "r08"]), "folded");
            // A batch the platform no longer has: refused, settled as
            // vanished; the rest go on.
            more_tx.send(vec![runs[9].clone()]).unwrap();
            until("r09 is settled", || seen.lock().unwrap().iter().any(|s| s.run_id == "r09")).await;
            assert_eq!(calls().last().unwrap(), &ids(&["r09"]));
            // A watch the platform ends while its runs go on is opened again.
            more_tx.send(vec![runs[10].clone()]).unwrap();
            until("r10's watch opens", || calls().len() == 11).await;
            provider.streams.lock().unwrap().pop();
            until("the follow reads r10's watch to its end", || {
                provider.ended.load(std::sync::atomic::Ordering::SeqCst) == 1
            })
            .await;
            // While it rests, the other watches' statuses go on at once.
            provider.streams.lock().unwrap()[8].send(Ok(RunStatus::new("r00", RunState::Running))).unwrap();
            until("r10's watch reopens", || calls().len() == 12).await;
            assert_eq!(*running_at.lock().unwrap(), Some(11), "a status waited for the rest to end");
            assert_eq!(calls().last().unwrap(), &ids(&["r10"]), "reopened");
            // Everything ends: the follow returns once `more` closes.
            for tx in provider.streams.lock().unwrap().iter() {
                for i in [0, 1, 2, 4, 5, 6, 7, 8, 10] {
                    let _ = tx.send(Ok(RunStatus::new(format!("r{i:02}"), RunState::Success)));
                }
            }
            drop(more_tx);
        };
        let (result, ()) = tokio::time::timeout(Duration::from_secs(30), async { futures::join!(following, driving) })
            .await
            .expect("the follow ended");
        result.unwrap();
        let seen = seen.into_inner().unwrap();
        let vanished = seen.iter().find(|s| s.run_id == "r09").expect("r09 was settled");
        assert_eq!(vanished.reason.as_deref(), Some(REASON_VANISHED));
        let ended: HashSet<&str> =
            seen.iter().filter(|s| s.state == RunState::Success).map(|s| s.run_id.as_str()).collect();
        assert_eq!(ended.len(), 10, "every run but the vanished one ended once: {ended:?}");
        assert_eq!(seen.iter().filter(|s| s.state == RunState::Success).count(), 10, "no run ended twice");
    }
}
