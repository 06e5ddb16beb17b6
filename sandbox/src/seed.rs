//! Sample data: Jobs and CronJobs as a real cluster returns them, generated
//! N at a time (100,000 take a few seconds), or read from a YAML file.
//!
//! Generated Jobs are finished ones, like a cluster's history, complete
//! with everything a clone has to strip (uid, selector, controller-uid and
//! job-name labels in both spellings, managedFields, status). Each generated
//! CronJob also owns one finished Job, which discovery must skip.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::SandboxError;
use crate::resources::Kind;
use crate::store::{Key, Mutation, Store};
use crate::validation::{
    BATCH_CONTROLLER_UID, BATCH_JOB_NAME, CONTROLLER_UID, JOB_NAME, controller_ref, prepare_create,
};

/// What sample Job number `index` looks like: its team label, image and
/// container env (`BATCH_ID`, `GREETING`, `REGION`, every fifth
/// `SLEEP_SECONDS` as literals; `POD_NAME` from the downward API).
pub fn sample(index: usize) -> (&'static str, &'static str, Vec<Value>) {
    let team = ["payments", "search", "ledger", "reports"][index % 4];
    let image = ["busybox:1.36", "alpine:3.20", "python:3.12-slim"][index % 3];
    let region = ["eu-west-1", "us-east-1"][index % 2];
    let mut env = vec![
        json!({"name": "BATCH_ID", "value": format!("{index}")}),
        json!({"name": "GREETING", "value": "hello"}),
        json!({"name": "REGION", "value": region}),
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}),
    ];
    if index.is_multiple_of(5) {
        env.push(json!({"name": "SLEEP_SECONDS", "value": "2"}));
    }
    (team, image, env)
}

/// A finished Job named `name` in `namespace`, as a real cluster shows it.
pub fn finished_job(namespace: &str, name: &str, index: usize) -> Value {
    let uid = uuid::Uuid::new_v4().to_string();
    let (team, image, env) = sample(index);
    json!({
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "generation": 1,
            "labels": {"app.kubernetes.io/name": name, "team": team, BATCH_CONTROLLER_UID: uid, BATCH_JOB_NAME: name, CONTROLLER_UID: uid, JOB_NAME: name},
            "annotations": {"batch.kubernetes.io/job-tracking": ""},
            "managedFields": [{"manager": "kubectl-create", "operation": "Update", "apiVersion": "batch/v1", "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 6,
            "completionMode": "NonIndexed",
            "suspend": false,
            "podReplacementPolicy": "TerminatingOrFailed",
            "manualSelector": false,
            "selector": {"matchLabels": {BATCH_CONTROLLER_UID: uid}},
            "template": {
                "metadata": {"labels": {BATCH_CONTROLLER_UID: uid, BATCH_JOB_NAME: name, CONTROLLER_UID: uid, JOB_NAME: name}},
                "spec": {
                    "containers": [{
                        "name": "main",
                        "image": image,
                        "command": ["sh", "-c"],
                        "args": ["echo \"$GREETING from batch $BATCH_ID in $REGION\"; sleep ${SLEEP_SECONDS:-1}"],
                        "env": env,
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "imagePullPolicy": "IfNotPresent",
                    }],
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "securityContext": {},
                    "schedulerName": "default-scheduler",
                },
            },
        },
        "status": {
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": "2026-01-01T00:00:10Z", "lastTransitionTime": "2026-01-01T00:00:10Z"},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": "2026-01-01T00:00:10Z", "lastTransitionTime": "2026-01-01T00:00:10Z"},
            ],
            "startTime": "2026-01-01T00:00:00Z",
            "completionTime": "2026-01-01T00:00:10Z",
            "succeeded": 1,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        },
    })
}

/// A daily CronJob and one finished Job it owns.
fn cronjob_with_history(namespace: &str, index: usize) -> (Value, Value) {
    let name = format!("nightly-{index:03}");
    let uid = uuid::Uuid::new_v4().to_string();
    let mut cronjob = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "labels": {"team": "reports"}},
        "spec": {
            "schedule": "0 3 * * *",
            "concurrencyPolicy": "Forbid",
            "suspend": false,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {"spec": {"backoffLimit": 2, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "report", "image": "busybox:1.36", "command": ["sh", "-c", "echo building report for $REPORT_DATE"], "env": [{"name": "REPORT_DATE", "value": "today"}]}],
            }}}},
        },
        "status": {},
    });
    let mut job = finished_job(namespace, &format!("{name}-29000000"), index);
    cronjob["kind"] = json!("CronJob");
    job["metadata"]["ownerReferences"] = json!([controller_ref(&cronjob)]);
    (cronjob, job)
}

/// Generate `jobs` finished Jobs and `cronjobs` CronJobs in `namespace`.
pub fn generate(store: &Store, namespace: &str, jobs: usize, cronjobs: usize) {
    let width = jobs.to_string().len().max(5);
    store.bulk_insert(Kind::Job, (0..jobs).map(|i| finished_job(namespace, &format!("batch-{i:0width$}"), i)));
    let (crons, owned): (Vec<_>, Vec<_>) = (0..cronjobs).map(|i| cronjob_with_history(namespace, i)).unzip();
    store.bulk_insert(Kind::CronJob, crons);
    store.bulk_insert(Kind::Job, owned);
}

#[derive(Deserialize)]
struct Doc {
    kind: Option<String>,
}

/// Create every object of a (multi-document) YAML file through the API's
/// own defaulting and validation; a Job that carries a `status` keeps it
/// (a finished Job of the past), any other Job runs.
pub fn load_file(store: &Store, path: &Path, default_namespace: &str) -> Result<usize, SandboxError> {
    let seed_error = |message: String| SandboxError::Seed { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|e| seed_error(e.to_string()))?;
    let mut created = 0;
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let mut value = Value::deserialize(doc).map_err(|e| seed_error(format!("document {}: {e}", i + 1)))?;
        if value.is_null() {
            continue;
        }
        let kind_name = serde_json::from_value::<Doc>(value.clone()).ok().and_then(|d| d.kind).unwrap_or_default();
        let kind = Kind::ALL.into_iter().find(|k| k.kind() == kind_name).ok_or_else(|| {
            seed_error(format!("document {}: kind {kind_name:?} is not served by the sandbox", i + 1))
        })?;
        let status = value.get("status").cloned();
        let ns = value["metadata"]["namespace"].as_str().unwrap_or(default_namespace).to_owned();
        if kind.namespaced() {
            ensure_namespace(store, &ns);
        }
        prepare_create(kind, kind.namespaced().then_some(ns.as_str()), &mut value)
            .map_err(|e| seed_error(format!("document {}: {}", i + 1, e.message)))?;
        let object = store.create(kind, value).map_err(|e| seed_error(format!("document {}: {}", i + 1, e.message)))?;
        if let (Some(status), Kind::Job | Kind::CronJob) = (status, kind) {
            let _ = store.mutate(kind, &Key::of(&object), |o| {
                o["status"] = status;
                Ok(Mutation::Changed)
            });
        }
        created += 1;
    }
    Ok(created)
}

/// Create a namespace if it does not exist.
pub fn ensure_namespace(store: &Store, name: &str) {
    if store.get(Kind::Namespace, &Key::new("", name)).is_none() {
        let mut ns = json!({"metadata": {"name": name}});
        if prepare_create(Kind::Namespace, None, &mut ns).is_ok() {
            let _ = store.create(Kind::Namespace, ns);
        }
    }
}
