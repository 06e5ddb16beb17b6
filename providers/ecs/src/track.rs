//! Status of runs: DescribeTasks for up to 100 tasks a call, so tracking
//! a thousand concurrent runs costs ten calls a round, not a thousand.
//! Throttling backs off with jitter; a task ECS has forgotten (MISSING)
//! after it was seen stopped keeps the terminal status it was seen with.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use polysync_aws::from_sdk;
use polysync_provider_api::{ErrorKind, ProviderError, Result, ResultStream, RunStatus};
use rand::RngExt;

use crate::Ecs;
use crate::definition;
use crate::status::{TaskView, status};

/// DescribeTasks takes at most this many tasks.
pub const BATCH: usize = 100;
/// Throttled rounds retried before watch gives up.
const THROTTLE_RETRIES: u32 = 8;

/// What one DescribeTasks round saw of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Task(Box<TaskView>),
    Missing,
}

/// Describe `arns`, 100 a call; every ARN gets an answer.
pub async fn describe(ecs: &Ecs, arns: &[String]) -> Result<HashMap<String, (Seen, Option<String>)>> {
    let client = ecs.client().await?;
    let mut out = HashMap::new();
    for chunk in arns.chunks(BATCH) {
        let answer = with_backoff(|| async {
            client
                .describe_tasks()
                .cluster(&ecs.settings.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| from_sdk(e, "ecs:DescribeTasks", "describing tasks"))
        })
        .await?;
        for task in answer.tasks() {
            let view = TaskView::from_sdk(task);
            // Callers may name a task by id or ARN; answer under their name.
            let key = chunk
                .iter()
                .find(|a| *a == &view.task_arn || view.task_arn.ends_with(&format!("/{a}")))
                .cloned()
                .unwrap_or_else(|| view.task_arn.clone());
            out.insert(key, (Seen::Task(Box::new(view)), task.task_definition_arn().map(str::to_owned)));
        }
        for arn in chunk {
            out.entry(arn.clone()).or_insert((Seen::Missing, None));
        }
    }
    Ok(out)
}

