//! Container logs of a run: every pod, init containers first, then the
//! others; with `follow`, new output as it is written until each container
//! ends (waiting for containers that have not started yet).

use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use polysync_provider_api::{LogChunk, LogRequest, ProviderError, ResultStream};

use crate::KubeJobs;
use crate::channel::{self, Sink};
use crate::error::{code, from_kube};
use crate::run::{get_job, not_found, pods_of};
use crate::status::job_state;

fn containers(pod: &Pod, only: Option<&str>) -> Vec<String> {
    let spec = pod.spec.as_ref();
    let init = spec.and_then(|s| s.init_containers.as_ref()).into_iter().flatten().map(|c| c.name.clone());
    let main = spec.into_iter().flat_map(|s| s.containers.iter()).map(|c| c.name.clone());
    init.chain(main).filter(|c| only.is_none_or(|o| o == c)).collect()
}

fn params(request: &LogRequest, container: &str, follow: bool) -> LogParams {
    LogParams {
        container: Some(container.to_owned()),
        follow,
        tail_lines: request.tail_lines.map(|t| t as i64),
        limit_bytes: request.limit_bytes.map(|b| b as i64),
        ..LogParams::default()
    }
}

pub(crate) async fn logs(k: &KubeJobs, request: LogRequest) -> Result<ResultStream<LogChunk>, ProviderError> {
    let client = k.client().await?;
    let run_id = request.run_id.clone();
    let pods = pods_of(k, &client, &run_id).await?;
    if pods.is_empty() && get_job(k, &client, &run_id).await?.is_none() {
        return Err(not_found(&run_id, &k.namespace));
    }
    if let Some(only) = request.container.as_deref()
        && !pods.is_empty()
        && pods.iter().all(|p| containers(p, Some(only)).is_empty())
    {
        return Err(ProviderError::not_found(format!("run {run_id} has no container named {only}")));
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), &k.namespace);
    let k = k.clone();
    Ok(channel::stream(move |sink| async move {
        let mut done = std::collections::HashSet::new();
        loop {
            let pods = match pods_of(&k, &client, &run_id).await {
                Ok(p) => p,
                Err(e) => return sink.fail(e).await,
            };
            for pod in &pods {
                let name = pod.metadata.name.clone().unwrap_or_default();
                for container in containers(pod, request.container.as_deref()) {
                    let key = (name.clone(), container.clone());
                    if done.contains(&key) {
                        continue;
                    }
                    let Some(lines) = pump(&api, &name, &container, &request, &sink).await else { return };
                    // A follow can end empty for a container that had not
                    // really started yet (its log opened a moment early):
                    // read it again on the next round, and read no later
                    // container first, so the order stays init first.
                    if lines == 0 && request.follow && !over(pod, &container) {
                        break;
                    }
                    done.insert(key);
                }
            }
            if !request.follow {
                return;
            }
            // Following: stop once the run is finished and every container was read.
            let finished = match get_job(&k, &client, &run_id).await {
                Ok(Some(job)) => job_state(&job).0.is_terminal(),
                Ok(None) => true,
                Err(e) => return sink.fail(e).await,
            };
            let all_read = pods.iter().all(|p| {
                let name = p.metadata.name.clone().unwrap_or_default();
                containers(p, request.container.as_deref()).into_iter().all(|c| done.contains(&(name.clone(), c)))
            });
            if finished && all_read {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }))
}

/// Whether `container` of `pod` (as listed) has ended, or the pod has.
fn over(pod: &Pod, container: &str) -> bool {
    let Some(status) = pod.status.as_ref() else { return false };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return true;
    }
    let statuses = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    statuses.filter(|c| c.name == container).any(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
}

/// Stream one container's log into `sink`: how many lines, or `None` once
/// the stream is gone.
async fn pump(
    api: &Api<Pod>,
    pod: &str,
    container: &str,
    request: &LogRequest,
    sink: &Sink<LogChunk>,
) -> Option<usize> {
    let what = format!("reading the log of {pod}/{container}");
    let chunk = |text: String| LogChunk { unit: pod.to_owned(), container: container.to_owned(), text };
    if !request.follow {
        return match api.logs(pod, &params(request, container, false)).await {
            Ok(text) => {
                let mut n = 0;
                for line in text.split_inclusive('\n') {
                    if !sink.send(chunk(line.to_owned())).await {
                        return None;
                    }
                    n += 1;
                }
                Some(n)
            }
            // Not started (or never will): nothing to show.
            Err(e) if code(&e) == Some(400) => Some(0),
            Err(e) => {
                sink.fail(from_kube(e, &what)).await;
                None
            }
        };
    }
    loop {
        match api.log_stream(pod, &params(request, container, true)).await {
            Ok(reader) => {
                let mut lines = reader.lines();
                let mut n = 0;
                while let Some(line) = lines.next().await {
                    match line {
                        Ok(line) => {
                            if !sink.send(chunk(line + "\n")).await {
                                return None;
                            }
                            n += 1;
                        }
                        Err(e) => {
                            tracing::debug!("{what}: {e}");
                            break;
                        }
                    }
                }
                return Some(n);
            }
            // Waiting to start: try again shortly, unless the pod is done.
            Err(e) if code(&e) == Some(400) => {
                // `list` by name, not `get`: the Role needs one verb fewer.
                let by_name = kube::api::ListParams::default().fields(&format!("metadata.name={pod}"));
                let finished = match api.list(&by_name).await {
                    Ok(list) => list.items.into_iter().next().is_none_or(|p| {
                        matches!(p.status.and_then(|s| s.phase).as_deref(), Some("Succeeded" | "Failed"))
                    }),
                    // A refusal is the caller's to fix (RBAC); anything else
                    // is retried with the log request.
                    Err(e) if matches!(code(&e), Some(401 | 403)) => {
                        sink.fail(from_kube(e, &what)).await;
                        return None;
                    }
                    Err(_) => false,
                };
                if finished {
                    return Some(0);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                sink.fail(from_kube(e, &what)).await;
                return None;
            }
        }
    }
}
