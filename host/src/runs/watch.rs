//! `watch` and the service's follower: follow unfinished runs, sharing
//! the work with any other host on the same catalog. Runs are claimed by
//! lease; each connection has one worker that submits what a previous
//! process did not finish submitting, follows every run it holds through
//! one platform watch, and finishes each run as it ends. Runs another host
//! holds are waited for, and taken over if its lease lapses (the host
//! died).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use polysync_provider_api::{Provider, RunStatus};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::{Finished, Leases, finish, recover};
use crate::Host;
use crate::error::Result;
use crate::store::{RunFilter, Store, StoredRun};

/// Most runs claimed per connection at a time, so hosts starting together
/// divide the work instead of the first taking all of it.
const CLAIM_BATCH: usize = 100;

/// What a watch reports as it goes.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// A run a previous process had recorded was submitted now.
    Submitted(StoredRun),
    /// A run's status as the platform reported it.
    Status(StoredRun, RunStatus),
    /// A run that ended was finished (logs archived, delete-after applied).
    Finished(StoredRun, Finished),
    /// Work on a run failed; another watch retries it.
    Failed(StoredRun, String),
    /// Unfinished runs of a connection no longer in the config: not followed.
    NotConfigured { connection: String, runs: Vec<i64> },
    /// This many runs were claimed (or adopted) and handed to a worker.
    Batch(usize),
}

/// What a watch did.
#[derive(Debug, Clone, Default)]
pub struct WatchReport {
    /// Unfinished runs in scope when it started.
    pub open_at_start: usize,
    /// Runs this host followed or finished.
    pub handled: usize,
}

/// Watch the unfinished runs of every configured connection (or `only`),
/// until none is left.
pub async fn watch(
    host: &Host,
    only: Option<&str>,
    on_event: impl Fn(WatchEvent) + Send + Sync,
) -> Result<WatchReport> {
    run_loop(host, only, None, on_event).await
}

/// How a service follows runs: forever (until `stop` turns true), also
/// following the runs its own requests created (`adopt`, as the store
/// returned them: no read back), and claiming every `tick`.
#[derive(Debug)]
pub struct Service {
    pub adopt: UnboundedReceiver<StoredRun>,
    pub stop: tokio::sync::watch::Receiver<bool>,
    pub tick: Duration,
}

/// Follow every unfinished run of every configured connection, sharing
/// them with the other hosts on the catalog, until `service.stop`.
pub async fn serve(host: &Host, service: Service, on_event: impl Fn(WatchEvent) + Send + Sync) -> Result<WatchReport> {
    run_loop(host, None, Some(service), on_event).await
}

/// What the loop shares with the connection workers.
struct Shared<'a, F> {
    store: &'a dyn Store,
    owner: &'a str,
    leases: &'a Leases,
    callbacks: Option<&'a super::Callbacks>,
    on_event: &'a F,
    /// Runs this process gave up on (a submission or finish that failed):
    /// left to a later watch.
    given_up: Mutex<HashSet<i64>>,
}

