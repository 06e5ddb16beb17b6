//! What only a real control plane can prove: the README's RBAC Role is
//! enough and each of its verbs is needed; a Job exported with `kubectl
//! get -o json` from a real apiserver reruns; watches survive etcd
//! compaction (a real 410) and an apiserver restart.

use std::time::Duration;

use futures::StreamExt;
use polysync::plugins::Registry;
use polysync_clusters::realkube::RealKubeConfig;
use polysync_conformance::artifacts;
use polysync_provider_api::abi::host::PluginProvider;
use polysync_provider_api::{
    CancelRequest, DiscoverRequest, ErrorKind, EventsRequest, LogRequest, PollRequest, Provider, ProviderError,
    RunState, RunStatus, WatchRequest,
};
use polysync_tests::{Cluster, Flavor, shared, source_job};
use serde_json::{Value, json};

fn provider_for(kubeconfig: &str, namespace: &str, dir: &std::path::Path) -> PluginProvider {
    let path = dir.join(format!("kubeconfig-{}", rand_suffix()));
    std::fs::write(&path, kubeconfig).unwrap();
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-provider-kubernetes"));
    registry.connect("kubernetes", &json!({"kubeconfig": path, "namespace": namespace})).unwrap()
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

use polysync_tests::{rt, run_request as request};

/// The Role in README.md, as a user would apply it.
fn readme_role() -> Value {
    let readme = std::fs::read_to_string(polysync_tests::workspace().join("README.md")).unwrap();
    let start =
        readme.find("```yaml\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role").expect("README has the Role");
    let body = &readme[start + "```yaml\n".len()..];
    let yaml = &body[..body.find("```").unwrap()];
    serde_yaml_ng::from_str(yaml).unwrap()
}

/// A step of the README tour through the plugin, and how it went.
async fn tour(p: &PluginProvider, key: &str) -> Vec<(&'static str, Result<(), ProviderError>)> {
    let limit = Duration::from_secs(60);
    let timed = |r: Result<Result<(), ProviderError>, tokio::time::error::Elapsed>| {
        r.unwrap_or_else(|_| Err(ProviderError::new(ErrorKind::Timeout, "the step hung for 60 s")))
    };
    let mut steps = Vec::new();
    let discover = tokio::time::timeout(limit, async {
        let mut token = None;
        loop {
            let page = p.discover(DiscoverRequest { page_token: token, page_size: Some(50) }).await?;
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => return Ok(()),
            }
        }
    })
    .await;
    steps.push(("discover", timed(discover)));
    let run = match p.run(request("rbac-source", &format!("{key}-a"), &[("WHO", "rbac")])).await {
        Ok(r) => r,
        Err(e) => {
            steps.push(("run", Err(e)));
            return steps;
        }
    };
    steps.push(("run", Ok(())));
    let watched = tokio::time::timeout(limit, async {
        let stream = p.watch(WatchRequest { run_ids: vec![run.run_id.clone()] }).await?;
        let all: Vec<Result<RunStatus, ProviderError>> = stream.collect().await;
        match all.into_iter().last() {
            Some(Ok(s)) if s.state == RunState::Success => Ok(()),
            Some(Ok(s)) => Err(ProviderError::new(ErrorKind::Internal, format!("ended {:?}", s.state))),
            Some(Err(e)) => Err(e),
            None => Err(ProviderError::new(ErrorKind::Internal, "the watch ended with nothing")),
        }
    })
    .await;
    steps.push(("watch", timed(watched)));
    steps.push(("poll", p.poll(PollRequest { run_id: run.run_id.clone() }).await.map(|_| ())));
    let logs = tokio::time::timeout(limit, async {
        let mut text = String::new();
        for follow in [false, true] {
            let stream = p.logs(LogRequest { run_id: run.run_id.clone(), follow, ..Default::default() }).await?;
            let chunks: Vec<_> = stream.collect().await;
            text.clear();
            for c in chunks {
                text.push_str(&c?.text);
            }
        }
        if text == "hello rbac\n" {
            Ok(())
        } else {
            Err(ProviderError::new(ErrorKind::Internal, format!("logs were {text:?}")))
        }
    })
    .await;
    steps.push(("logs", timed(logs)));
    let events = tokio::time::timeout(limit, async {
        let stream = p.events(EventsRequest { run_id: run.run_id.clone(), follow: false }).await?;
        let all: Vec<_> = stream.collect().await;
        for e in all {
            e?;
        }
        Ok(())
    })
    .await;
    steps.push(("events", timed(events)));
    steps.push(("run cronjob", p.run(request("cronjob/rbac-nightly", &format!("{key}-c"), &[])).await.map(|_| ())));
    let long = p.run(request("rbac-source", &format!("{key}-b"), &[])).await;
    steps.push((
        "cancel",
        match long {
            Ok(r) => p.cancel(CancelRequest { run_id: r.run_id, reason: None, delete: true }).await.map(|_| ()),
            Err(e) => Err(e),
        },
    ));
    steps
}

