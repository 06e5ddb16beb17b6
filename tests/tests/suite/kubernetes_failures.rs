//! Every way a run stalls or dies on a cluster, named as it happened: the
//! state, the reason, a message a person can act on, what the startup
//! timeout makes of it and the CLI's exit code — on the real control plane,
//! and on the sandbox wherever it can produce the scenario. "Running" means
//! a container started, nothing else.
//!
//! Refused pods (ServiceAccount, ResourceQuota, PodSecurity, LimitRange)
//! leave a Job with a `startTime` and no pod; the job controller's
//! `FailedCreate` event is the reason. Unschedulable pods carry the
//! scheduler's message. Disrupted pods (Eviction API, pod GC after their
//! Node is deleted) and OOM kills are named in the failure.

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use polysync::plugins::Registry;
use polysync_conformance::artifacts;
use polysync_provider_api::abi::host::PluginProvider;
use polysync_provider_api::{PollRequest, Provider, RunState, RunStatus, WatchRequest};
use polysync_tests::cli::{Env, finish, json_of, text};
use polysync_tests::{Cluster, Flavor, cluster_test, rt, shared, source_job};
use serde_json::{Value, json};

/// `run --wait --startup-timeout 8s -o json` of `source`: the exit code and
/// the run as the CLI prints it.
fn run_until_it_starts_or_times_out(env: &Env, source: &str) -> (i32, Value) {
    let out = env.run(&["-o", "json", "run", "k", source, "--wait", "--startup-timeout", "8s"]);
    (out.status.code().unwrap_or(-1), json_of(&out))
}

/// A run of `source` that cannot start: it ends Failed by the startup
/// timeout with `reason` (the one that held it Starting) and a message
/// holding `words`, exit 1, and its Job (holding quota) is deleted.
fn fails_to_start_with(env: &Env, source: &str, reason: &str, words: &[&str]) {
    env.discover();
    let (code, run) = run_until_it_starts_or_times_out(env, source);
    assert_eq!(code, 1, "{run}");
    assert_eq!((run["state"].as_str(), run["reason"].as_str()), (Some("Failed"), Some(reason)), "{run}");
    let message = run["message"].as_str().unwrap_or_default();
    assert!(message.contains("did not start within 8s"), "{run}");
    for w in words {
        assert!(message.contains(w), "the message does not say {w:?}: {run}");
    }
    let name = run["run_id"].as_str().unwrap().to_owned();
    env.wait_until("the stuck Job to be deleted", || env.job(&name).is_none());
}

cluster_test!(
    fn a_missing_service_account_is_failed_create_with_the_api_servers_refusal(cluster) {
        let env = Env::new(cluster, "fail-sa");
        source_job(cluster, &env.ns, "no-account", "echo hi", |j| {
            j["spec"]["template"]["spec"]["serviceAccountName"] = json!("missing-sa");
        });
        fails_to_start_with(
            &env,
            "no-account",
            "FailedCreate",
            &["is forbidden", "error looking up service account fail-sa/missing-sa"],
        );
    }
);

cluster_test!(
    fn a_pod_matching_no_node_is_unschedulable_with_the_schedulers_message(cluster) {
        let env = Env::new(cluster, "fail-selector");
        source_job(cluster, &env.ns, "elsewhere", "echo hi", |j| {
            j["spec"]["template"]["spec"]["nodeSelector"] = json!({"disktype": "ssd"});
        });
        fails_to_start_with(&env, "elsewhere", "Unschedulable", &["didn't match Pod's node affinity/selector"]);
    }
);

