//! What the job controller decides, mapped to polysync's state and reason,
//! on the sandbox and on the real control plane: success through
//! SuccessCriteriaMet, podFailurePolicy FailJob, successPolicy and
//! backoffLimitPerIndex on Indexed Jobs, native sidecars, Kueue's suspend /
//! resume / preemption, and ttlSecondsAfterFinished.

use std::time::Duration;

use futures::StreamExt;
use polysync::plugins::Registry;
use polysync_conformance::artifacts;
use polysync_provider_api::abi::host::PluginProvider;
use polysync_provider_api::{PollRequest, Provider, RunRequest, RunState, RunStatus, WatchRequest};
use polysync_tests::{Cluster, cluster_test, source_job};
use serde_json::json;

fn provider(cluster: &Cluster, namespace: &str) -> PluginProvider {
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-provider-kubernetes"));
    registry.connect("kubernetes", &cluster.settings(namespace)).unwrap()
}

use polysync_tests::rt;

fn request(external_id: &str, key: &str) -> RunRequest {
    polysync_tests::run_request(external_id, key, &[])
}

/// Run `source` and watch it to its end.
fn run_to_end(cluster: &Cluster, ns: &str, source: &str) -> (String, Vec<RunStatus>) {
    let p = provider(cluster, ns);
    rt().block_on(async {
        let run = p.run(request(source, "k")).await.unwrap();
        let stream = p.watch(WatchRequest { run_ids: vec![run.run_id.clone()] }).await.unwrap();
        let all: Vec<RunStatus> = tokio::time::timeout(Duration::from_secs(120), stream.map(|s| s.unwrap()).collect())
            .await
            .expect("the run ends");
        (run.run_id, all)
    })
}

fn last(all: &[RunStatus]) -> (RunState, Option<&str>) {
    let s = all.last().expect("a status");
    (s.state, s.reason.as_deref())
}

cluster_test!(
    fn success_is_reported_with_the_controllers_reason(cluster) {
        source_job(cluster, "outcomes-ok", "ok", "echo fine", |_| {});
        let (_, all) = run_to_end(cluster, "outcomes-ok", "ok");
        assert_eq!(last(&all), (RunState::Success, Some("CompletionsReached")), "{all:?}");
    }
);

