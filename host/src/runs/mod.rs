//! Every run workflow, as typed functions over a [`Host`]: sync a
//! connection, start a run, follow runs, finish them (archive logs, apply
//! the stored delete-after), cancel, watch with run ownership, read logs.
//! The CLI, the demo and the server call these and render what they
//! return; none of them holds workflow logic.

mod callback;
mod cancel;
mod finish;
mod follow;
mod logs;
mod start;
mod sync;
mod view;
mod watch;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use callback::{Callbacks, check_url as check_callback_url, event_id, signature};
pub use cancel::{Cancelled, cancel};
pub use finish::{Finished, finish};
pub use follow::follow;
pub use logs::{LiveLogs, LogBuffer, RunLogs, archived_or_gone, check_container_name, fetch_logs, open_logs};
pub use start::{StartRun, Started, follow_one, recover, start_run, submit};
pub use sync::{continue_sync, start_sync, sync_connection};
pub use view::{RunLinks, RunView, entry_path, segment};
pub use watch::{Service, WatchEvent, WatchReport, serve, watch};

use crate::Host;
use crate::error::{Error, Missing, Result};
pub use crate::store::HostId;
use crate::store::{Store, StoredEntry, StoredRun};

/// Leases renewed per statement after a lapse.
const RENEW_CHUNK: usize = 500;

/// The runs this host holds, kept its own by a heartbeat every third of
/// the lease ([`Store::heartbeat`]): one write per period, however many
/// runs it follows. Renewing each run's lease had cost ~3,000 row updates
/// a second at 10,000 runs (10 s lease), most of the catalog's writes.
///
/// A run just recorded or claimed carries a lease of its own until the
/// next heartbeat hands it over; one this host stops following unfinished
/// gets a lease of its own again, and others claim it once that lapses. A
/// heartbeat that finds the last one lapsed (this host stalled past its
/// lease) renews every run's own lease, in chunks, to learn which are
/// still its own: a run another host took over is dropped from the set,
/// and its followers stop.
#[derive(Debug)]
pub struct Leases {
    held: Arc<Mutex<Held>>,
    renewer: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Held {
    runs: HashSet<i64>,
    /// Held since the last heartbeat: still on a lease of their own.
    taken_on: HashSet<i64>,
    /// Let go unfinished since the last heartbeat.
    let_go: HashSet<i64>,
}

impl Leases {
    pub fn start(store: Arc<dyn Store>, owner: HostId, lease: Duration) -> Self {
        let held: Arc<Mutex<Held>> = Arc::default();
        let state = held.clone();
        let renewer = tokio::spawn(async move {
            let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
            let mut tick = tokio::time::interval(lease / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut beaten = false;
            loop {
                tick.tick().await;
                let (taken_on, let_go): (Vec<i64>, Vec<i64>) = {
                    let mut h = lock();
                    (h.taken_on.drain().collect(), h.let_go.drain().collect())
                };
                let beat = match store.heartbeat(owner.as_str(), lease, &taken_on, &let_go).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!("could not renew this host's heartbeat: {e}");
                        let mut h = lock();
                        let held_now: Vec<i64> = taken_on.into_iter().filter(|id| h.runs.contains(id)).collect();
                        h.taken_on.extend(held_now);
                        h.let_go.extend(let_go);
                        continue;
                    }
                };
                let lapsed = beat.lapsed || (beaten && !beat.known);
                beaten = true;
                let kept: HashSet<i64> = beat.kept.into_iter().collect();
                {
                    let mut h = lock();
                    for id in taken_on.iter().filter(|id| !kept.contains(id)) {
                        if h.runs.remove(id) {
                            tracing::warn!(run = id, "another host took this run over; no longer following it");
                        }
                    }
                }
                if lapsed {
                    tracing::warn!(
                        "this host's heartbeat lapsed (it stalled past run_lease); checking which runs are still its own"
                    );
                    let ids: Vec<i64> = lock().runs.iter().copied().collect();
                    for chunk in ids.chunks(RENEW_CHUNK) {
                        let kept: HashSet<i64> = match store.renew_leases(owner.as_str(), chunk, lease).await {
                            Ok(kept) => kept.into_iter().collect(),
                            Err(e) => {
                                tracing::warn!("could not renew run leases: {e}");
                                chunk.iter().copied().collect()
                            }
                        };
                        let mut h = lock();
                        for id in chunk {
                            if !kept.contains(id) {
                                if h.runs.remove(id) {
                                    tracing::warn!(run = id, "another host took this run over; no longer following it");
                                }
                            } else if h.runs.contains(id) {
                                // Back to the heartbeat at the next one.
                                h.taken_on.insert(*id);
                            }
                        }
                    }
                }
            }
        });
        Self { held, renewer }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn hold(&self, id: i64) {
        let mut h = self.lock();
        h.runs.insert(id);
        h.taken_on.insert(id);
        h.let_go.remove(&id);
    }

