//! A small ECS API of the project's own, for what moto cannot show:
//! ListTaskDefinitionFamilies that really pages (moto ignores maxResults
//! and nextToken), and DescribeTasks over many synthetic tasks with a count
//! of every call (the tracking benchmark).
//!
//! It speaks the ECS JSON 1.1 protocol on 127.0.0.1 and an ephemeral port.
//! Families: `fam-00`.. in pages of `page_size`. Tasks: any ARN ending in
//! `/stub-<n>` exists; task n stops (exit 0) after it was described
//! `1 + n % 3` times, so runs end over several rounds.

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
            let family = input["taskDefinition"].as_str().unwrap_or("x").split(':').next().unwrap_or("x").to_owned();
            json!({"taskDefinition": {
                "family": family, "revision": 3,
                "taskDefinitionArn": format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:3"),
                "containerDefinitions": [{"name": "main", "image": "busybox", "essential": true,
                    "environment": [{"name": "FAMILY", "value": family}]}],
            }})
        }
        "DescribeTasks" => {
            let mut s = state.lock().unwrap();
            let tasks: Vec<Value> = input["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .map(|arn| {
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
        other => {
            return Response::builder()
                .status(400)
                .header("content-type", "application/x-amz-json-1.1")
                .body(Full::new(Bytes::from(
                    json!({"__type": "InvalidParameterException", "message": format!("the stub does not do {other}")})
                        .to_string(),
                )))
                .unwrap();
        }
    };
    Response::builder()
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(out.to_string())))
        .unwrap()
}
