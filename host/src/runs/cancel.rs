//! Cancelling a run: a submission still pending is withdrawn (never sent);
//! a run on the platform is stopped there and recorded Cancelled.

use polysync_provider_api::{CancelOutcome, CancelRequest, RunState as ApiState, RunStatus};

use super::{find_run, submitted_id};
use crate::Host;
use crate::error::Result;
use crate::store::{RunState, StoredRun};

/// What cancelling did.
#[derive(Debug, Clone)]
pub enum Cancelled {
    /// It had not been submitted: withdrawn, never to be sent.
    Withdrawn(StoredRun),
    /// The platform's answer, and the run as recorded after.
    OnPlatform { outcome: CancelOutcome, run: StoredRun },
}

/// Cancel the run `reference` names (`12`, `#12`, or its platform id).
pub async fn cancel(host: &Host, reference: &str, reason: &str) -> Result<Cancelled> {
    let run = find_run(host, reference).await?;
    let store = host.store().await?;
    if run.run_id.is_none() && run.state == RunState::Submitting && store.withdraw(run.id).await? {
        let run = store.run(run.id).await?.unwrap_or(run);
        return Ok(Cancelled::Withdrawn(run));
    }
    let run_id = submitted_id(&run)?;
    let provider = host.provider(&run.connection)?;
    let outcome =
        provider.cancel(CancelRequest { run_id: run_id.clone(), reason: Some(reason.into()), delete: false }).await?;
    if outcome == CancelOutcome::Cancelled {
        let mut s = RunStatus::new(run_id, ApiState::Cancelled);
        s.reason = Some("CancelledByUser".into());
        store.record_status(run.id, &s).await?;
    }
    let run = store.run(run.id).await?.unwrap_or(run);
    Ok(Cancelled::OnPlatform { outcome, run })
}
