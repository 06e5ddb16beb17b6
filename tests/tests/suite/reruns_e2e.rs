//! Reruns that stay right on real clusters, through the built `polysync`
//! binary, on the sandbox and on the real control plane: Kueue's queue,
//! TTL-deleted Jobs, logs that outlive the Job, Indexed names, rebuilds from
//! a deleted source, rerun hygiene, a closed stdout, and the startup
//! timeout. Each from the user's side: the command, its exit code, its JSON,
//! what stays on the cluster.

use std::process::Stdio;
use std::time::Duration;

use polysync_tests::cli::{Env, finish, json_of, text};
use polysync_tests::{cluster_test, source_job};
use serde_json::json;

cluster_test!(
    fn a_kueue_run_waits_queued_and_ends_with_its_real_outcome(cluster) {
        let env = Env::new(cluster, "rr-kueue");
        source_job(cluster, &env.ns, "queued", "echo admitted", |j| {
            j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = json!("batch");
        });
        env.discover();
        let child = env.command(&["-o", "json", "run", "k", "queued", "--wait", "--idempotency-key", "kq"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // Be Kueue: once the suspended rerun exists, admit it.
        let mut name = String::new();
        env.wait_until("the queued rerun to be created", || {
            let jobs = cluster.jobs(&env.ns, "polysync.io/source=queued");
            if let Some(j) = jobs.first() {
                name = j["metadata"]["name"].as_str().unwrap().to_owned();
                return j["spec"]["suspend"] == true;
            }
            false
        });
        // Queued, as polysync reports it, before it is admitted.
        env.wait_until("polysync to report the rerun queued", || {
            let out = env.run(&["-o", "json", "status", &name]);
            out.status.success() && json_of(&out)["reason"] == "Queued"
        });
        cluster.patch_job(&env.ns, &name, json!({"spec": {"suspend": false}}));
        let out = finish(child, &["run", "queued", "--wait"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(json_of(&out)["state"], "Success");
    }
);

cluster_test!(
    fn a_ttl_zero_run_keeps_its_status_and_its_logs(cluster) {
        let env = Env::new(cluster, "rr-ttl");
        source_job(cluster, &env.ns, "fleeting", "echo fleeting output; sleep 100", |j| j["spec"]["ttlSecondsAfterFinished"] = json!(0));
        env.discover();
        let out = env.run(&["run", "k", "fleeting", "--wait", "--logs"]);
        assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));
        assert!(text(&out.stdout).contains("fleeting output"), "{}", text(&out.stdout));
        let runs = json_of(&env.run(&["-o", "json", "runs"]));
        let id = runs[0]["id"].as_i64().unwrap().to_string();
        let run_id = runs[0]["run_id"].as_str().unwrap().to_owned();
        env.wait_until("the TTL controller to delete the Job", || env.job(&run_id).is_none());
        assert_eq!(json_of(&env.run(&["-o", "json", "status", &id]))["state"], "Success");
        assert_eq!(env.ok(&["logs", &id]), "fleeting output\n", "served from the archive");

        // A run whose Job vanished before anyone watched it ends as Lost,
        // and the next watches are not wedged.
        let out = env.run(&["-o", "json", "run", "k", "fleeting"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let unwatched = json_of(&out);
        let name = unwatched["run_id"].as_str().unwrap().to_owned();
        env.wait_until("the unwatched run's Job to finish and vanish", || {
            cluster.pods(&env.ns, &format!("polysync.io/run={name}")).is_empty() && env.job(&name).is_none()
        });
        let out = env.run(&["watch", "k"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let run = json_of(&env.run(&["-o", "json", "status", &unwatched["id"].as_i64().unwrap().to_string()]));
        assert_eq!(run["state"], "Lost", "{run}");
        let out = env.run(&["watch", "k"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("no unfinished runs"));
    }
);

cluster_test!(
    fn logs_outlive_delete_after(cluster) {
        let env = Env::new(cluster, "rr-archive");
        source_job(cluster, &env.ns, "talker", "echo first; echo second", |_| {});
        env.discover();
        let out = env.run(&["-o", "json", "run", "k", "talker", "--wait", "--delete-after", "always"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let run = json_of(&out);
        let run_id = run["run_id"].as_str().unwrap();
        assert!(env.job(run_id).is_none(), "--delete-after always removed the Job");
        let id = run["id"].as_i64().unwrap().to_string();
        assert_eq!(env.ok(&["logs", &id]), "first\nsecond\n");
        assert_eq!(env.ok(&["logs", &id, "--tail", "1"]), "second\n");
    }
);

cluster_test!(
    fn an_indexed_rerun_of_a_56_character_source_is_accepted(cluster) {
        let env = Env::new(cluster, "rr-indexed");
        let source = format!("indexed-{}", "i".repeat(48));
        assert_eq!(source.len(), 56);
        source_job(cluster, &env.ns, &source, "echo index $JOB_COMPLETION_INDEX", |j| {
            j["spec"]["completionMode"] = json!("Indexed");
            j["spec"]["completions"] = json!(12);
            j["spec"]["parallelism"] = json!(4);
        });
        env.discover();
        let out = env.run(&["-o", "json", "run", "k", &source, "--wait"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let name = json_of(&out)["run_id"].as_str().unwrap().to_owned();
        assert!(format!("{name}-11").len() <= 63, "{name}");
    }
);

cluster_test!(
    fn a_rerun_of_a_deleted_source_is_the_same_job(cluster) {
        let env = Env::new(cluster, "rr-rebuild");
        source_job(cluster, &env.ns, "rich", "echo main in $POD_NAMESPACE as $(POD_NAMESPACE); echo $GREETING", |j| {
            let pod = &mut j["spec"]["template"]["spec"];
            pod["restartPolicy"] = json!("OnFailure");
            pod["serviceAccountName"] = json!("default");
            pod["initContainers"] = json!([{"name": "setup", "image": "busybox", "command": ["sh", "-c", "echo setting up"]}]);
            let c = &mut pod["containers"][0];
            c["name"] = json!("worker");
            c["env"] = json!([
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "GREETING", "value": "hello"},
            ]);
        });
        env.discover();
        cluster.call("DELETE", &format!("/apis/batch/v1/namespaces/{}/jobs/rich", env.ns), None).unwrap();
        env.wait_until("the source to go", || env.job("rich").is_none());
        let out = env.run(&["-o", "json", "run", "k", "rich", "-p", "GREETING=bonjour", "--wait"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let run = json_of(&out);
        assert_eq!(run["source"], "Fallback");
        let id = run["id"].as_i64().unwrap().to_string();
        let logs = env.ok(&["logs", &id]);
        assert!(logs.contains("setting up"), "the init container ran: {logs}");
        assert!(logs.contains(&format!("main in {ns} as {ns}", ns = env.ns)), "valueFrom and $(VAR) resolve: {logs}");
        assert!(logs.contains("bonjour"), "{logs}");
        let job = env.job(run["run_id"].as_str().unwrap()).unwrap();
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "OnFailure");
        assert_eq!(pod["serviceAccountName"], "default");
        assert_eq!(pod["containers"][0]["name"], "worker");
    }
);

cluster_test!(
    fn reruns_drop_other_controllers_marks_and_keep_the_users(cluster) {
        let env = Env::new(cluster, "rr-hygiene");
        source_job(cluster, &env.ns, "charted", "true", |j| {
            j["metadata"]["labels"] = json!({"team": "data", "app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "etl", "helm.sh/chart": "etl-1.2.0"});
            j["metadata"]["annotations"] = json!({"helm.sh/hook": "post-install", "helm.sh/hook-delete-policy": "hook-succeeded", "meta.helm.sh/release-name": "etl", "argocd.argoproj.io/tracking-id": "etl:batch/Job:x/charted", "owner": "data-team"});
        });
        env.discover();
        let out = env.run(&["-o", "json", "run", "k", "charted"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let job = env.job(json_of(&out)["run_id"].as_str().unwrap()).unwrap();
        let labels = &job["metadata"]["labels"];
        let annotations = &job["metadata"]["annotations"];
        assert_eq!(labels["team"], "data");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "polysync");
        assert!(labels.get("app.kubernetes.io/instance").is_none() && labels.get("helm.sh/chart").is_none(), "{labels}");
        assert_eq!(annotations["owner"], "data-team");
        for gone in ["helm.sh/hook", "helm.sh/hook-delete-policy", "meta.helm.sh/release-name", "argocd.argoproj.io/tracking-id"] {
            assert!(annotations.get(gone).is_none(), "{gone} survived: {annotations}");
        }
    }
);

cluster_test!(
    fn a_closed_stdout_ends_quietly(cluster) {
        let env = Env::new(cluster, "rr-pipe");
        for i in 0..30 {
            source_job(cluster, &env.ns, &format!("many-{i:02}"), "true", |_| {});
        }
        env.discover();
        // The reading end closes before polysync writes anything (it has a
        // config and a catalog to open first), so every write hits EPIPE.
        let mut child = env.command(&["catalog"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(!text(&out.stderr).contains("panicked"), "{}", text(&out.stderr));
        assert_eq!(out.status.code(), Some(141), "{:?}: {}", out.status, text(&out.stderr));
        // With a reader, the same command prints the table.
        assert!(env.ok(&["catalog"]).starts_with("CONNECTION"));
    }
);

cluster_test!(
    fn runs_that_cannot_start_fail_fast(cluster) {
        let env = Env::new(cluster, "rr-startup");
        source_job(cluster, &env.ns, "unpullable", "true", |j| {
            j["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.local/does-not-exist:1");
        });
        source_job(cluster, &env.ns, "malformed", "true", |j| {
            j["spec"]["template"]["spec"]["containers"][0]["image"] = json!("Busybox:1");
        });
        env.discover();
        let out = env.run(&["-o", "json", "run", "k", "unpullable", "--wait", "--startup-timeout", "3s"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let run = json_of(&out);
        assert_eq!(run["state"], "Failed");
        assert!(matches!(run["reason"].as_str(), Some("ImagePullBackOff" | "ErrImagePull")), "{run}");
        assert!(run["message"].as_str().unwrap().contains("did not start within"), "{run}");
        let name = run["run_id"].as_str().unwrap().to_owned();
        env.wait_until("the stuck Job to be deleted", || env.job(&name).is_none());

        // An image name that can never be pulled fails at once, no timeout needed.
        let started = std::time::Instant::now();
        let out = env.run(&["-o", "json", "run", "k", "malformed", "--wait", "--delete-after", "never"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert_eq!(json_of(&out)["reason"], "InvalidImageName");
        assert!(started.elapsed() < Duration::from_secs(60));
        assert!(env.job(json_of(&out)["run_id"].as_str().unwrap()).is_some(), "--delete-after never keeps it");
    }
);
