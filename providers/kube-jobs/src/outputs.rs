//! A finished run's outputs (API 1.3).
//!
//! Read from container[0]'s `state.terminated.message` (the file at its
//! `terminationMessagePath`, whose last 4 KiB the kubelet keeps) as a JSON
//! object or `NAME=VALUE` lines. When the Job declares outputs
//! (`polysync.io/outputs`, copied from its source) and the message did not
//! give them all, container[0]'s log is read for `::polysync-output` lines;
//! a value in the message wins over a marker. Logs are only read for Jobs
//! that declare outputs: reading every run's log to find none would cost a
//! request per pod on clusters with thousands of runs.
//!
//! Which pods count: the one that succeeded (the last one if several),
//! else the last that ended. An Indexed Job with more than one completion
//! reports each index's outputs as `NAME.INDEX` (`ROWS.0`, `ROWS.1`): the
//! indexes are separate pieces of work and no rule to merge them would be
//! right for every job.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use polysync_provider_api::outputs::{parse_markers, parse_pod_message};

use crate::status::JobFacts;

/// The index annotation the job controller puts on an Indexed Job's pods.
pub const INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// How much of a container's log is scanned for markers.
const LOG_LIMIT: i64 = 4 << 20;

fn index_of(pod: &Pod) -> Option<String> {
    let meta = &pod.metadata;
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(INDEX))
        .or_else(|| meta.labels.as_ref().and_then(|l| l.get(INDEX)))
        .cloned()
}

/// container[0]'s name: the spec's first container (a kubelet lists
/// container statuses by name, not in spec order).
fn main_container(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.containers.first().map(|c| c.name.as_str())
}

/// The pod's containers, init containers included: they share the 12 KiB a
/// kubelet keeps of termination messages.
fn containers(pod: &Pod) -> usize {
    pod.spec.as_ref().map_or(1, |s| s.containers.len() + s.init_containers.as_ref().map_or(0, Vec::len))
}

fn terminated(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStateTerminated> {
    let name = main_container(pod)?;
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.iter().find(|c| c.name == name)?;
    status.state.as_ref()?.terminated.as_ref()
}

/// The pods whose outputs count, each with its index when per index.
fn chosen(indexed: bool, pods: &[Pod]) -> Vec<(Option<String>, Pod)> {
    let mut groups: BTreeMap<Option<String>, Vec<&Pod>> = BTreeMap::new();
    for pod in pods.iter().filter(|p| terminated(p).is_some()) {
        groups.entry(if indexed { index_of(pod) } else { None }).or_default().push(pod);
    }
    groups
        .into_iter()
        .filter_map(|(index, mut pods)| {
            let finished = |p: &&Pod| terminated(p).and_then(|t| t.finished_at.clone());
            pods.sort_by_key(|p| (finished(p), p.metadata.name.clone()));
            let succeeded = pods.iter().rev().find(|p| terminated(p).is_some_and(|t| t.exit_code == 0));
            succeeded.or(pods.last()).map(|p| (index, (*p).clone()))
        })
        .collect()
}

/// The outputs of a finished run and why some could not be read.
pub async fn read(api: &Api<Pod>, job: &JobFacts, pods: &[Pod]) -> (BTreeMap<String, String>, Option<String>) {
    let declared = &job.outputs;
    let mut outputs = BTreeMap::new();
    let mut errors = Vec::new();
    for (index, pod) in chosen(job.per_index, pods) {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let container = main_container(&pod).unwrap_or_default().to_owned();
        let message = terminated(&pod).and_then(|t| t.message.clone()).unwrap_or_default();
        let (mut found, error) = parse_pod_message(&message, containers(&pod));
        if let Some(e) = error {
            errors.push(format!("pod {pod_name}, container {container}: {e}"));
        }
        if declared.iter().any(|d| !found.contains_key(d)) {
            let params =
                LogParams { container: Some(container.clone()), limit_bytes: Some(LOG_LIMIT), ..LogParams::default() };
            match api.logs(&pod_name, &params).await {
                Ok(log) => {
                    for (name, value) in parse_markers(&log) {
                        found.entry(name).or_insert(value);
                    }
                }
                Err(e) => errors.push(format!(
                    "pod {pod_name}: reading container {container}'s log for output markers failed: {e}"
                )),
            }
        }
        for (name, value) in found {
            let key = match &index {
                Some(i) => format!("{name}.{i}"),
                None => name,
            };
            outputs.insert(key, value);
        }
    }
    let missing: Vec<&str> = declared
        .iter()
        .filter(|d| {
            !outputs.contains_key(*d)
                && !outputs.keys().any(|k| k.strip_prefix(d.as_str()).is_some_and(|r| r.starts_with('.')))
        })
        .map(String::as_str)
        .collect();
    let job_ok = job.state().0 == polysync_provider_api::RunState::Success;
    if !missing.is_empty() && job_ok && !pods.is_empty() {
        errors.push(format!(
            "declared outputs not written: {} (write them to the termination message or as ::polysync-output lines)",
            missing.join(", ")
        ));
    }
    (outputs, (!errors.is_empty()).then(|| errors.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, index: Option<&str>, exit: i32, finished: &str, message: &str) -> Pod {
        let annotations = index.map(|i| json!({INDEX: i})).unwrap_or(json!({}));
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"containers": [{"name": "main"}, {"name": "a-sidecar"}]},
            "status": {"containerStatuses": [
                {"name": "a-sidecar", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "message": "SIDE=1"}}},
                {"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": exit, "finishedAt": finished, "message": message}}}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn the_succeeded_pod_of_container_zero_counts() {
        let pods = [
            pod("j-b", None, 1, "2026-01-01T00:00:02Z", "ROWS=0"),
            pod("j-a", None, 0, "2026-01-01T00:00:01Z", "ROWS=42"),
        ];
        let picked = chosen(false, &pods);
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].1.metadata.name.as_deref(), Some("j-a"));
    }

    #[test]
    fn indexed_jobs_report_per_index() {
        let pods = [
            pod("j-0", Some("0"), 0, "2026-01-01T00:00:01Z", "R=a"),
            pod("j-1", Some("1"), 0, "2026-01-01T00:00:01Z", "R=b"),
        ];
        let picked = chosen(true, &pods);
        assert_eq!(picked.iter().map(|(i, _)| i.clone().unwrap()).collect::<Vec<_>>(), ["0", "1"]);
    }
}
