//! Following runs to their end through the provider's watch, with
//! startup deadlines, vanished runs settled, and only while this host
//! holds them.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use polysync_provider_api::{CancelRequest, ErrorKind, Provider, RunState, RunStatus, WatchRequest};

use super::Leases;
use crate::error::{Error, Result};
use crate::store::{DeleteAfter, Store, StoredRun};

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
    store: &dyn Store,
    provider: &dyn Provider,
    runs: &[StoredRun],
    leases: Option<&Leases>,
    on_status: impl FnMut(&StoredRun, &RunStatus),
) -> Result<()> {
    follow_more(store, provider, runs.to_vec(), None, leases, on_status).await
}

/// [`follow`], also taking the runs that arrive on `more` while it goes on:
/// still one watch for the whole connection, reopened with the new runs
/// added (a platform watch names its runs up front), and not ended while
/// `more` is open.
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
    let add = |batch: Vec<StoredRun>,
               by_run_id: &mut HashMap<String, StoredRun>,
               open: &mut HashMap<String, Option<RunStatus>>| {
        for r in batch {
            if let Some(id) = r.run_id.clone() {
                open.entry(id.clone()).or_insert(None);
                by_run_id.insert(id, r);
            }
        }
    };
    add(runs, &mut by_run_id, &mut open);
    // A watch refused with NotFound means some runs no longer exist on the
    // platform (a Job deleted by its TTL before anyone watched): those are
    // settled as vanished one by one, and the rest are watched again.
    'watching: loop {
        if open.is_empty() {
            let Some(rx) = more.as_mut() else { return Ok(()) };
            match rx.recv().await {
                Some(batch) => add(batch, &mut by_run_id, &mut open),
                None => return Ok(()),
            }
            continue 'watching;
        }
        let ids: Vec<String> = open.keys().cloned().collect();
        let mut stream = match provider.watch(WatchRequest { run_ids: ids }).await {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                settle_vanished(store, provider, &by_run_id, &mut open, &mut on_status, e).await?;
                continue 'watching;
            }
            Err(e) => return Err(e.into()),
        };
        loop {
            let next_deadline = open
                .iter()
                .filter(|(_, last)| last.as_ref().is_none_or(|s| s.state == RunState::Starting))
                .filter_map(|(id, _)| startup_deadline(&by_run_id[id]))
                .min();
            let wait = next_deadline.map(|d| {
                let left = jiff::Timestamp::now().duration_until(d);
                Duration::try_from(left).unwrap_or(Duration::ZERO)
            });
            let more_runs = async {
                match more.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let sleep = async {
                match wait {
                    Some(w) => tokio::time::sleep(w).await,
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                s = stream.next() => Some(s),
                _ = sleep => None,
                batch = more_runs => {
                    match batch {
                        Some(batch) => {
                            add(batch, &mut by_run_id, &mut open);
                            // Gather what else arrives in a moment, then
                            // reopen the watch once for all of it. Reopening
                            // lists every run again, so the more are
                            // followed, the longer the gathering (0.2 s, up
                            // to 5 s at 10,000 runs).
                            let gather = Duration::from_millis((200 + open.len() as u64 / 2).min(5000));
                            tokio::time::sleep(gather).await;
                            if let Some(rx) = more.as_mut() {
                                while let Ok(batch) = rx.try_recv() {
                                    add(batch, &mut by_run_id, &mut open);
                                }
                            }
                            continue 'watching;
                        }
                        None => {
                            more = None;
                            continue;
                        }
                    }
                }
            };
            match event {
                Some(Some(Err(e))) if e.kind() == ErrorKind::NotFound => {
                    settle_vanished(store, provider, &by_run_id, &mut open, &mut on_status, e).await?;
                    continue 'watching;
                }
                Some(Some(status)) => {
                    let status = status?;
                    if let Some(run) = by_run_id.get(&status.run_id) {
                        if leases.is_some_and(|l| !l.holds(run.id)) {
                            // Another host took the run over (this one
                            // stalled past its lease): it is theirs now.
                            open.remove(&status.run_id);
                        } else {
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
                // The platform ended the watch: open it again, after a
                // breath (a platform that keeps ending it is not hammered).
                Some(None) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue 'watching;
                }
                None => {
                    let now = jiff::Timestamp::now();
                    let expired: Vec<String> = open
                        .iter()
                        .filter(|(_, last)| last.as_ref().is_none_or(|s| s.state == RunState::Starting))
                        .filter(|(id, _)| startup_deadline(&by_run_id[*id]).is_some_and(|d| d <= now))
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in expired {
                        let run = &by_run_id[&id];
                        let last = open.remove(&id).flatten();
                        let status = startup_failure(run, last.as_ref());
                        store.record_status(run.id, &status).await?;
                        on_status(run, &status);
                        if run.delete_after != DeleteAfter::Never {
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
                continue 'watching;
            }
        }
    }
}

/// Settle the open runs the platform no longer has (each polled: NotFound
/// means vanished), or give up with `err` if every one still exists.
async fn settle_vanished(
    store: &dyn Store,
    provider: &dyn Provider,
    by_run_id: &HashMap<String, StoredRun>,
    open: &mut HashMap<String, Option<RunStatus>>,
    on_status: &mut impl FnMut(&StoredRun, &RunStatus),
    err: polysync_provider_api::ProviderError,
) -> Result<()> {
    let mut settled = 0;
    let ids: Vec<String> = open.keys().cloned().collect();
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
