//! Run tracking: submit a run so that a crash at any point loses nothing and
//! creates nothing twice, recover runs a previous process left behind, and
//! follow runs to their end through the provider's watch.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use polysync_provider_api::{
    CancelRequest, ErrorKind, LogRequest, Provider, RunRequest, RunState, RunStatus, WatchRequest,
};

use crate::catalog::{ArchivedLog, Catalog, StoredEntry, StoredRun, bounded};
use crate::error::{Error, Result};

/// Check parameter names against the entry; unknown names are an error
/// that lists the valid ones.
pub fn check_parameters(entry: &StoredEntry, parameters: &BTreeMap<String, String>) -> Result<()> {
    let known: Vec<&str> = entry.entry.parameters.iter().map(|p| p.name.as_str()).collect();
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

/// Record the run, then ask the provider for it. A retryable provider error
/// leaves the run `Submitting`, so [`recover`] finishes it later with the
/// same idempotency key.
pub async fn submit(
    catalog: &Catalog,
    provider: &dyn Provider,
    run: &StoredRun,
    entry: Option<&StoredEntry>,
) -> Result<StoredRun> {
    let request = RunRequest {
        external_id: run.external_id.clone(),
        parameters: run.parameters.clone(),
        idempotency_key: run.idempotency_key.clone(),
        fallback: entry.map(|e| e.entry.fallback.clone()),
    };
    match provider.run(request).await {
        Ok(handle) => {
            catalog.record_submitted(run.id, &handle)?;
        }
        Err(e) if e.is_retryable() || e.kind() == ErrorKind::Cancelled => return Err(Error::Provider(e)),
        Err(e) => {
            catalog.record_submit_failed(run.id, e.message())?;
            return Err(Error::Provider(e));
        }
    }
    catalog.run_by_key(&run.idempotency_key)?.ok_or_else(|| Error::Io("the run vanished from the catalog".into()))
}

/// Finish submitting runs a previous process recorded but did not hand to
/// the provider (or did not hear back about). Returns them, submitted.
pub async fn recover(catalog: &Catalog, connection: &str, provider: &dyn Provider) -> Result<Vec<StoredRun>> {
    let mut recovered = Vec::new();
    for run in catalog.active_runs(Some(connection))? {
        if run.run_id.is_none() {
            let entry = catalog.entry(connection, &run.external_id)?;
            tracing::info!(run = run.id, "finishing the submission of a run a previous process started");
            recovered.push(submit(catalog, provider, &run, entry.as_ref()).await?);
        }
    }
    Ok(recovered)
}

/// When a run's startup deadline passes, if it has one.
fn startup_deadline(run: &StoredRun) -> Option<jiff::Timestamp> {
    let ms = run.startup_timeout_ms?;
    let created: jiff::Timestamp = run.created_at.parse().ok()?;
    created.checked_add(jiff::SignedDuration::from_millis(ms)).ok()
}

/// Follow `runs` (all of one connection) with one watch until each is
/// final, recording every status; `on_status` sees each change. A run still
/// `Starting` past its startup timeout is failed with its last waiting
/// reason (ImagePullBackOff, Unschedulable, ...) and its Job deleted (it
/// holds a pending pod and quota) unless `delete_after` is an explicit
/// `never`.
pub async fn follow(
    catalog: &Catalog,
    provider: &dyn Provider,
    runs: &[StoredRun],
    mut on_status: impl FnMut(&StoredRun, &RunStatus),
) -> Result<()> {
    let by_run_id: HashMap<String, &StoredRun> =
        runs.iter().filter_map(|r| r.run_id.clone().map(|id| (id, r))).collect();
    if by_run_id.is_empty() {
        return Ok(());
    }
    let mut open: HashMap<String, Option<RunStatus>> = by_run_id.keys().map(|k| (k.clone(), None)).collect();
    // A watch refused with NotFound means some runs no longer exist on the
    // platform (a Job deleted by its TTL before anyone watched): those are
    // settled as vanished one by one, and the rest are watched again.
    'watching: while !open.is_empty() {
        let ids: Vec<String> = open.keys().cloned().collect();
        let mut stream = match provider.watch(WatchRequest { run_ids: ids }).await {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                settle_vanished(catalog, provider, &by_run_id, &mut open, &mut on_status, e).await?;
                continue 'watching;
            }
            Err(e) => return Err(e.into()),
        };
        loop {
            let next_deadline = open
                .iter()
                .filter(|(_, last)| last.as_ref().is_none_or(|s| s.state == RunState::Starting))
                .filter_map(|(id, _)| startup_deadline(by_run_id[id]))
                .min();
            let wait = next_deadline.map(|d| {
                let left = jiff::Timestamp::now().duration_until(d);
                Duration::try_from(left).unwrap_or(Duration::ZERO)
            });
            let event = match wait {
                Some(w) => tokio::select! {
                    s = stream.next() => Some(s),
                    _ = tokio::time::sleep(w) => None,
                },
                None => Some(stream.next().await),
            };
            match event {
                Some(Some(Err(e))) if e.kind() == ErrorKind::NotFound => {
                    settle_vanished(catalog, provider, &by_run_id, &mut open, &mut on_status, e).await?;
                    continue 'watching;
                }
                Some(Some(status)) => {
                    let status = status?;
                    if let Some(run) = by_run_id.get(&status.run_id) {
                        catalog.record_status(run.id, &status)?;
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
                Some(None) => break 'watching,
                None => {
                    let now = jiff::Timestamp::now();
                    let expired: Vec<String> = open
                        .iter()
                        .filter(|(_, last)| last.as_ref().is_none_or(|s| s.state == RunState::Starting))
                        .filter(|(id, _)| startup_deadline(by_run_id[*id]).is_some_and(|d| d <= now))
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in expired {
                        let run = by_run_id[&id];
                        let last = open.remove(&id).flatten();
                        let status = startup_failure(run, last.as_ref());
                        catalog.record_status(run.id, &status)?;
                        on_status(run, &status);
                        if run.delete_after != "never" {
                            let cancel = CancelRequest {
                                run_id: id.clone(),
                                reason: Some("startup timeout".into()),
                                delete: true,
                            };
                            if let Err(e) = provider.cancel(cancel).await {
                                tracing::warn!(run = run.id, "could not delete the run that did not start: {e}");
                            }
                        }
                    }
                }
            }
            if open.is_empty() {
                break 'watching;
            }
        }
    }
    Ok(())
}

/// Settle the open runs the platform no longer has (each polled: NotFound
/// means vanished), or give up with `err` if every one still exists.
async fn settle_vanished(
    catalog: &Catalog,
    provider: &dyn Provider,
    by_run_id: &HashMap<String, &StoredRun>,
    open: &mut HashMap<String, Option<RunStatus>>,
    on_status: &mut impl FnMut(&StoredRun, &RunStatus),
    err: polysync_provider_api::ProviderError,
) -> Result<()> {
    let mut settled = 0;
    let ids: Vec<String> = open.keys().cloned().collect();
    for id in ids {
        match provider.poll(polysync_provider_api::PollRequest { run_id: id.clone() }).await {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let run = by_run_id[&id];
                let mut status = RunStatus::new(id.clone(), RunState::Unknown);
                status.reason = Some(polysync_provider_api::REASON_VANISHED.into());
                status.message = Some(
                    "the run no longer exists on the platform (deleted, e.g. by ttlSecondsAfterFinished, before its end was seen)".into(),
                );
                catalog.record_status(run.id, &status)?;
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

/// Every container's log of a run, the end of each bounded for the archive.
pub async fn fetch_logs(provider: &dyn Provider, run_id: &str) -> Result<Vec<ArchivedLog>> {
    let mut stream = provider.logs(LogRequest { run_id: run_id.into(), ..Default::default() }).await?;
    let mut collected = LogBuffer::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        collected.push(&chunk.unit, &chunk.container, &chunk.text);
    }
    Ok(collected.into_archive())
}

/// Logs gathered per container, in order, each kept to twice the archive
/// limit while gathering (the end is what the archive keeps).
#[derive(Debug, Default)]
pub struct LogBuffer(Vec<((String, String), String)>);

impl LogBuffer {
    pub fn push(&mut self, unit: &str, container: &str, text: &str) {
        let key = (unit.to_owned(), container.to_owned());
        let i = match self.0.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.0.push((key, String::new()));
                self.0.len() - 1
            }
        };
        let buf = &mut self.0[i].1;
        buf.push_str(text);
        if buf.len() > 2 * crate::catalog::ARCHIVE_LIMIT {
            *buf = bounded(buf).0;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_archive(self) -> Vec<ArchivedLog> {
        self.0
            .into_iter()
            .map(|((unit, container), text)| {
                let (text, truncated) = bounded(&text);
                ArchivedLog { unit, container, text, truncated }
            })
            .collect()
    }
}

/// Follow a run's logs while it is live, so the archive is complete even
/// when its pods vanish the moment it ends (`ttlSecondsAfterFinished: 0`).
#[derive(Debug)]
pub struct LiveLogs {
    buffer: Arc<Mutex<LogBuffer>>,
    task: tokio::task::JoinHandle<()>,
}

impl LiveLogs {
    pub fn start(provider: Arc<dyn Provider>, run_id: String) -> Self {
        let buffer: Arc<Mutex<LogBuffer>> = Arc::default();
        let sink = buffer.clone();
        let task = tokio::spawn(async move {
            // The follow ends with the run; pods that are not up yet are
            // retried until the run is over.
            for _ in 0..3000 {
                let request = LogRequest { run_id: run_id.clone(), follow: true, ..Default::default() };
                let Ok(mut stream) = provider.logs(request).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let mut any = false;
                while let Some(Ok(chunk)) = stream.next().await {
                    any = true;
                    sink.lock().unwrap_or_else(|p| p.into_inner()).push(&chunk.unit, &chunk.container, &chunk.text);
                }
                if any {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { buffer, task }
    }

    /// What was gathered, after giving the follow a moment to drain.
    pub async fn finish(self) -> LogBuffer {
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut { self.task }).await;
        std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What finishing a run did.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    pub archived: usize,
    pub deleted: bool,
}

/// Finish a final run: archive its logs (from `gathered`, or fetched now),
/// then apply its stored `delete_after` — in that order, so nothing is
/// deleted before its logs are kept.
pub async fn finish(
    catalog: &Catalog,
    provider: &dyn Provider,
    run: &StoredRun,
    gathered: Option<LogBuffer>,
) -> Result<Finished> {
    let Some(run_id) = run.run_id.clone() else { return Ok(Finished::default()) };
    let mut done = Finished::default();
    let logs = match gathered.filter(|g| !g.is_empty()) {
        Some(g) => g.into_archive(),
        None => match fetch_logs(provider, &run_id).await {
            Ok(l) => l,
            Err(Error::Provider(e)) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                tracing::warn!(run = run.id, "could not read the logs to archive: {e}");
                Vec::new()
            }
        },
    };
    if !logs.is_empty() {
        catalog.archive_logs(run.id, &logs)?;
        done.archived = logs.len();
    }
    let delete = match run.delete_after.as_str() {
        "always" => true,
        "success" => run.succeeded(),
        _ => false,
    };
    if delete && run.state != crate::catalog::LOST {
        let cancel = CancelRequest { run_id, reason: Some("delete-after".into()), delete: true };
        provider.cancel(cancel).await?;
        done.deleted = true;
    }
    Ok(done)
}