cluster_test!(
    fn a_request_larger_than_any_node_is_unschedulable(cluster) {
        let env = Env::new(cluster, "fail-big");
        source_job(cluster, &env.ns, "too-big", "echo hi", |j| {
            j["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "500"}});
        });
        fails_to_start_with(&env, "too-big", "Unschedulable", &["Insufficient cpu"]);
    }
);

cluster_test!(
    fn a_missing_secret_is_create_container_config_error(cluster) {
        let env = Env::new(cluster, "fail-config");
        source_job(cluster, &env.ns, "no-secret", "echo hi", |j| {
            j["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "missing-secret", "key": "token"}}}));
        });
        fails_to_start_with(&env, "no-secret", "CreateContainerConfigError", &["missing-secret"]);
    }
);

cluster_test!(
    fn an_oom_killed_container_fails_the_run_and_says_so(cluster) {
        let env = Env::new(cluster, "fail-oom");
        source_job(cluster, &env.ns, "hungry", "echo filling memory; tail /dev/zero", |j| {
            j["spec"]["backoffLimit"] = json!(0);
            j["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "64Mi"}});
        });
        env.discover();
        let out = env.run(&["-o", "json", "run", "k", "hungry", "--wait", "--delete-after", "never"]);
        let run = json_of(&out);
        assert_eq!(out.status.code(), Some(1), "{run}");
        assert_eq!((run["state"].as_str(), run["reason"].as_str()), (Some("Failed"), Some("BackoffLimitExceeded")), "{run}");
        assert!(run["message"].as_str().unwrap().contains("container main of pod"), "{run}");
        assert!(run["message"].as_str().unwrap().contains("was OOMKilled (exit 137)"), "{run}");
        let poll = PollRequest { run_id: run["run_id"].as_str().unwrap().to_owned() };
        let status = rt().block_on(provider(cluster, &env.ns).poll(poll)).unwrap();
        let container = &status.units[0].containers[0];
        assert_eq!((container.reason.as_deref(), container.exit_code), (Some("OOMKilled"), Some(137)), "{status:?}");
    }
);

cluster_test!(
    fn a_job_deleted_by_someone_else_is_cancelled_deleted(cluster) {
        let env = Env::new(cluster, "fail-deleted");
        source_job(cluster, &env.ns, "victim", "sleep 100000", |_| {});
        env.discover();
        let child = env
            .command(&["-o", "json", "run", "k", "victim", "--wait", "--idempotency-key", "del-1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut name = String::new();
        env.wait_until("the run's container to start", || {
            let pods = cluster.pods(&env.ns, "app.kubernetes.io/managed-by=polysync");
            let running = pods.iter().find(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object());
            if let Some(p) = running {
                name = p["metadata"]["labels"]["polysync.io/run"].as_str().unwrap().to_owned();
            }
            running.is_some()
        });
        cluster.call("DELETE", &format!("/apis/batch/v1/namespaces/{}/jobs/{name}", env.ns), None).unwrap();
        let out = finish(child, &["run", "victim"]);
        let run = json_of(&out);
        assert_eq!(out.status.code(), Some(1), "{run}\n{}", text(&out.stderr));
        assert_eq!((run["state"].as_str(), run["reason"].as_str()), (Some("Cancelled"), Some("Deleted")), "{run}");
    }
);

/// The provider on the real control plane's `namespace`.
fn provider(cluster: &Cluster, namespace: &str) -> PluginProvider {
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-provider-kubernetes"));
    registry.connect("kubernetes", &cluster.settings(namespace)).unwrap()
}

/// Run `source` and follow it: once a container runs, `disrupt` is called
/// with the pod's name; returns every status to the end.
fn run_and_disrupt(cluster: &Cluster, ns: &str, source: &str, disrupt: impl FnOnce(&str)) -> Vec<RunStatus> {
    let p = provider(cluster, ns);
    let rt = rt();
    let run = rt.block_on(p.run(polysync_tests::run_request(source, "k", &[]))).unwrap();
    let stream = rt.block_on(p.watch(WatchRequest { run_ids: vec![run.run_id.clone()] })).unwrap();
    let all = rt.spawn(async move {
        tokio::time::timeout(Duration::from_secs(180), stream.map(|s| s.unwrap()).collect::<Vec<_>>()).await
    });
    let mut pod = None;
    for _ in 0..1200 {
        let s = rt.block_on(p.poll(PollRequest { run_id: run.run_id.clone() })).unwrap();
        if s.state == RunState::Running {
            pod = s.units.first().map(|u| u.name.clone());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    disrupt(&pod.expect("the run's container started"));
    rt.block_on(all).unwrap().expect("the run ends")
}

/// A sleeping source Job that fails on its first pod failure.
fn fragile(cluster: &Cluster, ns: &str, name: &str, tweak: impl FnOnce(&mut Value)) {
    source_job(cluster, ns, name, "sleep 100000", |j| {
        j["spec"]["backoffLimit"] = json!(0);
        tweak(j);
    });
}

/// Only a real API server has these: ResourceQuota, PodSecurity and
/// LimitRange admission, the Eviction API, other Nodes and pod GC. `real`
/// in their names lets `scripts/test --fast` leave them out with the rest
/// of the real tier.
mod real {

    use super::*;

    fn real_cluster() -> &'static Cluster {
        shared(Flavor::Real)
    }

    #[test]
    fn a_resource_quota_refusal_is_failed_create() {
        let cluster = real_cluster();
        let env = Env::new(cluster, "fail-quota");
        let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}});
        let _ = cluster.call("POST", "/api/v1/namespaces/fail-quota/resourcequotas", Some(quota));
        // Admission reads the usage the quota controller computed.
        env.wait_until("the quota controller to compute the quota", || {
            cluster.call("GET", "/api/v1/namespaces/fail-quota/resourcequotas/no-pods", None).unwrap()["status"]["hard"]
                .is_object()
        });
        source_job(cluster, &env.ns, "over-quota", "echo hi", |_| {});
        fails_to_start_with(&env, "over-quota", "FailedCreate", &["exceeded quota: no-pods"]);
    }

    #[test]
    fn a_pod_security_refusal_is_failed_create() {
        let cluster = real_cluster();
        let env = Env::new(cluster, "fail-restricted");
        cluster
            .call(
                "PATCH",
                "/api/v1/namespaces/fail-restricted",
                Some(json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})),
            )
            .unwrap();
        source_job(cluster, &env.ns, "privileged", "echo hi", |j| {
            j["spec"]["template"]["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
        });
        fails_to_start_with(
            &env,
            "privileged",
            "FailedCreate",
            &["violates PodSecurity \"restricted:latest\"", "privileged"],
        );
    }

    #[test]
    fn a_limit_range_refusal_is_failed_create() {
        let cluster = real_cluster();
        let env = Env::new(cluster, "fail-limits");
        let range = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "small"},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "100m"}}]}});
        let _ = cluster.call("POST", "/api/v1/namespaces/fail-limits/limitranges", Some(range));
        source_job(cluster, &env.ns, "greedy", "echo hi", |j| {
            j["spec"]["template"]["spec"]["containers"][0]["resources"] =
                json!({"requests": {"cpu": "1"}, "limits": {"cpu": "1"}});
        });
        fails_to_start_with(&env, "greedy", "FailedCreate", &["maximum cpu usage per Container is 100m"]);
    }

    /// A Node with no kubelet behind it, labelled `polysync.io/pool=<name>`,
    /// ready (allocatable) and tainted with `taint`, which keeps the pods of
    /// every other test off it.
    fn extra_node(cluster: &Cluster, name: &str, taint: Value) {
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "polysync.io/pool": name}}});
        match cluster.call("POST", "/api/v1/nodes", Some(node)) {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => panic!("creating Node {name}: {e}"),
        }
        let taints = json!([taint]);
        cluster.call("PATCH", &format!("/api/v1/nodes/{name}"), Some(json!({"spec": {"taints": taints}}))).unwrap();
        let room = json!({"cpu": "8", "memory": "32Gi", "pods": "110"});
        let status = json!({"status": {"capacity": room, "allocatable": room,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]}});
        cluster.call("PATCH", &format!("/api/v1/nodes/{name}/status"), Some(status)).unwrap();
    }

    #[test]
    fn a_taint_without_toleration_is_unschedulable() {
        let cluster = real_cluster();
        let taint = json!({"key": "polysync.io/dedicated", "value": "gpu", "effect": "NoSchedule"});
        extra_node(cluster, "tainted-node", taint);
        let env = Env::new(cluster, "fail-taint");
        source_job(cluster, &env.ns, "intolerant", "echo hi", |j| {
            j["spec"]["template"]["spec"]["nodeSelector"] = json!({"polysync.io/pool": "tainted-node"});
        });
        fails_to_start_with(&env, "intolerant", "Unschedulable", &["1 node(s) had untolerated taint"]);
    }

    #[test]
    fn an_evicted_pod_fails_the_run_and_is_named() {
        let cluster = real_cluster();
        let ns = "fail-evict";
        fragile(cluster, ns, "evictable", |_| {});
        let all = run_and_disrupt(cluster, ns, "evictable", |pod| {
            let eviction =
                json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": ns}});
            cluster.call("POST", &format!("/api/v1/namespaces/{ns}/pods/{pod}/eviction"), Some(eviction)).unwrap();
        });
        let last = all.last().unwrap();
        assert_eq!((last.state, last.reason.as_deref()), (RunState::Failed, Some("BackoffLimitExceeded")), "{all:?}");
        let disrupted =
            all.iter().flat_map(|s| &s.units).find(|u| u.reason.as_deref() == Some("EvictionByEvictionAPI"));
        assert!(disrupted.is_some_and(|u| u.message.is_some()), "no status named the eviction: {all:?}");
    }

    #[test]
    fn a_pod_whose_node_is_deleted_is_garbage_collected_and_the_run_fails() {
        let cluster = real_cluster();
        // Tainted, so that no other test's pod (they share this cluster) lands
        // on a Node that will never run it.
        let taint = json!({"key": "polysync.io/dedicated", "value": "doomed", "effect": "NoSchedule"});
        extra_node(cluster, "doomed-node", taint);
        let ns = "fail-node-gone";
        // Bound to a Node with no kubelet: scheduled, never running.
        fragile(cluster, ns, "stranded", |j| {
            let spec = &mut j["spec"]["template"]["spec"];
            spec["nodeSelector"] = json!({"polysync.io/pool": "doomed-node"});
            spec["tolerations"] = json!([{"key": "polysync.io/dedicated", "operator": "Equal", "value": "doomed", "effect": "NoSchedule"}]);
        });
        let p = provider(cluster, ns);
        let rt = rt();
        let run = rt.block_on(p.run(polysync_tests::run_request("stranded", "k", &[]))).unwrap();
        let stream = rt.block_on(p.watch(WatchRequest { run_ids: vec![run.run_id.clone()] })).unwrap();
        let all = rt.spawn(async move {
            tokio::time::timeout(Duration::from_secs(240), stream.map(|s| s.unwrap()).collect::<Vec<_>>()).await
        });
        for _ in 0..1200 {
            let pods = cluster.pods(ns, &format!("polysync.io/run={}", run.run_id));
            if pods.iter().any(|p| p["spec"]["nodeName"] == "doomed-node") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let bound = rt.block_on(p.poll(PollRequest { run_id: run.run_id.clone() })).unwrap();
        assert_eq!(bound.state, RunState::Starting, "bound, no container started: {bound:?}");
        cluster.call("DELETE", "/api/v1/nodes/doomed-node", None).unwrap();
        // Pod GC deletes pods of a missing Node after a 40 s quarantine.
        let all = rt.block_on(all).unwrap().expect("the run ends");
        let last = all.last().unwrap();
        assert_eq!(last.state, RunState::Failed, "{all:?}");
        let collected = all.iter().flat_map(|s| &s.units).find(|u| u.reason.as_deref() == Some("DeletionByPodGC"));
        assert!(collected.is_some(), "no status named the pod GC: {all:?}");
    }
}

