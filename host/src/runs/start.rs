//! Starting a run so that a crash at any point loses nothing and creates
//! nothing twice, finishing submissions a previous process left, and
//! following one run to its end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use polysync_provider_api::{ErrorKind, Provider, RunRequest, RunStatus};

use super::{Leases, LiveLogs, check_parameters, find_entry, finish};
use crate::Host;
use crate::error::{Error, Result, Unanswered};
use crate::store::{DeleteAfter, NewRun, Recorded, Store, StoredEntry, StoredRun};

/// A run to start.
#[derive(Debug, Clone)]
pub struct StartRun {
    pub connection: String,
    pub entry: String,
    pub parameters: BTreeMap<String, String>,
    /// A scheduler's retry sends the same key and gets the same run; none
    /// means a fresh one.
    pub idempotency_key: Option<String>,
    pub delete_after: DeleteAfter,
    /// Overrides the connection's `startup_timeout`.
    pub startup_timeout: Option<Duration>,
    /// POSTed the run's final status (see [`super::Callbacks`]).
    pub callback_url: Option<String>,
}

/// A run started (or found again by its idempotency key).
#[derive(Debug, Clone)]
pub struct Started {
    pub run: StoredRun,
    /// False when the key named a run that already existed.
    pub created: bool,
    /// The platform did not answer the submission: the run is recorded
    /// and may or may not exist there; a watching host finishes it with
    /// the same idempotency key. Says so, and how to withdraw it.
    pub pending: Option<Unanswered>,
}

/// Record the run, then ask the provider for it. A platform that does not
/// answer leaves it pending: [`Error::Pending`] says how to finish or
/// withdraw it.
pub async fn start_run(host: &Host, request: StartRun) -> Result<Started> {
    // An unknown connection is named as such, not as a missing entry.
    let connection = host.config.connection(&request.connection)?;
    let startup_timeout = request.startup_timeout.or(connection.startup_timeout);
    let entry = find_entry(host, &request.connection, &request.entry).await?;
    check_parameters(&entry, &request.parameters)?;
    let provider = host.provider(&request.connection)?;
    let key = request.idempotency_key.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let new = NewRun {
        connection: request.connection.clone(),
        external_id: request.entry.clone(),
        idempotency_key: key.clone(),
        parameters: request.parameters,
        delete_after: request.delete_after,
        startup_timeout,
        callback_url: request.callback_url,
    };
    let Recorded { run: recorded, created } =
        host.store().await?.record_intent(&new, host.id().as_str(), host.config.run_lease).await?;
    if recorded.run_id.is_some() || recorded.is_final() {
        return Ok(Started { run: recorded, created: false, pending: None });
    }
    match submit(host.store().await?.as_ref(), provider.as_ref(), &recorded, Some(&entry)).await {
        Ok(run) => Ok(Started { run, created, pending: None }),
        // The platform did not answer: the run may or may not exist there.
        Err(Error::Provider(e)) if e.is_retryable() && !e.was_not_applied() => Ok(Started {
            pending: Some(Unanswered { run: recorded.id, platform_said: e.message().to_owned() }),
            run: recorded,
            created,
        }),
        Err(e) => Err(e),
    }
}

/// Ask the provider for a recorded run. A retryable provider error leaves
/// it `Submitting`, so a later [`recover`] finishes it with the same
/// idempotency key — unless the provider says the platform certainly did
/// not act on it (a refused connection): then it is `SubmitFailed`.
pub async fn submit(
    store: &dyn Store,
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
        Ok(handle) => store.record_submitted(run.id, &handle).await,
        // Nothing reached the platform: the run was never made.
        Err(e) if e.was_not_applied() && e.kind() != ErrorKind::Cancelled => {
            store.record_submit_failed(run.id, e.message()).await?;
            Err(Error::Provider(e))
        }
        Err(e) if e.is_retryable() || e.kind() == ErrorKind::Cancelled => Err(Error::Provider(e)),
        Err(e) => {
            store.record_submit_failed(run.id, e.message()).await?;
            Err(Error::Provider(e))
        }
    }
}

/// Finish submitting a run a previous process recorded but did not hand
/// to the provider (or did not hear back about).
pub async fn recover(store: &dyn Store, provider: &dyn Provider, run: &StoredRun) -> Result<StoredRun> {
    let entry = store.entry(&run.connection, &run.external_id).await?;
    tracing::info!(run = run.id, "finishing the submission of a run a previous process started");
    submit(store, provider, run, entry.as_ref()).await
}

/// Follow one run this host started to its end — logs gathered live (so
/// the archive is whole even if the pods vanish the moment it ends), the
/// lease renewed — then finish it. Returns the run as it ended.
pub async fn follow_one(
    host: &Host,
    run: &StoredRun,
    on_status: impl FnMut(&StoredRun, &RunStatus),
) -> Result<(StoredRun, super::Finished)> {
    let provider: Arc<dyn Provider> = host.provider(&run.connection)?;
    let leases = Leases::start(host.store().await?.clone(), host.id().clone(), host.config.run_lease);
    leases.hold(run.id);
    let live = run.run_id.clone().map(|id| LiveLogs::start(provider.clone(), id));
    super::follow(host.store().await?.as_ref(), provider.as_ref(), std::slice::from_ref(run), Some(&leases), on_status)
        .await?;
    let ended = host.store().await?.run(run.id).await?.unwrap_or_else(|| run.clone());
    let gathered = match live {
        Some(l) => Some(l.finish().await),
        None => None,
    };
    let callbacks = host.callbacks()?;
    let finished =
        finish(host.store().await?.as_ref(), provider.as_ref(), callbacks.as_ref(), &ended, gathered).await?;
    Ok((ended, finished))
}