cluster_test!(
    fn pod_failure_policy_fails_the_job_on_an_exit_code(cluster) {
        source_job(cluster, "outcomes-pfp", "pfp", "exit 42", |j| {
            j["spec"]["backoffLimit"] = json!(6);
            j["spec"]["podFailurePolicy"] = json!({"rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            ]});
        });
        let (_, all) = run_to_end(cluster, "outcomes-pfp", "pfp");
        assert_eq!(last(&all), (RunState::Failed, Some("PodFailurePolicy")), "{all:?}");
        let exit = all.last().unwrap().units.iter().flat_map(|u| &u.containers).find_map(|c| c.exit_code);
        assert_eq!(exit, Some(42));
    }
);

cluster_test!(
    fn success_policy_ends_an_indexed_job_early(cluster) {
        source_job(cluster, "outcomes-sp", "leader", "[ \"$JOB_COMPLETION_INDEX\" = 0 ] && exit 0; sleep 100000", |j| {
            j["spec"]["completionMode"] = json!("Indexed");
            j["spec"]["completions"] = json!(3);
            j["spec"]["parallelism"] = json!(3);
            j["spec"]["successPolicy"] = json!({"rules": [{"succeededIndexes": "0", "succeededCount": 1}]});
        });
        let (_, all) = run_to_end(cluster, "outcomes-sp", "leader");
        assert_eq!(last(&all), (RunState::Success, Some("SuccessPolicy")), "{all:?}");
    }
);

cluster_test!(
    fn backoff_limit_per_index_fails_at_max_failed_indexes(cluster) {
        source_job(cluster, "outcomes-bpi", "per-index", "[ \"$JOB_COMPLETION_INDEX\" = 1 ] && exit 1; sleep 5", |j| {
            j["spec"]["completionMode"] = json!("Indexed");
            j["spec"]["completions"] = json!(3);
            j["spec"]["parallelism"] = json!(3);
            j["spec"]["backoffLimitPerIndex"] = json!(0);
            j["spec"]["maxFailedIndexes"] = json!(0);
        });
        let (run_id, all) = run_to_end(cluster, "outcomes-bpi", "per-index");
        assert_eq!(last(&all), (RunState::Failed, Some("MaxFailedIndexesExceeded")), "{all:?}");
        // The run ends at FailureTarget; the job controller writes Failed
        // once the pods are gone.
        let mut job = cluster.job("outcomes-bpi", &run_id).expect("the Job stays");
        for _ in 0..600 {
            if job["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Failed")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            job = cluster.job("outcomes-bpi", &run_id).expect("the Job stays");
        }
        assert_eq!(job["status"]["failedIndexes"], "1", "{job}");
        let failed = job["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Failed").cloned();
        assert_eq!(failed.map(|c| c["reason"].clone()), Some(json!("MaxFailedIndexesExceeded")), "{job}");
    }
);

cluster_test!(
    fn a_native_sidecar_does_not_hold_the_job(cluster) {
        source_job(cluster, "outcomes-sidecar", "with-proxy", "echo main done", |j| {
            j["spec"]["template"]["spec"]["initContainers"] = json!([{
                "name": "proxy", "image": "busybox", "restartPolicy": "Always",
                "command": ["sh", "-c", "echo proxy up; sleep 100000"],
            }]);
        });
        let (_, all) = run_to_end(cluster, "outcomes-sidecar", "with-proxy");
        assert_eq!(last(&all).0, RunState::Success, "{all:?}");
    }
);

cluster_test!(
    fn a_kueue_job_is_queued_followed_through_preemption_and_ends(cluster) {
        // Do what Kueue does: the rerun is created suspended with the queue
        // label; admission resumes it, preemption suspends it again.
        let ns = "outcomes-kueue";
        source_job(cluster, ns, "queued", "sleep 250; echo done", |j| {
            j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = json!("team-a");
        });
        let p = provider(cluster, ns);
        rt().block_on(async {
            let run = p.run(request("queued", "kq")).await.unwrap();
            let path = format!("/apis/batch/v1/namespaces/{ns}/jobs/{}", run.run_id);
            let job = cluster.request("GET", &path, None).await.unwrap();
            assert_eq!(job["spec"]["suspend"], true, "a queued rerun is created suspended, for Kueue to admit");
            assert_eq!(job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"], "team-a");
            let stream = p.watch(WatchRequest { run_ids: vec![run.run_id.clone()] }).await.unwrap();
            let watcher = tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(120), stream.map(|s| s.unwrap()).collect::<Vec<_>>()).await
            });
            let wait_for = |state: RunState, reason: Option<&'static str>| {
                let p = &p;
                let id = run.run_id.clone();
                async move {
                    for _ in 0..2000 {
                        let s = p.poll(PollRequest { run_id: id.clone() }).await.unwrap();
                        if s.state == state && (reason.is_none() || s.reason.as_deref() == reason) {
                            return s;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    panic!("{id} never reached {state:?} {reason:?}");
                }
            };
            let queued = wait_for(RunState::Starting, Some("Queued")).await;
            assert!(queued.message.unwrap().contains("team-a"));
            cluster.request("PATCH", &path, Some(json!({"spec": {"suspend": false}}))).await.unwrap();
            wait_for(RunState::Running, None).await;
            cluster.request("PATCH", &path, Some(json!({"spec": {"suspend": true}}))).await.unwrap();
            wait_for(RunState::Starting, Some("Queued")).await;
            cluster.request("PATCH", &path, Some(json!({"spec": {"suspend": false}}))).await.unwrap();
            let all = watcher.await.unwrap().expect("the run ends");
            assert_eq!(all.last().unwrap().state, RunState::Success, "{all:?}");
            assert!(!all.iter().any(|s| s.state == RunState::Cancelled), "a queued run is never Cancelled: {all:?}");
        });
    }
);

/// `kubectl get jobs --watch` of a namespace, stopped when dropped (also on
/// a panic): the Job events exactly as the API server sends them.
struct JobEvents {
    child: std::process::Child,
    out: tempfile::NamedTempFile,
    _home: tempfile::TempDir,
}

impl JobEvents {
    fn start(cluster: &Cluster, ns: &str) -> Self {
        let (home, out) = (tempfile::tempdir().unwrap(), tempfile::NamedTempFile::new().unwrap());
        let child = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(["--namespace", ns, "get", "jobs", "--watch", "--output-watch-events", "-o", "json"])
            .env("HOME", home.path())
            .stdout(out.reopen().unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("kubectl is installed (scripts/test installs it)");
        Self { child, out, _home: home }
    }

    /// The events so far, as (type, object).
    fn read(&self) -> Vec<(String, serde_json::Value)> {
        let text = std::fs::read_to_string(self.out.path()).unwrap();
        serde_json::Deserializer::from_str(&text)
            .into_iter::<serde_json::Value>()
            .map_while(Result::ok)
            .map(|e| (e["type"].as_str().unwrap_or_default().to_owned(), e["object"].clone()))
            .collect()
    }
}

impl Drop for JobEvents {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

cluster_test!(
    fn ttl_after_finished_deletes_a_finished_run_which_stays_successful(cluster) {
        // The Job ends and goes within moments: it waits in a queue (created
        // suspended, see the Kueue test) until both watches have it.
        let ns = "outcomes-ttl";
        source_job(cluster, ns, "short-lived", "echo bye", |j| {
            j["spec"]["ttlSecondsAfterFinished"] = json!(0);
            j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = json!("team-a");
        });
        let events = JobEvents::start(cluster, ns);
        let p = provider(cluster, ns);
        let (run_id, all) = rt().block_on(async {
            let run = p.run(request("short-lived", "k")).await.unwrap();
            let mut stream = p.watch(WatchRequest { run_ids: vec![run.run_id.clone()] }).await.unwrap();
            let queued = stream.next().await.expect("a status").unwrap();
            assert_eq!(queued.reason.as_deref(), Some("Queued"), "{queued:?}");
            for _ in 0..600 {
                if events.read().iter().any(|(_, o)| o["metadata"]["name"] == run.run_id.as_str()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let path = format!("/apis/batch/v1/namespaces/{ns}/jobs/{}", run.run_id);
            cluster.request("PATCH", &path, Some(json!({"spec": {"suspend": false}}))).await.unwrap();
            let rest: Vec<RunStatus> =
                tokio::time::timeout(Duration::from_secs(120), stream.map(|s| s.unwrap()).collect())
                    .await
                    .expect("the run ends");
            (run.run_id, rest)
        });
        assert_eq!(last(&all).0, RunState::Success, "{all:?}");
        let of_run = || -> Vec<(String, serde_json::Value)> {
            events.read().into_iter().filter(|(_, o)| o["metadata"]["name"] == run_id.as_str()).collect()
        };
        for _ in 0..600 {
            if of_run().iter().any(|(t, _)| t == "DELETED") {
                // As the real TTL controller deletes: in the foreground, so
                // the Job is marked (its pods go first) before it goes.
                let marked = of_run().into_iter().find(|(t, o)| {
                    t == "MODIFIED"
                        && o["metadata"]["deletionTimestamp"].is_string()
                        && o["metadata"]["finalizers"].as_array().is_some_and(|f| f.contains(&json!("foregroundDeletion")))
                });
                assert!(marked.is_some(), "no foreground mark before the deletion: {:?}", of_run());
                assert!(cluster.job(ns, &run_id).is_none());
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the TTL controller never deleted {run_id}: {:?}", of_run());
    }
);

cluster_test!(
    fn job_defaults_and_indexed_names_are_the_api_servers(cluster) {
        let ns = "outcomes-defaults";
        let get = |name: &str| cluster.job(ns, name).unwrap_or_else(|| panic!("no Job {name}"));
        // backoffLimitPerIndex leaves the Job's own limit unbounded.
        source_job(cluster, ns, "per-index-limit", "true", |j| {
            j["spec"]["completionMode"] = json!("Indexed");
            j["spec"]["completions"] = json!(2);
            j["spec"]["backoffLimitPerIndex"] = json!(1);
            j["spec"].as_object_mut().unwrap().remove("backoffLimit");
        });
        assert_eq!(get("per-index-limit")["spec"]["backoffLimit"], json!(2147483647));
        // A pod failure policy replaces only failed pods.
        source_job(cluster, ns, "with-policy", "true", |j| {
            j["spec"]["podFailurePolicy"] = json!({"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]});
        });
        assert_eq!(get("with-policy")["spec"]["podReplacementPolicy"], "Failed");
        source_job(cluster, ns, "plain", "true", |_| {});
        assert_eq!(get("plain")["spec"]["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(get("plain")["spec"]["backoffLimit"], json!(6));

        // An Indexed Job whose last pod hostname would not be a DNS label is refused.
        let long = "x".repeat(62);
        let mut job = polysync_clusters::seed::source_job(&long, 1, "true");
        job["spec"]["completionMode"] = json!("Indexed");
        job["spec"]["completions"] = json!(10);
        let refused = cluster.call("POST", &format!("/apis/batch/v1/namespaces/{ns}/jobs"), Some(job)).unwrap_err();
        assert_eq!(refused.code, 422, "{refused}");
        assert!(refused.to_string().contains(&format!("will not able to create pod with invalid DNS label: {long}-9")), "{refused}");

        // Indexed pods are named by their index as hostnames.
        source_job(cluster, ns, "hosts", "echo $(hostname)", |j| {
            j["spec"]["completionMode"] = json!("Indexed");
            j["spec"]["completions"] = json!(2);
            j["spec"]["parallelism"] = json!(2);
        });
        let (run_id, all) = run_to_end(cluster, ns, "hosts");
        assert_eq!(last(&all).0, RunState::Success, "{all:?}");
        let mut hostnames: Vec<String> = cluster
            .pods(ns, &format!("polysync.io/run={run_id}"))
            .iter()
            .map(|p| p["spec"]["hostname"].as_str().unwrap_or_default().to_owned())
            .collect();
        hostnames.sort();
        assert_eq!(hostnames, [format!("{run_id}-0"), format!("{run_id}-1")]);
    }
);