    /// Stop holding `id`: finished (it has no owner any more), or let go.
    pub fn drop_run(&self, id: i64) {
        let mut h = self.lock();
        if h.runs.remove(&id) && !h.taken_on.remove(&id) {
            h.let_go.insert(id);
        }
    }

    pub fn holds(&self, id: i64) -> bool {
        self.lock().runs.contains(&id)
    }

    pub fn count(&self) -> usize {
        self.lock().runs.len()
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Check parameter names against the entry; unknown names are an error
/// that lists the valid ones.
pub fn check_parameters(entry: &StoredEntry, parameters: &BTreeMap<String, String>) -> Result<()> {
    let inputs = entry.entry.parameters.iter().filter(|p| p.direction.is_input());
    let known: Vec<&str> = inputs.map(|p| p.name.as_str()).collect();
    let outputs: Vec<&str> = parameters
        .keys()
        .map(String::as_str)
        .filter(|k| entry.entry.parameters.iter().any(|p| p.name == *k && !p.direction.is_input()))
        .collect();
    if !outputs.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{} {} output{} of {}: a run reports {}, it cannot be given; leave {} out",
            outputs.join(", "),
            if outputs.len() > 1 { "are" } else { "is an" },
            if outputs.len() > 1 { "s" } else { "" },
            entry.entry.external_id,
            if outputs.len() > 1 { "them" } else { "it" },
            if outputs.len() > 1 { "them" } else { "it" },
        )));
    }
    let unknown: Vec<&str> = parameters.keys().map(String::as_str).filter(|k| !known.contains(k)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "unknown parameter{} {} for {}; valid parameters: {}",
        if unknown.len() > 1 { "s" } else { "" },
        unknown.join(", "),
        entry.entry.external_id,
        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
    )))
}

/// The entry a run needs, or an error that says how to get it.
pub async fn find_entry(host: &Host, connection: &str, external_id: &str) -> Result<StoredEntry> {
    host.store()
        .await?
        .entry(connection, external_id)
        .await?
        .ok_or_else(|| Error::from(Missing::Entry { connection: connection.to_owned(), entry: external_id.to_owned() }))
}

/// A run by the catalog's number (`12` or `#12`) or the platform's run id.
pub async fn find_run(host: &Host, reference: &str) -> Result<StoredRun> {
    let store = host.store().await?;
    if let Ok(id) = reference.trim_start_matches('#').parse::<i64>()
        && let Some(run) = store.run(id).await?
    {
        return Ok(run);
    }
    store.run_by_platform_id(reference).await?.ok_or_else(|| Missing::Run { reference: reference.to_owned() }.into())
}

/// The platform id of a submitted run, or why there is none.
pub fn submitted_id(run: &StoredRun) -> Result<String> {
    run.run_id.clone().ok_or_else(|| {
        Error::InvalidInput(format!(
            "run #{} was never submitted to the platform (state {}); `polysync watch` finishes submissions",
            run.id, run.state
        ))
    })
}

/// Poll a run that is not final and record what the platform says.
pub async fn refresh(host: &Host, run: StoredRun) -> Result<StoredRun> {
    let Some(run_id) = run.run_id.clone().filter(|_| !run.is_final()) else { return Ok(run) };
    let provider = host.provider(&run.connection)?;
    let status = provider.poll(polysync_provider_api::PollRequest { run_id }).await?;
    Ok(host.store().await?.record_status(run.id, &status).await?.unwrap_or(run))
}
