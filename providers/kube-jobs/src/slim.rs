//! The parts of Jobs and pods the informer reads, decoded from its watch
//! events with everything else skipped.
//!
//! Why: an informer decodes every event of every managed Job and pod of
//! the namespace, and each `serve` replica runs one. A pod's spec
//! (containers, env, volumes) and every object's `managedFields` are most
//! of its JSON, and a run's status reads none of them; decoding them into
//! k8s-openapi's types built every string and map only to drop it. Here the
//! JSON parser steps over them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::core::{ApiResource, DynamicResourceScope, Resource};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

/// An object: the metadata fields a status needs, its spec as `S`, its
/// status as `T`.
#[derive(Clone, Debug, Deserialize)]
pub struct Slim<S, T> {
    #[serde(deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    pub spec: Option<S>,
    pub status: Option<T>,
}

/// What a Job's state reads from its spec.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimJobSpec {
    suspend: Option<bool>,
    managed_by: Option<String>,
    completion_mode: Option<String>,
    completions: Option<i32>,
}

/// A Job as the informer decodes it.
pub type SlimJob = Slim<SlimJobSpec, JobStatus>;
/// A pod as the informer decodes it: no spec.
pub type SlimPod = Slim<IgnoredAny, PodStatus>;

impl SlimJob {
    /// The API resource: Jobs of `batch/v1`.
    pub fn resource() -> ApiResource {
        ApiResource::erase::<Job>(&())
    }

    /// As a k8s-openapi Job, with only the decoded fields set.
    pub fn into_job(self) -> Job {
        let spec = self.spec.map(|s| JobSpec {
            suspend: s.suspend,
            managed_by: s.managed_by,
            completion_mode: s.completion_mode,
            completions: s.completions,
            ..JobSpec::default()
        });
        Job { metadata: self.metadata, spec, status: self.status }
    }
}

impl SlimPod {
    /// The API resource: pods of `v1`.
    pub fn resource() -> ApiResource {
        ApiResource::erase::<Pod>(&())
    }

    /// As a k8s-openapi Pod, with only the decoded fields set.
    pub fn into_pod(self) -> Pod {
        Pod { metadata: self.metadata, spec: None, status: self.status }
    }
}

/// The metadata fields kept: identity, labels and annotations (queues,
/// declared outputs, the run label), deletion, and the resourceVersion the
/// watcher resumes from.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    deletion_timestamp: Option<Time>,
}

fn meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Meta::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        labels: m.labels,
        annotations: m.annotations,
        deletion_timestamp: m.deletion_timestamp,
        ..ObjectMeta::default()
    })
}

impl<S, T> Resource for Slim<S, T> {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::status::{JobFacts, unit};

    /// The slim decode gives the same status as the whole object.
    #[test]
    fn a_slim_job_and_pod_read_as_the_whole_ones() {
        let job = json!({
            "metadata": {"name": "r", "namespace": "ns", "resourceVersion": "7", "uid": "u",
                "labels": {"kueue.x-k8s.io/queue-name": "q"}, "annotations": {"polysync.io/outputs": "rows"},
                "managedFields": [{"manager": "m", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"completions": 3, "completionMode": "Indexed", "managedBy": "kueue.x-k8s.io/multikueue",
                "template": {"spec": {"containers": [{"name": "main", "image": "busybox", "env": [{"name": "A", "value": "1"}]}]}}},
            "status": {"active": 1, "startTime": "2026-01-01T00:00:00Z",
                "conditions": [{"type": "Suspended", "status": "True", "reason": "JobSuspended"}]},
        });
        let slim: SlimJob = serde_json::from_value(job.clone()).unwrap();
        assert_eq!(slim.metadata.resource_version.as_deref(), Some("7"));
        let whole: Job = serde_json::from_value(job).unwrap();
        assert_eq!(JobFacts::from(&slim.into_job()), JobFacts::from(&whole));

        let pod = json!({
            "metadata": {"name": "r-x", "labels": {"polysync.io/run": "r"}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "",
                "ready": true, "restartCount": 2, "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}]},
        });
        let slim: SlimPod = serde_json::from_value(pod.clone()).unwrap();
        let whole: Pod = serde_json::from_value(pod).unwrap();
        assert_eq!(unit(&slim.into_pod()), unit(&whole));
    }
}
