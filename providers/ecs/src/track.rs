//! Status of runs: DescribeTasks for up to 100 tasks a call, so tracking
//! a thousand concurrent runs costs ten calls a round, not a thousand.
//! Throttling backs off with jitter; a task ECS has forgotten (MISSING)
//! after it was seen stopped keeps the terminal status it was seen with.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use polysync_provider_api::{ProviderError, Result, ResultStream, RunStatus};

use crate::Ecs;
use crate::attempts::{self, Chain};
use crate::client::{Seen, describe};
use crate::definition;

/// The next status of a run from what a round saw (`None`: ECS no longer
/// has the task), given the last one. `None` back: nothing to report.
pub fn next(last: Option<&RunStatus>, now: Option<RunStatus>) -> Result<Option<RunStatus>> {
    match (now, last) {
        (Some(now), _) => Ok((last != Some(&now)).then_some(now)),
        // Forgotten after it ended: the recorded end stands.
        (None, Some(l)) if l.state.is_terminal() => Ok(None),
        (None, Some(l)) => {
            let mut gone = RunStatus::new(&l.run_id, polysync_provider_api::RunState::Unknown);
            gone.message = Some("ECS no longer reports this task (it keeps stopped tasks about an hour)".into());
            Ok(Some(gone))
        }
        (None, None) => Err(ProviderError::not_found("ECS has no such task in this cluster")),
    }
}

/// The run as it is now, with its outputs once it ended; `None` when ECS
/// does not know its current task.
async fn settle(
    ecs: &Ecs,
    run_id: &str,
    seen: &Seen,
    td: Option<&str>,
    chain: &mut Chain,
) -> Result<Option<attempts::Settled>> {
    let Seen::Task(view) = seen else { return Ok(None) };
    let def = definition::get(ecs, td).await;
    let mut settled = attempts::settle(ecs, run_id, view, def.as_deref(), chain).await?;
    settled.status.run_id = run_id.to_owned();
    if let Some(def) = &def {
        crate::outputs::attach(ecs, def, &settled.current, &mut settled.status).await;
    }
    Ok(Some(settled))
}

/// The run's status and the task it is now (a further attempt after a
/// Spot interruption).
pub(crate) async fn current(ecs: &Ecs, run_id: &str) -> Result<attempts::Settled> {
    let mut seen = describe(ecs, &[run_id.to_owned()]).await?;
    let (seen, td) = seen.remove(run_id).unwrap_or((Seen::Missing, None));
    settle(ecs, run_id, &seen, td.as_deref(), &mut Chain::default())
        .await?
        .ok_or_else(|| ProviderError::not_found(format!("run {run_id}: ECS has no such task in this cluster")))
}

pub(crate) async fn poll(ecs: &Ecs, run_id: &str) -> Result<RunStatus> {
    Ok(current(ecs, run_id).await?.status)
}

/// The runs' statuses now, then every change, one batched round per
/// interval, until all are terminal.
pub(crate) async fn watch(ecs: &Ecs, run_ids: Vec<String>) -> Result<ResultStream<RunStatus>> {
    let mut pending: Vec<String> = run_ids.into_iter().collect::<HashSet<_>>().into_iter().collect();
    pending.sort();
    if pending.is_empty() {
        return Ok(futures::stream::empty().boxed());
    }
    let mut runs = Runs::default();
    // The first round is made before answering, so an unknown run is a
    // NotFound of the call itself.
    let first = round(ecs, &mut pending, &mut runs).await?;
    let ecs = ecs.clone();
    let rest =
        futures::stream::unfold((ecs, pending, runs, false), |(ecs, mut pending, mut runs, failed)| async move {
            if pending.is_empty() || failed {
                return None;
            }
            tokio::time::sleep(ecs.poll_interval).await;
            match round(&ecs, &mut pending, &mut runs).await {
                Ok(changes) => {
                    Some((futures::stream::iter(changes.into_iter().map(Ok)).boxed(), (ecs, pending, runs, false)))
                }
                Err(e) => Some((futures::stream::iter([Err(e)]).boxed(), (ecs, pending, runs, true))),
            }
        })
        .flatten();
    Ok(futures::stream::iter(first.into_iter().map(Ok)).chain(rest).boxed())
}