/// `polysync serve` on a shared cluster's namespace, driven over HTTP.
struct Served {
    process: polysync_tests::ServeProcess,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start(cluster: &Cluster, ns: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let connection = format!(
            "provider = \"kubernetes\"\nkubeconfig = {:?}\nnamespace = \"{ns}\"",
            cluster.kubeconfig().display().to_string()
        );
        let config =
            polysync_tests::write_config(dir.path(), "polysync-provider-kubernetes", None, "", "k", &connection);
        let process = polysync_tests::start_server(
            &config,
            "300ms",
            &[("POLYSYNC_API_TOKEN", "failures-token-0123456789abcdef".into())],
        );
        Self { process, _dir: dir }
    }

    /// `curl` (bounded to `secs`): the status code and the body.
    fn call(&self, method: &str, path: &str, body: Option<Value>, secs: u32) -> (u16, String) {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "-N", "--max-time", &secs.to_string(), "-X", method, "-w", "\n%{http_code}"]);
        cmd.args(["-H", "Authorization: Bearer failures-token-0123456789abcdef"]);
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", &b.to_string()]);
        }
        let out = cmd.arg(format!("{}{path}", self.process.base)).output().unwrap();
        let all = text(&out.stdout);
        let (body, code) = all.rsplit_once('\n').unwrap_or(("", &all));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    fn json(&self, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
        let (code, text) = self.call(method, path, body, 30);
        assert_eq!(code, want, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
    }

    fn sync(&self) {
        let sync = self.json("POST", "/v1/connections/k/syncs", None, 202);
        for _ in 0..600 {
            let s = self.json("GET", &format!("/v1/syncs/{}", sync["id"]), None, 200);
            match s["status"].as_str() {
                Some("complete") => return,
                Some("running") => {}
                _ => panic!("the sync did not complete: {s}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the sync never finished");
    }

    /// The statuses the run's SSE stream sends, to its end.
    fn stream(&self, id: &Value) -> Vec<Value> {
        let (_, sse) = self.call("GET", &format!("/v1/runs/{id}/status-stream"), None, 120);
        sse.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect()
    }
}

cluster_test!(
    fn through_the_server_a_refused_run_says_why_and_a_cancel_is_always_the_users(cluster) {
        let ns = "fail-serve";
        source_job(cluster, ns, "no-account", "echo hi", |j| {
            j["spec"]["template"]["spec"]["serviceAccountName"] = json!("missing-sa");
        });
        source_job(cluster, ns, "long", "sleep 100000", |_| {});
        let server = Served::start(cluster, ns);
        server.sync();

        let run = server.json("POST", "/v1/runs", Some(json!({"connection": "k", "entry": "no-account", "startup_timeout": "8s"})), 201);
        let statuses = server.stream(&run["id"]);
        let said = |s: &Value| (s["state"].as_str().unwrap_or_default().to_owned(), s["reason"].as_str().map(str::to_owned));
        assert!(
            statuses.iter().any(|s| said(s) == ("Starting".into(), Some("FailedCreate".into()))),
            "the stream never said why it waits: {statuses:?}"
        );
        assert!(!statuses.iter().any(|s| s["state"] == "Running"), "no container ran: {statuses:?}");
        let last = statuses.last().expect("statuses");
        assert_eq!(said(last), ("Failed".into(), Some("FailedCreate".into())), "{statuses:?}");
        let stored = server.json("GET", &format!("/v1/runs/{}", run["id"]), None, 200);
        assert_eq!((stored["state"].as_str(), stored["reason"].as_str()), (Some("Failed"), Some("FailedCreate")));
        assert!(stored["message"].as_str().unwrap().contains("serviceaccount \"missing-sa\" not found"), "{stored}");
        // No container ran: no start, no exit code.
        assert_eq!((&stored["final"], &stored["started_at"], &stored["exit_code"]), (&json!(true), &Value::Null, &Value::Null), "{stored}");

        // Six cancels of running runs: each the user's, in the answer and after.
        for i in 0..6 {
            let run = server.json("POST", "/v1/runs", Some(json!({"connection": "k", "entry": "long"})), 201);
            let path = format!("/v1/runs/{}", run["id"]);
            for _ in 0..600 {
                if server.json("GET", &path, None, 200)["state"] == "Running" {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let cancelled = server.json("POST", &format!("{path}/cancel"), None, 200);
            assert_eq!(cancelled["run"]["state"], "Cancelled", "cancel {i}: {cancelled}");
            assert_eq!(cancelled["run"]["reason"], "CancelledByUser", "cancel {i}: {cancelled}");
            assert!(cancelled["run"]["started_at"].is_string(), "it ran before the cancel: {cancelled}");
            // Once the platform has the Job deleted (or deleting), the
            // stored reason is still the user's.
            let job = cancelled["run"]["platform_id"].as_str().expect("a submitted run has a Job").to_owned();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while cluster.job(ns, &job).is_some_and(|j| j["metadata"]["deletionTimestamp"].is_null()) {
                assert!(std::time::Instant::now() < deadline, "cancel {i}: Job {job} was never deleted");
                std::thread::sleep(Duration::from_millis(50));
            }
            let after = server.json("GET", &path, None, 200);
            assert_eq!(after["reason"], "CancelledByUser", "cancel {i}, after the platform's deletion: {after}");
        }
    }
);
