//! Pod monitoring: the run's pods as ADDED / MODIFIED / DELETED events with
//! phase and container states, plus the cluster's own Events about them.

use std::collections::HashSet;

use futures::StreamExt;
use futures::future::Either;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use polysync_provider_api::{EventKind, EventsRequest, ProviderError, ResultStream, RunEvent};

use crate::KubeJobs;
use crate::channel;
use crate::labels::RUN;
use crate::run::{get_job, not_found, pods_of};
use crate::status::{job_state, unit};

fn pod_event(run_id: &str, kind: EventKind, pod: &Pod) -> RunEvent {
    let u = unit(pod);
    let waiting = u.containers.iter().find(|c| c.state == "waiting" && c.reason.is_some());
    RunEvent {
        run_id: run_id.to_owned(),
        kind,
        unit: u.name.clone(),
        phase: u.phase.clone(),
        reason: waiting.and_then(|c| c.reason.clone()),
        message: waiting.and_then(|c| c.message.clone()),
        containers: u.containers,
        at: Some(jiff::Timestamp::now().to_string()),
    }
}

fn platform_event(run_id: &str, e: &Event) -> RunEvent {
    RunEvent {
        run_id: run_id.to_owned(),
        kind: EventKind::Platform,
        unit: e.involved_object.name.clone().unwrap_or_default(),
        phase: e.type_.clone().unwrap_or_default(),
        reason: e.reason.clone(),
        message: e.message.clone(),
        containers: Vec::new(),
        at: e.last_timestamp.as_ref().map(|t| t.0.to_string()),
    }
}

pub(crate) async fn events(k: &KubeJobs, request: EventsRequest) -> Result<ResultStream<RunEvent>, ProviderError> {
    let client = k.client().await?;
    let run_id = request.run_id.clone();
    if get_job(k, &client, &run_id).await?.is_none() {
        return Err(not_found(&run_id, &k.namespace));
    }
    let ns = k.namespace.clone();
    if !request.follow {
        let pods = pods_of(k, &client, &run_id).await?;
        let mut out: Vec<RunEvent> = pods.iter().map(|p| pod_event(&run_id, EventKind::Added, p)).collect();
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        let names: HashSet<String> =
            pods.iter().filter_map(|p| p.metadata.name.clone()).chain([run_id.clone()]).collect();
        let what = format!("listing events of run {run_id}");
        for name in names {
            let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
            let list = k.retry.call(&what, || api.list(&params)).await?;
            out.extend(list.items.iter().map(|e| platform_event(&run_id, e)));
        }
        return Ok(futures::stream::iter(out.into_iter().map(Ok)).boxed());
    }
    let pods = watcher(
        Api::<Pod>::namespaced(client.clone(), &ns),
        watcher::Config::default().labels(&format!("{RUN}={run_id}")),
    )
    .default_backoff()
    .map(|e| e.map(Either::Left))
    .boxed();
    let job = watcher(
        Api::<Job>::namespaced(client, &ns),
        watcher::Config::default().fields(&format!("metadata.name={run_id}")),
    )
    .default_backoff()
    .map(|e| e.map(Either::Right))
    .boxed();
    let mut changes = futures::stream::select(pods, job);
    Ok(channel::stream(move |sink| async move {
        let mut seen: HashSet<String> = HashSet::new();
        let mut live: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
        let mut run_done = false;
        while let Some(change) = changes.next().await {
            let Ok(change) = change else { continue };
            match change {
                Either::Left(watcher::Event::InitApply(pod) | watcher::Event::Apply(pod)) => {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let kind = if seen.insert(name.clone()) { EventKind::Added } else { EventKind::Modified };
                    let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
                    live.insert(name, matches!(phase.as_str(), "Succeeded" | "Failed"));
                    if !sink.send(pod_event(&run_id, kind, &pod)).await {
                        return;
                    }
                }
                Either::Left(watcher::Event::Delete(pod)) => {
                    live.remove(pod.metadata.name.as_deref().unwrap_or_default());
                    if !sink.send(pod_event(&run_id, EventKind::Deleted, &pod)).await {
                        return;
                    }
                }
                Either::Right(watcher::Event::InitApply(job) | watcher::Event::Apply(job)) => {
                    run_done = job_state(&job).0.is_terminal();
                }
                Either::Right(watcher::Event::Delete(_)) => run_done = true,
                _ => {}
            }
            if run_done && live.values().all(|finished| *finished) {
                return;
            }
        }
    }))
}
