//! Finishing a run that ended: archive its logs, then apply its stored
//! delete-after, then mark it finalized — in that order, so nothing is
//! deleted before its logs are kept, and a host that dies half-way (or a
//! callback that is not delivered) leaves the run for the next one to
//! finish.

use polysync_provider_api::{CancelRequest, ErrorKind, Provider};

use super::logs::{LogBuffer, fetch_logs};
use crate::error::{Error, Result};
use crate::store::{Store, StoredRun};

/// What finishing a run did.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// Containers whose logs were archived.
    pub archived: usize,
    /// The run's Job (or task) was deleted from the platform.
    pub deleted: bool,
    /// Its final status was delivered to its callback URL.
    pub called_back: bool,
}

/// Finish a final run: archive its logs (from `gathered`, or fetched now),
/// apply its `delete_after`, and mark it finalized.
pub async fn finish(
    store: &dyn Store,
    provider: &dyn Provider,
    callbacks: Option<&super::Callbacks>,
    run: &StoredRun,
    gathered: Option<LogBuffer>,
) -> Result<Finished> {
    let mut done = Finished::default();
    if let Some(run_id) = run.run_id.clone() {
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
            store.archive_logs(run.id, &logs).await?;
            done.archived = logs.len();
        }
        if run.delete_after.deletes(run.state) {
            let cancel = CancelRequest { run_id, reason: Some("delete-after".into()), delete: true };
            match provider.cancel(cancel).await {
                Ok(_) => done.deleted = true,
                // Already gone (a TTL got there first): nothing to delete.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if run.callback_url.is_some() {
        match callbacks {
            Some(c) => {
                c.deliver(run).await?;
                done.called_back = true;
            }
            None => tracing::warn!(
                run = run.id,
                "the run has a callback URL but no callback secret is configured (callback_secret_env or callback_secret_file); not delivered"
            ),
        }
    }
    store.mark_finalized(run.id).await?;
    Ok(done)
}