fn role_without(role: &Value, resource: &str, verb: &str) -> Value {
    let mut role = role.clone();
    for rule in role["rules"].as_array_mut().unwrap() {
        if rule["resources"].as_array().unwrap().iter().any(|r| r == resource) {
            rule["verbs"].as_array_mut().unwrap().retain(|v| v != verb);
        }
    }
    // A rule left with no verb is no rule (the API refuses empty ones).
    role["rules"].as_array_mut().unwrap().retain(|r| !r["verbs"].as_array().unwrap().is_empty());
    role
}

/// A token (an hour) of the service account `polysync` of `ns`, as
/// `kubectl create token` makes one.
fn token_of(cluster: &Cluster, ns: &str) -> String {
    let request =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}});
    let answer =
        cluster.call("POST", &format!("/api/v1/namespaces/{ns}/serviceaccounts/polysync/token"), Some(request));
    answer.unwrap()["status"]["token"].as_str().unwrap().to_owned()
}

/// What [`tour`] runs, in `ns`: the Job `rbac-source` and the CronJob
/// `rbac-nightly`.
fn tour_sources(cluster: &Cluster, ns: &str) {
    source_job(cluster, ns, "rbac-source", "echo hello $WHO; sleep 20", |_| {});
    let cronjob = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "rbac-nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo nightly"]}]}}}}}});
    let _ = cluster.call("POST", &format!("/apis/batch/v1/namespaces/{ns}/cronjobs"), Some(cronjob));
}

/// Wait until RBAC reflects the Role: the service account may (or may not)
/// `verb` `resource`.
fn wait_for_rbac(cluster: &Cluster, ns: &str, resource: &str, verb: &str, allowed: bool) {
    wait_for_rbac_of(cluster, ns, ns, resource, verb, allowed)
}

