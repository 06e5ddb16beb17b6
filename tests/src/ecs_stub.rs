//! A small ECS API of the project's own, for what moto cannot show:
//! ListTaskDefinitionFamilies that really pages (moto ignores maxResults
//! and nextToken), and DescribeTasks over many synthetic tasks with a count
//! of every call (the tracking benchmark).
//!
//! It speaks the ECS JSON 1.1 protocol on 127.0.0.1 and an ephemeral port.
//! Families: `fam-00`.. in pages of `page_size`. Tasks: any ARN ending in
//! `/stub-<n>` exists; task n stops (exit 0) after it was described
//! `1 + n % 3` times, so runs end over several rounds.
//!
//! RunTask starts tasks whose fate the family names, for the behaviours of
//! real ECS that moto does not have (each DescribeTasks is one step:
//! PROVISIONING, RUNNING, then the end):
//! * `spot-<k>`: attempts 1..=k (tag `polysync:attempt`) are stopped by a
//!   Fargate Spot interruption (stopCode `SpotInterruption`, exit 0); later
//!   ones succeed.
//! * `lost`: the task keeps no container overrides, as users report of
//!   tasks placed through a capacity provider; it runs until stopped.
//! * `nocapacity`: stops `TaskFailedToStart`, "Capacity is unavailable".
//! * `fail-<REASON>`: RunTask answers `failures: [{reason: REASON}]`
//!   (`_` stands for `:`), e.g. `fail-RESOURCE_MEMORY`.
//! * `throttled`: the first two RunTasks are throttled.
//! * anything else: succeeds.
//!
//! ListTasks (by startedBy and desired status) and StopTask see them;
//! `spot-<k>` families log with `awslogs`, and GetLogEvents on the same
//! endpoint gives each task's stream one line naming its attempt.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::{Value, json};

#[derive(Debug, Default)]
struct State {
    calls: HashMap<String, usize>,
    described: HashMap<String, usize>,
    tasks: HashMap<String, StubTask>,
    /// RunTask's clientToken → the task it started.
    tokens: HashMap<String, String>,
    throttled: usize,
}

/// A task RunTask started.
#[derive(Debug, Clone)]
struct StubTask {
    family: String,
    attempt: u32,
    started_by: String,
    tags: Value,
    overrides: Value,
    steps: usize,
    stopped: Option<String>,
}

impl StubTask {
    fn describe(&mut self, arn: &str) -> Value {
        self.steps += 1;
        let spot =
            self.family.strip_prefix("spot-").and_then(|k| k.parse::<u32>().ok()).is_some_and(|k| self.attempt <= k);
        let (last, code, reason, exit) = match (&self.stopped, self.steps) {
            (Some(why), _) => ("STOPPED", Some("UserInitiated"), Some(why.as_str()), Some(143)),
            (None, 1) => ("PROVISIONING", None, None, None),
            (None, 2) if self.family == "nocapacity" => (
                "STOPPED",
                Some("TaskFailedToStart"),
                Some(
                    "Capacity is unavailable at this time. Please try again later or in a different availability zone",
                ),
                None,
            ),
            (None, 2) => ("RUNNING", None, None, None),
            _ if self.family == "lost" => ("RUNNING", None, None, None),
            _ if spot => ("STOPPED", Some("SpotInterruption"), Some("Your Spot Task was interrupted."), Some(0)),
            _ => ("STOPPED", Some("EssentialContainerExited"), Some("Essential container in task exited"), Some(0)),
        };
        json!({
            "taskArn": arn,
            "taskDefinitionArn": format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/{}:3", self.family),
            "lastStatus": last,
            "desiredStatus": if last == "STOPPED" { "STOPPED" } else { "RUNNING" },
            "stopCode": code,
            "stoppedReason": reason,
            "startedBy": self.started_by,
            "overrides": self.overrides,
            "tags": self.tags,
            "containers": [{"name": "main", "lastStatus": last, "exitCode": exit}],
        })
    }

    fn is_stopped(&self) -> bool {
        self.stopped.is_some()
            || self.steps > 2 && self.family != "lost"
            || self.steps > 1 && self.family == "nocapacity"
    }
}

fn error(status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(json!({"__type": kind, "message": message}).to_string())))
        .unwrap()
}

/// A running stub; stops with the test process.
#[derive(Debug)]
pub struct EcsStub {
    pub url: String,
    state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

impl EcsStub {
    pub fn start(families: usize, page_size: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(req, &state, families, page_size).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        Self { url, state, _runtime: runtime }
    }

    /// How many times each operation was called.
    pub fn calls(&self, operation: &str) -> usize {
        self.state.lock().unwrap().calls.get(operation).copied().unwrap_or(0)
    }

