//! Cancelling a run: a submission still pending is withdrawn (never sent);
//! a run on the platform is stopped there and recorded Cancelled.

use polysync_provider_api::{CancelOutcome, CancelRequest, RunState as ApiState, RunStatus};

use super::{find_run, submitted_id};
use crate::Host;
use crate::error::Result;
use crate::store::{CANCELLED_BY_USER, RunState, StoredRun};

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
    // Marked before the platform is asked: a follower that sees the run
    // deleted (possibly on another replica) records it as the user's cancel,
    // not as a deletion by someone else.
    store.mark_cancelling(run.id, true).await?;
    let outcome =
        provider.cancel(CancelRequest { run_id: run_id.clone(), reason: Some(reason.into()), delete: false }).await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            store.mark_cancelling(run.id, false).await?;
            return Err(e.into());
        }
    };
    if outcome == CancelOutcome::Cancelled {
        let mut s = RunStatus::new(run_id, ApiState::Cancelled);
        s.reason = Some(CANCELLED_BY_USER.into());
        store.record_status(run.id, &s).await?;
    } else {
        store.mark_cancelling(run.id, false).await?;
    }
    let run = store.run(run.id).await?.unwrap_or(run);
    Ok(Cancelled::OnPlatform { outcome, run })
}
