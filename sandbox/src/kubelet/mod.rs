//! The simulated kubelet: pods go Pending → Running → Succeeded/Failed on
//! one node, with real-looking conditions, container states, events and
//! logs. Containers run the tiny [`shell`]; images matching the unpullable
//! pattern go ErrImagePull ↔ ImagePullBackOff forever; a missing Secret or
//! ConfigMap in `env` gives CreateContainerConfigError. Every simulated
//! duration goes through the sandbox clock.

pub mod logs;
mod logstore;
pub mod shell;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::AbortHandle;

pub use logstore::{ContainerLog, LogStore};
use shell::{Output, Sleeper};

use crate::controllers::events::record;
use crate::resources::Kind;
use crate::store::{EventType, Key, Mutation, Store};
use crate::time::{Clock, now_rfc3339};

const COMPONENT: &str = "kubelet";
const NODE: &str = "sandbox-node";

/// What the kubelet needs.
#[derive(Debug, Clone)]
pub struct Kubelet {
    pub store: Arc<Store>,
    pub clock: Clock,
    pub logs: Arc<LogStore>,
    /// An image whose name contains this cannot be pulled.
    pub unpullable: String,
}

struct Stopped;

type Step<T = ()> = Result<T, Stopped>;

impl Sleeper for Clock {
    fn sleep(&self, simulated: Duration) -> impl std::future::Future<Output = ()> + Send {
        tokio::time::sleep(self.real(simulated))
    }
}

struct LogOut(Arc<ContainerLog>);

impl Output for LogOut {
    fn line(&mut self, text: String) {
        self.0.append(text);
    }
}

