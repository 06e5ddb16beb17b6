//! Listing 100,000 Jobs in pages of 500 through the sandbox's HTTP API.
//!
//! Reports seeding time, pages per second, the mean latency of the first
//! and last ten pages (a store that slowed down with depth would show it
//! here), and the process's peak RSS. When kubectl is installed, the same
//! listing by `kubectl get jobs --chunk-size=500 -o name` over HTTPS is
//! timed in the same run as a reference client.
//!
//! Run: `cargo bench -p polysync-sandbox --bench list_100k`

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use polysync_sandbox::{BackgroundSandbox, Sandbox, SandboxConfig, SeedConfig};

/// 100,000 under `cargo bench` (which passes `--bench`); run any other way
/// (`cargo test --benches`, as scripts/test does) once at 10,000, so CI
/// proves the benchmark still works.
fn jobs() -> usize {
    if std::env::args().any(|a| a == "--bench") { 100_000 } else { 10_000 }
}
const PAGE: usize = 500;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

async fn list_all(sandbox: &Sandbox) -> (usize, Vec<Duration>) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut token: Option<String> = None;
    let mut items = 0;
    let mut latencies = Vec::new();
    loop {
        let mut uri = format!("{}/apis/batch/v1/namespaces/bench/jobs?limit={PAGE}", sandbox.url());
        if let Some(t) = &token {
            uri.push_str("&continue=");
            uri.push_str(t);
        }
        let start = Instant::now();
        let req = http::Request::get(uri)
            .header("authorization", format!("Bearer {}", sandbox.token()))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let body = client.request(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        latencies.push(start.elapsed());
        items += page["items"].as_array().unwrap().len();
        match page["metadata"]["continue"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    (items, latencies)
}

fn mean_ms(d: &[Duration]) -> f64 {
    d.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / d.len().max(1) as f64
}

fn main() {
    let jobs = jobs();
    let rss_before = status_kib("VmRSS:");
    let seed_start = Instant::now();
    let plain = BackgroundSandbox::start(SandboxConfig {
        tls: false,
        cronjob_controller: false,
        seed: SeedConfig { namespace: "bench".into(), jobs, ..SeedConfig::default() },
        ..SandboxConfig::default()
    })
    .unwrap();
    let seed_time = seed_start.elapsed();
    let rss_seeded = status_kib("VmRSS:");

    let start = Instant::now();
    let (items, latencies) = plain.runtime().block_on(list_all(&plain));
    let total = start.elapsed();
    assert_eq!(items, jobs, "every job listed once");
    let pages = latencies.len();

    println!("| measure | value |");
    println!("|---|---|");
    println!("| seed {jobs} Jobs | {:.2} s |", seed_time.as_secs_f64());
    println!("| store memory for {jobs} Jobs (RSS growth) | {} MiB |", (rss_seeded.saturating_sub(rss_before)) / 1024);
    println!("| list {jobs} Jobs, {pages} pages of {PAGE} (HTTP, one client) | {:.2} s |", total.as_secs_f64());
    println!("| pages per second | {:.1} |", pages as f64 / total.as_secs_f64());
    println!("| mean latency, first 10 pages | {:.2} ms |", mean_ms(&latencies[..10]));
    println!("| mean latency, last 10 pages | {:.2} ms |", mean_ms(&latencies[pages - 10..]));
    drop(plain);

    // The same listing by kubectl, over HTTPS, as a reference client.
    // The kubectl scripts/test builds from the control plane's release, else PATH's.
    let kubectl = std::env::var("POLYSYNC_KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    {
        let tls = BackgroundSandbox::start(SandboxConfig {
            cronjob_controller: false,
            seed: SeedConfig { namespace: "bench".into(), jobs, ..SeedConfig::default() },
            ..SandboxConfig::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        tls.write_kubeconfig(&kubeconfig, "bench").unwrap();
        let start = Instant::now();
        let out = std::process::Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "jobs", "--chunk-size=500", "-o", "name"])
            .env("HOME", dir.path())
            .output()
            .unwrap();
        let elapsed = start.elapsed();
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), jobs);
        println!(
            "| kubectl get jobs --chunk-size=500 (HTTPS), same server | {:.2} s ({:.1} pages/s) |",
            elapsed.as_secs_f64(),
            pages as f64 / elapsed.as_secs_f64()
        );
    }
    println!("| peak RSS of the benchmark process | {} MiB |", status_kib("VmHWM:") / 1024);
}
