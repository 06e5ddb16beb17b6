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
                    if !done.insert((name.clone(), container.clone())) {
                        continue;
                    }
                    if !pump(&api, &name, &container, &request, &sink).await {
                        return;
                    }
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

/// Stream one container's log into `sink`; false once the stream is gone.
async fn pump(api: &Api<Pod>, pod: &str, container: &str, request: &LogRequest, sink: &Sink<LogChunk>) -> bool {
    let what = format!("reading the log of {pod}/{container}");
    let chunk = |text: String| LogChunk { unit: pod.to_owned(), container: container.to_owned(), text };
    if !request.follow {
        return match api.logs(pod, &params(request, container, false)).await {
            Ok(text) => {
                for line in text.split_inclusive('\n') {
                    if !sink.send(chunk(line.to_owned())).await {
                        return false;
                    }
                }
                true
            }
            // Not started (or never will): nothing to show.
            Err(e) if code(&e) == Some(400) => true,
            Err(e) => {
                sink.fail(from_kube(e, &what)).await;
                false
            }
        };
    }
    loop {
        match api.log_stream(pod, &params(request, container, true)).await {
            Ok(reader) => {
                let mut lines = reader.lines();
                while let Some(line) = lines.next().await {
                    match line {
                        Ok(line) => {
                            if !sink.send(chunk(line + "\n")).await {
                                return false;
                            }
                        }
                        Err(e) => {
                            tracing::debug!("{what}: {e}");
                            break;
                        }
                    }
                }
                return true;
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
                        return false;
                    }
                    Err(_) => false,
                };
                if finished {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                sink.fail(from_kube(e, &what)).await;
                return false;
            }
        }
    }
}
