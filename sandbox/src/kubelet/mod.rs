//! The simulated kubelet: pods go Pending → Running → Succeeded/Failed on
//! one node, with real-looking conditions, container states, events and
//! logs. Containers run the tiny [`shell`]; images matching the unpullable
//! pattern go ErrImagePull ↔ ImagePullBackOff forever; a missing Secret or
//! ConfigMap in `env` gives CreateContainerConfigError. Every simulated
//! duration goes through the kubelet's clock.
//!
//! The kubelet talks to its cluster only through [`NodeApi`], so the same
//! code runs the sandbox's pods in process and, as a node agent, the pods a
//! real kube-apiserver's scheduler binds to its Node.

pub mod logs;
mod logstore;
pub mod node;
pub mod schedule;
pub mod shell;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::AbortHandle;

pub use logstore::{ContainerLog, LogStore};
pub use node::{NodeApi, RefKind, SANDBOX_NODE, StoreNode};
use shell::{Output, Sleeper};

use crate::resources::Kind;
use crate::store::{EventType, Key, Store};
use crate::time::{Clock, now_rfc3339};

/// Exit code of a container killed by its pod's deletion (SIGKILL after the
/// grace period, as containerd reports it).
pub const KILLED_EXIT_CODE: i32 = 137;

/// A kubelet for the pods of one node.
#[derive(Debug)]
pub struct Kubelet<N> {
    node: N,
    clock: Clock,
    logs: Arc<LogStore>,
    /// An image whose name contains this cannot be pulled.
    unpullable: String,
    running: Mutex<HashMap<Key, AbortHandle>>,
}

struct Stopped;

type Step<T = ()> = Result<T, Stopped>;

impl Sleeper for Clock {
    fn sleep(&self, simulated: Duration) -> impl std::future::Future<Output = ()> + Send {
        tokio::time::sleep(self.real(simulated))
    }
}

/// A running container's output: its log, and the files its shell wrote.
/// A container's log, its files, and whether it ran out of memory.
struct LogOut(Arc<ContainerLog>, BTreeMap<String, String>, bool);

impl Output for LogOut {
    fn line(&mut self, text: String) {
        self.0.append(text);
    }

    fn write_file(&mut self, path: &str, text: &str, append: bool) {
        let file = self.1.entry(path.to_owned()).or_default();
        if !append {
            file.clear();
        }
        file.push_str(text);
    }

    fn out_of_memory(&mut self) {
        self.2 = true;
    }
}

/// The most of a termination message a kubelet keeps per container.
const MESSAGE_BYTES: usize = 4096;
/// The most of all its containers' termination messages a kubelet keeps per
/// pod: its status manager keeps the first `POD_MESSAGE_BYTES / n` bytes of
/// each message in a pod of n containers (init containers included).
const POD_MESSAGE_BYTES: usize = 12 * 1024;
/// With `FallbackToLogsOnError`: the log's last 80 lines, at most 2 KiB.
const FALLBACK_LINES: usize = 80;
const FALLBACK_BYTES: usize = 2048;

/// The last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The first `max` bytes of `text`, cut at a character boundary.
fn head(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What the status manager keeps of a termination message in `pod`: its
/// share of the pod's 12 KiB, from the start.
fn pod_share<'a>(pod: &Value, message: &'a str) -> &'a str {
    let count = |list: &str| pod["spec"][list].as_array().map_or(0, Vec::len);
    let containers = (count("containers") + count("initContainers")).max(1);
    head(message, POD_MESSAGE_BYTES / containers)
}

/// `terminated` as the status manager writes it into `pod`.
fn shared(pod: &Value, terminated: &Value) -> Value {
    let mut terminated = terminated.clone();
    if let Some(message) = terminated["terminated"]["message"].as_str().map(|m| pod_share(pod, m).to_owned()) {
        terminated["terminated"]["message"] = json!(message);
    }
    terminated
}

/// A terminated container's `message`, as a kubelet sets it: the end of the
/// file at `terminationMessagePath` (its last 4096 bytes), or — with
/// `terminationMessagePolicy: FallbackToLogsOnError`, when the file is
/// empty and the container failed — the end of its log.
fn termination_message(c: &Value, files: &BTreeMap<String, String>, log: &ContainerLog, code: i32) -> Option<String> {
    let path = c["terminationMessagePath"].as_str().unwrap_or("/dev/termination-log");
    let written = files.get(path).map(|f| tail(f, MESSAGE_BYTES)).unwrap_or_default();
    if !written.is_empty() {
        return Some(written.to_owned());
    }
    if code == 0 || c["terminationMessagePolicy"] != "FallbackToLogsOnError" {
        return None;
    }
    let attempt = log.attempt(false)?;
    let (lines, _) = log.read(attempt, 0);
    let text: String = lines[lines.len().saturating_sub(FALLBACK_LINES)..].iter().map(|(_, _, t)| t.as_str()).collect();
    (!text.is_empty()).then(|| tail(&text, FALLBACK_BYTES).to_owned())
}