/// [`wait_for_rbac`] for the service account `polysync` of `sa_ns`, in `ns`.
fn wait_for_rbac_of(cluster: &Cluster, sa_ns: &str, ns: &str, resource: &str, verb: &str, allowed: bool) {
    let (group, resource, sub) = match resource {
        "jobs" | "cronjobs" => ("batch", resource, None),
        "pods/log" => ("", "pods", Some("log")),
        other => ("", other, None),
    };
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {
            "user": format!("system:serviceaccount:{sa_ns}:polysync"),
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{sa_ns}"), "system:authenticated"],
            "resourceAttributes": {"namespace": ns, "verb": verb, "group": group, "resource": resource, "subresource": sub.unwrap_or("")},
        },
    });
    for _ in 0..200 {
        let answer =
            cluster.call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", Some(review.clone())).unwrap();
        if answer["status"]["allowed"].as_bool().unwrap_or(false) == allowed {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("RBAC never reflected {verb} {resource} = {allowed}");
}

#[test]
fn the_readme_role_is_sufficient_and_each_verb_is_needed() {
    let cluster = shared(Flavor::Real);
    let ns = "rbac";
    tour_sources(cluster, ns);
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "polysync"}});
    let _ = cluster.call("POST", &format!("/api/v1/namespaces/{ns}/serviceaccounts"), Some(sa));
    let mut role = readme_role();
    role["metadata"]["namespace"] = json!(ns);
    let roles = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles");
    cluster.call("POST", &roles, Some(role.clone())).unwrap();
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "polysync"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]},
        "subjects": [{"kind": "ServiceAccount", "name": "polysync", "namespace": ns}]});
    cluster
        .call("POST", &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"), Some(binding))
        .unwrap();
    let token = token_of(cluster, ns);
    let dir = tempfile::tempdir().unwrap();
    let p = provider_for(&cluster.kubeconfig_for(&token, ns), ns, dir.path());
    let rt = rt();

    // The whole tour with the Role as written.
    let steps = rt.block_on(tour(&p, "full"));
    for (step, result) in &steps {
        assert!(result.is_ok(), "with the README Role, {step} failed: {result:?}");
    }

    // Without each verb: the step that needs it fails with Forbidden and a
    // message naming what to allow; watch verbs are the documented
    // exception (polysync polls instead).
    let role_path = format!("{roles}/{}", role["metadata"]["name"].as_str().unwrap());
    let mut n = 0;
    for rule in role["rules"].as_array().unwrap().clone() {
        for resource in rule["resources"].as_array().unwrap() {
            for verb in rule["verbs"].as_array().unwrap() {
                let (resource, verb) = (resource.as_str().unwrap(), verb.as_str().unwrap());
                n += 1;
                cluster.call("PUT", &role_path, Some(role_without(&role, resource, verb))).unwrap();
                wait_for_rbac(cluster, ns, resource, verb, false);
                let steps = rt.block_on(tour(&p, &format!("no-{n}")));
                let failures: Vec<_> = steps.iter().filter(|(_, r)| r.is_err()).collect();
                if verb == "watch" {
                    assert!(failures.is_empty(), "without watch on {resource} polysync polls: {failures:?}");
                } else {
                    let (step, result) = failures.first().unwrap_or_else(|| {
                        panic!("without {verb} on {resource} every step passed: the verb is not needed, so the README Role is not minimal")
                    });
                    let err = result.as_ref().unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::Forbidden, "without {verb} on {resource}, {step}: {err}");
                    assert!(err.message().contains(verb), "the message names the verb {verb}: {err}");
                }
                cluster.call("PUT", &role_path, Some(role.clone())).unwrap();
                wait_for_rbac(cluster, ns, resource, verb, true);
            }
        }
    }
}

#[test]
fn a_job_exported_by_kubectl_from_a_real_apiserver_reruns() {
    let cluster = shared(Flavor::Real);
    let ns = "exported";
    let mut job = polysync_clusters::seed::source_job("exported", 3, "echo \"$GREETING from export\"");
    job["spec"]["suspend"] = json!(false);
    cluster.ensure_namespace(ns);
    cluster.create_job(ns, job);
    for _ in 0..600 {
        let done = cluster.job(ns, "exported").is_some_and(|j| j["status"]["succeeded"] == 1);
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["-n", ns, "get", "job", "exported", "-o", "json", "--show-managed-fields"])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (what, present) in [
        ("selector", exported["spec"]["selector"].is_object()),
        ("controller-uid label", exported["spec"]["template"]["metadata"]["labels"]["controller-uid"].is_string()),
        ("managedFields", exported["metadata"]["managedFields"].is_array()),
        ("status", exported["status"]["conditions"].is_array()),
    ] {
        assert!(present, "the real export carries {what}");
    }
    let dir = tempfile::tempdir().unwrap();
    let p = provider_for(&cluster.kubeconfig_text(ns), ns, dir.path());
    // The live source, exactly as exported (selector, controller-uid labels,
    // managedFields, status): the clone the real apiserver accepts.
    rt().block_on(async {
        let run = p.run(request("exported", "live", &[("GREETING", "hej")])).await.unwrap();
        let stream = p.watch(WatchRequest { run_ids: vec![run.run_id.clone()] }).await.unwrap();
        let all: Vec<_> = tokio::time::timeout(Duration::from_secs(60), stream.collect::<Vec<_>>()).await.unwrap();
        assert_eq!(all.last().unwrap().as_ref().unwrap().state, RunState::Success);
    });
    // And once the source is gone, from what the export carried.
    cluster.call("DELETE", &format!("/apis/batch/v1/namespaces/{ns}/jobs/exported"), None).unwrap();
    rt().block_on(async {
        let mut req = request("exported", "x1", &[("GREETING", "hola")]);
        req.fallback = Some(polysync_provider_api::FallbackAttributes {
            image: exported["spec"]["template"]["spec"]["containers"][0]["image"].as_str().map(str::to_owned),
            command: vec!["sh".into(), "-c".into()],
            args: vec!["echo \"$GREETING from export\"".into()],
            env: Default::default(),
            template: None,
        });
        let run = p.run(req).await.unwrap();
        let stream = p.watch(WatchRequest { run_ids: vec![run.run_id.clone()] }).await.unwrap();
        let all: Vec<_> = tokio::time::timeout(Duration::from_secs(60), stream.collect::<Vec<_>>()).await.unwrap();
        assert_eq!(all.last().unwrap().as_ref().unwrap().state, RunState::Success);
    });
}

