//! A small HTTP client for the sandbox's API tests (plain HTTP; the TLS path
//! is exercised by the kubectl tests).
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use polysync_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

pub struct Api {
    pub sandbox: Sandbox,
    client: Client<HttpConnector, Full<Bytes>>,
    pub token: String,
}

pub async fn start(config: SandboxConfig) -> Api {
    let sandbox = Sandbox::start(SandboxConfig { tls: false, time_scale: 0.02, cronjob_controller: false, ..config })
        .await
        .expect("sandbox starts");
    let token = sandbox.token().to_owned();
    Api { sandbox, client: Client::builder(TokioExecutor::new()).build_http(), token }
}

impl Api {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, http::HeaderMap) {
        self.call_as(&self.token.clone(), method, path, content_type, body).await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        content_type: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, http::HeaderMap) {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.sandbox.url()))
            .header("content-type", content_type);
        if !token.is_empty() {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let resp = self.client.request(req.body(Full::new(Bytes::from(bytes))).unwrap()).await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, value, headers)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, v, _) = self.call(Method::GET, path, "application/json", None).await;
        (s, v)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = self.call(Method::POST, path, "application/json", Some(body)).await;
        (s, v)
    }

    pub async fn delete(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (s, v, _) = self.call(Method::DELETE, path, "application/json", body).await;
        (s, v)
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = self.call(Method::PATCH, path, content_type, Some(body)).await;
        (s, v)
    }

    /// Read a streaming response for `within` (or until it ends); return
    /// its JSON lines.
    pub async fn stream_lines(&self, path: &str, within: Duration) -> Vec<Value> {
        self.stream_text(path, within)
            .await
            .0
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Read a streaming response for `within`; return its text and whether
    /// the server ended it.
    pub async fn stream_text(&self, path: &str, within: Duration) -> (String, bool) {
        let req = Request::get(format!("{}{path}", self.sandbox.url()))
            .header("authorization", format!("Bearer {}", self.token))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = self.client.request(req).await.expect("request");
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        let ended = loop {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
                Ok(None) => break true,
                _ => break false,
            }
        };
        (String::from_utf8_lossy(&buf).into_owned(), ended)
    }

    /// Poll `path` until `pred` holds on the object, or until it is gone
    /// (404) when `pred` never holds.
    pub async fn wait_for(&self, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..400 {
            let (status, v) = self.get(path).await;
            if status == StatusCode::OK && pred(&v) || status == StatusCode::NOT_FOUND {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("timed out waiting for {what} on {path}");
    }

    pub async fn pods_of(&self, ns: &str, job: &str) -> Vec<Value> {
        let (_, list) =
            self.get(&format!("/api/v1/namespaces/{ns}/pods?labelSelector=batch.kubernetes.io/job-name%3D{job}")).await;
        list["items"].as_array().cloned().unwrap_or_default()
    }
}

/// A Job running `script` in busybox.
pub fn job(name: &str, script: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}]}}},
    })
}

pub fn condition_types(job: &Value) -> Vec<String> {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "True")
        .map(|c| c["type"].as_str().unwrap().to_owned())
        .collect()
}