fn container_id() -> String {
    format!("containerd://{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>())
}

fn image_id(image: &str) -> String {
    format!("docker.io/library/{}@sha256:{:064x}", image.split(':').next().unwrap_or(image), 0u8)
}

/// Why `image` is not a valid image reference (the checks of the reference
/// grammar a kubelet applies before pulling), if it is not.
fn invalid_reference(image: &str) -> Option<String> {
    let name = image.split('@').next().unwrap_or(image);
    let repo = match name.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => name,
    };
    let path = repo
        .split_once('/')
        .filter(|(host, _)| host.contains(['.', ':']) || *host == "localhost")
        .map_or(repo, |(_, p)| p);
    if repo.is_empty() || image.chars().any(char::is_whitespace) {
        return Some(String::new());
    }
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Some(": repository name must be lowercase".into());
    }
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/');
    (!path.chars().all(ok)).then(String::new)
}

fn is_finished(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

impl Kubelet<StoreNode> {
    /// The sandbox's kubelet: run every pod in `store` now and every pod
    /// created later; a deleted pod's containers stop and its logs go.
    pub fn spawn_for_store(store: Arc<Store>, clock: Clock, logs: Arc<LogStore>, unpullable: String) {
        let kubelet = Arc::new(Kubelet::new(StoreNode(store.clone()), clock, logs, unpullable));
        let mut changes = store.subscribe();
        for pod in store.list(Kind::Pod, None, None, None, None, &[]).items {
            if !is_finished(&pod) {
                kubelet.start(Key::of(&pod));
            }
        }
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(change) if change.kind == Kind::Pod => {
                        let key = Key::of(&change.object);
                        match change.event {
                            EventType::Added => kubelet.start(key),
                            EventType::Deleted => {
                                kubelet.stop(&key);
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
}

impl<N: NodeApi> Kubelet<N> {
    pub fn new(node: N, clock: Clock, logs: Arc<LogStore>, unpullable: String) -> Self {
        Self { node, clock, logs, unpullable, running: Mutex::default() }
    }

    pub fn node(&self) -> &N {
        &self.node
    }

    pub fn logs(&self) -> &Arc<LogStore> {
        &self.logs
    }

    /// Start running the pod `key`, unless it already runs.
    pub fn start(self: &Arc<Self>, key: Key) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(&key) {
            return;
        }
        let kubelet = self.clone();
        let task_key = key.clone();
        let handle = tokio::spawn(async move {
            let _ = kubelet.run_pod(&task_key).await;
            kubelet.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&task_key);
        });
        running.insert(key, handle.abort_handle());
    }

    /// Stop the pod's containers where they are (the pod is gone).
    pub fn stop(&self, key: &Key) {
        if let Some(task) = self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(key) {
            task.abort();
        }
    }

    /// Kill the pod's containers because the pod is being deleted, and
    /// write the terminated states a kubelet reports before it lets the pod
    /// go: running containers exit 137, the pod ends Failed unless it had
    /// already finished.
    pub async fn kill(&self, key: &Key) {
        self.stop(key);
        let now = now_rfc3339();
        self.node
            .update(key, |p| {
                if is_finished(p) {
                    return;
                }
                for list in ["initContainerStatuses", "containerStatuses"] {
                    for s in p["status"][list].as_array_mut().into_iter().flatten() {
                        let started = s["state"]["running"]["startedAt"].clone();
                        if s["state"].get("terminated").is_none() {
                            s["state"] = json!({"terminated": {
                                "exitCode": KILLED_EXIT_CODE, "reason": "Error",
                                "startedAt": started, "finishedAt": now,
                                "containerID": s["containerID"],
                            }});
                            s["ready"] = json!(false);
                            s["started"] = json!(false);
                        }
                    }
                }
                p["status"]["phase"] = json!("Failed");
                set_pod_condition(p, "Ready", "False", Some("PodCompleted"));
                set_pod_condition(p, "ContainersReady", "False", Some("PodCompleted"));
            })
            .await;
        for (ns, pod, container) in self.logs.containers_of(&key.namespace, &key.name) {
            if let Some(log) = self.logs.get(&ns, &pod, &container) {
                log.finish();
            }
        }
    }

    async fn pause(&self, simulated_secs: f64) {
        self.clock.sleep(Duration::from_secs_f64(simulated_secs)).await;
    }

    /// Read-modify-write the pod; `Stopped` once it is gone.
    async fn update(&self, key: &Key, f: impl Fn(&mut Value) + Send + Sync) -> Step<Value> {
        self.node.update(key, f).await.ok_or(Stopped)
    }

    async fn event(&self, key: &Key, warning: bool, reason: &str, message: &str) {
        if let Some(pod) = self.node.get(key).await {
            self.node.event(&pod, warning, reason, message).await;
        }
    }

    async fn run_pod(self: &Arc<Self>, key: &Key) -> Step {
        let pod = self.node.get(key).await.ok_or(Stopped)?;
        if is_finished(&pod) || pod["metadata"].get("deletionTimestamp").is_some() {
            return Ok(());
        }
        let init: Vec<Value> = pod["spec"]["initContainers"].as_array().cloned().unwrap_or_default();
        let main: Vec<Value> = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let restart_on_failure = pod["spec"]["restartPolicy"] == "OnFailure";
        let node = self.node.node_name().to_owned();
        let binds = self.node.binds_pods();

        // Scheduling (the sandbox has no scheduler), then the pod's start.
        self.pause(0.1).await;
        if binds && let Some(message) = schedule::unschedulable(&pod) {
            let now = now_rfc3339();
            self.update(key, |p| {
                p["status"]["phase"] = json!("Pending");
                p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": message, "lastProbeTime": null, "lastTransitionTime": now}]);
            })
            .await?;
            self.event(key, true, "FailedScheduling", &message).await;
            // Nothing about the one node changes: it stays Pending.
            return std::future::pending().await;
        }
        let now = now_rfc3339();
        self.update(key, |p| {
            let scheduled = p["status"]["conditions"]
                .as_array()
                .and_then(|l| l.iter().find(|c| c["type"] == "PodScheduled").cloned())
                .unwrap_or_else(|| json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
            if binds {
                p["spec"]["nodeName"] = json!(node);
            }
            p["status"]["phase"] = json!("Pending");
            p["status"]["conditions"] = json!([
                {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "Initialized", "status": if init.is_empty() { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "lastProbeTime": null, "lastTransitionTime": now},
                scheduled,
            ]);
            p["status"]["hostIP"] = json!("127.0.0.1");
            p["status"]["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
            p["status"]["podIP"] = json!("127.0.0.1");
            p["status"]["podIPs"] = json!([{"ip": "127.0.0.1"}]);
            p["status"]["qosClass"] = p["status"].get("qosClass").cloned().unwrap_or(json!("BestEffort"));
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
        })
        .await?;
        if binds {
            self.event(
                key,
                false,
                "Scheduled",
                &format!("Successfully assigned {}/{} to {node}", key.namespace, key.name),
            )
            .await;
        }

        for (list, containers) in [("initContainerStatuses", &init), ("containerStatuses", &main)] {
            for c in containers.iter() {
                self.pull(key, list, c).await?;
            }
        }
        let pod = self.node.get(key).await.ok_or(Stopped)?;
        let mut envs = Vec::new();
        for (list, containers) in [("initContainerStatuses", &init), ("containerStatuses", &main)] {
            for c in containers.iter() {
                envs.push(self.resolve_env(key, &pod, list, c).await?);
            }
        }
        let (init_envs, main_envs) = envs.split_at(init.len());

        // Native sidecars (init containers with `restartPolicy: Always`)
        // start in order and keep running beside everything after them;
        // they restart when they exit and are stopped once the main
        // containers are done.
        let mut sidecars = Sidecars(Vec::new());
        for (i, c) in init.iter().enumerate() {
            if c["restartPolicy"] == "Always" {
                let (kubelet, key, c, env) = (self.clone(), key.clone(), c.clone(), init_envs[i].clone());
                let task = tokio::spawn(async move {
                    loop {
                        if kubelet.run_container(&key, "initContainerStatuses", i, &c, env.clone(), true).await.is_err()
                        {
                            return;
                        }
                    }
                });
                sidecars.0.push((i, task.abort_handle()));
                self.pause(0.1).await;
                continue;
            }
            let code = self
                .run_container(key, "initContainerStatuses", i, c, init_envs[i].clone(), restart_on_failure)
                .await?;
            if code != 0 {
                sidecars.stop(self, key).await;
                return self.finish(key, "Failed").await;
            }
        }
        if !init.is_empty() {
            self.update(key, |p| set_pod_condition(p, "Initialized", "True", None)).await?;
        }
        let mut runs = Vec::with_capacity(main.len());
        for (i, c) in main.iter().enumerate() {
            runs.push(self.run_container(key, "containerStatuses", i, c, main_envs[i].clone(), restart_on_failure));
        }
        let codes = futures::future::join_all(runs).await;
        sidecars.stop(self, key).await;
        let mut phase = "Succeeded";
        for code in codes {
            if code? != 0 {
                phase = "Failed";
            }
        }
        self.finish(key, phase).await
    }

    async fn pull(&self, key: &Key, list: &str, c: &Value) -> Step {
        let image = c["image"].as_str().unwrap_or_default().to_owned();
        let name = c["name"].clone();
        if let Some(why) = invalid_reference(&image) {
            // As a kubelet does: no pull, and no way out.
            let message = format!(
                "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format{why}"
            );
            self.set_waiting(key, list, &name, "InvalidImageName", Some(&message)).await?;
            self.event(key, true, "InspectFailed", &message).await;
            self.event(key, true, "Failed", "Error: InvalidImageName").await;
            return std::future::pending().await;
        }
        self.event(key, false, "Pulling", &format!("Pulling image \"{image}\"")).await;
        self.pause(0.3).await;
        if self.unpullable.is_empty() || !image.contains(&self.unpullable) {
            self.event(key, false, "Pulled", &format!("Successfully pulled image \"{image}\" in 300ms")).await;
            return Ok(());
        }
        let mut backoff = 10.0;
        loop {
            let message =
                format!("rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found");
            self.set_waiting(key, list, &name, "ErrImagePull", Some(&message)).await?;
            self.event(key, true, "Failed", &format!("Failed to pull image \"{image}\": {message}")).await;
            self.event(key, true, "Failed", "Error: ErrImagePull").await;
            self.pause(1.0).await;
            self.set_waiting(
                key,
                list,
                &name,
                "ImagePullBackOff",
                Some(&format!("Back-off pulling image \"{image}\"")),
            )
            .await?;
            self.event(key, false, "BackOff", &format!("Back-off pulling image \"{image}\"")).await;
            self.event(key, true, "Failed", "Error: ImagePullBackOff").await;
            self.pause(backoff).await;
            backoff = (backoff * 2.0_f64).min(300.0);
        }
    }

    async fn set_waiting(&self, key: &Key, list: &str, name: &Value, reason: &str, message: Option<&str>) -> Step {
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
        .await
        .map(|_| ())
    }

    /// The container's environment, or CreateContainerConfigError until the
    /// referenced Secret or ConfigMap exists.
    async fn resolve_env(&self, key: &Key, pod: &Value, list: &str, c: &Value) -> Step<BTreeMap<String, String>> {
        loop {
            match container_env(&self.node, pod, c).await {
                Ok(env) => return Ok(env),
                Err(message) => {
                    self.set_waiting(key, list, &c["name"], "CreateContainerConfigError", Some(&message)).await?;
                    self.event(key, true, "Failed", &format!("Error: {message}")).await;
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
            self.event(key, false, "Created", &format!("Created container {name}")).await;
            let started = now_rfc3339();
            let id = container_id();
            let is_main = list == "containerStatuses";
            self.update(key, |p| {
                let status = &mut p["status"][list][index];
                status["state"] = json!({"running": {"startedAt": started}});
                status["ready"] = json!(is_main);
                status["started"] = json!(true);
                status["containerID"] = json!(id);
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
            })
            .await?;
            self.event(key, false, "Started", &format!("Started container {name}")).await;
            log.restart();
            let mut env = env.clone();
            let mut out = LogOut(log.clone(), BTreeMap::new(), false);
            let code = shell::run_container(&command, &args, &mut env, &mut out, &self.clock).await;
            log.finish();
            let finished = now_rfc3339();
            let reason = match code {
                _ if out.2 => "OOMKilled",
                0 => "Completed",
                _ => "Error",
            };
            let mut terminated = json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished, "containerID": id}});
            if let Some(message) = termination_message(c, &out.1, &log, code) {
                terminated["terminated"]["message"] = json!(message);
            }
            if code == 0 || !restart_on_failure {
                self.update(key, |p| {
                    let terminated = shared(p, &terminated);
                    let status = &mut p["status"][list][index];
                    status["state"] = terminated;
                    status["ready"] = json!(false);
                    status["started"] = json!(false);
                    if is_main {
                        set_pod_condition(p, "ContainersReady", "False", Some("PodCompleted"));
                        set_pod_condition(p, "Ready", "False", Some("PodCompleted"));
                    }
                })
                .await?;
                return Ok(code);
            }
            // restartPolicy OnFailure: CrashLoopBackOff, then again.
            restarts += 1;
            let wait = backoff;
            backoff = (backoff * 2.0_f64).min(300.0);
            self.update(key, |p| {
                let last = shared(p, &terminated);
                let status = &mut p["status"][list][index];
                status["lastState"] = last;
                status["restartCount"] = json!(restarts);
                status["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off {wait}s restarting failed container={name} pod={}", key.name)}});
                status["ready"] = json!(false);
                status["started"] = json!(false);
                if is_main {
                    set_pod_condition(p, "ContainersReady", "False", Some("ContainersNotReady"));
                    set_pod_condition(p, "Ready", "False", Some("ContainersNotReady"));
                }
            })
            .await?;
            self.event(
                key,
                true,
                "BackOff",
                &format!("Back-off restarting failed container {name} in pod {}", key.name),
            )
            .await;
            self.pause(wait).await;
        }
    }

    async fn finish(&self, key: &Key, phase: &str) -> Step {
        self.update(key, |p| {
            p["status"]["phase"] = json!(phase);
            set_pod_condition(p, "Ready", "False", Some("PodCompleted"));
            set_pod_condition(p, "ContainersReady", "False", Some("PodCompleted"));
        })
        .await
        .map(|_| ())
    }
}

/// The running sidecars of a pod, stopped when it ends (or its task is
/// aborted).
struct Sidecars(Vec<(usize, AbortHandle)>);

impl Sidecars {
    /// Stop each sidecar as the kubelet does after the main containers end:
    /// killed, terminated with 137, which does not count against the pod.
    async fn stop<N: NodeApi>(&mut self, kubelet: &Kubelet<N>, key: &Key) {
        let stopped: Vec<usize> = self
            .0
            .drain(..)
            .map(|(i, task)| {
                task.abort();
                i
            })
            .collect();
        if stopped.is_empty() {
            return;
        }
        let now = now_rfc3339();
        let _ = kubelet
            .update(key, |p| {
                for i in &stopped {
                    let s = &mut p["status"]["initContainerStatuses"][*i];
                    let started = s["state"]["running"]["startedAt"].clone();
                    s["state"] = json!({"terminated": {"exitCode": KILLED_EXIT_CODE, "reason": "Error", "startedAt": started, "finishedAt": now, "containerID": s["containerID"]}});
                    s["ready"] = json!(false);
                    s["started"] = json!(false);
                }
            })
            .await;
    }
}

impl Drop for Sidecars {
    fn drop(&mut self) {
        for (_, task) in &self.0 {
            task.abort();
        }
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

/// Environment of a container: `envFrom` and literal values (with `$(VAR)`
/// expansion), downward-API field refs, and Secret / ConfigMap keys; a
/// missing non-optional reference is the kubelet's config error message.
async fn container_env(node: &impl NodeApi, pod: &Value, c: &Value) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    let meta = &pod["metadata"];
    let namespace = meta["namespace"].as_str().unwrap_or_default();
    env.insert("HOSTNAME".to_owned(), meta["name"].as_str().unwrap_or_default().to_owned());
    for from in c["envFrom"].as_array().into_iter().flatten() {
        for (field, kind) in [("secretRef", RefKind::Secret), ("configMapRef", RefKind::ConfigMap)] {
            let Some(r) = from.get(field) else { continue };
            let name = r["name"].as_str().unwrap_or_default();
            match node.lookup(kind, namespace, name).await {
                Some(data) => {
                    let prefix = from["prefix"].as_str().unwrap_or_default();
                    env.extend(data.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
                }
                None if r["optional"] == true => {}
                None => return Err(format!("{} \"{name}\" not found", kind.word())),
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
                "spec.nodeName" => Some(node.node_name().to_owned()),
                "spec.serviceAccountName" => pod["spec"]["serviceAccountName"].as_str().map(str::to_owned),
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
        for (field, kind) in [("secretKeyRef", RefKind::Secret), ("configMapKeyRef", RefKind::ConfigMap)] {
            let Some(r) = from.get(field) else { continue };
            let (object, wanted) = (r["name"].as_str().unwrap_or_default(), r["key"].as_str().unwrap_or_default());
            match node.lookup(kind, namespace, object).await {
                Some(data) => match data.get(wanted) {
                    Some(v) => {
                        env.insert(name.clone(), v.clone());
                    }
                    None if r["optional"] == true => {}
                    None => {
                        let what = if kind == RefKind::Secret { "Secret" } else { "ConfigMap" };
                        return Err(format!("couldn't find key {wanted} in {what} {namespace}/{object}"));
                    }
                },
                None if r["optional"] == true => {}
                None => return Err(format!("{} \"{object}\" not found", kind.word())),
            }
        }
    }
    Ok(env)
}
