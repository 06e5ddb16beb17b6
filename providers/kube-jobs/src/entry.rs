//! Jobs and CronJobs as catalog entries.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use polysync_provider_api::{CatalogEntry, Direction, EntryKind, FallbackAttributes, Parameter};

use crate::labels::{MANAGED_BY, MANAGED_BY_VALUE};
use crate::naming::fnv64;

/// External id prefix of CronJob entries.
pub const CRONJOB_PREFIX: &str = "cronjob/";

/// Whether discovery must skip this Job: created by polysync, or by a CronJob.
pub fn is_skipped(job: &Job) -> bool {
    let meta = &job.metadata;
    let managed = meta.labels.as_ref().and_then(|l| l.get(MANAGED_BY)).is_some_and(|v| v == MANAGED_BY_VALUE);
    let cron_owned = meta.owner_references.as_ref().is_some_and(|refs| refs.iter().any(|r| r.kind == "CronJob"));
    managed || cron_owned
}

/// Parameters: container[0]'s env vars with a literal value. `valueFrom`
/// entries stay in the spec but are not parameters.
///
/// Declared outputs (`polysync.io/outputs`) follow as `Output` parameters;
/// one that is also a literal env var is that input, made `InputOutput`.
fn parameters(template: &PodTemplateSpec, outputs: &[String]) -> Vec<Parameter> {
    let mut seen = std::collections::HashSet::new();
    let mut parameters: Vec<Parameter> = template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.env.as_ref())
        .into_iter()
        .flatten()
        .filter(|e| e.value_from.is_none())
        .filter(|e| seen.insert(e.name.clone()))
        .map(|e| Parameter::input(e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    for name in outputs {
        match parameters.iter_mut().find(|p| &p.name == name) {
            Some(p) => p.direction = Direction::InputOutput,
            None => parameters.push(Parameter::output(name.clone())),
        }
    }
    parameters
}

fn fallback(template: &PodTemplateSpec, stored: serde_json::Value) -> FallbackAttributes {
    let container = template.spec.as_ref().and_then(|s| s.containers.first());
    FallbackAttributes {
        template: Some(stored),
        image: container.and_then(|c| c.image.clone()),
        command: container.and_then(|c| c.command.clone()).unwrap_or_default(),
        args: container.and_then(|c| c.args.clone()).unwrap_or_default(),
        env: container
            .and_then(|c| c.env.as_ref())
            .into_iter()
            .flatten()
            .filter(|e| e.value_from.is_none())
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect(),
    }
}

/// A hash of what a run is made from: the pod template's spec and the Job
/// fields that shape execution. Labels, status and server metadata do not
/// count, so a finished source keeps its fingerprint.
fn fingerprint(template: &PodTemplateSpec, shape: serde_json::Value) -> String {
    let spec = serde_json::to_vec(&(template.spec.as_ref(), shape)).unwrap_or_default();
    format!("{:016x}", fnv64(&spec))
}

/// What an entry is made from: the pod template, the Job fields that shape
/// execution (for the fingerprint), and the whole template stored for
/// rebuilds.
struct Made<'a> {
    template: &'a PodTemplateSpec,
    outputs: Vec<String>,
    shape: serde_json::Value,
    stored: serde_json::Value,
}

fn entry(
    external_id: String,
    kind: EntryKind,
    name: &str,
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
    made: Made<'_>,
) -> CatalogEntry {
    let Made { template, outputs, shape, stored } = made;
    CatalogEntry {
        external_id,
        kind,
        display_name: name.to_owned(),
        namespace: Some(namespace.to_owned()),
        cluster: None,
        parameters: parameters(template, &outputs),
        fallback: fallback(template, stored),
        fingerprint: fingerprint(template, shape),
        labels: labels.cloned().unwrap_or_default(),
    }
}

/// The entry of a Job, unless discovery skips it.
pub fn from_job(job: &Job, namespace: &str) -> Option<CatalogEntry> {
    if is_skipped(job) {
        return None;
    }
    let name = job.metadata.name.as_deref()?;
    let spec = job.spec.as_ref()?;
    let shape = serde_json::json!([
        spec.backoff_limit,
        spec.completions,
        spec.parallelism,
        spec.active_deadline_seconds,
        spec.completion_mode
    ]);
    let stored = crate::spec::stored_template(&job.metadata, spec);
    Some(entry(
        name.to_owned(),
        EntryKind::Job,
        name,
        namespace,
        job.metadata.labels.as_ref(),
        Made { template: &spec.template, outputs: crate::labels::declared(&job.metadata), shape, stored },
    ))
}

/// The entry of a CronJob (`cronjob/<name>`); runs use its `jobTemplate`.
pub fn from_cronjob(cronjob: &CronJob, namespace: &str) -> Option<CatalogEntry> {
    let name = cronjob.metadata.name.as_deref()?;
    let job_spec = cronjob.spec.job_template.spec.as_ref()?;
    let shape = serde_json::json!([
        job_spec.backoff_limit,
        job_spec.completions,
        job_spec.parallelism,
        job_spec.active_deadline_seconds
    ]);
    // Outputs declared on the template or on the CronJob itself; the stored
    // template carries the declaration so a rebuilt run has it too.
    let mut template_meta = cronjob.spec.job_template.metadata.clone().unwrap_or_default();
    let mut probe = Job { metadata: template_meta.clone(), ..Job::default() };
    crate::spec::inherit_outputs(&mut probe, &cronjob.metadata);
    template_meta.annotations = probe.metadata.annotations;
    let outputs = crate::labels::declared(&template_meta);
    let stored = crate::spec::stored_template(&template_meta, job_spec);
    Some(entry(
        format!("{CRONJOB_PREFIX}{name}"),
        EntryKind::CronJob,
        name,
        namespace,
        cronjob.metadata.labels.as_ref(),
        Made { template: &job_spec.template, outputs, shape, stored },
    ))
}
