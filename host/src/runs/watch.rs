//! `watch`: follow every unfinished run until none is left, sharing the
//! work with any other host on the same catalog. Runs are claimed in
//! batches by lease; each batch is submitted (if a previous process did
//! not finish submitting it), followed, and finished as its runs end. Runs
//! another host holds are waited for, and taken over if its lease lapses
//! (the host died).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use polysync_provider_api::{Provider, RunStatus};

use super::{Finished, Leases, finish, follow, recover};
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
    /// A batch of this many runs is being followed (one platform watch).
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
pub async fn watch(host: &Host, only: Option<&str>, on_event: impl Fn(WatchEvent) + Send + Sync) -> Result<WatchReport> {
    run_loop(host, only, None, on_event).await
}

/// How a service follows runs: forever (until `stop` turns true), also
/// following at once the runs its own requests created (`adopt`), and
/// claiming every `tick`.
#[derive(Debug)]
pub struct Service {
    pub adopt: tokio::sync::mpsc::UnboundedReceiver<i64>,
    pub stop: tokio::sync::watch::Receiver<bool>,
    pub tick: Duration,
}

/// Follow every unfinished run of every configured connection, sharing
/// them with the other hosts on the catalog, until `service.stop`.
pub async fn serve(host: &Host, service: Service, on_event: impl Fn(WatchEvent) + Send + Sync) -> Result<WatchReport> {
    run_loop(host, None, Some(service), on_event).await
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
    let open = open_runs(store.as_ref(), only).await?;
    let mut report = WatchReport { open_at_start: open.len(), ..WatchReport::default() };
    let mut scope = BTreeSet::new();
    let mut retired: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
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
    let providers: Vec<(String, Arc<dyn Provider>)> =
        scope.iter().map(|c| host.provider(c).map(|p| (c.clone(), p))).collect::<Result<_>>()?;
    let leases = Leases::start(store.clone(), host.id().clone(), lease);
    let callbacks = host.callbacks()?;
    let callbacks = callbacks.as_ref();
    let mut given_up: HashSet<i64> = HashSet::new();
    let mut batches = FuturesUnordered::new();
    let tick = match &service {
        Some(s) => s.tick,
        None => (lease / 3).max(Duration::from_millis(200)),
    };
    loop {
        if let Some(s) = service.as_mut() {
            if *s.stop.borrow() {
                break;
            }
            // Runs this host's own requests created: followed at once, in
            // one batch per connection.
            let mut adopted: Vec<i64> = Vec::new();
            while let Ok(id) = s.adopt.try_recv() {
                adopted.push(id);
            }
            let mut by_connection: std::collections::BTreeMap<String, Vec<StoredRun>> = Default::default();
            for id in adopted {
                if let Some(run) = store.run(id).await?
                    && !run.finalized
                    && !leases.holds(id)
                    && run.owner.as_deref() == Some(host.id().as_str())
                {
                    by_connection.entry(run.connection.clone()).or_default().push(run);
                }
            }
            for (connection, runs) in by_connection {
                let Some((_, provider)) = providers.iter().find(|(c, _)| *c == connection) else { continue };
                for r in &runs {
                    leases.hold(r.id);
                }
                report.handled += runs.len();
                on_event(WatchEvent::Batch(runs.len()));
                batches.push(handle_batch(store.as_ref(), host.id().as_str(), provider.clone(), runs, &leases, callbacks, &on_event));
            }
        }
        // Runs held by a process on this machine that has ended (killed
        // mid-follow) need not wait out their lease.
        let open = open_runs(store.as_ref(), only).await?;
        let dead: BTreeSet<&str> =
            open.iter().filter_map(|r| r.owner.as_deref()).filter(|o| super::HostId::is_gone(o)).collect();
        for owner in dead {
            tracing::info!(owner, "taking over the runs of a process that ended");
            store.release_runs(owner, None).await?;
        }
        let still_open = open.iter().filter(|r| scope.contains(&r.connection) && !given_up.contains(&r.id)).count();
        for (connection, provider) in &providers {
            let claimed =
                store.claim_runs(host.id().as_str(), Some(connection), lease, CLAIM_BATCH).await?;
            let new: Vec<StoredRun> = claimed.into_iter().filter(|r| !leases.holds(r.id) && !given_up.contains(&r.id)).collect();
            if new.is_empty() {
                continue;
            }
            for r in &new {
                leases.hold(r.id);
            }
            report.handled += new.len();
            on_event(WatchEvent::Batch(new.len()));
            batches.push(handle_batch(store.as_ref(), host.id().as_str(), provider.clone(), new, &leases, callbacks, &on_event));
        }
        if service.is_none() && batches.is_empty() && still_open == 0 {
            break;
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
            Some(done) = batches.next(), if !batches.is_empty() => {
                match done {
                    Ok(failed) => given_up.extend(failed),
                    // A service keeps going: the batch's runs are let go
                    // and claimed again.
                    Err(e) if service.is_some() => tracing::warn!("following runs failed: {e}; they are claimed again"),
                    Err(e) => return Err(e),
                }
            }
            _ = tokio::time::sleep(tick) => {}
            _ = stop_changed => {}
        }
    }
    Ok(report)
}

