//! The `kubernetes` plugin end to end, through its dylib, on the sandbox
//! and on the real control plane ([`cluster_test!`]): discovery at scale,
//! reruns of Jobs as a live cluster returns them, parameters in the pod log,
//! naming, idempotency, every terminal path, cancel, the fallback, logs; and,
//! on the sandbox alone, what needs its fault injection (cut watches, 410s,
//! a token that may not watch).

use std::time::Duration;

use futures::StreamExt;
use polysync::plugins::Registry;
use polysync_conformance::artifacts;
use polysync_provider_api::abi::host::PluginProvider;
use polysync_provider_api::{
    CancelRequest, DiscoverRequest, ErrorKind, FallbackAttributes, LogRequest, PollRequest, Provider, RunSource,
    RunState, RunStatus, WatchRequest,
};
use polysync_sandbox::{FaultSettings, SandboxConfig, SeedConfig, seed};
use polysync_tests::{Cluster, SandboxCluster, cluster_test, seed_once, source_job};
use serde_json::{Value, json};

fn provider_with(settings: &Value) -> PluginProvider {
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-provider-kubernetes"));
    assert!(registry.refused().is_empty(), "{:?}", registry.refused());
    registry.connect("kubernetes", settings).unwrap()
}

fn provider(cluster: &Cluster, namespace: &str) -> PluginProvider {
    provider_with(&cluster.settings(namespace))
}

use polysync_tests::{rt, run_request as request};

async fn wait_terminal(p: &PluginProvider, run_id: &str) -> Vec<RunStatus> {
    let stream = p.watch(WatchRequest { run_ids: vec![run_id.into()] }).await.unwrap();
    let all: Vec<RunStatus> = tokio::time::timeout(Duration::from_secs(120), stream.map(|s| s.unwrap()).collect())
        .await
        .expect("the run ends");
    assert!(all.last().is_some_and(|s| s.state.is_terminal()), "{all:?}");
    all
}

async fn logs(p: &PluginProvider, run_id: &str) -> String {
    let chunks: Vec<_> =
        p.logs(LogRequest { run_id: run_id.into(), ..Default::default() }).await.unwrap().collect().await;
    chunks.into_iter().map(|c| c.unwrap().text).collect()
}

