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
mod watch;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use callback::{Callbacks, check_url as check_callback_url, event_id, signature};
pub use cancel::{Cancelled, cancel};
pub use finish::{Finished, finish};
pub use follow::follow;
pub use logs::{LiveLogs, LogBuffer, RunLogs, archived_or_gone, fetch_logs, open_logs};
pub use start::{StartRun, Started, follow_one, recover, start_run, submit};
pub use sync::{continue_sync, start_sync, sync_connection};
pub use watch::{Service, WatchEvent, WatchReport, serve, watch};

use crate::Host;
use crate::error::{Error, Result};
use crate::store::{Store, StoredEntry, StoredRun};

/// A host's identity as the owner of runs and syncs:
/// `HOSTNAME/PID/RANDOM`, unique per process, so a restarted process never
/// mistakes its predecessor's leases for its own. `POLYSYNC_HOST_NAME`
/// replaces the machine's name (a pod name, where hostnames repeat).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostId(String);

impl HostId {
    pub fn new() -> Self {
        let host = machine_name();
        let tag = uuid::Uuid::new_v4().simple().to_string();
        Self(format!("{host}/{}/{}", std::process::id(), &tag[..8]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `owner` names a process on this machine that has ended (its
    /// lease need not be waited out). Owners elsewhere are judged by their
    /// lease alone.
    pub fn is_gone(owner: &str) -> bool {
        let mut parts = owner.split('/');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else { return false };
        host == machine_name()
            && pid.parse::<u32>().is_ok_and(|p| !std::path::Path::new("/proc").join(p.to_string()).exists())
    }
}

/// This machine's name as owners record it.
fn machine_name() -> String {
    std::env::var("POLYSYNC_HOST_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().replace('/', "-"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Default for HostId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for HostId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Leases renewed per statement.
const RENEW_CHUNK: usize = 500;

/// The runs this host holds, their leases renewed in the background every
/// third of the lease. A run another host took over (this one stalled
/// past its lease) is dropped from the set, and its followers stop.
///
/// Renewals go in chunks spread over the first half of each period: one
/// statement renewing 10,000 leases kept a PostgreSQL core busy for
/// ~150 ms, a stall every request to the catalog felt.
#[derive(Debug)]
pub struct Leases {
    held: Arc<Mutex<HashSet<i64>>>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Leases {
    pub fn start(store: Arc<dyn Store>, owner: HostId, lease: Duration) -> Self {
        let held: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let set = held.clone();
        let renewer = tokio::spawn(async move {
            let period = lease / 3;
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let ids: Vec<i64> = set.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
                let chunks = ids.len().div_ceil(RENEW_CHUNK);
                for (i, chunk) in ids.chunks(RENEW_CHUNK).enumerate() {
                    if i > 0 {
                        tokio::time::sleep(period / 2 / chunks as u32).await;
                    }
                    match store.renew_leases(owner.as_str(), chunk, lease).await {
                        Ok(kept) => {
                            let kept: HashSet<i64> = kept.into_iter().collect();
                            let mut held = set.lock().unwrap_or_else(|p| p.into_inner());
                            for id in chunk.iter().filter(|id| !kept.contains(id)) {
                                tracing::warn!(run = id, "another host took this run over; no longer following it");
                                held.remove(id);
                            }
                        }
                        Err(e) => tracing::warn!("could not renew run leases: {e}"),
                    }
                }
            }
        });
        Self { held, renewer }
    }

    pub fn hold(&self, id: i64) {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
    }

    pub fn drop_run(&self, id: i64) {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    pub fn holds(&self, id: i64) -> bool {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).contains(&id)
    }

    pub fn count(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).len()
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
    host.store().await?.entry(connection, external_id).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "no entry {external_id:?} in the catalog of {connection}; run `polysync discover {connection}` first"
        ))
    })
}

/// A run by the catalog's number (`12` or `#12`) or the platform's run id.
pub async fn find_run(host: &Host, reference: &str) -> Result<StoredRun> {
    let store = host.store().await?;
    if let Ok(id) = reference.trim_start_matches('#').parse::<i64>()
        && let Some(run) = store.run(id).await?
    {
        return Ok(run);
    }
    store
        .run_by_platform_id(reference)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no run {reference:?} in the catalog; list them with `polysync runs`")))
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