async fn run_loop(
    host: &Host,
    only: Option<&str>,
    mut service: Option<Service>,
    on_event: impl Fn(WatchEvent) + Send + Sync,
) -> Result<WatchReport> {
    if let Some(name) = only {
        host.config.connection(name)?;
    }
    let store = host.store().await?.clone();
    let lease = host.config.run_lease;
    let _trim = crate::trim::periodically();
    let open = open_runs(store.as_ref(), only).await?;
    let mut report = WatchReport { open_at_start: open.len(), ..WatchReport::default() };
    let mut scope = BTreeSet::new();
    let mut retired: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for run in &open {
        if host.config.connection(&run.connection).is_ok() {
            scope.insert(run.connection.clone());
        } else {
            retired.entry(run.connection.clone()).or_default().push(run.id);
        }
    }
    for (connection, runs) in retired {
        on_event(WatchEvent::NotConfigured { connection, runs });
    }
    if let Some(name) = only {
        scope.insert(name.to_owned());
    }
    if service.is_some() {
        scope.extend(host.config.connections.keys().cloned());
    }
    let mut providers: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
    for c in &scope {
        providers.insert(c.clone(), host.provider(c)?);
    }
    let leases = Leases::start(store.clone(), host.id().clone(), lease);
    let callbacks = host.callbacks()?;
    let shared = Shared {
        store: store.as_ref(),
        owner: host.id().as_str(),
        leases: &leases,
        callbacks: callbacks.as_ref(),
        on_event: &on_event,
        given_up: Mutex::new(HashSet::new()),
    };
    let shared = &shared;
    let mut senders: BTreeMap<String, UnboundedSender<Vec<StoredRun>>> = BTreeMap::new();
    let mut workers = FuturesUnordered::new();
    let start_worker = |connection: &str, senders: &mut BTreeMap<String, UnboundedSender<Vec<StoredRun>>>| {
        let (tx, rx) = unbounded_channel();
        senders.insert(connection.to_owned(), tx);
        let provider = providers[connection].clone();
        let name = connection.to_owned();
        async move { (name, worker(shared, provider, rx).await) }
    };
    for c in &scope {
        workers.push(start_worker(c, &mut senders));
    }
    let tick = match &service {
        Some(s) => s.tick,
        None => (lease / 3).max(Duration::from_millis(200)),
    };
    loop {
        if let Some(s) = service.as_mut() {
            if *s.stop.borrow() {
                break;
            }
            // Runs this host's own requests created (and a retry found
            // still its own): followed from the next tick, as recorded.
            let mut by_connection: BTreeMap<String, Vec<StoredRun>> = BTreeMap::new();
            while let Ok(run) = s.adopt.try_recv() {
                if !run.finalized && !leases.holds(run.id) && run.owner.as_ref() == Some(host.id()) {
                    by_connection.entry(run.connection.clone()).or_default().push(run);
                }
            }
            for (connection, runs) in by_connection {
                hand_over(&senders, &connection, runs, &leases, &mut report, &on_event);
            }
        }
        // Runs held by a process on this machine that has ended (killed
        // mid-follow) need not wait out their lease. Their owners are read,
        // not every open run: this runs every tick, with thousands open.
        for owner in store.open_owners(only).await? {
            if super::HostId::is_gone(&owner) {
                tracing::info!(owner, "taking over the runs of a process that ended");
                store.release_runs(&owner, None).await?;
            }
        }
        if service.is_none() {
            let open = open_runs(store.as_ref(), only).await?;
            let given_up = shared.given_up.lock().unwrap_or_else(|p| p.into_inner());
            if !open.iter().any(|r| scope.contains(&r.connection) && !given_up.contains(&r.id)) {
                break;
            }
        }
        for connection in &scope {
            let claimed = store.claim_runs(host.id().as_str(), Some(connection), lease, CLAIM_BATCH).await?;
            let new: Vec<StoredRun> = {
                let given_up = shared.given_up.lock().unwrap_or_else(|p| p.into_inner());
                claimed.into_iter().filter(|r| !leases.holds(r.id) && !given_up.contains(&r.id)).collect()
            };
            if !new.is_empty() {
                hand_over(&senders, connection, new, &leases, &mut report, &on_event);
            }
        }
        let stop_changed = async {
            match service.as_mut() {
                Some(s) => {
                    let _ = s.stop.changed().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            Some((connection, result)) = workers.next() => {
                // A worker ends only when it failed: its runs were let go;
                // a service starts it again, `watch` reports the error.
                match result {
                    Err(e) if service.is_some() => {
                        tracing::warn!(connection = %connection, "following runs failed: {e}; they are claimed again");
                        workers.push(start_worker(&connection, &mut senders));
                    }
                    Err(e) => return Err(e),
                    Ok(()) => {}
                }
            }
            _ = tokio::time::sleep(tick) => {}
            _ = stop_changed => {}
        }
    }
    // Nothing is left to follow (or the service stops): workers end.
    drop(senders);
    if service.is_none() {
        while let Some((_, result)) = workers.next().await {
            result?;
        }
    }
    Ok(report)
}

/// Give claimed or adopted runs to their connection's worker.
fn hand_over(
    senders: &BTreeMap<String, UnboundedSender<Vec<StoredRun>>>,
    connection: &str,
    runs: Vec<StoredRun>,
    leases: &Leases,
    report: &mut WatchReport,
    on_event: &impl Fn(WatchEvent),
) {
    let Some(tx) = senders.get(connection) else { return };
    for r in &runs {
        leases.hold(r.id);
    }
    report.handled += runs.len();
    on_event(WatchEvent::Batch(runs.len()));
    let _ = tx.send(runs);
}

async fn open_runs(store: &dyn Store, only: Option<&str>) -> Result<Vec<StoredRun>> {
    store.runs(&RunFilter { connection: only.map(str::to_owned), open: true, ..RunFilter::default() }).await
}

/// One connection's worker: takes batches of runs this host now holds,
/// submits those not yet submitted, follows the rest through one watch,
/// and finishes each as it ends. Ends when `batches` closes and nothing
/// is left, or with the error that stopped it (every run it held is then
/// let go, to be claimed again).
async fn worker<F: Fn(WatchEvent) + Send + Sync>(
    shared: &Shared<'_, F>,
    provider: Arc<dyn Provider>,
    mut batches: UnboundedReceiver<Vec<StoredRun>>,
) -> Result<()> {
    let held: Mutex<HashSet<i64>> = Mutex::new(HashSet::new());
    let (ended_tx, mut ended_rx) = unbounded_channel::<i64>();
    let (live_tx, mut live_rx) = unbounded_channel::<Vec<StoredRun>>();
    let give_up = |run: &StoredRun, why: String| {
        (shared.on_event)(WatchEvent::Failed(run.clone(), why));
        shared.given_up.lock().unwrap_or_else(|p| p.into_inner()).insert(run.id);
    };
    let intake = {
        let (ended_tx, provider, held) = (ended_tx.clone(), provider.clone(), &held);
        async move {
            while let Some(batch) = batches.recv().await {
                held.lock().unwrap_or_else(|p| p.into_inner()).extend(batch.iter().map(|r| r.id));
                let mut live = Vec::new();
                for run in batch {
                    if run.is_final() {
                        let _ = ended_tx.send(run.id);
                    } else if run.run_id.is_none() {
                        match recover(shared.store, provider.as_ref(), &run).await {
                            Ok(r) if r.is_final() => {
                                let _ = ended_tx.send(r.id);
                            }
                            Ok(r) => {
                                (shared.on_event)(WatchEvent::Submitted(r.clone()));
                                live.push(r);
                            }
                            Err(e) => give_up(&run, e.to_string()),
                        }
                    } else {
                        live.push(run);
                    }
                }
                if !live.is_empty() {
                    let _ = live_tx.send(live);
                }
            }
            Ok::<(), crate::Error>(())
        }
    };
    let following = {
        let (ended_by, provider) = (ended_tx.clone(), provider.clone());
        async move {
            super::follow::follow_more(
                shared.store,
                provider.as_ref(),
                Vec::new(),
                Some(&mut live_rx),
                Some(shared.leases),
                |r, s| {
                    if s.state.is_terminal() || s.reason.as_deref() == Some(polysync_provider_api::REASON_VANISHED) {
                        let _ = ended_by.send(r.id);
                    }
                    (shared.on_event)(WatchEvent::Status(r.clone(), s.clone()));
                },
            )
            .await
        }
    };
    drop(ended_tx);
    let finisher = {
        let held = &held;
        async move {
            while let Some(id) = ended_rx.recv().await {
                let Some(run) = shared.store.run(id).await? else { continue };
                if run.is_final() && !run.finalized {
                    match finish(shared.store, provider.as_ref(), shared.callbacks, &run, None).await {
                        Ok(done) => (shared.on_event)(WatchEvent::Finished(run.clone(), done)),
                        Err(e) => give_up(&run, e.to_string()),
                    }
                }
                shared.leases.drop_run(id);
                held.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            }
            Ok::<(), crate::Error>(())
        }
    };
    let (taken, followed, finished) = futures::future::join3(intake, following, finisher).await;
    // Whatever this worker still holds (it failed, or the platform's watch
    // ended early) is let go, so a claim follows it again.
    let left: Vec<i64> = held.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
    for id in &left {
        shared.leases.drop_run(*id);
    }
    if !left.is_empty() {
        shared.store.release_runs(shared.owner, Some(&left)).await?;
    }
    taken?;
    followed?;
    finished
}