/// Retry a call while it is throttled: jittered exponential backoff from
/// 200 ms, capped at 20 s, honouring a server's retry-after.
pub async fn with_backoff<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if e.kind() == ErrorKind::Throttled && attempt < THROTTLE_RETRIES => {
                let base = Duration::from_millis(200).saturating_mul(1 << attempt).min(Duration::from_secs(20));
                let wait = e.retry_after().unwrap_or(base).mul_f64(rand::rng().random_range(0.5..1.5));
                tracing::debug!("DescribeTasks throttled; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The next status of a run from what a round saw, given the last one.
/// `None`: nothing to report (unchanged).
pub fn next(last: Option<&RunStatus>, seen: &Seen, essential: Option<&[String]>) -> Result<Option<RunStatus>> {
    match (seen, last) {
        (Seen::Task(view), _) => {
            let now = status(view, essential);
            Ok((last != Some(&now)).then_some(now))
        }
        // Forgotten after it ended: the recorded end stands.
        (Seen::Missing, Some(l)) if l.state.is_terminal() => Ok(None),
        (Seen::Missing, Some(l)) => {
            let mut gone = RunStatus::new(&l.run_id, polysync_provider_api::RunState::Unknown);
            gone.message = Some("ECS no longer reports this task (it keeps stopped tasks about an hour)".into());
            Ok(Some(gone))
        }
        (Seen::Missing, None) => Err(ProviderError::not_found("ECS has no such task in this cluster")),
    }
}

pub(crate) async fn poll(ecs: &Ecs, run_id: &str) -> Result<RunStatus> {
    let mut seen = describe(ecs, &[run_id.to_owned()]).await?;
    let (seen, td) = seen.remove(run_id).unwrap_or((Seen::Missing, None));
    let def = definition::get(ecs, td.as_deref()).await;
    let mut status = next(None, &seen, def.as_ref().map(|d| d.essential.as_slice()))
        .map_err(|e| ProviderError::not_found(format!("run {run_id}: {}", e.message())))?
        .ok_or_else(|| ProviderError::internal("no status"))?;
    if let Some(def) = &def {
        crate::outputs::attach(ecs, def, &mut status).await;
    }
    Ok(status)
}

/// The runs' statuses now, then every change, one batched round per
/// interval, until all are terminal.
pub(crate) async fn watch(ecs: &Ecs, run_ids: Vec<String>) -> Result<ResultStream<RunStatus>> {
    let mut pending: Vec<String> = run_ids.into_iter().collect::<HashSet<_>>().into_iter().collect();
    pending.sort();
    if pending.is_empty() {
        return Ok(futures::stream::empty().boxed());
    }
    let mut last: HashMap<String, RunStatus> = HashMap::new();
    // The first round is made before answering, so an unknown run is a
    // NotFound of the call itself.
    let first = round(ecs, &mut pending, &mut last).await?;
    let ecs = ecs.clone();
    let rest =
        futures::stream::unfold((ecs, pending, last, false), |(ecs, mut pending, mut last, failed)| async move {
            if pending.is_empty() || failed {
                return None;
            }
            tokio::time::sleep(ecs.poll_interval).await;
            match round(&ecs, &mut pending, &mut last).await {
                Ok(changes) => {
                    Some((futures::stream::iter(changes.into_iter().map(Ok)).boxed(), (ecs, pending, last, false)))
                }
                Err(e) => Some((futures::stream::iter([Err(e)]).boxed(), (ecs, pending, last, true))),
            }
        })
        .flatten();
    Ok(futures::stream::iter(first.into_iter().map(Ok)).chain(rest).boxed())
}

/// One round: describe every pending run, report changes, drop the ended.
async fn round(ecs: &Ecs, pending: &mut Vec<String>, last: &mut HashMap<String, RunStatus>) -> Result<Vec<RunStatus>> {
    let seen = describe(ecs, pending).await?;
    let mut changes = Vec::new();
    for run_id in pending.iter() {
        let Some((s, td)) = seen.get(run_id) else { continue };
        let def = definition::get(ecs, td.as_deref()).await;
        let change = next(last.get(run_id), s, def.as_ref().map(|d| d.essential.as_slice()))
            .map_err(|e| ProviderError::not_found(format!("run {run_id}: {}", e.message())))?;
        if let Some(mut status) = change {
            status.run_id = run_id.clone();
            if let Some(def) = &def {
                crate::outputs::attach(ecs, def, &mut status).await;
            }
            last.insert(run_id.clone(), status.clone());
            changes.push(status);
        }
    }
    pending.retain(|id| {
        last.get(id).is_none_or(|s| !s.state.is_terminal() && s.state != polysync_provider_api::RunState::Unknown)
    });
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use polysync_provider_api::RunState;

    use super::*;

    fn view(last: &str, stop_code: Option<&str>) -> Seen {
        Seen::Task(Box::new(TaskView {
            task_arn: "arn:aws:ecs:r:1:task/c/t1".into(),
            last_status: last.into(),
            stop_code: stop_code.map(str::to_owned),
            containers: vec![crate::status::ContainerView {
                name: "main".into(),
                exit_code: Some(0),
                ..Default::default()
            }],
            ..Default::default()
        }))
    }

    #[test]
    fn missing_after_stopped_keeps_the_recorded_end() {
        let stopped = next(None, &view("STOPPED", Some("EssentialContainerExited")), None).unwrap().unwrap();
        assert_eq!(stopped.state, RunState::Success);
        assert_eq!(next(Some(&stopped), &Seen::Missing, None).unwrap(), None);
    }

    #[test]
    fn missing_while_running_becomes_unknown_and_never_seen_is_not_found() {
        let running = next(None, &view("RUNNING", None), None).unwrap().unwrap();
        let gone = next(Some(&running), &Seen::Missing, None).unwrap().unwrap();
        assert_eq!(gone.state, RunState::Unknown);
        assert_eq!(next(None, &Seen::Missing, None).unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn unchanged_is_not_reported_again() {
        let running = next(None, &view("RUNNING", None), None).unwrap().unwrap();
        assert_eq!(next(Some(&running), &view("RUNNING", None), None).unwrap(), None);
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
        assert_eq!(calls, THROTTLE_RETRIES + 1);
    }
}