/// What a watch knows of its runs.
#[derive(Debug, Default)]
struct Runs {
    last: HashMap<String, RunStatus>,
    chains: HashMap<String, Chain>,
}

/// One round: describe every pending run's current task, report changes,
/// drop the ended.
async fn round(ecs: &Ecs, pending: &mut Vec<String>, runs: &mut Runs) -> Result<Vec<RunStatus>> {
    let targets: Vec<String> =
        pending.iter().map(|r| runs.chains.get(r).map_or(r.as_str(), |c| c.current(r)).to_owned()).collect();
    let seen = describe(ecs, &targets).await?;
    let mut changes = Vec::new();
    for (run_id, target) in pending.iter().zip(&targets) {
        let Some((s, td)) = seen.get(target) else { continue };
        let chain = runs.chains.entry(run_id.clone()).or_default();
        let now = settle(ecs, run_id, s, td.as_deref(), chain).await?.map(|s| s.status);
        let change = next(runs.last.get(run_id), now)
            .map_err(|e| ProviderError::not_found(format!("run {run_id}: {}", e.message())))?;
        if let Some(mut status) = change {
            status.run_id = run_id.clone();
            runs.last.insert(run_id.clone(), status.clone());
            changes.push(status);
        }
    }
    pending.retain(|id| {
        runs.last.get(id).is_none_or(|s| !s.state.is_terminal() && s.state != polysync_provider_api::RunState::Unknown)
    });
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use polysync_provider_api::RunState;

    use super::*;
    use crate::client::{THROTTLED, with_backoff};
    use crate::status::TaskView;
    use polysync_provider_api::ErrorKind;

    fn view(last: &str, stop_code: Option<&str>) -> Option<RunStatus> {
        let task = TaskView {
            task_arn: "arn:aws:ecs:r:1:task/c/t1".into(),
            last_status: last.into(),
            stop_code: stop_code.map(str::to_owned),
            containers: vec![crate::status::ContainerView {
                name: "main".into(),
                exit_code: Some(0),
                ..Default::default()
            }],
            ..Default::default()
        };
        Some(crate::status::status(&task, None))
    }

    #[test]
    fn missing_after_stopped_keeps_the_recorded_end() {
        let stopped = next(None, view("STOPPED", Some("EssentialContainerExited"))).unwrap().unwrap();
        assert_eq!(stopped.state, RunState::Success);
        assert_eq!(next(Some(&stopped), None).unwrap(), None);
    }

    #[test]
    fn missing_while_running_becomes_unknown_and_never_seen_is_not_found() {
        let running = next(None, view("RUNNING", None)).unwrap().unwrap();
        let gone = next(Some(&running), None).unwrap().unwrap();
        assert_eq!(gone.state, RunState::Unknown);
        assert_eq!(next(None, None).unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn unchanged_is_not_reported_again() {
        let running = next(None, view("RUNNING", None)).unwrap().unwrap();
        assert_eq!(next(Some(&running), view("RUNNING", None)).unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_retried_with_backoff_then_given_up() {
        let mut calls = 0;
        let ok: Result<u32> = with_backoff(|| {
            calls += 1;
            let n = calls;
            async move { if n < 3 { Err(ProviderError::new(ErrorKind::Throttled, "slow down")) } else { Ok(n) } }
        })
        .await;
        assert_eq!(ok.unwrap(), 3);
        let mut calls = 0;
        let err: Result<()> = with_backoff(|| {
            calls += 1;
            async { Err(ProviderError::new(ErrorKind::Throttled, "slow down")) }
        })
        .await;
        assert_eq!(err.unwrap_err().kind(), ErrorKind::Throttled);
        assert_eq!(calls, THROTTLED.attempts);
    }
}