#[test]
fn watch_resumes_after_etcd_compaction_and_an_apiserver_restart() {
    // Its own control plane: the restart would disturb the shared one.
    let cluster = Cluster::real(RealKubeConfig { time_scale: 0.02, ..RealKubeConfig::default() }).unwrap();
    let ns = "resume";
    source_job(&cluster, ns, "steps", "sleep 600; echo done", |_| {});
    let dir = tempfile::tempdir().unwrap();
    let p = provider_for(&cluster.kubeconfig_text(ns), ns, dir.path());
    rt().block_on(async {
        let run = p.run(request("steps", "r", &[])).await.unwrap();
        let stream = p.watch(WatchRequest { run_ids: vec![run.run_id.clone()] }).await.unwrap();
        let collected = tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(120), stream.map(|s| s.unwrap()).collect::<Vec<_>>()).await
        });
        for _ in 0..500 {
            if p.poll(PollRequest { run_id: run.run_id.clone() }).await.unwrap().state == RunState::Running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let real = cluster.as_real().unwrap();
        // Churn past the watch's resourceVersion, compact it away, restart
        // the apiserver (its watch cache starts at the newest revision).
        for i in 0..50 {
            cluster.ensure_namespace(&format!("churn-{i}"));
        }
        real.compact_etcd().unwrap();
        tokio::task::block_in_place(|| real.restart_apiserver()).unwrap();
        let all = collected.await.unwrap().expect("the watch reaches the end after the restart");
        assert_eq!(all.last().unwrap().state, RunState::Success, "{all:?}");
    });
}

