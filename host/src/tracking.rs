//! Run tracking: submit a run so that a crash at any point loses nothing and
//! creates nothing twice, recover runs a previous process left behind, and
//! follow runs to their end through the provider's watch.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use polysync_provider_api::{ErrorKind, Provider, RunRequest, RunStatus, WatchRequest};

use crate::catalog::{Catalog, StoredEntry, StoredRun};
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

/// Follow `runs` (all of one connection) with one watch until each is
/// terminal, recording every status; `on_status` sees each change.
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
    let mut stream = provider.watch(WatchRequest { run_ids: by_run_id.keys().cloned().collect() }).await?;
    while let Some(status) = stream.next().await {
        let status = status?;
        if let Some(run) = by_run_id.get(&status.run_id) {
            catalog.record_status(run.id, &status)?;
            on_status(run, &status);
        }
    }
    Ok(())
}