fn container_id() -> String {
    format!("containerd://{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>())
}

fn image_id(image: &str) -> String {
    format!("docker.io/library/{}@sha256:{:064x}", image.split(':').next().unwrap_or(image), 0u8)
}

impl Kubelet {
    /// Run every pod that exists now and every pod created later.
    pub fn spawn(self) {
        let kubelet = Arc::new(self);
        let running: Arc<Mutex<HashMap<Key, AbortHandle>>> = Arc::default();
        let mut changes = kubelet.store.subscribe();
        for pod in kubelet.store.list(Kind::Pod, None, None, None, None).items {
            let phase = pod["status"]["phase"].as_str().unwrap_or_default();
            if !matches!(phase, "Succeeded" | "Failed") {
                kubelet.start(&running, Key::of(&pod));
            }
        }
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(change) if change.kind == Kind::Pod => {
                        let key = Key::of(&change.object);
                        match change.event {
                            EventType::Added => kubelet.start(&running, key),
                            EventType::Deleted => {
                                if let Some(task) = running.lock().unwrap_or_else(|p| p.into_inner()).remove(&key) {
                                    task.abort();
                                }
                                kubelet.logs.remove_pod(&key.namespace, &key.name);
                            }
                            EventType::Modified => {}
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        });
    }

    fn start(self: &Arc<Self>, running: &Arc<Mutex<HashMap<Key, AbortHandle>>>, key: Key) {
        let kubelet = self.clone();
        let done = running.clone();
        let task_key = key.clone();
        let handle = tokio::spawn(async move {
            let _ = kubelet.run_pod(&task_key).await;
            done.lock().unwrap_or_else(|p| p.into_inner()).remove(&task_key);
        });
        running.lock().unwrap_or_else(|p| p.into_inner()).insert(key, handle.abort_handle());
    }

    async fn pause(&self, simulated_secs: f64) {
        self.clock.sleep(Duration::from_secs_f64(simulated_secs)).await;
    }

    /// Read-modify-write the pod; `Stopped` once it is gone.
    fn update(&self, key: &Key, f: impl FnOnce(&mut Value)) -> Step<Arc<Value>> {
        self.store
            .mutate(Kind::Pod, key, |pod| {
                let before = pod.clone();
                f(pod);
                Ok(if *pod == before { Mutation::Unchanged } else { Mutation::Changed })
            })
            .map_err(|_| Stopped)
    }

    fn event(&self, key: &Key, warning: bool, reason: &str, message: &str) {
        if let Some(pod) = self.store.get(Kind::Pod, key) {
            record(&self.store, COMPONENT, &pod, warning, reason, message);
        }
    }

    async fn run_pod(&self, key: &Key) -> Step {
        let pod = self.store.get(Kind::Pod, key).ok_or(Stopped)?;
        let init: Vec<Value> = pod["spec"]["initContainers"].as_array().cloned().unwrap_or_default();
        let main: Vec<Value> = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let restart_on_failure = pod["spec"]["restartPolicy"] == "OnFailure";

        // Scheduling.
        self.pause(0.1).await;
        let now = now_rfc3339();
        self.update(key, |p| {
            p["spec"]["nodeName"] = json!(NODE);
            p["status"]["conditions"] = json!([
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "Initialized", "status": if init.is_empty() { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "lastProbeTime": null, "lastTransitionTime": now},
            ]);
            p["status"]["hostIP"] = json!("127.0.0.1");
            p["status"]["podIP"] = json!("127.0.0.1");
            p["status"]["startTime"] = json!(now);
            let waiting = |c: &Value, reason: &str| json!({
                "name": c["name"], "state": {"waiting": {"reason": reason}}, "lastState": {},
                "ready": false, "restartCount": 0, "image": c["image"], "imageID": "", "started": false,
            });
            if !init.is_empty() {
                p["status"]["initContainerStatuses"] = json!(init.iter().map(|c| waiting(c, "PodInitializing")).collect::<Vec<_>>());
            }
            let reason = if init.is_empty() { "ContainerCreating" } else { "PodInitializing" };
            p["status"]["containerStatuses"] = json!(main.iter().map(|c| waiting(c, reason)).collect::<Vec<_>>());
        })?;
        self.event(key, false, "Scheduled", &format!("Successfully assigned {}/{} to {NODE}", key.namespace, key.name));

        for (list, containers) in [("initContainerStatuses", &init), ("containerStatuses", &main)] {
            for c in containers.iter() {
                self.pull(key, list, c).await?;
            }
        }
        let pod = self.store.get(Kind::Pod, key).ok_or(Stopped)?;
        let mut envs = Vec::new();
        for (list, containers) in [("initContainerStatuses", &init), ("containerStatuses", &main)] {
            for c in containers.iter() {
                envs.push(self.resolve_env(key, &pod, list, c).await?);
            }
        }
        let (init_envs, main_envs) = envs.split_at(init.len());

        for (i, c) in init.iter().enumerate() {
            let code = self
                .run_container(key, "initContainerStatuses", i, c, init_envs[i].clone(), restart_on_failure)
                .await?;
            if code != 0 {
                return self.finish(key, "Failed");
            }
        }
        if !init.is_empty() {
            self.update(key, |p| set_pod_condition(p, "Initialized", "True", None))?;
        }
        let mut runs = Vec::with_capacity(main.len());
        for (i, c) in main.iter().enumerate() {
            runs.push(self.run_container(key, "containerStatuses", i, c, main_envs[i].clone(), restart_on_failure));
        }
        let codes = futures::future::join_all(runs).await;
        let mut phase = "Succeeded";
        for code in codes {
            if code? != 0 {
                phase = "Failed";
            }
        }
        self.finish(key, phase)
    }

    async fn pull(&self, key: &Key, list: &str, c: &Value) -> Step {
        let image = c["image"].as_str().unwrap_or_default().to_owned();
        let name = c["name"].clone();
        self.event(key, false, "Pulling", &format!("Pulling image \"{image}\""));
        self.pause(0.3).await;
        if self.unpullable.is_empty() || !image.contains(&self.unpullable) {
            self.event(key, false, "Pulled", &format!("Successfully pulled image \"{image}\" in 300ms"));
            return Ok(());
        }
        let mut backoff = 10.0;
        loop {
            let message =
                format!("rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found");
            self.set_waiting(key, list, &name, "ErrImagePull", Some(&message))?;
            self.event(key, true, "Failed", &format!("Failed to pull image \"{image}\": {message}"));
            self.event(key, true, "Failed", "Error: ErrImagePull");
            self.pause(1.0).await;
            self.set_waiting(
                key,
                list,
                &name,
                "ImagePullBackOff",
                Some(&format!("Back-off pulling image \"{image}\"")),
            )?;
            self.event(key, false, "BackOff", &format!("Back-off pulling image \"{image}\""));
            self.event(key, true, "Failed", "Error: ImagePullBackOff");
            self.pause(backoff).await;
            backoff = (backoff * 2.0_f64).min(300.0);
        }
    }

    fn set_waiting(&self, key: &Key, list: &str, name: &Value, reason: &str, message: Option<&str>) -> Step {
        self.update(key, |p| {
            if let Some(s) = p["status"][list].as_array_mut().and_then(|l| l.iter_mut().find(|s| s["name"] == *name)) {
                s["state"] = match message {
                    Some(m) => json!({"waiting": {"reason": reason, "message": m}}),
                    None => json!({"waiting": {"reason": reason}}),
                };
                s["ready"] = json!(false);
                s["started"] = json!(false);
            }
        })
        .map(|_| ())
    }

    /// The container's environment, or CreateContainerConfigError forever.
    async fn resolve_env(&self, key: &Key, pod: &Value, list: &str, c: &Value) -> Step<BTreeMap<String, String>> {
        loop {
            match container_env(pod, c) {
                Ok(env) => return Ok(env),
                Err(message) => {
                    self.set_waiting(key, list, &c["name"], "CreateContainerConfigError", Some(&message))?;
                    self.event(key, true, "Failed", &format!("Error: {message}"));
                    self.pause(10.0).await;
                }
            }
        }
    }

    async fn run_container(
        &self,
        key: &Key,
        list: &str,
        index: usize,
        c: &Value,
        env: BTreeMap<String, String>,
        restart_on_failure: bool,
    ) -> Step<i32> {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
        };
        let (command, args) = (strings(&c["command"]), strings(&c["args"]));
        let name = c["name"].as_str().unwrap_or_default().to_owned();
        let log = self.logs.open(&key.namespace, &key.name, &name);
        let mut restarts = 0u64;
        let mut backoff = 10.0;
        loop {
            self.event(key, false, "Created", &format!("Created container {name}"));
            let started = now_rfc3339();
            let id = container_id();
            let is_main = list == "containerStatuses";
            let (s, i) = (started.clone(), id.clone());
            self.update(key, |p| {
                let status = &mut p["status"][list][index];
                status["state"] = json!({"running": {"startedAt": s}});
                status["ready"] = json!(is_main);
                status["started"] = json!(true);
                status["containerID"] = json!(i);
                status["imageID"] = json!(image_id(status["image"].as_str().unwrap_or_default()));
                if is_main {
                    p["status"]["phase"] = json!("Running");
                    let all_ready = p["status"]["containerStatuses"]
                        .as_array()
                        .is_some_and(|l| l.iter().all(|s| s["ready"] == true));
                    if all_ready {
                        set_pod_condition(p, "Initialized", "True", None);
                        set_pod_condition(p, "ContainersReady", "True", None);
                        set_pod_condition(p, "Ready", "True", None);
                    }
                }
            })?;
            self.event(key, false, "Started", &format!("Started container {name}"));
            log.restart();
            let mut env = env.clone();
            let code = shell::run_container(&command, &args, &mut env, &mut LogOut(log.clone()), &self.clock).await;
            log.finish();
            let finished = now_rfc3339();
            let reason = if code == 0 { "Completed" } else { "Error" };
            let terminated = json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished, "containerID": id}});
            if code == 0 || !restart_on_failure {
                self.update(key, |p| {
                    let status = &mut p["status"][list][index];
                    status["state"] = terminated.clone();
                    status["ready"] = json!(false);
                    status["started"] = json!(false);
                    if is_main {
                        set_pod_condition(p, "ContainersReady", "False", Some("PodCompleted"));
                        set_pod_condition(p, "Ready", "False", Some("PodCompleted"));
                    }
                })?;
                return Ok(code);
            }
            // restartPolicy OnFailure: CrashLoopBackOff, then again.
            restarts += 1;
            let wait = backoff;
            backoff = (backoff * 2.0_f64).min(300.0);
            self.update(key, |p| {
                let status = &mut p["status"][list][index];
                status["lastState"] = terminated.clone();
                status["restartCount"] = json!(restarts);
                status["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off {wait}s restarting failed container={name} pod={}", key.name)}});
                status["ready"] = json!(false);
                status["started"] = json!(false);
                if is_main {
                    set_pod_condition(p, "ContainersReady", "False", Some("ContainersNotReady"));
                    set_pod_condition(p, "Ready", "False", Some("ContainersNotReady"));
                }
            })?;
            self.event(
                key,
                true,
                "BackOff",
                &format!("Back-off restarting failed container {name} in pod {}", key.name),
            );
            self.pause(wait).await;
        }
    }

    fn finish(&self, key: &Key, phase: &str) -> Step {
        self.update(key, |p| {
            p["status"]["phase"] = json!(phase);
            set_pod_condition(p, "Ready", "False", Some("PodCompleted"));
            set_pod_condition(p, "ContainersReady", "False", Some("PodCompleted"));
        })
        .map(|_| ())
    }
}