    pub fn reset(&self) {
        *self.state.lock().unwrap() = State::default();
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    state: &Mutex<State>,
    families: usize,
    page_size: usize,
) -> Response<Full<Bytes>> {
    let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    *state.lock().unwrap().calls.entry(operation.clone()).or_default() += 1;
    let out = match operation.as_str() {
        "ListTaskDefinitionFamilies" => {
            let start: usize =
                input["nextToken"].as_str().and_then(|t| t.strip_prefix("page-")?.parse().ok()).unwrap_or(0);
            let end = (start + page_size).min(families);
            let names: Vec<String> = (start..end).map(|i| format!("fam-{i:02}")).collect();
            let mut out = json!({"families": names});
            if end < families {
                out["nextToken"] = json!(format!("page-{end}"));
            }
            out
        }
        "DescribeTaskDefinition" => {
            let name = input["taskDefinition"].as_str().unwrap_or("x").rsplit('/').next().unwrap_or("x");
            let family = name.split(':').next().unwrap_or("x").to_owned();
            let mut main = json!({"name": "main", "image": "busybox", "essential": true,
                "environment": [{"name": "FAMILY", "value": family}]});
            if family.starts_with("spot-") {
                main["logConfiguration"] = json!({"logDriver": "awslogs", "options": {
                    "awslogs-group": "/stub", "awslogs-region": "eu-west-1", "awslogs-stream-prefix": "stub"}});
            }
            json!({"tags": [], "taskDefinition": {
                "family": family, "revision": 3,
                "taskDefinitionArn": format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:3"),
                "containerDefinitions": [main],
            }})
        }
        "RunTask" => {
            let mut s = state.lock().unwrap();
            let family = input["taskDefinition"].as_str().unwrap_or("x").rsplit('/').next().unwrap_or("x");
            let family = family.split(':').next().unwrap_or("x").to_owned();
            if family == "throttled" && s.throttled < 2 {
                s.throttled += 1;
                return error(400, "ThrottlingException", "Rate exceeded");
            }
            if let Some(reason) = family.strip_prefix("fail-") {
                let reason = reason.replace('_', ":");
                return Response::builder()
                    .header("content-type", "application/x-amz-json-1.1")
                    .body(Full::new(Bytes::from(
                        json!({"tasks": [], "failures": [{"arn": "arn:aws:ecs:eu-west-1:123456789012:container-instance/stub/i-1", "reason": reason}]}).to_string(),
                    )))
                    .unwrap();
            }
            let token = input["clientToken"].as_str().unwrap_or_default().to_owned();
            let arn = match s.tokens.get(&token) {
                Some(arn) => arn.clone(),
                None => {
                    let arn = format!("arn:aws:ecs:eu-west-1:123456789012:task/stub/{:032x}", s.tasks.len() + 1);
                    let tags = input["tags"].clone();
                    let attempt = tags
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|t| t["key"] == "polysync:attempt")
                        .and_then(|t| t["value"].as_str()?.parse().ok())
                        .unwrap_or(1);
                    let overrides =
                        if family == "lost" { json!({"containerOverrides": []}) } else { input["overrides"].clone() };
                    let task = StubTask {
                        family: family.clone(),
                        attempt,
                        started_by: input["startedBy"].as_str().unwrap_or_default().to_owned(),
                        tags,
                        overrides,
                        steps: 0,
                        stopped: None,
                    };
                    s.tasks.insert(arn.clone(), task);
                    s.tokens.insert(token, arn.clone());
                    arn
                }
            };
            let mut task = s.tasks[&arn].clone();
            task.steps = 0;
            let view = task.describe(&arn);
            json!({"tasks": [view], "failures": []})
        }
        "ListTasks" => {
            let s = state.lock().unwrap();
            let by = input["startedBy"].as_str();
            let stopped = input["desiredStatus"] == "STOPPED";
            let arns: Vec<&String> = s
                .tasks
                .iter()
                .filter(|(_, t)| by.is_none_or(|b| b == t.started_by) && t.is_stopped() == stopped)
                .map(|(arn, _)| arn)
                .collect();
            json!({"taskArns": arns})
        }
        "StopTask" => {
            let mut s = state.lock().unwrap();
            let arn = input["task"].as_str().unwrap_or_default().to_owned();
            let Some(task) = s.tasks.get_mut(&arn) else {
                return error(400, "InvalidParameterException", "no such task");
            };
            task.stopped = Some(input["reason"].as_str().unwrap_or("stopped").to_owned());
            json!({"task": {"taskArn": arn}})
        }
        "DescribeTasks" => {
            let mut s = state.lock().unwrap();
            let tasks: Vec<Value> = input["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .map(|arn| {
                    if let Some(task) = s.tasks.get_mut(arn) {
                        return task.describe(arn);
                    }
                    let n: usize = arn.rsplit("stub-").next().and_then(|n| n.parse().ok()).unwrap_or(0);
                    let seen = s.described.entry(arn.to_owned()).or_default();
                    *seen += 1;
                    let stopped = *seen > 1 + n % 3;
                    json!({
                        "taskArn": arn,
                        "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/fam-00:3",
                        "lastStatus": if stopped { "STOPPED" } else { "RUNNING" },
                        "desiredStatus": if stopped { "STOPPED" } else { "RUNNING" },
                        "stopCode": if stopped { Some("EssentialContainerExited") } else { None },
                        "containers": [{"name": "main", "lastStatus": if stopped { "STOPPED" } else { "RUNNING" },
                            "exitCode": if stopped { Some(0) } else { None }}],
                    })
                })
                .collect();
            json!({"tasks": tasks, "failures": []})
        }
        "GetLogEvents" => {
            // CloudWatch Logs on the same endpoint: a RunTask task's stream
            // `stub/main/<task id>` holds one line naming its attempt.
            let s = state.lock().unwrap();
            let id = input["logStreamName"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default();
            let Some(task) = s.tasks.iter().find(|(arn, _)| arn.ends_with(&format!("/{id}"))).map(|(_, t)| t) else {
                return error(400, "ResourceNotFoundException", "The specified log stream does not exist.");
            };
            let events = if input["nextToken"] == "end" {
                json!([])
            } else {
                json!([{"timestamp": 1_764_460_800_000_u64, "ingestionTime": 1_764_460_800_000_u64,
                        "message": format!("attempt {} of {}", task.attempt, task.family)}])
            };
            json!({"events": events, "nextForwardToken": "end", "nextBackwardToken": "start"})
        }
        other => return error(400, "InvalidParameterException", &format!("the stub does not do {other}")),
    };
    Response::builder()
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(out.to_string())))
        .unwrap()
}
