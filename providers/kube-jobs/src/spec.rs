//! The spec of a run: a clone of the source with everything the server owns
//! stripped, unsuspended, parameters overlaid on container[0]'s env, and
//! polysync's labels; or, when the source is gone, a Job rebuilt from the
//! stored fallback attributes.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use polysync_provider_api::{FallbackAttributes, ProviderError, RunRequest};

use crate::labels::{
    FOREIGN_ANNOTATION_PREFIXES, IDEMPOTENCY_KEY, MANAGED_BY, MANAGED_BY_VALUE, RUN, SERVER_OWNED,
    SERVER_OWNED_ANNOTATIONS, SOURCE, SOURCE_KIND, is_foreign_label,
};

/// Image of a fallback run whose entry stored none.
pub const FALLBACK_IMAGE: &str = "busybox";

/// Reject what the cluster would reject anyway, before calling it.
pub fn validate(request: &RunRequest) -> Result<(), ProviderError> {
    if request.idempotency_key.trim().is_empty() {
        return Err(ProviderError::invalid_input("the idempotency key is empty; the host must give every run one"));
    }
    if let Some(bad) = request
        .parameters
        .keys()
        .find(|k| k.is_empty() || !k.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=' && b != b' '))
    {
        return Err(ProviderError::invalid_input(format!(
            "parameter name {bad:?} is not a valid environment variable name; use printable characters without spaces or '='"
        )));
    }
    Ok(())
}

/// Where a run's spec comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Job,
    CronJob,
}

impl SourceKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Job => "Job",
            Self::CronJob => "CronJob",
        }
    }
}

/// What identifies a run: its Job name and the labels it carries.
#[derive(Debug, Clone)]
pub struct RunIdentity<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub source: &'a str,
    pub kind: SourceKind,
    pub idempotency_key: &'a str,
}

fn strip_labels(labels: Option<BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut labels = labels.unwrap_or_default();
    for key in SERVER_OWNED {
        labels.remove(key);
    }
    labels.retain(|k, _| !is_foreign_label(k));
    labels
}

fn strip_annotations(annotations: &mut BTreeMap<String, String>) {
    for key in SERVER_OWNED_ANNOTATIONS {
        annotations.remove(key);
    }
    annotations.retain(|k, _| !FOREIGN_ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p)));
}