fn set_pod_condition(pod: &mut Value, kind: &str, status: &str, reason: Option<&str>) {
    let now = now_rfc3339();
    if let Some(c) = pod["status"]["conditions"].as_array_mut().and_then(|l| l.iter_mut().find(|c| c["type"] == kind)) {
        if c["status"] != status {
            c["lastTransitionTime"] = json!(now);
        }
        c["status"] = json!(status);
        match reason {
            Some(r) => c["reason"] = json!(r),
            None => {
                if let Some(o) = c.as_object_mut() {
                    o.remove("reason");
                }
            }
        }
    }
}

/// Environment of a container: literal values (with `$(VAR)` expansion),
/// downward-API field refs; a non-optional Secret or ConfigMap reference is
/// a config error, since the sandbox serves neither.
fn container_env(pod: &Value, c: &Value) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    let meta = &pod["metadata"];
    env.insert("HOSTNAME".to_owned(), meta["name"].as_str().unwrap_or_default().to_owned());
    for from in c["envFrom"].as_array().into_iter().flatten() {
        for (field, what) in [("secretRef", "secret"), ("configMapRef", "configmap")] {
            if let Some(r) = from.get(field)
                && r["optional"] != true
            {
                return Err(format!("{what} \"{}\" not found", r["name"].as_str().unwrap_or_default()));
            }
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default().to_owned();
        if let Some(v) = e.get("value").and_then(Value::as_str) {
            let expanded = shell::kube_expand(v, &env);
            env.insert(name, expanded);
            continue;
        }
        let from = &e["valueFrom"];
        if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
            let value = match path {
                "metadata.name" => meta["name"].as_str().map(str::to_owned),
                "metadata.namespace" => meta["namespace"].as_str().map(str::to_owned),
                "metadata.uid" => meta["uid"].as_str().map(str::to_owned),
                "spec.nodeName" => Some(NODE.to_owned()),
                "status.podIP" | "status.hostIP" => Some("127.0.0.1".to_owned()),
                p => p
                    .strip_prefix("metadata.labels['")
                    .map(|k| ("labels", k))
                    .or_else(|| p.strip_prefix("metadata.annotations['").map(|k| ("annotations", k)))
                    .and_then(|(map, k)| meta[map][k.trim_end_matches("']")].as_str().map(str::to_owned)),
            };
            env.insert(name, value.unwrap_or_default());
            continue;
        }
        for (field, what) in [("secretKeyRef", "secret"), ("configMapKeyRef", "configmap")] {
            if let Some(r) = from.get(field)
                && r["optional"] != true
            {
                return Err(format!("{what} \"{}\" not found", r["name"].as_str().unwrap_or_default()));
            }
        }
    }
    Ok(env)
}
