//! The sandbox's HTTP API held to real API-server behaviour: error
//! `Status`es with their real reasons and codes, Job validation, paging,
//! watches, deletion propagation.

use std::time::Duration;

use crate::common::{job, start};
use http::{Method, StatusCode};
use polysync_sandbox::{Access, FaultSettings, Identity, SandboxConfig, SeedConfig};
use serde_json::{Value, json};

const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";

fn assert_status(body: &Value, code: u16, reason: &str) {
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_and_already_exists() {
    let api = start(SandboxConfig::default()).await;
    let (s, body) = api.get(&format!("{JOBS}/nope")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_status(&body, 404, "NotFound");
    assert_eq!(body["message"], "jobs.batch \"nope\" not found");
    assert_eq!(body["details"]["kind"], "jobs");

    assert_eq!(api.post(JOBS, job("twice", "true")).await.0, StatusCode::CREATED);
    let (s, body) = api.post(JOBS, job("twice", "true")).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_status(&body, 409, "AlreadyExists");

    let (s, body) = api.post("/apis/batch/v1/namespaces/missing/jobs", job("x", "true")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "namespaces \"missing\" not found");

    let (s, body) = api.get("/apis/batch/v1/namespaces/default/widgets").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_status(&body, 404, "NotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_jobs_get_422_with_causes() {
    let api = start(SandboxConfig::default()).await;
    let mut bad = job("bad-restart", "true");
    bad["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    let (s, body) = api.post(JOBS, bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_status(&body, 422, "Invalid");
    let cause = &body["details"]["causes"][0];
    assert_eq!(cause["field"], "spec.template.spec.restartPolicy");
    assert_eq!(cause["reason"], "FieldValueNotSupported");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Job.batch \"bad-restart\" is invalid: spec.template.spec.restartPolicy")
    );

    // A Job copied from a live cluster: selector and controller-uid labels of
    // another Job, no manualSelector.
    let mut copied = job("copied", "true");
    copied["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "0000-old"}});
    copied["spec"]["template"]["metadata"] = json!({"labels": {"controller-uid": "0000-old", "batch.kubernetes.io/controller-uid": "0000-old", "job-name": "original", "batch.kubernetes.io/job-name": "original"}});
    let (s, body) = api.post(JOBS, copied).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> =
        body["details"]["causes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"spec.selector"), "{fields:?}");
    assert!(fields.contains(&"spec.template.metadata.labels[controller-uid]"), "{fields:?}");
    assert!(fields.contains(&"spec.template.metadata.labels[batch.kubernetes.io/job-name]"), "{fields:?}");
    let selector_cause =
        body["details"]["causes"].as_array().unwrap().iter().find(|c| c["field"] == "spec.selector").unwrap();
    assert!(selector_cause["message"].as_str().unwrap().contains("`selector` not auto-generated"));

    // A selector alone, without manualSelector.
    let mut with_selector = job("with-selector", "true");
    with_selector["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
    let (s, _) = api.post(JOBS, with_selector).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Names: a DNS-1123 label of at most 63 characters.
    let long = "a".repeat(64);
    let (s, body) = api.post(JOBS, job(&long, "true")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
    assert!(body["details"]["causes"][0]["message"].as_str().unwrap().contains("no more than 63 characters"));
    assert_eq!(api.post(JOBS, job(&"a".repeat(63), "true")).await.0, StatusCode::CREATED);
    assert_eq!(api.post(JOBS, job("Upper_Case", "true")).await.0, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_defaulted_and_get_generated_selectors() {
    let api = start(SandboxConfig::default()).await;
    let (s, created) =
        api.post(JOBS, json!({"metadata": {"generateName": "gen-"}, "spec": job("x", "true")["spec"]})).await;
    assert_eq!(s, StatusCode::CREATED);
    let name = created["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    let uid = created["metadata"]["uid"].as_str().unwrap();
    let spec = &created["spec"];
    assert_eq!(
        (spec["backoffLimit"].as_i64(), spec["completions"].as_i64(), spec["parallelism"].as_i64()),
        (Some(6), Some(1), Some(1))
    );
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(spec["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"], uid);
    let labels = &spec["template"]["metadata"]["labels"];
    for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
        assert_eq!(labels[key], uid);
    }
    for key in ["job-name", "batch.kubernetes.io/job-name"] {
        assert_eq!(labels[key], name);
    }
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created["metadata"]["creationTimestamp"].is_string());
    assert!(created["metadata"]["resourceVersion"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_forbidden_and_throttled() {
    let config = SandboxConfig {
        extra_tokens: vec![("viewer-token".into(), Identity { user: "viewer".into(), access: Access::ReadOnly })],
        ..SandboxConfig::default()
    };
    let api = start(config).await;
    let (s, body, _) = api.call_as("", Method::GET, JOBS, "application/json", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_status(&body, 401, "Unauthorized");
    let (s, _, _) = api.call_as("wrong", Method::GET, JOBS, "application/json", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, _, _) = api.call_as("viewer-token", Method::GET, JOBS, "application/json", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body, _) =
        api.call_as("viewer-token", Method::POST, JOBS, "application/json", Some(job("x", "true"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_status(&body, 403, "Forbidden");
    assert_eq!(
        body["message"],
        "jobs.batch is forbidden: User \"viewer\" cannot create resource \"jobs\" in API group \"batch\" in the namespace \"default\""
    );

    api.sandbox.faults().set(FaultSettings {
        error_rate: 1.0,
        error_codes: vec![429],
        retry_after_seconds: 3,
        ..Default::default()
    });
    let (s, body, headers) = api.call(Method::GET, JOBS, "application/json", None).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_status(&body, 429, "TooManyRequests");
    assert_eq!(headers.get("retry-after").unwrap(), "3");
    // Discovery stays reachable while faults are on.
    assert_eq!(api.get("/apis/batch/v1").await.0, StatusCode::OK);
    api.sandbox.faults().set(FaultSettings { error_rate: 1.0, error_codes: vec![503], ..Default::default() });
    assert_eq!(api.get(JOBS).await.0, StatusCode::SERVICE_UNAVAILABLE);
    api.sandbox.faults().clear();
    assert_eq!(api.get(JOBS).await.0, StatusCode::OK);
    assert!(api.sandbox.stats().get("list", "jobs") >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_selectors_and_stale_continue_tokens() {
    let seed = SeedConfig { jobs: 55, cronjobs: 2, ..SeedConfig::default() };
    let api = start(SandboxConfig { seed, ..SandboxConfig::default() }).await;
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut first_rv = None;
    loop {
        let path = match &token {
            Some(t) => format!("{JOBS}?limit=10&continue={t}"),
            None => format!("{JOBS}?limit=10"),
        };
        let (s, page) = api.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(page["kind"], "JobList");
        let rv = page["metadata"]["resourceVersion"].clone();
        assert_eq!(*first_rv.get_or_insert(rv.clone()), rv, "every page reports the list's resourceVersion");
        names.extend(
            page["items"].as_array().unwrap().iter().map(|j| j["metadata"]["name"].as_str().unwrap().to_owned()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(t) => {
                let remaining = page["metadata"]["remainingItemCount"].as_u64().unwrap();
                assert_eq!(remaining as usize, 57 - names.len());
                token = Some(t.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(names.len(), 57, "55 jobs and 2 cronjob-owned jobs");
    let mut sorted = names.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 57);

    let (_, selected) = api.get(&format!("{JOBS}?labelSelector=team%3Dpayments")).await;
    assert!(selected["items"].as_array().unwrap().iter().all(|j| j["metadata"]["labels"]["team"] == "payments"));
    let (_, notin) = api.get(&format!("{JOBS}?labelSelector=team%20notin%20(payments,search),!nope")).await;
    assert!(
        notin["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| !["payments", "search"].contains(&j["metadata"]["labels"]["team"].as_str().unwrap()))
    );
    let (_, one) = api.get(&format!("{JOBS}?fieldSelector=metadata.name%3Dbatch-00007")).await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);

    let (_, first) = api.get(&format!("{JOBS}?limit=5")).await;
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    api.sandbox.faults().set(FaultSettings { expire_continue: true, ..Default::default() });
    let (s, body) = api.get(&format!("{JOBS}?limit=5&continue={token}")).await;
    assert_eq!(s, StatusCode::GONE);
    assert_status(&body, 410, "Expired");
    api.sandbox.faults().clear();
    let (s, _) = api.get(&format!("{JOBS}?limit=5&continue=not-base64!")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_version_and_410_for_old_ones() {
    let api =
        start(SandboxConfig { history: 50, bookmark_interval: Duration::from_millis(100), ..SandboxConfig::default() })
            .await;
    let (_, list) = api.get(JOBS).await;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    let mut suspended = job("watched", "sleep 1");
    suspended["spec"]["suspend"] = json!(true);
    api.post(JOBS, suspended).await;
    // Delete only once the controller has written the Job's status, so the
    // watch below always has a MODIFIED to show (a loaded machine may
    // otherwise delete first).
    for _ in 0..100 {
        let (_, job) = api.get(&format!("{JOBS}/watched")).await;
        if job["status"]["conditions"].as_array().is_some_and(|c| !c.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.delete(&format!("{JOBS}/watched"), None).await;
    let events = api
        .stream_lines(
            &format!("{JOBS}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true"),
            Duration::from_millis(400),
        )
        .await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"ADDED"), "{types:?}");
    assert!(types.contains(&"MODIFIED"), "the controller's status writes are seen: {types:?}");
    assert!(types.contains(&"DELETED"), "{types:?}");
    assert!(types.contains(&"BOOKMARK"), "{types:?}");
    let bookmark = events.iter().find(|e| e["type"] == "BOOKMARK").unwrap();
    assert!(
        bookmark["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap()
            > rv.parse().unwrap()
    );

    // Push the starting version out of the kept history.
    for i in 0..60 {
        api.post("/api/v1/namespaces", json!({"metadata": {"name": format!("ns-{i}")}})).await;
    }
    let events = api.stream_lines(&format!("{JOBS}?watch=true&resourceVersion={rv}"), Duration::from_millis(300)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");

    // Label-selector watches see an object leave the selection as DELETED.
    let (_, list) = api.get(JOBS).await;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    let mut labelled = job("labelled", "true");
    labelled["metadata"]["labels"] = json!({"watch": "me"});
    labelled["spec"]["suspend"] = json!(true);
    api.post(JOBS, labelled).await;
    api.patch(
        &format!("{JOBS}/labelled"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"watch": null}}}),
    )
    .await;
    let events = api
        .stream_lines(
            &format!("{JOBS}?watch=1&resourceVersion={rv}&labelSelector=watch%3Dme"),
            Duration::from_millis(300),
        )
        .await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"ADDED"));
    assert_eq!(types.last(), Some(&"DELETED"), "{types:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_can_be_cut_by_fault_injection() {
    let api = start(SandboxConfig::default()).await;
    api.sandbox.faults().set(FaultSettings { watch_cut_after: Some(2), ..Default::default() });
    for i in 0..4 {
        let mut j = job(&format!("cut-{i}"), "true");
        j["spec"]["suspend"] = json!(true);
        api.post(JOBS, j).await;
    }
    let events = api.stream_lines(&format!("{JOBS}?watch=true"), Duration::from_millis(500)).await;
    assert_eq!(events.len(), 2, "the connection is cut after two events: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_job_orphans_its_pods_by_default() {
    let api = start(SandboxConfig::default()).await;
    for (name, policy) in [("orphaned", None), ("background", Some("Background")), ("foreground", Some("Foreground"))] {
        api.post(JOBS, job(name, "sleep 1000")).await;
        let path = format!("{JOBS}/{name}");
        for _ in 0..200 {
            if !api.pods_of("default", name).await.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pod = api.pods_of("default", name).await.pop().expect("the job controller made a pod");
        let pod_name = pod["metadata"]["name"].as_str().unwrap().to_owned();
        assert!(pod_name.starts_with(&format!("{name}-")), "{pod_name}");
        let body = policy.map(|p| json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": p}));
        let (s, _) = api.delete(&path, body).await;
        assert_eq!(s, StatusCode::OK);
        let pod_path = format!("/api/v1/namespaces/default/pods/{pod_name}");
        match policy {
            None => {
                let (s, pod) = api.get(&pod_path).await;
                assert_eq!(s, StatusCode::OK, "the API default for Jobs orphans pods");
                assert!(pod["metadata"]["ownerReferences"].as_array().is_none_or(Vec::is_empty), "{pod}");
                assert_eq!(api.get(&path).await.0, StatusCode::NOT_FOUND);
            }
            Some(_) => {
                api.wait_for(&pod_path, "pod removal", |_| false).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_files_and_the_sandbox_switches_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.yaml");
    std::fs::write(
        &file,
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: batch/v1
kind: Job
metadata: {name: finished-report, namespace: team-a}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox, command: ["echo", "old"]}]
status:
  succeeded: 1
  conditions: [{type: Complete, status: "True"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: hourly, namespace: team-a}
spec:
  schedule: "@hourly"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: main, image: busybox}]
"#,
    )
    .unwrap();
    let seed = SeedConfig { file: Some(file.clone()), ..SeedConfig::default() };
    let api = start(SandboxConfig { seed, ..SandboxConfig::default() }).await;
    let (s, job) = api.get("/apis/batch/v1/namespaces/team-a/jobs/finished-report").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(job["status"]["succeeded"], 1, "a seeded Job keeps its status");
    assert!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"].is_string(),
        "and went through defaulting"
    );
    assert_eq!(api.get("/apis/batch/v1/namespaces/team-a/cronjobs/hourly").await.0, StatusCode::OK);

    // A bad seed file names the file and the document.
    std::fs::write(&file, "kind: Widget\nmetadata: {name: x}\n").unwrap();
    let err = polysync_sandbox::Sandbox::start(SandboxConfig {
        tls: false,
        seed: SeedConfig { file: Some(file), ..SeedConfig::default() },
        ..SandboxConfig::default()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("document 1") && err.to_string().contains("Widget"), "{err}");

    // The switches, over HTTP with the admin token.
    let (s, _, _) = api
        .call(
            Method::PUT,
            "/sandbox/faults",
            "application/json",
            Some(json!({"error_rate": 1.0, "error_codes": [500]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api.get(JOBS).await.0, StatusCode::INTERNAL_SERVER_ERROR);
    api.call(Method::PUT, "/sandbox/faults", "application/json", Some(json!({}))).await;
    assert_eq!(api.get(JOBS).await.0, StatusCode::OK);
    let (_, stats) = api.get("/sandbox/stats").await;
    assert!(stats["requests"]["list jobs"].as_u64().unwrap() >= 2, "{stats}");
    api.delete("/sandbox/stats", None).await;
    let (_, stats) = api.get("/sandbox/stats").await;
    assert_eq!(stats["total"], 0);
}