async fn open_runs(store: &dyn Store, only: Option<&str>) -> Result<Vec<StoredRun>> {
    store.runs(&RunFilter { connection: only.map(str::to_owned), open: true, ..RunFilter::default() }).await
}

/// Submit, follow and finish one claimed batch of a connection's runs.
/// Returns the runs it gave up on (this process leaves them to another).
async fn handle_batch(
    store: &dyn Store,
    owner: &str,
    provider: Arc<dyn Provider>,
    runs: Vec<StoredRun>,
    leases: &Leases,
    callbacks: Option<&super::Callbacks>,
    on_event: &(impl Fn(WatchEvent) + Send + Sync),
) -> Result<Vec<i64>> {
    let mut failed = Vec::new();
    let mut live = Vec::new();
    let mut ended = Vec::new();
    let all_ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    for run in runs {
        if run.is_final() {
            ended.push(run);
        } else if run.run_id.is_none() {
            match recover(store, provider.as_ref(), &run).await {
                Ok(r) if r.is_final() => ended.push(r),
                Ok(r) => {
                    on_event(WatchEvent::Submitted(r.clone()));
                    live.push(r);
                }
                Err(e) => {
                    on_event(WatchEvent::Failed(run.clone(), e.to_string()));
                    failed.push(run.id);
                }
            }
        } else {
            live.push(run);
        }
    }
    // Runs that end are finished beside the watch, as they end.
    let (ended_tx, mut ended_rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    for r in &ended {
        let _ = ended_tx.send(r.id);
    }
    let finisher = {
        let provider = provider.clone();
        async move {
            let mut failed = Vec::new();
            while let Some(id) = ended_rx.recv().await {
                let Some(run) = store.run(id).await? else { continue };
                if !run.is_final() || run.finalized {
                    continue;
                }
                match finish(store, provider.as_ref(), callbacks, &run, None).await {
                    Ok(done) => on_event(WatchEvent::Finished(run.clone(), done)),
                    Err(e) => {
                        on_event(WatchEvent::Failed(run.clone(), e.to_string()));
                        failed.push(run.id);
                    }
                }
                leases.drop_run(id);
            }
            Ok::<_, crate::Error>(failed)
        }
    };
    let ended_by = ended_tx.clone();
    drop(ended_tx);
    let following = async move {
        let result = follow(store, provider.as_ref(), &live, Some(leases), |r, s| {
            if s.state.is_terminal() || s.reason.as_deref() == Some(polysync_provider_api::REASON_VANISHED) {
                let _ = ended_by.send(r.id);
            }
            on_event(WatchEvent::Status(r.clone(), s.clone()));
        })
        .await;
        drop(ended_by);
        result
    };
    let (followed, finished) = futures::future::join(following, finisher).await;
    // Runs still held but not finished (the platform's watch ended early,
    // or failed) are let go, so the next claim follows them again.
    let unfinished: Vec<i64> = all_ids.into_iter().filter(|id| leases.holds(*id)).collect();
    for id in &unfinished {
        leases.drop_run(*id);
    }
    if !unfinished.is_empty() {
        store.release_runs(owner, Some(&unfinished)).await?;
    }
    followed?;
    failed.extend(finished?);
    Ok(failed)
}