/// The Helm chart (`deploy/helm/polysync`), with helm built from its Go
/// module: it lints, renders, and is accepted by a real kube-apiserver
/// (server-side dry run) into a namespace that enforces the `restricted`
/// Pod Security Standard, its pod admitted there; then its ServiceAccount
/// and Role, installed, let polysync through the chart's own kubeconfig
/// (with a token of that account) do the whole tour on a watched
/// namespace — and without one of the Role's verbs, the step that needs it
/// fails, naming the verb.
#[test]
fn the_helm_chart_installs_under_restricted_pod_security_and_its_account_runs_the_tour() {
    let helm =
        polysync_tests::tool_dir("POLYSYNC_HELM", "builds helm from its Go module (tests/helm/build.sh)").join("helm");
    let cluster = shared(Flavor::Real);
    let (system, batch) = ("chart-system", "chart-batch");
    let restricted = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": system, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "latest"}}});
    cluster.call("POST", "/api/v1/namespaces", Some(restricted)).unwrap();
    tour_sources(cluster, batch);
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/helm/polysync");
    let dir = tempfile::tempdir().unwrap();
    let run = |program: &std::path::Path, args: &[&str]| -> String {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        polysync_clusters::process::Child::run_to_end(
            "chart",
            program,
            &args,
            &[("HOME", dir.path().display().to_string())],
            dir.path(),
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let chart_path = chart.display().to_string();
    assert!(run(&helm, &["lint", "--strict", &chart_path]).contains("0 chart(s) failed"));
    let monitored = run(&helm, &["template", "polysync", &chart_path, "--set", "serviceMonitor.enabled=true"]);
    assert!(monitored.contains("kind: ServiceMonitor"), "{monitored}");
    let connection = format!("connections[0].name=batch,connections[0].namespace={batch}");
    let rendered = run(&helm, &["template", "polysync", &chart_path, "--namespace", system, "--set", &connection]);
    let manifests = dir.path().join("rendered.yaml");
    std::fs::write(&manifests, &rendered).unwrap();

    // The API server takes every object; the restricted namespace warns of nothing.
    let kubectl = std::path::Path::new("kubectl");
    let admin = cluster.kubeconfig().display().to_string();
    let m = manifests.display().to_string();
    let dry = run(kubectl, &["--kubeconfig", &admin, "apply", "--server-side", "--dry-run=server", "-f", &m]);
    assert!(!dry.contains("Warning") && !dry.contains("PodSecurity"), "{dry}");
    let printed = run(kubectl, &["--kubeconfig", &admin, "create", "--dry-run=client", "-o", "json", "-f", &m]);
    let items: Vec<Value> = serde_json::Deserializer::from_str(&printed).into_iter().map(Result::unwrap).collect();
    let of = |kind: &str| items.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in the chart"));
    let deployment = of("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    for kind in ["Service", "PodDisruptionBudget", "ServiceAccount", "ConfigMap", "Role", "RoleBinding"] {
        of(kind);
    }
    // Installed (all but the Deployment: no image runs here), the chart's
    // Role is the README's, and its account runs the tour through the
    // chart's kubeconfig.
    let rest: Vec<&Value> = items.iter().filter(|o| o["kind"] != "Deployment").collect();
    let installed = json!({"apiVersion": "v1", "kind": "List", "items": rest});
    let list = dir.path().join("installed.json");
    std::fs::write(&list, installed.to_string()).unwrap();
    run(kubectl, &["--kubeconfig", &admin, "apply", "--server-side", "-f", &list.display().to_string()]);
    // Its pod is admitted where `restricted` is enforced; the same pod
    // without its security context is not (the namespace does enforce).
    let pod = |spec: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "chart-pod"}, "spec": spec});
    let pods = format!("/api/v1/namespaces/{system}/pods?dryRun=All");
    let spec = deployment["spec"]["template"]["spec"].clone();
    cluster.call("POST", &pods, Some(pod(spec.clone()))).unwrap_or_else(|e| panic!("the chart's pod is refused: {e}"));
    let mut loose = spec;
    loose["containers"][0].as_object_mut().unwrap().remove("securityContext");
    let refused = cluster.call("POST", &pods, Some(pod(loose))).expect_err("restricted is enforced");
    assert!(refused.message.contains("violates PodSecurity"), "{refused}");

    let role = of("Role");
    assert_eq!(role["rules"], readme_role()["rules"], "the chart's Role is not the README's");
    assert_eq!(role["metadata"]["namespace"], batch);
    let token = token_of(cluster, system);
    let (token_file, ca_file) = (dir.path().join("token"), dir.path().join("ca.crt"));
    std::fs::write(&token_file, &token).unwrap();
    std::fs::write(&ca_file, cluster.ca_pem().unwrap()).unwrap();
    let kubeconfig = of("ConfigMap")["data"]["kubeconfig"]
        .as_str()
        .unwrap()
        .replace("https://kubernetes.default.svc", cluster.url())
        .replace("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", &ca_file.display().to_string())
        .replace("/var/run/secrets/kubernetes.io/serviceaccount/token", &token_file.display().to_string());
    assert!(
        kubeconfig.contains(&token_file.display().to_string()),
        "the chart's kubeconfig reads the pod's token file"
    );
    let p = provider_for(&kubeconfig, batch, dir.path());
    let rt = rt();
    for (step, result) in rt.block_on(tour(&p, "chart")) {
        assert!(result.is_ok(), "with the chart's Role and kubeconfig, {step} failed: {result:?}");
    }
    let role_path = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{batch}/roles/polysync");
    let installed_role = cluster.call("GET", &role_path, None).unwrap();
    cluster.call("PUT", &role_path, Some(role_without(&installed_role, "jobs", "create"))).unwrap();
    wait_for_rbac_of(cluster, system, batch, "jobs", "create", false);
    let steps = rt.block_on(tour(&p, "chart-no-create"));
    let (step, result) = steps.iter().find(|(_, r)| r.is_err()).expect("without create on jobs a step fails");
    let err = result.as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "{step}: {err}");
    assert!(err.message().contains("create"), "the message names the verb: {err}");
}
