//! The API behaviours where the sandbox once differed from a real cluster,
//! each checked on both (the real one is right): Job defaulting, refused
//! bodies, field selectors, Table objects for `kubectl get --sort-by`,
//! protobuf CronJobs (`kubectl create cronjob`), OpenAPI for `kubectl
//! create -f`, `logs --previous`, and the collection of Jobs whose owner
//! is missing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use polysync_tests::{Cluster, cluster_test};
use serde_json::{Value, json};

fn kubectl(cluster: &Cluster, namespace: &str, args: &[&str]) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .arg("--namespace")
        .arg(namespace)
        .args(args)
        .env("HOME", home.path())
        .output()
        .expect("kubectl (scripts/test builds it with the control plane and puts it first on PATH)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn job(name: &str, env: Value) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"suspend": true, "template": {"metadata": {"labels": {"team": "a"}}, "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hi"], "env": env}],
        }}},
    })
}

cluster_test!(
    fn job_defaulting_matches(cluster) {
        cluster.ensure_namespace("api-defaults");
        let created = cluster.create_job("api-defaults", job("d1", json!([{"name": "X", "value": "1"}])));
        let spec = &created["spec"];
        let uid = created["metadata"]["uid"].as_str().unwrap();
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!((spec["parallelism"].clone(), spec["completions"].clone()), (json!(1), json!(1)));
        assert_eq!(spec["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
        let expected_labels = json!({
            "batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "d1",
            "controller-uid": uid, "job-name": "d1", "team": "a",
        });
        assert_eq!(spec["template"]["metadata"]["labels"], expected_labels);
        assert_eq!(created["metadata"]["labels"], expected_labels, "a Job without labels takes its template's");
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        let c = &pod["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
    }
);

cluster_test!(
    fn bodies_a_real_server_refuses(cluster) {
        cluster.ensure_namespace("api-refused");
        let path = "/apis/batch/v1/namespaces/api-refused/jobs";
        let err = cluster.call("POST", path, Some(job("num", json!([{"name": "A", "value": 5}])))).unwrap_err();
        assert_eq!(err.code, 400, "{err}");
        assert!(err.message.contains("cannot unmarshal number into Go struct field EnvVar"), "{err}");
        let mut with_rv = job("rv", json!([]));
        with_rv["metadata"]["resourceVersion"] = json!("12");
        let err = cluster.call("POST", path, Some(with_rv)).unwrap_err();
        assert_eq!(err.code, 500, "{err}");
        assert_eq!(err.message, "resourceVersion should not be set on objects to be created");
    }
);

cluster_test!(
    fn field_selectors_use_the_kinds_field_labels(cluster) {
        let ns = "api-fields";
        cluster.ensure_namespace(ns);
        let mut done = job("done", json!([]));
        done["spec"]["suspend"] = json!(false);
        cluster.create_job(ns, done);
        cluster.create_job(ns, job("waiting", json!([])));
        let mut names = Vec::new();
        for _ in 0..600 {
            names = cluster
                .list(&format!("/apis/batch/v1/namespaces/{ns}/jobs?fieldSelector=status.successful%3D1"))
                .iter()
                .map(|j| j["metadata"]["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>();
            if !names.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(names, ["done"]);
        let zero = cluster.list(&format!("/apis/batch/v1/namespaces/{ns}/jobs?fieldSelector=status.successful%3D0"));
        assert_eq!(zero.len(), 1);
        let err = cluster.call("GET", &format!("/apis/batch/v1/namespaces/{ns}/jobs?fieldSelector=status.bogus%3D1"), None).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "field label \"status.bogus\" not supported for Job"));
    }
);

cluster_test!(
    fn kubectl_create_file_cronjob_sort_by_and_previous_logs(cluster) {
        let ns = "api-kubectl";
        cluster.ensure_namespace(ns);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("job.yaml");
        std::fs::write(&file, "apiVersion: batch/v1\nkind: Job\nmetadata: {name: from-file}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: main, image: busybox, command: [sh, -c, 'echo from a file']}]\n").unwrap();
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        let (ok, out) = kubectl(cluster, ns, &["create", "-f", &path(&file)]);
        assert!(ok, "kubectl create -f: {out}");
        let (ok, out) = kubectl(cluster, ns, &["create", "cronjob", "cj", "--image=busybox", "--schedule=0 3 * * *", "--", "echo", "cron"]);
        assert!(ok, "kubectl create cronjob: {out}");
        let cronjob = cluster.call("GET", &format!("/apis/batch/v1/namespaces/{ns}/cronjobs/cj"), None).unwrap();
        assert_eq!(cronjob["spec"]["concurrencyPolicy"], "Allow");
        assert!(cronjob["spec"]["jobTemplate"]["spec"].get("backoffLimit").is_none(), "the template's Job fields stay as sent");
        let (ok, out) = kubectl(cluster, ns, &["create", "job", "second", "--from=cronjob/cj"]);
        assert!(ok, "kubectl create job --from: {out}");
        let (ok, out) = kubectl(cluster, ns, &["get", "jobs", "--sort-by=.metadata.name", "-o", "name"]);
        assert!(ok, "{out}");
        assert_eq!(out.lines().collect::<Vec<_>>(), ["job.batch/from-file", "job.batch/second"]);
        let (ok, out) = kubectl(cluster, ns, &["get", "jobs", "--sort-by=.metadata.name"]);
        assert!(ok && out.find("from-file") < out.find("second"), "sorted table: {out}");
        let mut logs = String::new();
        for _ in 0..600 {
            let (ok, out) = kubectl(cluster, ns, &["logs", "job/from-file"]);
            if ok && !out.is_empty() {
                logs = out;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(logs, "from a file\n");
        let (ok, out) = kubectl(cluster, ns, &["logs", "job/from-file", "--previous"]);
        assert!(!ok && out.contains("previous terminated container \"main\" in pod"), "{out}");
    }
);

cluster_test!(
    fn a_job_whose_cronjob_is_missing_is_collected(cluster) {
        let ns = "api-gc";
        cluster.ensure_namespace(ns);
        let mut orphan = job("orphan", json!([]));
        orphan["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "batch/v1", "kind": "CronJob", "name": "never-was",
            "uid": "6a0f4f39-0000-4000-8000-000000000000", "controller": true,
        }]);
        cluster.create_job(ns, orphan);
        for _ in 0..1200 {
            if cluster.job(ns, "orphan").is_none() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the garbage collector left a Job whose owner does not exist");
    }
);

/// A raw GET through kubectl (`get --raw`): its output, or why it failed.
fn raw(cluster: &Cluster, path: &str) -> (bool, String) {
    kubectl(cluster, "default", &["get", "--raw", path])
}

cluster_test!(
    /// kubectl (v1.34 on) and client-go informers open a watch with
    /// `sendInitialEvents=true` (a streaming list): the current objects as
    /// ADDED, then a BOOKMARK marked `k8s.io/initial-events-end`, then
    /// changes. `kubectl wait` waits for that mark before it looks.
    fn a_watch_list_sends_the_objects_then_a_marked_bookmark(cluster) {
        let ns = "api-watchlist";
        cluster.ensure_namespace(ns);
        for name in ["wl-a", "wl-b"] {
            let _ = cluster.call("POST", &format!("/apis/batch/v1/namespaces/{ns}/jobs"), Some(job(name, json!([]))));
        }
        let list = format!("/apis/batch/v1/namespaces/{ns}/jobs");
        let (ok, out) = raw(
            cluster,
            &format!("{list}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2"),
        );
        assert!(ok, "{out}");
        let events: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let added: Vec<&str> = events
            .iter()
            .take_while(|e| e["type"] == "ADDED")
            .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(added, ["wl-a", "wl-b"], "{out}");
        let mark = &events[2];
        assert_eq!(mark["type"], "BOOKMARK", "{out}");
        assert_eq!(mark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true", "{out}");
        let rv = |v: &Value| v.as_str().unwrap().parse::<u64>().unwrap();
        let newest = events[..2].iter().map(|e| rv(&e["object"]["metadata"]["resourceVersion"])).max().unwrap();
        assert!(rv(&mark["object"]["metadata"]["resourceVersion"]) >= newest, "{out}");
        // Without allowWatchBookmarks: the objects, and no mark.
        let (ok, out) = raw(
            cluster,
            &format!("{list}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"),
        );
        assert!(ok, "{out}");
        let types: Vec<String> =
            out.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].as_str().unwrap().to_owned()).collect();
        assert_eq!(types, ["ADDED", "ADDED"], "{out}");
        // What the real server refuses.
        for (query, says) in [
            (
                "sendInitialEvents=true&allowWatchBookmarks=true",
                "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ),
            (
                "resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
                "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ),
        ] {
            let err = cluster.call("GET", &format!("{list}?watch=true&timeoutSeconds=1&{query}"), None).unwrap_err();
            assert_eq!((err.code, err.message.as_str()), (422, says), "{query}");
        }
    }
);
