//! Events: the task's state transitions (lastStatus, desiredStatus and the
//! containers' states) as they are observed by describing it.

use futures::StreamExt;
use polysync_provider_api::{EventKind, EventsRequest, ProviderError, Result, ResultStream, RunEvent};

use crate::Ecs;
use crate::client::Seen;
use crate::status::task_id;

pub(crate) async fn events(ecs: &Ecs, request: EventsRequest) -> Result<ResultStream<RunEvent>> {
    let first = observe(ecs, &request.run_id).await?;
    let Some((first, terminal)) = first else {
        return Err(ProviderError::not_found(format!("run {}: ECS has no such task in this cluster", request.run_id)));
    };
    if !request.follow || terminal {
        return Ok(futures::stream::iter([Ok(first)]).boxed());
    }
    let ecs = ecs.clone();
    let rest = futures::stream::unfold(
        (ecs, request.run_id, Some(key(&first)), false),
        |(ecs, run_id, last, done)| async move {
            if done {
                return None;
            }
            tokio::time::sleep(ecs.poll_interval).await;
            match observe(&ecs, &run_id).await {
                Ok(Some((event, terminal))) => {
                    let k = key(&event);
                    let item = (Some(&k) != last.as_ref()).then_some(Ok(event));
                    Some((item, (ecs, run_id, Some(k), terminal)))
                }
                // Forgotten by ECS: nothing more will happen.
                Ok(None) => None,
                Err(e) => Some((Some(Err(e)), (ecs, run_id, last, true))),
            }
        },
    )
    .filter_map(|item| async move { item });
    Ok(futures::stream::iter([Ok(first)]).chain(rest).boxed())
}

/// What makes two observations the same event.
fn key(e: &RunEvent) -> String {
    let containers: Vec<String> =
        e.containers.iter().map(|c| format!("{}={}:{:?}", c.name, c.state, c.exit_code)).collect();
    format!("{}|{:?}|{}", e.phase, e.reason, containers.join(","))
}

/// The run's current task now as an event, and whether the run has ended.
/// After a Spot interruption the current task is the latest attempt.
async fn observe(ecs: &Ecs, run_id: &str) -> Result<Option<(RunEvent, bool)>> {
    let seen = crate::client::describe(ecs, &[run_id.to_owned()]).await?;
    let Some((Seen::Task(first), _)) = seen.get(run_id) else { return Ok(None) };
    let (view, run_ended) = if ecs.settings.retry_on_interruption > 0 && first.interrupted() {
        let settled = crate::track::current(ecs, run_id).await?;
        let mut seen = crate::client::describe(ecs, std::slice::from_ref(&settled.current)).await?;
        match seen.remove(&settled.current) {
            Some((Seen::Task(view), _)) => (view, Some(settled.status.state.is_terminal())),
            _ => (first.clone(), Some(settled.status.state.is_terminal())),
        }
    } else {
        (first.clone(), None)
    };
    let view = &*view;
    let status = crate::status::status(view, None);
    let event = RunEvent {
        run_id: run_id.to_owned(),
        kind: EventKind::Modified,
        unit: task_id(&view.task_arn).to_owned(),
        phase: format!("{} (desired {})", view.last_status, view.desired_status),
        reason: view.stop_code.clone(),
        message: view.stopped_reason.clone().filter(|r| !r.is_empty()),
        containers: status.units.into_iter().flat_map(|u| u.containers).collect(),
        at: jiff::Timestamp::now().to_string().into(),
    };
    Ok(Some((event, run_ended.unwrap_or(status.state.is_terminal()))))
}
