//! Logs from CloudWatch Logs, for containers that use the `awslogs` driver:
//! group, region and stream prefix come from the task definition, the
//! stream is `<prefix>/<container>/<task id>`. Containers in definition
//! order; `follow` keeps reading until the task has stopped and its last
//! events are read. A run started again after Spot interruptions has one
//! task per attempt: their logs come in attempt order, each task a unit.

use std::collections::{HashSet, VecDeque};

use futures::StreamExt;
use polysync_aws::from_sdk;
use polysync_provider_api::{ErrorKind, LogChunk, LogRequest, ProviderError, Result, ResultStream};

use crate::Ecs;
use crate::attempts;
use crate::client::{Seen, logs_client};
use crate::status::task_id;

/// Where one container's log events are.
#[derive(Debug, Clone)]
struct Source {
    container: String,
    group: String,
    stream: String,
    region: Option<String>,
    /// The task whose stream this is (a run has one per attempt).
    task: String,
}

pub(crate) async fn logs(ecs: &Ecs, request: LogRequest) -> Result<ResultStream<LogChunk>> {
    let run_id = request.run_id.clone();
    let seen = crate::client::describe(ecs, std::slice::from_ref(&run_id)).await?;
    let (Seen::Task(first), Some(td_arn)) = seen.get(&run_id).cloned().unwrap_or((Seen::Missing, None)) else {
        return Err(ProviderError::not_found(format!("run {run_id}: ECS has no such task in this cluster")));
    };
    let td = ecs
        .client()
        .await?
        .describe_task_definition()
        .task_definition(&td_arn)
        .send()
        .await
        .map_err(|e| from_sdk(e, "ecs:DescribeTaskDefinition", &format!("reading the log settings of {td_arn}")))?
        .task_definition
        .ok_or_else(|| ProviderError::internal("no task definition in the answer"))?;
    let mut logged = Vec::new();
    let mut without = Vec::new();
    for c in td.container_definitions() {
        let name = c.name().unwrap_or_default().to_owned();
        if request.container.as_ref().is_some_and(|want| want != &name) {
            continue;
        }
        match crate::definition::AwsLogs::of(c) {
            Some(l) => logged.push((name, l)),
            None => without.push(name),
        }
    }
    if let Some(want) = &request.container
        && logged.is_empty()
        && without.is_empty()
    {
        return Err(ProviderError::not_found(format!("run {run_id} has no container {want:?}")));
    }
    if logged.is_empty() {
        return Err(ProviderError::new(
            ErrorKind::Unsupported,
            format!(
                "run {run_id}: container(s) {} do not send logs to CloudWatch Logs with a stream prefix; set logConfiguration {{logDriver: awslogs, options: awslogs-group, awslogs-region, awslogs-stream-prefix}} in the task definition",
                without.join(", ")
            ),
        ));
    }
    // A run restarted after Spot interruptions is several tasks of one
    // definition: each attempt's streams in turn, each task its own unit.
    let mut tasks: VecDeque<String> = VecDeque::from([first.task_arn.clone()]);
    tasks.extend(attempts::further(ecs, &run_id, &first).await?.into_iter().map(|v| v.task_arn));
    let read_so_far = tasks.iter().cloned().collect();
    let state = Tasks { ecs: ecs.clone(), request, logged, tasks, read_so_far, failed: false };
    let stream = futures::stream::unfold(state, |mut state| async move {
        if state.failed {
            return None;
        }
        let task = match state.tasks.pop_front() {
            Some(task) => task,
            None => match state.next_attempt().await {
                Ok(Some(task)) => task,
                Ok(None) => return None,
                // Said once; the stream ends there.
                Err(e) => {
                    state.failed = true;
                    return Some((futures::stream::iter([Err(e)]).boxed(), state));
                }
            },
        };
        let id = task_id(&task).to_owned();
        let sources: Vec<Source> = state
            .logged
            .iter()
            .map(|(container, l)| Source {
                container: container.clone(),
                group: l.group.clone(),
                stream: l.stream(&id),
                region: l.region.clone(),
                task: task.clone(),
            })
            .collect();
        let (ecs, request) = (state.ecs.clone(), state.request.clone());
        let chunks = futures::stream::iter(sources)
            .then(move |source| {
                let (ecs, request, id) = (ecs.clone(), request.clone(), id.clone());
                async move { read(ecs, source, request, id).await }
            })
            .flatten()
            .boxed();
        Some((chunks, state))
    })
    .flatten();
    Ok(stream.boxed())
}