cluster_test!(
    fn discovery_of_1050_jobs_skips_managed_and_cronjob_owned(cluster) {
        seed_once(cluster, "discovery", 1_050, 3);
        let p = provider(cluster, "discovery");
        let rt = rt();
        // A run made by polysync must not be discovered.
        rt.block_on(async {
            let run = p.run(request("batch-00001", "discovery-key", &[])).await.unwrap();
            wait_terminal(&p, &run.run_id).await;
        });
        let mut ids = Vec::new();
        let mut token = None;
        loop {
            let page = rt.block_on(p.discover(DiscoverRequest { page_token: token, page_size: None })).unwrap();
            if page.restarted {
                ids.clear();
            }
            ids.extend(page.entries.iter().map(|e| e.external_id.clone()));
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        let jobs = ids.iter().filter(|i| !i.starts_with("cronjob/")).count();
        assert_eq!(jobs, 1_050, "every seeded Job, nothing else");
        assert_eq!(ids.iter().filter(|i| i.starts_with("cronjob/")).count(), 3);
        assert!(
            !ids.iter().any(|i| i.contains("nightly-") && !i.starts_with("cronjob/")),
            "CronJob-owned Jobs are skipped"
        );
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        let page = rt.block_on(p.discover(DiscoverRequest { page_token: None, page_size: Some(3) })).unwrap();
        let e = &page.entries[0];
        let names: Vec<_> = e.parameters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(e.external_id, "batch-00000");
        assert_eq!(
            names,
            ["BATCH_ID", "GREETING", "REGION", "SLEEP_SECONDS"],
            "valueFrom env (POD_NAME) is not a parameter"
        );
        assert_eq!(e.fallback.image.as_deref(), Some("busybox:1.36"));
        assert_eq!(e.fallback.command, ["sh", "-c"]);
        assert_eq!(e.fingerprint.len(), 16);
    }
);

#[test]
fn discovery_restarts_after_an_expired_continue_token() {
    // Its own cluster: the fault would disturb the other tests' listings.
    let own =
        SandboxCluster::start(SeedConfig { namespace: "discovery".into(), jobs: 250, cronjobs: 0, file: None }, 0.02);
    let cluster = &own;
    let p = provider_with(&cluster.settings("discovery"));
    let rt = rt();
    let first = rt.block_on(p.discover(DiscoverRequest { page_token: None, page_size: Some(100) })).unwrap();
    cluster.sandbox.faults().set(FaultSettings { expire_continue: true, ..Default::default() });
    let second = rt.block_on(p.discover(DiscoverRequest { page_token: first.next_page_token, page_size: Some(100) }));
    cluster.sandbox.faults().clear();
    let second = second.unwrap();
    assert!(second.restarted, "a 410 restarts the listing");
    assert_eq!(second.entries[0].external_id, first.entries[0].external_id);
}

cluster_test!(
    fn a_live_cluster_job_reruns_with_parameters_in_the_log(cluster) {
        source_job(cluster, "reruns", "greeter", "echo \"$GREETING from $REGION\"; echo \"extra=$EXTRA\"", |_| {});
        let p = provider(cluster, "reruns");
        let rt = rt();
        rt.block_on(async {
            let run =
                p.run(request("greeter", "rerun-1", &[("GREETING", "bonjour"), ("EXTRA", "appended")])).await.unwrap();
            assert_eq!(run.source, RunSource::Live);
            assert!(!run.adopted);
            let statuses = wait_terminal(&p, &run.run_id).await;
            assert_eq!(statuses.last().unwrap().state, RunState::Success);
            assert_eq!(logs(&p, &run.run_id).await, "bonjour from us-east-1\nextra=appended\n");
        });
    }
);

cluster_test!(
    fn long_source_names_give_valid_unique_run_names_and_retries_adopt(cluster) {
        let long = format!("nightly-{}", "x".repeat(52));
        assert_eq!(long.len(), 60);
        source_job(cluster, "naming", &long, "true", |_| {});
        let p = provider(cluster, "naming");
        let rt = rt();
        rt.block_on(async {
            let a = p.run(request(&long, "key-a", &[])).await.unwrap();
            let b = p.run(request(&long, "key-b", &[])).await.unwrap();
            let again = p.run(request(&long, "key-a", &[])).await.unwrap();
            for name in [&a.run_id, &b.run_id] {
                assert!(name.len() <= 63 && name.starts_with("nightly-x"), "{name}");
                assert!(name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'));
            }
            assert_ne!(a.run_id, b.run_id);
            assert_eq!(again.run_id, a.run_id);
            assert!(again.adopted);
            let runs = cluster.jobs("naming", &format!("polysync.io/run={}", a.run_id));
            assert_eq!(runs.len(), 1, "the retried run created no second Job");
            // A name this long still gets pods (the pod name prefix is truncated) and runs.
            let last = wait_terminal(&p, &a.run_id).await.pop().unwrap();
            assert_eq!(last.state, RunState::Success, "{last:?}");
        });
    }
);

cluster_test!(
    fn every_way_a_run_ends(cluster) {
        let ns = "endings";
        source_job(cluster, ns, "fails", "exit 3", |j| j["spec"]["backoffLimit"] = json!(1));
        source_job(cluster, ns, "slow", "sleep 100000", |j| j["spec"]["activeDeadlineSeconds"] = json!(2));
        source_job(cluster, ns, "bad-image", "true", |j| {
            j["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.local/does-not-exist:1")
        });
        source_job(cluster, ns, "pausable", "sleep 100000", |_| {});
        let p = provider(cluster, ns);
        let rt = rt();
        rt.block_on(async {
            let failed = p.run(request("fails", "f", &[])).await.unwrap();
            let last = wait_terminal(&p, &failed.run_id).await.pop().unwrap();
            assert_eq!((last.state, last.reason.as_deref()), (RunState::Failed, Some("BackoffLimitExceeded")));
            assert!(last.units.iter().any(|u| u.containers.iter().any(|c| c.exit_code == Some(3))), "{last:?}");

            let deadline = p.run(request("slow", "d", &[])).await.unwrap();
            let last = wait_terminal(&p, &deadline.run_id).await.pop().unwrap();
            assert_eq!((last.state, last.reason.as_deref()), (RunState::Failed, Some("DeadlineExceeded")));

            let stuck = p.run(request("bad-image", "i", &[])).await.unwrap();
            let mut seen = None;
            for _ in 0..1000 {
                let s = p.poll(PollRequest { run_id: stuck.run_id.clone() }).await.unwrap();
                if s.reason.as_deref().is_some_and(|r| r == "ImagePullBackOff" || r == "ErrImagePull") {
                    seen = Some(s);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let s = seen.expect("the pull failure shows in the status");
            assert!(matches!(s.state, RunState::Starting | RunState::Running), "{s:?}");

            let paused = p.run(request("pausable", "s", &[])).await.unwrap();
            for _ in 0..1000 {
                if p.poll(PollRequest { run_id: paused.run_id.clone() }).await.unwrap().state == RunState::Running {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            cluster
                .request("PATCH", &format!("/apis/batch/v1/namespaces/{ns}/jobs/{}", paused.run_id), Some(json!({"spec": {"suspend": true}})))
                .await
                .unwrap();
            let last = wait_terminal(&p, &paused.run_id).await.pop().unwrap();
            assert_eq!(last.state, RunState::Cancelled);

            // Cancel removes the Job and its pods.
            p.cancel(CancelRequest { run_id: stuck.run_id.clone(), ..Default::default() }).await.unwrap();
            assert!(cluster.request("GET", &format!("/apis/batch/v1/namespaces/{ns}/jobs/{}", stuck.run_id), None).await.is_err());
            for _ in 0..600 {
                let pods = cluster
                    .request("GET", &format!("/api/v1/namespaces/{ns}/pods?labelSelector=polysync.io%2Frun%3D{}", stuck.run_id), None)
                    .await
                    .unwrap();
                if pods["items"].as_array().is_none_or(Vec::is_empty) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the cancelled run's pods stayed");
        });
    }
);

cluster_test!(
    fn a_deleted_source_runs_from_its_fallback(cluster) {
        let p = provider(cluster, "fallback");
        cluster.ensure_namespace("fallback");
        let rt = rt();
        rt.block_on(async {
            let mut req = request("gone-job", "fb-1", &[("WHO", "fallback")]);
            let err = p.run(req.clone()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "no fallback stored: {err}");
            req.fallback = Some(FallbackAttributes {
                image: None,
                command: vec!["sh".into(), "-c".into()],
                args: vec!["echo hello $WHO".into()],
                env: Default::default(),
                template: None,
            });
            let run = p.run(req).await.unwrap();
            assert_eq!(run.source, RunSource::Fallback);
            assert_eq!(wait_terminal(&p, &run.run_id).await.last().unwrap().state, RunState::Success);
            assert_eq!(logs(&p, &run.run_id).await, "hello fallback\n");
            let job = cluster.job("fallback", &run.run_id).unwrap();
            assert_eq!(job["spec"]["template"]["spec"]["containers"][0]["image"], "busybox");
        });
    }
);

/// Put a Job into the sandbox's store as a live cluster would return it.
fn sandbox_source_job(cluster: &SandboxCluster, namespace: &str, name: &str, script: &str) {
    let store = cluster.sandbox.store();
    seed::ensure_namespace(store, namespace);
    let mut job = seed::finished_job(namespace, name, 1);
    job["spec"]["template"]["spec"]["containers"][0]["args"] = json!([script]);
    store.create(polysync_sandbox::resources::Kind::Job, job).unwrap();
}

#[test]
fn watch_survives_cut_connections_and_410() {
    // Its own cluster: a short history so a reconnect gets 410.
    let cluster = SandboxCluster::start_with(SandboxConfig {
        history: 500,
        time_scale: 0.02,
        seed: SeedConfig { namespace: "watch".into(), ..SeedConfig::default() },
        ..SandboxConfig::default()
    });
    sandbox_source_job(&cluster, "watch", "steps", "sleep 100; echo done");
    let p = provider_with(&cluster.settings("watch"));
    let rt = rt();
    rt.block_on(async {
        let run = p.run(request("steps", "w", &[])).await.unwrap();
        // Cut every watch connection after one event, and churn the store
        // past its history, so reconnects from the last version get 410.
        // Requests take 300 ms, so the history has turned over by the time a
        // reconnect arrives.
        cluster.sandbox.faults().set(FaultSettings { watch_cut_after: Some(1), latency_ms: 300, ..Default::default() });
        let stream = p.watch(WatchRequest { run_ids: vec![run.run_id.clone()] }).await.unwrap();
        let store = cluster.sandbox.store().clone();
        // 2,500 changes every 100 ms: the 500-change history turns over
        // far faster than the watcher's reconnect backoff.
        let churn = tokio::spawn(async move {
            for i in 0.. {
                seed::ensure_namespace(&store, &format!("churn-{i}"));
                if i % 2500 == 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        let all: Vec<RunStatus> = tokio::time::timeout(Duration::from_secs(60), stream.map(|s| s.unwrap()).collect())
            .await
            .expect("the watch reaches the end");
        churn.abort();
        cluster.sandbox.faults().clear();
        assert_eq!(all.last().unwrap().state, RunState::Success, "{all:?}");
        assert!(
            cluster.sandbox.stats().get("list", "jobs") >= 2,
            "the watcher relisted: {:?}",
            cluster.sandbox.stats().snapshot()
        );
    });
}

#[test]
fn watch_falls_back_to_polling_when_rbac_forbids_watch() {
    use polysync_sandbox::{Access, Identity};
    let cluster = SandboxCluster::start_with(SandboxConfig {
        time_scale: 0.02,
        extra_tokens: vec![("no-watch".into(), Identity { user: "lister".into(), access: Access::AllButWatch })],
        seed: SeedConfig { namespace: "nowatch".into(), ..SeedConfig::default() },
        ..SandboxConfig::default()
    });
    // 10 s of sandbox time: the run is still going when the watch is tried.
    sandbox_source_job(&cluster, "nowatch", "short", "sleep 500; echo hi");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.sandbox.kubeconfig_for("no-watch", "nowatch")).unwrap();
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-provider-kubernetes"));
    let p = registry.connect("kubernetes", &json!({"kubeconfig": kubeconfig, "namespace": "nowatch"})).unwrap();
    let rt = rt();
    rt.block_on(async {
        let run = p.run(request("short", "nw", &[])).await.unwrap();
        let last = wait_terminal(&p, &run.run_id).await.pop().unwrap();
        assert_eq!(last.state, RunState::Success);
    });
    let stats = cluster.sandbox.stats();
    // The Job and pod watchers run side by side; whichever is refused first
    // switches the call to polling, so the other may never ask.
    assert!(
        stats.get("watch", "jobs") + stats.get("watch", "pods") >= 1,
        "a watch was tried first: {:?}",
        stats.snapshot()
    );
    assert!(stats.get("list", "jobs") >= 2, "then it polled: {:?}", stats.snapshot());
}

cluster_test!(
    fn logs_cover_init_containers_first_and_follow_to_the_end(cluster) {
        source_job(cluster, "logs", "two-steps", "echo main one; sleep 20; echo main two", |j| {
            j["spec"]["template"]["spec"]["initContainers"] = json!([{"name": "prepare", "image": "busybox", "command": ["sh", "-c", "echo preparing $GREETING"], "env": [{"name": "GREETING", "value": "init"}]}]);
        });
        let p = provider(cluster, "logs");
        let rt = rt();
        rt.block_on(async {
            let run = p.run(request("two-steps", "logs-1", &[])).await.unwrap();
            // Follow from the start: every line, init first, and the stream ends with the run.
            let follow =
                p.logs(LogRequest { run_id: run.run_id.clone(), follow: true, ..Default::default() }).await.unwrap();
            let chunks: Vec<_> = tokio::time::timeout(Duration::from_secs(60), follow.collect::<Vec<_>>())
                .await
                .expect("follow ends with the run");
            let chunks: Vec<_> = chunks.into_iter().map(|c| c.unwrap()).collect();
            let text: String = chunks.iter().map(|c| c.text.as_str()).collect();
            assert_eq!(text, "preparing init\nmain one\nmain two\n");
            assert_eq!(chunks[0].container, "prepare");
            assert_eq!(chunks.last().unwrap().container, "main");
            let tail: Vec<_> = p
                .logs(LogRequest {
                    run_id: run.run_id.clone(),
                    container: Some("main".into()),
                    tail_lines: Some(1),
                    ..Default::default()
                })
                .await
                .unwrap()
                .collect()
                .await;
            assert_eq!(tail.into_iter().map(|c| c.unwrap().text).collect::<String>(), "main two\n");
            let err = p
                .logs(LogRequest { run_id: run.run_id.clone(), container: Some("nope".into()), ..Default::default() })
                .await
                .err()
                .expect("unknown container");
            assert_eq!(err.kind(), ErrorKind::NotFound);
        });
    }
);

/// The `polysync` binary with a config whose one connection `k` is
/// `namespace` of `cluster`, and a catalog in `dir`.
fn cli(cluster: &Cluster, namespace: &str, dir: &std::path::Path) -> impl Fn(&[&str]) -> std::process::Output {
    let connection = format!(
        "provider = \"kubernetes\"\nkubeconfig = {:?}\nnamespace = \"{namespace}\"",
        cluster.kubeconfig().display().to_string()
    );
    let config = polysync_tests::write_config(dir, "polysync-provider-kubernetes", None, "", "k", &connection);
    move |args: &[&str]| polysync_tests::polysync_command(&config).args(args).output().unwrap()
}

fn stdout_json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}), exit {:?}:\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

cluster_test!(
    fn outputs_from_termination_messages_and_log_markers_through_the_binary(cluster) {
        let ns = "outputs";
        let declare = |names: &'static str| move |job: &mut Value| job["metadata"]["annotations"] = json!({"polysync.io/outputs": names});
        source_job(cluster, ns, "out-json", r#"printf '{"ROWS": "42", "REPORT_URL": "https://reports/1"}' > /dev/termination-log"#, declare("ROWS, REPORT_URL"));
        source_job(cluster, ns, "out-lines", "echo ROWS=$GREETING > /dev/termination-log; echo EXTRA=undeclared >> /dev/termination-log", declare("ROWS"));
        source_job(cluster, ns, "out-markers", "echo start; echo '::polysync-output ROWS=7'; echo done", declare("ROWS"));
        source_job(cluster, ns, "out-malformed", "echo 'this is not an output' > /dev/termination-log", declare("ROWS"));
        source_job(cluster, ns, "out-long", "echo \"PAD=$PAD\" > /dev/termination-log; echo LAST=1 >> /dev/termination-log", |job| {
            job["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "PAD", "value": "p".repeat(5000)}]);
        });
        // Four containers (init included) share a kubelet's 12 KiB: each
        // message keeps its first 3072 bytes, so this one loses its end.
        source_job(cluster, ns, "out-crowded", "echo FIRST=1 > /dev/termination-log; echo \"PAD=$PAD\" >> /dev/termination-log; echo LAST=1 >> /dev/termination-log", |job| {
            let spec = &mut job["spec"]["template"]["spec"];
            spec["containers"][0]["env"] = json!([{"name": "PAD", "value": "p".repeat(3500)}]);
            let helper = |name: &str| json!({"name": name, "image": "busybox", "command": ["sh", "-c"], "args": ["echo helping"]});
            spec["containers"].as_array_mut().unwrap().extend([helper("helper-a"), helper("helper-b")]);
            spec["initContainers"] = json!([helper("prepare")]);
        });
        source_job(cluster, ns, "out-inout", "echo \"COUNT=${COUNT}0\" > /dev/termination-log", |job| {
            job["metadata"]["annotations"] = json!({"polysync.io/outputs": "COUNT, TOTAL"});
            job["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "COUNT", "value": "1"}]);
        });
        source_job(cluster, ns, "out-failed", "echo 'FallbackToLogsOnError keeps this'; exit 3", |job| {
            job["spec"]["backoffLimit"] = json!(0);
            job["spec"]["template"]["spec"]["containers"][0]["terminationMessagePolicy"] = json!("FallbackToLogsOnError");
        });
        source_job(cluster, ns, "out-indexed", "echo \"ROWS=${JOB_COMPLETION_INDEX}0\" > /dev/termination-log", |job| {
            job["spec"]["completionMode"] = json!("Indexed");
            job["spec"]["completions"] = json!(2);
            job["spec"]["parallelism"] = json!(2);
        });
        let dir = tempfile::tempdir().unwrap();
        let polysync = cli(cluster, ns, dir.path());
        let out = polysync(&["discover", "k"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        // Discovery: declared outputs are Output parameters; one that is
        // also an env var is InputOutput.
        let entry = stdout_json(&polysync(&["-o", "json", "catalog", "k", "--entry", "out-inout"]));
        let params: Vec<(String, String)> = entry["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p["direction"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(params, [("COUNT".into(), "InputOutput".into()), ("TOTAL".into(), "Output".into())]);

        // An output cannot be given as a parameter.
        let out = polysync(&["run", "k", "out-json", "-p", "ROWS=1"]);
        assert_eq!(out.status.code(), Some(20), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("ROWS is an output of out-json"));

        let run = |entry: &str, params: &[&str]| {
            let mut args = vec!["-o", "json", "run", "k", entry, "--wait"];
            for p in params {
                args.extend(["-p", p]);
            }
            stdout_json(&polysync(&args))
        };
        let outputs = |run: &Value| -> Vec<(String, String)> {
            run["outputs"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect()
        };

        let r = run("out-json", &[]);
        assert_eq!(r["state"], "Success", "{r}");
        assert_eq!(outputs(&r), [("REPORT_URL".into(), "https://reports/1".into()), ("ROWS".into(), "42".into())]);
        assert!(r.get("output_error").is_none(), "{r}");

        let r = run("out-lines", &[]);
        assert_eq!(outputs(&r), [("EXTRA".into(), "undeclared".into()), ("ROWS".into(), "hello".into())], "undeclared outputs are kept");

        let r = run("out-markers", &[]);
        assert_eq!(outputs(&r), [("ROWS".into(), "7".into())]);
        let logs = polysync(&["logs", r["id"].as_i64().unwrap().to_string().as_str()]);
        assert!(String::from_utf8_lossy(&logs.stdout).contains("::polysync-output ROWS=7"), "the marker stays in the log");

        let r = run("out-malformed", &[]);
        assert_eq!(r["state"], "Success", "a bad message does not fail the run: {r}");
        let error = r["output_error"].as_str().unwrap();
        assert!(error.contains("line 1 of the termination message is not NAME=VALUE"), "{error}");
        assert!(error.contains("declared outputs not written: ROWS"), "{error}");

        let r = run("out-long", &[]);
        assert_eq!(r["state"], "Success", "{r}");
        assert!(r["output_error"].as_str().unwrap().contains("most a kubelet keeps is 4096"), "{r}");
        assert_eq!(outputs(&r), [("LAST".into(), "1".into())], "the whole lines after the cut are kept");

        let r = run("out-crowded", &[]);
        assert_eq!(r["state"], "Success", "{r}");
        let error = r["output_error"].as_str().unwrap();
        assert!(error.contains("only the first 3072 bytes") && error.contains("4 containers"), "{error}");
        assert_eq!(outputs(&r), [("FIRST".into(), "1".into())], "the cut last line is dropped, not reported short: {r}");

        let r = run("out-inout", &["COUNT=5"]);
        assert_eq!(outputs(&r), [("COUNT".into(), "50".into())], "sent as env, updated from the result");
        assert!(r["output_error"].as_str().unwrap().contains("TOTAL"), "a declared output never written is named");

        let r = run("out-failed", &[]);
        assert_eq!(r["state"], "Failed", "{r}");
        assert!(r["output_error"].as_str().unwrap().contains("termination message"), "{r}");
        let pod_message = &r["outputs"];
        assert!(pod_message.is_null(), "a log tail is not an output: {r}");

        let r = run("out-indexed", &[]);
        assert_eq!(outputs(&r), [("ROWS.0".into(), "00".into()), ("ROWS.1".into(), "10".into())], "one per index: {r}");

        // `status` and `runs --outputs` show them.
        let id = run("out-json", &[])["id"].as_i64().unwrap().to_string();
        let status = String::from_utf8_lossy(&polysync(&["status", &id]).stdout).into_owned();
        assert!(status.contains("output ROWS=42"), "{status}");
        let runs = String::from_utf8_lossy(&polysync(&["runs", "--outputs", "--entry", "out-json"]).stdout).into_owned();
        assert!(runs.contains("OUTPUTS") && runs.contains("ROWS=42"), "{runs}");
    }
);
