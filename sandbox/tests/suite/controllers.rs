//! The job and cronjob controllers and the simulated kubelet: condition
//! sequences, backoff, deadlines, suspend/resume, indexed completion,
//! image pull failures, config errors, TTL, logs.

use std::time::Duration;

use crate::common::{condition_types, job, start};
use http::StatusCode;
use polysync_sandbox::SandboxConfig;
use serde_json::{Value, json};

const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";

fn finished(j: &Value) -> bool {
    let c = condition_types(j);
    c.contains(&"Complete".to_owned()) || c.contains(&"Failed".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_sets_success_criteria_met_then_complete() {
    let api = start(SandboxConfig::default()).await;
    let (_, list) = api.get(JOBS).await;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    api.post(JOBS, job("ok", "echo hi; sleep 5")).await;
    let done = api.wait_for(&format!("{JOBS}/ok"), "completion", finished).await;
    assert_eq!(condition_types(&done), ["SuccessCriteriaMet", "Complete"]);
    let complete = &done["status"]["conditions"][1];
    assert_eq!(complete["reason"], "CompletionsReached");
    let status = &done["status"];
    assert_eq!(
        (status["succeeded"].as_i64(), status["active"].as_i64(), status["failed"].as_i64()),
        (Some(1), Some(0), Some(0))
    );
    assert!(status["startTime"].is_string() && status["completionTime"].is_string());
    assert_eq!(status["uncountedTerminatedPods"], json!({}));
    // The watch saw SuccessCriteriaMet before Complete.
    let events = api.stream_lines(&format!("{JOBS}?watch=true&resourceVersion={rv}"), Duration::from_millis(200)).await;
    let seen: Vec<Vec<String>> =
        events.iter().map(|e| condition_types(&e["object"])).filter(|c| !c.is_empty()).collect();
    assert_eq!(seen.first().unwrap(), &["SuccessCriteriaMet".to_owned()], "{seen:?}");
    // The pod carries the job's labels and a real-looking final state.
    let pod = api.pods_of("default", "ok").await.pop().unwrap();
    assert_eq!(pod["status"]["phase"], "Succeeded");
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["controller-uid"], done["metadata"]["uid"]);
    assert_eq!(labels["batch.kubernetes.io/job-name"], "ok");
    let terminated = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!((terminated["exitCode"].as_i64(), terminated["reason"].as_str()), (Some(0), Some("Completed")));
    let (_, events) = api.get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dok").await;
    let reasons: Vec<&str> =
        events["items"].as_array().unwrap().iter().map(|e| e["reason"].as_str().unwrap()).collect();
    assert!(reasons.contains(&"SuccessfulCreate") && reasons.contains(&"Completed"), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_limit_fails_with_failure_target_first() {
    let api = start(SandboxConfig::default()).await;
    let mut j = job("flaky", "echo trying; exit 3");
    j["spec"]["backoffLimit"] = json!(1);
    api.post(JOBS, j).await;
    let done = api.wait_for(&format!("{JOBS}/flaky"), "failure", finished).await;
    assert_eq!(condition_types(&done), ["FailureTarget", "Failed"]);
    let failed = &done["status"]["conditions"][1];
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert_eq!(failed["message"], "Job has reached the specified backoff limit");
    assert_eq!(done["status"]["failed"], 2, "backoffLimit 1 allows one retry");
    let pods = api.pods_of("default", "flaky").await;
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Failed"));
    assert_eq!(pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_deadline_fails_the_job() {
    let api = start(SandboxConfig::default()).await;
    let mut j = job("slow", "sleep 600");
    j["spec"]["activeDeadlineSeconds"] = json!(2);
    api.post(JOBS, j).await;
    let done = api.wait_for(&format!("{JOBS}/slow"), "deadline", finished).await;
    assert_eq!(condition_types(&done), ["FailureTarget", "Failed"]);
    assert_eq!(done["status"]["conditions"][1]["reason"], "DeadlineExceeded");
    assert!(api.pods_of("default", "slow").await.is_empty(), "active pods are removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_removes_pods_and_resume_restarts() {
    let api = start(SandboxConfig::default()).await;
    api.post(JOBS, job("pausable", "sleep 600")).await;
    api.wait_for(&format!("{JOBS}/pausable"), "active pod", |j| j["status"]["active"] == 1).await;
    api.patch(&format!("{JOBS}/pausable"), "application/merge-patch+json", json!({"spec": {"suspend": true}})).await;
    let suspended = api
        .wait_for(&format!("{JOBS}/pausable"), "suspension", |j| condition_types(j).contains(&"Suspended".to_owned()))
        .await;
    let c = suspended["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Suspended")
        .unwrap()
        .clone();
    assert_eq!((c["reason"].as_str(), c["message"].as_str()), (Some("JobSuspended"), Some("Job suspended")));
    assert_eq!(suspended["status"]["active"], 0);
    assert!(suspended["status"].get("startTime").is_none());
    for _ in 0..100 {
        if api.pods_of("default", "pausable").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(api.pods_of("default", "pausable").await.is_empty());
    assert_eq!(suspended["metadata"]["generation"], 2, "a spec change bumps the generation");

    api.patch(
        &format!("{JOBS}/pausable"),
        "application/json-patch+json",
        json!([{"op": "replace", "path": "/spec/suspend", "value": false}]),
    )
    .await;
    let resumed = api.wait_for(&format!("{JOBS}/pausable"), "resume", |j| j["status"]["active"] == 1).await;
    let c =
        resumed["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Suspended").unwrap().clone();
    assert_eq!((c["status"].as_str(), c["reason"].as_str()), (Some("False"), Some("JobResumed")));
    assert!(resumed["status"]["startTime"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_jobs_complete_every_index() {
    let api = start(SandboxConfig::default()).await;
    let mut j = job("indexed", "echo index $JOB_COMPLETION_INDEX");
    j["spec"]["completionMode"] = json!("Indexed");
    j["spec"]["completions"] = json!(3);
    j["spec"]["parallelism"] = json!(2);
    api.post(JOBS, j).await;
    let done = api.wait_for(&format!("{JOBS}/indexed"), "completion", finished).await;
    assert!(condition_types(&done).contains(&"Complete".to_owned()));
    assert_eq!(done["status"]["completedIndexes"], "0-2");
    let pods = api.pods_of("default", "indexed").await;
    let mut logs = Vec::new();
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap();
        let index = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"].as_str().unwrap();
        assert!(name.starts_with(&format!("indexed-{index}-")), "{name}");
        let (_, log) = api.get(&format!("/api/v1/namespaces/default/pods/{name}/log")).await;
        logs.push(log.as_str().unwrap().to_owned());
    }
    logs.sort();
    assert_eq!(logs, ["index 0\n", "index 1\n", "index 2\n"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpullable_images_and_missing_secrets_keep_pods_waiting() {
    let api = start(SandboxConfig::default()).await;
    let mut j = job("bad-image", "true");
    j["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.example/does-not-exist:1");
    api.post(JOBS, j).await;
    let mut j = job("bad-secret", "true");
    j["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]);
    api.post(JOBS, j).await;
    for (name, reasons) in
        [("bad-image", vec!["ErrImagePull", "ImagePullBackOff"]), ("bad-secret", vec!["CreateContainerConfigError"])]
    {
        let mut seen = None;
        for _ in 0..200 {
            if let Some(p) = api.pods_of("default", name).await.pop()
                && let Some(r) = p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].as_str()
                && reasons.contains(&r)
            {
                seen = Some((r.to_owned(), p));
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (reason, pod) = seen.unwrap_or_else(|| panic!("{name} never showed {reasons:?}"));
        assert_eq!(pod["status"]["phase"], "Pending", "{reason}");
        let pod_name = pod["metadata"]["name"].as_str().unwrap();
        let (s, body) = api.get(&format!("/api/v1/namespaces/default/pods/{pod_name}/log")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(body["message"].as_str().unwrap().contains("is waiting to start"), "{body}");
    }
    let (_, j) = api.get(&format!("{JOBS}/bad-image")).await;
    assert!(!finished(&j), "a pod that cannot pull keeps the job running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_after_finished_deletes_the_job() {
    let api = start(SandboxConfig::default()).await;
    let mut j = job("short-lived", "true");
    j["spec"]["ttlSecondsAfterFinished"] = json!(1);
    api.post(JOBS, j).await;
    for _ in 0..300 {
        if api.get(&format!("{JOBS}/short-lived")).await.0 == StatusCode::NOT_FOUND {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the job outlived its TTL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_restarts_count_toward_the_backoff_limit() {
    let api = start(SandboxConfig::default()).await;
    let mut j = job("restarting", "exit 1");
    j["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    j["spec"]["backoffLimit"] = json!(2);
    api.post(JOBS, j).await;
    let done = api.wait_for(&format!("{JOBS}/restarting"), "failure", finished).await;
    assert_eq!(done["status"]["conditions"][1]["reason"], "BackoffLimitExceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_limit_follow_and_container_errors() {
    let api = start(SandboxConfig::default()).await;
    let mut j = job("talker", "echo one; echo two; sleep 10; echo three");
    j["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "side", "image": "busybox", "command": ["echo", "$(MSG)"], "env": [{"name": "MSG", "value": "from side"}]}));
    api.post(JOBS, j).await;
    let pod = loop {
        if let Some(p) = api.pods_of("default", "talker").await.pop()
            && p["status"]["phase"] == "Running"
        {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let name = pod["metadata"]["name"].as_str().unwrap();
    let base = format!("/api/v1/namespaces/default/pods/{name}/log");
    let (s, body) = api.get(&base).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        format!("a container name must be specified for pod {name}, choose one of: [main side]")
    );
    let (s, _) = api.get(&format!("{base}?container=nope")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (followed, ended) =
        api.stream_text(&format!("{base}?container=main&follow=true"), Duration::from_secs(5)).await;
    assert_eq!(followed, "one\ntwo\nthree\n", "follow delivers every line, including those after it started");
    assert!(ended, "follow ends when the container exits");
    let (_, all) = api.get(&format!("{base}?container=main")).await;
    assert_eq!(all, "one\ntwo\nthree\n");
    let (_, tail) = api.get(&format!("{base}?container=main&tailLines=1")).await;
    assert_eq!(tail, "three\n");
    let (_, limited) = api.get(&format!("{base}?container=main&limitBytes=5")).await;
    assert_eq!(limited, "one\nt");
    let (_, side) = api.get(&format!("{base}?container=side")).await;
    assert_eq!(side, "from side\n");
    let (_, stamped) = api.get(&format!("{base}?container=side&timestamps=true")).await;
    assert!(stamped.as_str().unwrap().ends_with("Z from side\n"), "{stamped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjobs_create_jobs_when_due() {
    let api =
        polysync_sandbox::Sandbox::start(SandboxConfig { tls: false, time_scale: 0.02, ..SandboxConfig::default() })
            .await
            .unwrap();
    let store = api.store();
    let mut cj = json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "every-minute", "namespace": "default"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["echo", "tick"]}]}}}}},
    });
    polysync_sandbox::validation::prepare_create(polysync_sandbox::resources::Kind::CronJob, Some("default"), &mut cj)
        .unwrap();
    let created = store.create(polysync_sandbox::resources::Kind::CronJob, cj).unwrap();
    // Pretend it was last scheduled two minutes ago, so a run is due now.
    let two_minutes_ago =
        polysync_sandbox::time::format_ts(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(120));
    store
        .mutate(polysync_sandbox::resources::Kind::CronJob, &polysync_sandbox::store::Key::of(&created), |c| {
            c["status"] = json!({"lastScheduleTime": two_minutes_ago});
            Ok(polysync_sandbox::store::Mutation::Changed)
        })
        .unwrap();
    for _ in 0..150 {
        let jobs = store.list(polysync_sandbox::resources::Kind::Job, Some("default"), None, None, None, &[]).items;
        if let Some(j) = jobs.iter().find(|j| j["metadata"]["name"].as_str().unwrap().starts_with("every-minute-")) {
            assert_eq!(j["metadata"]["ownerReferences"][0]["kind"], "CronJob");
            assert!(j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"].is_string());
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the cronjob controller created no job");
}