/// The tasks of one run whose logs are still to be read.
struct Tasks {
    ecs: Ecs,
    request: LogRequest,
    /// The containers that log to CloudWatch, with where.
    logged: Vec<(String, crate::definition::AwsLogs)>,
    tasks: VecDeque<String>,
    read_so_far: HashSet<String>,
    /// Looking for the next attempt failed: nothing more is read.
    failed: bool,
}

impl Tasks {
    /// When following, the attempt started after the tasks read so far
    /// (a Spot interruption while the logs were followed).
    async fn next_attempt(&mut self) -> Result<Option<String>> {
        if !self.request.follow || self.ecs.settings.retry_on_interruption == 0 {
            return Ok(None);
        }
        let current = crate::track::current(&self.ecs, &self.request.run_id).await?.current;
        Ok(self.read_so_far.insert(current.clone()).then_some(current))
    }
}

/// One container's events, as chunks of lines.
async fn read(ecs: Ecs, source: Source, request: LogRequest, unit: String) -> ResultStream<LogChunk> {
    let client = match logs_client(&ecs, source.region.as_deref()).await {
        Ok(c) => c,
        Err(e) => return futures::stream::iter([Err(e)]).boxed(),
    };
    let state = (client, ecs, source, request, unit, None::<String>, false, 0u64);
    futures::stream::unfold(state, |(client, ecs, source, request, unit, token, done, sent)| async move {
        if done {
            return None;
        }
        let mut call = client.get_log_events().log_group_name(&source.group).log_stream_name(&source.stream);
        call = match (&token, request.tail_lines) {
            (None, Some(n)) => call.start_from_head(false).limit(n.clamp(1, 10_000) as i32),
            _ => call.start_from_head(true).set_next_token(token.clone()),
        };
        let what = format!("reading log stream {} of group {}", source.stream, source.group);
        let page = match call.send().await {
            Ok(page) => page,
            Err(e) => {
                let err = from_sdk(e, "logs:GetLogEvents", &what);
                // No stream yet: the container has written nothing.
                if err.kind() == ErrorKind::NotFound && !request.follow {
                    return None;
                }
                if err.kind() != ErrorKind::NotFound {
                    return Some((Err(err), (client, ecs, source, request, unit, token, true, sent)));
                }
                tokio::time::sleep(ecs.poll_interval).await;
                return Some((Ok(None), (client, ecs, source, request, unit, token, false, sent)));
            }
        };
        let mut text: String = page.events().iter().filter_map(|e| e.message()).map(|m| format!("{m}\n")).collect();
        if let Some(limit) = request.limit_bytes {
            let room = limit.saturating_sub(sent) as usize;
            if text.len() > room {
                let mut cut = room;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
        }
        let sent = sent + text.len() as u64;
        let next = page.next_forward_token().map(str::to_owned);
        let at_end = next.is_some() && next == token || page.events().is_empty();
        let limited = request.limit_bytes.is_some_and(|l| sent >= l);
        let mut done = limited || (at_end && !request.follow) || (request.tail_lines.is_some() && !request.follow);
        if at_end && request.follow && !done {
            // Caught up: stop once this task has stopped (its last events
            // are in by then; a further attempt is read next), else wait.
            match crate::client::describe(&ecs, std::slice::from_ref(&source.task)).await {
                Ok(seen) => match seen.get(&source.task) {
                    Some((Seen::Task(view), _)) if view.last_status != "STOPPED" => {
                        tokio::time::sleep(ecs.poll_interval).await
                    }
                    _ => done = true,
                },
                Err(e) => return Some((Err(e), (client, ecs, source, request, unit, next, true, sent))),
            }
        }
        let chunk =
            (!text.is_empty()).then(|| LogChunk { unit: unit.clone(), container: source.container.clone(), text });
        Some((Ok(chunk), (client, ecs, source, request, unit, next, done, sent)))
    })
    .filter_map(|item: Result<Option<LogChunk>>| async move { item.transpose() })
    .boxed()
}
