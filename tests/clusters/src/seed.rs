//! Sample Jobs and CronJobs created through the API, the same way on every
//! cluster (the sandbox's in-process seeding cannot reach a real one).
//!
//! Source Jobs are created suspended: they are what discovery imports and
//! what a rerun clones, and on a real cluster a thousand of them cost no
//! pods. A CronJob owns one Job, which discovery must skip.

use futures::StreamExt;
use serde_json::{Value, json};

use crate::Cluster;

/// A source Job as a user writes it: `BATCH_ID`, `GREETING`, `REGION`
/// (every fifth also `SLEEP_SECONDS`) literal env, `POD_NAME` from the
/// downward API, running `sh -c script`. Suspended.
pub fn source_job(name: &str, index: usize, script: &str) -> Value {
    let (team, image, env) = polysync_sandbox::seed::sample(index);
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name, "team": team}},
        "spec": {
            "suspend": true,
            "backoffLimit": 6,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main",
                    "image": image,
                    "command": ["sh", "-c"],
                    "args": [script],
                    "env": env,
                }],
            }},
        },
    })
}

/// The default script of [`source_job`].
pub const DEFAULT_SCRIPT: &str = "echo \"$GREETING from batch $BATCH_ID in $REGION\"; sleep ${SLEEP_SECONDS:-1}";

/// Create `jobs` source Jobs (`batch-00000`…) and `cronjobs` CronJobs
/// (`nightly-000`…, each owning one Job) in `namespace`.
pub async fn seed(cluster: &Cluster, namespace: &str, jobs: usize, cronjobs: usize) {
    let width = jobs.to_string().len().max(5);
    let job_path = format!("/apis/batch/v1/namespaces/{namespace}/jobs");
    let creates = (0..jobs).map(|i| {
        let job = source_job(&format!("batch-{i:0width$}"), i, DEFAULT_SCRIPT);
        let path = job_path.clone();
        async move { cluster.request("POST", &path, Some(job)).await }
    });
    let results: Vec<_> = futures::stream::iter(creates).buffer_unordered(16).collect().await;
    for r in results {
        if let Err(e) = r
            && e.code != 409
        {
            panic!("seeding {namespace}: {e}");
        }
    }
    for i in 0..cronjobs {
        let name = format!("nightly-{i:03}");
        let cronjob = json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": name, "labels": {"team": "reports"}},
            "spec": {
                "schedule": "0 3 * * *",
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {"spec": {"backoffLimit": 2, "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "report", "image": "busybox:1.36", "command": ["sh", "-c", "echo building report for $REPORT_DATE"], "env": [{"name": "REPORT_DATE", "value": "today"}]}],
                }}}},
            },
        });
        let created = match cluster
            .request("POST", &format!("/apis/batch/v1/namespaces/{namespace}/cronjobs"), Some(cronjob))
            .await
        {
            Ok(c) => c,
            Err(e) if e.code == 409 => continue,
            Err(e) => panic!("seeding CronJob {name}: {e}"),
        };
        let mut job = source_job(&format!("{name}-29000000"), i, DEFAULT_SCRIPT);
        job["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "batch/v1", "kind": "CronJob", "name": name,
            "uid": created["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
        }]);
        cluster.request("POST", &job_path, Some(job)).await.unwrap_or_else(|e| panic!("seeding {name}'s Job: {e}"));
    }
}

/// [`seed`] for sync code, on a thread of its own (so it also works from
/// inside a runtime's `block_on`).
pub fn seed_blocking(cluster: &Cluster, namespace: &str, jobs: usize, cronjobs: usize) {
    std::thread::scope(|s| {
        s.spawn(|| futures::executor::block_on(seed(cluster, namespace, jobs, cronjobs)))
            .join()
            .unwrap_or_else(|_| panic!("seeding {namespace} panicked"));
    });
}