fn our_labels(id: &RunIdentity<'_>, labels: &mut BTreeMap<String, String>) {
    labels.insert(MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    labels.insert(RUN.into(), id.name.into());
    labels.insert(SOURCE.into(), id.source.into());
    labels.insert(SOURCE_KIND.into(), id.kind.as_str().into());
}

/// Only name, namespace, user labels and annotations survive; uid,
/// resourceVersion, creationTimestamp, generation, managedFields,
/// ownerReferences, finalizers and the rest are the server's.
fn fresh_metadata(source: &ObjectMeta, id: &RunIdentity<'_>) -> ObjectMeta {
    let mut labels = strip_labels(source.labels.clone());
    our_labels(id, &mut labels);
    let mut annotations = source.annotations.clone().unwrap_or_default();
    strip_annotations(&mut annotations);
    annotations.insert(IDEMPOTENCY_KEY.into(), id.idempotency_key.into());
    ObjectMeta {
        name: Some(id.name.to_owned()),
        namespace: Some(id.namespace.to_owned()),
        labels: Some(labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}

/// Replace by name, append new ones (in name order); a replaced variable
/// loses its `valueFrom`.
pub fn overlay_env(container: &mut Container, parameters: &BTreeMap<String, String>) {
    let env = container.env.get_or_insert_with(Vec::new);
    for (name, value) in parameters {
        match env.iter_mut().find(|e| &e.name == name) {
            Some(existing) => {
                existing.value = Some(value.clone());
                existing.value_from = None;
            }
            None => env.push(EnvVar { name: name.clone(), value: Some(value.clone()), value_from: None }),
        }
    }
}

fn prepare_spec(
    mut spec: JobSpec,
    id: &RunIdentity<'_>,
    parameters: &BTreeMap<String, String>,
) -> Result<JobSpec, ProviderError> {
    spec.selector = None;
    spec.manual_selector = None;
    spec.suspend = Some(false);
    let template = &mut spec.template;
    let mut meta = template.metadata.take().unwrap_or_default();
    let mut labels = strip_labels(meta.labels.take());
    our_labels(id, &mut labels);
    let annotations = meta.annotations.take().map(|mut a| {
        a.retain(|k, _| k != "batch.kubernetes.io/job-completion-index");
        strip_annotations(&mut a);
        a
    });
    template.metadata = Some(ObjectMeta { labels: Some(labels), annotations, ..ObjectMeta::default() });
    let container = template
        .spec
        .as_mut()
        .and_then(|s| s.containers.first_mut())
        .ok_or_else(|| ProviderError::invalid_input(format!("{} has no containers to run", id.source)))?;
    overlay_env(container, parameters);
    Ok(spec)
}

/// A run of a live Job.
pub fn from_job(
    source: &Job,
    id: &RunIdentity<'_>,
    parameters: &BTreeMap<String, String>,
) -> Result<Job, ProviderError> {
    let spec =
        source.spec.clone().ok_or_else(|| ProviderError::invalid_input(format!("Job {} has no spec", id.source)))?;
    Ok(queued(Job {
        metadata: fresh_metadata(&source.metadata, id),
        spec: Some(prepare_spec(spec, id, parameters)?),
        status: None,
    }))
}

/// A Job in a Kueue queue is created suspended, as Kueue's own webhook
/// would make it: Kueue resumes it when it admits the workload, and
/// polysync never resumes it behind Kueue's back.
fn queued(mut job: Job) -> Job {
    if crate::labels::kueue_queue(&job.metadata).is_some()
        && let Some(spec) = job.spec.as_mut()
    {
        spec.suspend = Some(true);
    }
    job
}

/// A run of a CronJob's `jobTemplate`.
pub fn from_template(
    template: &JobTemplateSpec,
    id: &RunIdentity<'_>,
    parameters: &BTreeMap<String, String>,
) -> Result<Job, ProviderError> {
    let spec = template
        .spec
        .clone()
        .ok_or_else(|| ProviderError::invalid_input(format!("CronJob {} has no jobTemplate.spec", id.source)))?;
    let meta = template.metadata.clone().unwrap_or_default();
    Ok(queued(Job {
        metadata: fresh_metadata(&meta, id),
        spec: Some(prepare_spec(spec, id, parameters)?),
        status: None,
    }))
}

/// A CronJob may declare its outputs on itself rather than on its
/// `jobTemplate`; the run carries the declaration either way.
pub fn inherit_outputs(job: &mut Job, cronjob: &ObjectMeta) {
    let key = polysync_provider_api::outputs::DECLARE;
    if let Some(value) = cronjob.annotations.as_ref().and_then(|a| a.get(key)) {
        job.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .entry(key.to_owned())
            .or_insert_with(|| value.clone());
    }
}

/// The Job spec stored at discovery, if the entry has one.
pub fn fallback_spec(fallback: &FallbackAttributes) -> Option<JobSpec> {
    let template = fallback.template.as_ref()?;
    serde_json::from_value(template.get("spec")?.clone()).ok()
}

/// What discovery stores of a source so a rerun can be rebuilt whole: the
/// Job's (or CronJob template's) labels, annotations and spec, minus what
/// the server owns.
pub fn stored_template(meta: &ObjectMeta, spec: &JobSpec) -> serde_json::Value {
    let mut spec = spec.clone();
    spec.selector = None;
    spec.manual_selector = None;
    if let Some(m) = spec.template.metadata.as_mut() {
        m.labels = Some(strip_labels(m.labels.take()));
    }
    let mut annotations = meta.annotations.clone().unwrap_or_default();
    strip_annotations(&mut annotations);
    serde_json::json!({
        "metadata": {"labels": strip_labels(meta.labels.clone()), "annotations": annotations},
        "spec": spec,
    })
}

/// A run rebuilt when the source no longer exists: from the template stored
/// at discovery, or — for entries that never had one — busybox with the
/// stored image, command, args and env.
pub fn from_fallback(
    fallback: &FallbackAttributes,
    id: &RunIdentity<'_>,
    parameters: &BTreeMap<String, String>,
) -> Result<Job, ProviderError> {
    if let Some(spec) = fallback_spec(fallback) {
        let meta: ObjectMeta = fallback
            .template
            .as_ref()
            .and_then(|t| serde_json::from_value(t.get("metadata").cloned().unwrap_or_default()).ok())
            .unwrap_or_default();
        return Ok(queued(Job {
            metadata: fresh_metadata(&meta, id),
            spec: Some(prepare_spec(spec, id, parameters)?),
            status: None,
        }));
    }
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let env: Vec<EnvVar> = fallback
        .env
        .iter()
        .map(|(k, v)| EnvVar { name: k.clone(), value: Some(v.clone()), value_from: None })
        .collect();
    let container = Container {
        name: "main".into(),
        image: Some(fallback.image.clone().filter(|i| !i.is_empty()).unwrap_or_else(|| FALLBACK_IMAGE.into())),
        command: non_empty(&fallback.command),
        args: non_empty(&fallback.args),
        env: (!env.is_empty()).then_some(env),
        ..Container::default()
    };
    let spec = JobSpec {
        template: PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![container],
                restart_policy: Some("Never".into()),
                ..PodSpec::default()
            }),
        },
        ..JobSpec::default()
    };
    Ok(Job {
        metadata: fresh_metadata(&ObjectMeta::default(), id),
        spec: Some(prepare_spec(spec, id, parameters)?),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A Job exactly as a live cluster returns it.
    fn live_job() -> Job {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": "nightly-report", "namespace": "prod", "uid": "1111", "resourceVersion": "42", "generation": 3,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"team": "reports", "controller-uid": "1111", "batch.kubernetes.io/controller-uid": "1111", "job-name": "nightly-report", "batch.kubernetes.io/job-name": "nightly-report"},
                "annotations": {"batch.kubernetes.io/job-tracking": "", "owner": "ops"},
                "managedFields": [{"manager": "kubectl"}],
                "ownerReferences": [{"apiVersion": "v1", "kind": "Thing", "name": "t", "uid": "9"}],
                "finalizers": ["example.com/keep"]
            },
            "spec": {
                "suspend": true, "backoffLimit": 2, "manualSelector": false,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "1111"}},
                "template": {
                    "metadata": {"labels": {"app": "r", "controller-uid": "1111", "batch.kubernetes.io/controller-uid": "1111", "job-name": "nightly-report", "batch.kubernetes.io/job-name": "nightly-report"}},
                    "spec": {"restartPolicy": "Never", "containers": [
                        {"name": "main", "image": "busybox", "env": [
                            {"name": "GREETING", "value": "hello"},
                            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
                        ]},
                        {"name": "side", "image": "busybox", "env": [{"name": "GREETING", "value": "untouched"}]}
                    ]}
                }
            },
            "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        }))
        .unwrap()
    }

    fn id() -> RunIdentity<'static> {
        RunIdentity {
            name: "nightly-report-abc",
            namespace: "prod",
            source: "nightly-report",
            kind: SourceKind::Job,
            idempotency_key: "k1",
        }
    }

    #[test]
    fn a_clone_carries_nothing_the_server_owns() {
        let params: BTreeMap<String, String> =
            [("GREETING".into(), "hi".into()), ("NEW".into(), "1".into()), ("SECRET".into(), "plain".into())].into();
        let job = from_job(&live_job(), &id(), &params).unwrap();
        let v = serde_json::to_value(&job).unwrap();
        let meta = &v["metadata"];
        for gone in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "ownerReferences",
            "finalizers",
        ] {
            assert!(meta.get(gone).is_none(), "{gone} survived: {meta}");
        }
        assert!(v.get("status").is_none());
        assert!(v["spec"].get("selector").is_none());
        assert!(v["spec"].get("manualSelector").is_none());
        assert_eq!(v["spec"]["suspend"], false);
        for labels in [&meta["labels"], &v["spec"]["template"]["metadata"]["labels"]] {
            for key in SERVER_OWNED {
                assert!(labels.get(key).is_none(), "{key} survived in {labels}");
            }
            assert_eq!(labels[MANAGED_BY], "polysync");
            assert_eq!(labels[RUN], "nightly-report-abc");
            assert_eq!(labels[SOURCE], "nightly-report");
        }
        assert_eq!(meta["labels"]["team"], "reports");
        assert_eq!(meta["annotations"], json!({"owner": "ops", IDEMPOTENCY_KEY: "k1"}));
        let env = &v["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(
            env,
            &json!([
                {"name": "GREETING", "value": "hi"},
                {"name": "SECRET", "value": "plain"},
                {"name": "NEW", "value": "1"}
            ])
        );
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][1]["env"][0]["value"], "untouched",
            "only container[0] is overlaid"
        );
    }

    #[test]
    fn fallback_runs_busybox_with_the_parameters() {
        let params: BTreeMap<String, String> = [("A".into(), "1".into())].into();
        let fb = FallbackAttributes {
            image: None,
            command: vec!["sh".into(), "-c".into()],
            args: vec!["echo $A $B".into()],
            env: [("A".to_owned(), "default".to_owned()), ("B".to_owned(), "kept".to_owned())].into(),
            template: None,
        };
        let job = from_fallback(&fb, &id(), &params).unwrap();
        let c = &job.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
        assert_eq!(c.image.as_deref(), Some("busybox"));
        assert_eq!(c.args.as_deref(), Some(&["echo $A $B".to_owned()][..]));
        let env: Vec<(&str, &str)> =
            c.env.as_ref().unwrap().iter().map(|e| (e.name.as_str(), e.value.as_deref().unwrap())).collect();
        assert_eq!(env, [("A", "1"), ("B", "kept")], "stored defaults, then the parameters");
    }

    #[test]
    fn bad_parameter_names_and_keys_are_rejected() {
        let mut req = RunRequest {
            external_id: "x".into(),
            parameters: BTreeMap::new(),
            idempotency_key: "k".into(),
            fallback: None,
        };
        assert!(validate(&req).is_ok());
        req.parameters.insert("A=B".into(), "x".into());
        assert!(validate(&req).is_err());
        req.parameters.clear();
        req.idempotency_key = " ".into();
        assert!(validate(&req).is_err());
    }
}
