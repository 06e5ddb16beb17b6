//! The `kubernetes` provider against the sandbox and against the real
//! control plane (kube-apiserver v1.36 built from source), next to peers
//! measured in the same run.
//!
//! 1. Discovery of 10,000 Jobs in pages of 100 by the plugin (through its
//!    dylib, in a process of its own) next to `kubectl get jobs
//!    --chunk-size=100 -o json` (both print every object), and the limit:
//!    the same pages fetched raw by kube's client, counted and dropped.
//!    Wall time and peak RSS of each client process. Targets: at most half
//!    of kubectl's time and memory.
//! 2. The delay from a Job's terminal condition being written to the caller
//!    seeing it, for 100 runs: the provider's watch next to a 1-second poll
//!    loop. Target: watch p99 under 50 ms.
//!
//! 3. The steady API load of tracking 1,000 runs (990 running, 10 whose pods
//!    the API server refuses, so the job controller's FailedCreate events
//!    are read): the provider's watch next to a 1-second poll loop per run
//!    (the peer; a poll is a GET of the Job, a list of its pods and, while
//!    it has none, a list of its events). Target: under 1 request/s.
//!
//! Run: `cargo bench -p polysync-tests --bench kube_jobs`

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use polysync::plugins::Registry;
use polysync_clusters::realkube::RealKubeConfig;
use polysync_conformance::artifacts;
use polysync_provider_api::{DiscoverRequest, PollRequest, Provider, RunRequest, WatchRequest};
use polysync_sandbox::resources::Kind;
use polysync_sandbox::store::EventType;
use polysync_sandbox::{SandboxConfig, SeedConfig};
use polysync_tests::{Cluster, SandboxCluster};

/// Jobs discovered (10,000; tiny: 300, see `polysync_tests::full_bench`).
fn jobs() -> usize {
    polysync_tests::bench_size(10_000, 300)
}

/// Runs whose end is timed (100; tiny: 5).
fn runs() -> usize {
    polysync_tests::bench_size(100, 5)
}

fn connect(settings: &serde_json::Value) -> polysync_provider_api::abi::host::PluginProvider {
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-provider-kubernetes"));
    registry.connect("kubernetes", settings).expect("plugin connects")
}

/// Child mode: discover everything and print each entry as a JSON line, as
/// kubectl prints each Job.
fn child_discover(settings: &str) {
    use std::io::Write;
    let settings: serde_json::Value = serde_json::from_str(settings).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let provider = connect(&settings);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut token = None;
    loop {
        let page = rt.block_on(provider.discover(DiscoverRequest { page_token: token, page_size: Some(100) })).unwrap();
        for entry in &page.entries {
            serde_json::to_writer(&mut out, entry).unwrap();
            out.write_all(b"\n").unwrap();
        }
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
}

/// Child mode, the limit: the same pages fetched raw through the same
/// HTTP stack (kube's client), nothing read from them but the item count
/// and the continue token, which is printed.
fn child_raw_pages(kubeconfig: &str) {
    #[derive(serde::Deserialize)]
    struct Page {
        metadata: Meta,
        items: Vec<serde::de::IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "continue")]
        token: Option<String>,
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let n = rt.block_on(async {
        let client = polysync_clusters::realkube::client_for(&text).await.unwrap();
        let (mut n, mut token) = (0, String::new());
        loop {
            let uri = format!("/apis/batch/v1/namespaces/bench/jobs?limit=100&continue={token}");
            let body = client.request_text(http::Request::get(uri).body(Vec::new()).unwrap()).await.unwrap();
            let page: Page = serde_json::from_str(&body).unwrap();
            n += page.items.len();
            match page.metadata.token.filter(|t| !t.is_empty()) {
                Some(t) => token = t,
                None => return n,
            }
        }
    });
    println!("{n}");
}

/// Wall time and peak RSS (KiB) of a command, via GNU time.
fn measure(cmd: Command) -> (Duration, u64, String) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("rss");
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%M").arg("-o").arg(&report).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            timed.env(k, v);
        }
    }
    timed.stderr(Stdio::inherit());
    let start = Instant::now();
    let out = timed.output().unwrap();
    let elapsed = start.elapsed();
    assert!(out.status.success(), "{:?} failed", cmd.get_program());
    let rss = std::fs::read_to_string(&report).unwrap().trim().lines().last().unwrap().parse().unwrap();
    (elapsed, rss, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn discovery(label: &str, kubeconfig: &std::path::Path, settings: serde_json::Value) {
    let jobs = jobs();
    let settings = settings.to_string();
    let exe = std::env::current_exe().unwrap();
    let mut ours = Command::new(&exe);
    ours.env("POLYSYNC_BENCH_CHILD", &settings);
    // Warm the dylib path (cargo build) outside the measurement.
    artifacts::cdylib("polysync-provider-kubernetes");
    let (t_ours, rss_ours, out) = measure(ours);
    assert_eq!(out.lines().count(), jobs, "one entry per Job");
    let mut raw = Command::new(&exe);
    raw.env("POLYSYNC_BENCH_RAW", kubeconfig);
    let (t_raw, rss_raw, out) = measure(raw);
    assert_eq!(out.trim(), jobs.to_string());

    // The kubectl scripts/test builds from the control plane's release, else PATH's.
    let kubectl = std::env::var("POLYSYNC_KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    println!();
    println!("| {label}: discovery of {jobs} Jobs (pages of 100) | wall time | peak RSS |");
    println!("|---|---|---|");
    println!(
        "| polysync kubernetes plugin (own process) | {:.2} s | {:.1} MiB |",
        t_ours.as_secs_f64(),
        rss_ours as f64 / 1024.0
    );
    println!(
        "| limit: the same pages fetched raw (kube's client, own process) | {:.2} s | {:.1} MiB |",
        t_raw.as_secs_f64(),
        rss_raw as f64 / 1024.0
    );
    println!(
        "| ratio (polysync / limit) | {:.2} | {:.2} |",
        t_ours.as_secs_f64() / t_raw.as_secs_f64(),
        rss_ours as f64 / rss_raw as f64
    );
    let home = tempfile::tempdir().unwrap();
    let mut k = Command::new(kubectl);
    k.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["get", "jobs", "--chunk-size=100", "-o", "json", "-n", "bench"])
        .env("HOME", home.path());
    let (t_k, rss_k, out) = measure(k);
    let items = serde_json::from_str::<serde_json::Value>(&out).unwrap()["items"].as_array().unwrap().len();
    assert_eq!(items, jobs);
    println!(
        "| kubectl get jobs --chunk-size=100 -o json | {:.2} s | {:.1} MiB |",
        t_k.as_secs_f64(),
        rss_k as f64 / 1024.0
    );
    println!(
        "| ratio (polysync / kubectl; target <= 0.5) | {:.2} | {:.2} |",
        t_ours.as_secs_f64() / t_k.as_secs_f64(),
        rss_ours as f64 / rss_k as f64
    );
}

/// When each run's terminal condition was written: on the sandbox, from its
/// store; on the real control plane, from an admin watch of its own (so the
/// apiserver's delivery delay is in the baseline, not in polysync's figure).
type Written = Arc<Mutex<HashMap<String, Instant>>>;

fn record_from_sandbox(cluster: &SandboxCluster) -> Written {
    let written: Written = Arc::default();
    let mut changes = cluster.sandbox.store().subscribe();
    let record = written.clone();
    cluster.sandbox.runtime().spawn(async move {
        while let Ok(change) = changes.recv().await {
            if change.kind != Kind::Job || change.event != EventType::Modified {
                continue;
            }
            let done = change.object["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter().any(|c| {
                    c["status"] == "True" && (c["type"] == "SuccessCriteriaMet" || c["type"] == "FailureTarget")
                })
            });
            if done {
                let name = change.object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                record.lock().unwrap().entry(name).or_insert_with(Instant::now);
            }
        }
    });
    written
}

fn record_from_watch(kubeconfig: String, rt: &tokio::runtime::Runtime) -> Written {
    let written: Written = Arc::default();
    let record = written.clone();
    rt.spawn(async move {
        let client = polysync_clusters::realkube::client_for(&kubeconfig).await.unwrap();
        let req = http::Request::get(
            "/apis/batch/v1/namespaces/latency/jobs?watch=1&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpolysync",
        )
        .body(Vec::new())
        .unwrap();
        let mut lines = futures::AsyncBufReadExt::lines(client.request_stream(req).await.unwrap());
        while let Some(Ok(line)) = lines.next().await {
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let job = &event["object"];
            let done = job["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter().any(|c| {
                    c["status"] == "True" && (c["type"] == "SuccessCriteriaMet" || c["type"] == "FailureTarget")
                })
            });
            if done {
                let name = job["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                record.lock().unwrap().entry(name).or_insert_with(Instant::now);
            }
        }
    });
    written
}

fn latency(label: &str, settings: serde_json::Value, written: Written) {
    let runs = runs();
    let provider = Arc::new(connect(&settings));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (watch_seen, poll_seen) = rt.block_on(async {
        let mut ids = Vec::new();
        for i in 0..runs {
            // Runs end between 1 and 3 simulated minutes apart: 0.6 - 1.8 s.
            let params: BTreeMap<String, String> =
                [("SLEEP_SECONDS".to_owned(), (60 + (i * 7919) % 120).to_string())].into();
            let req = RunRequest {
                external_id: "batch-00000".into(),
                parameters: params,
                idempotency_key: format!("lat-{i}"),
                fallback: None,
            };
            ids.push(provider.run(req).await.unwrap().run_id);
        }
        let watch_seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let poll_seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let w = watch_seen.clone();
        let p2 = provider.clone();
        let watch_ids = ids.clone();
        let watcher = tokio::spawn(async move {
            let mut stream = p2.watch(WatchRequest { run_ids: watch_ids }).await.unwrap();
            while let Some(status) = stream.next().await {
                let status = status.unwrap();
                if status.state.is_terminal() {
                    w.lock().unwrap().entry(status.run_id).or_insert_with(Instant::now);
                }
            }
        });
        let pollers: Vec<_> = ids
            .iter()
            .map(|id| {
                let (p, seen, id) = (provider.clone(), poll_seen.clone(), id.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        tick.tick().await;
                        if p.poll(PollRequest { run_id: id.clone() }).await.unwrap().state.is_terminal() {
                            seen.lock().unwrap().insert(id, Instant::now());
                            return;
                        }
                    }
                })
            })
            .collect();
        watcher.await.unwrap();
        for p in pollers {
            p.await.unwrap();
        }
        (watch_seen, poll_seen)
    });
    let written = written.lock().unwrap().clone();
    let delays = |seen: &Arc<Mutex<HashMap<String, Instant>>>| {
        let mut d: Vec<Duration> =
            seen.lock().unwrap().iter().map(|(id, t)| t.saturating_duration_since(written[id])).collect();
        d.sort();
        d
    };
    let (w, p) = (delays(&watch_seen), delays(&poll_seen));
    println!();
    println!("| {label}: terminal condition written -> caller sees it ({runs} runs) | p50 | p99 | max |");
    println!("|---|---|---|---|");
    println!(
        "| polysync watch (one list+watch of jobs and pods) | {:.1} ms | {:.1} ms | {:.1} ms |",
        ms(percentile(&w, 0.5)),
        ms(percentile(&w, 0.99)),
        ms(*w.last().unwrap())
    );
    println!(
        "| 1-second poll loop per run | {:.1} ms | {:.1} ms | {:.1} ms |",
        ms(percentile(&p, 0.5)),
        ms(percentile(&p, 0.99)),
        ms(*p.last().unwrap())
    );
    println!("| ratio p99 (watch / poll) | | {:.3} | |", ms(percentile(&w, 0.99)) / ms(percentile(&p, 0.99)));
}

/// Runs tracked, and how many of them are refused (1,000 and 10; tiny: 20 and 2).
fn tracked() -> (usize, usize) {
    polysync_tests::bench_size((1_000, 10), (20, 2))
}

/// Section 3: requests a second while following `tracked()` runs that do not
/// change, by the watch and by a poll loop per run.
fn tracking_load() {
    let (tracked, refused) = tracked();
    let cluster = SandboxCluster::start_with(SandboxConfig {
        seed: SeedConfig { namespace: "tracking".into(), jobs: 1, ..SeedConfig::default() },
        ..SandboxConfig::default()
    });
    let mut refused_job = polysync_sandbox::seed::finished_job("tracking", "refused", 1);
    refused_job["spec"]["template"]["spec"]["serviceAccountName"] = serde_json::json!("missing-sa");
    cluster.sandbox.store().create(Kind::Job, refused_job).unwrap();
    let provider = Arc::new(connect(&cluster.settings("tracking")));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (watch_rate, poll_rate) = rt.block_on(async {
        let mut ids = Vec::new();
        for i in 0..tracked {
            let (source, params) = if i < refused {
                ("refused", BTreeMap::new())
            } else {
                ("batch-00000", [("SLEEP_SECONDS".to_owned(), "100000000".to_owned())].into())
            };
            let req = RunRequest {
                external_id: source.into(),
                parameters: params,
                idempotency_key: format!("track-{i}"),
                fallback: None,
            };
            ids.push(provider.run(req).await.unwrap().run_id);
        }
        // Follow until every run says where it is: Running, or Starting
        // with the refusal.
        let settled: Arc<Mutex<HashMap<String, bool>>> = Arc::default();
        let (p, s, watch_ids) = (provider.clone(), settled.clone(), ids.clone());
        let watcher = tokio::spawn(async move {
            let mut stream = p.watch(WatchRequest { run_ids: watch_ids }).await.unwrap();
            while let Some(status) = stream.next().await {
                let status = status.unwrap();
                let done = status.state == polysync_provider_api::RunState::Running
                    || status.reason.as_deref() == Some("FailedCreate");
                s.lock().unwrap().insert(status.run_id, done);
            }
        });
        let started = Instant::now();
        while settled.lock().unwrap().values().filter(|d| **d).count() < tracked {
            assert!(started.elapsed() < Duration::from_secs(300), "the runs did not settle");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Past the first refusal reads' back-off, then measure a minute.
        tokio::time::sleep(polysync_tests::bench_size(Duration::from_secs(40), Duration::from_secs(2))).await;
        let window = polysync_tests::bench_size(Duration::from_secs(60), Duration::from_secs(3));
        cluster.sandbox.stats().reset();
        tokio::time::sleep(window).await;
        let watch_rate = cluster.sandbox.stats().total() as f64 / window.as_secs_f64();
        eprintln!("tracking {tracked} runs, watch: {:?}", cluster.sandbox.stats().snapshot());
        watcher.abort();
        // The peer: a 1-second poll loop per run, for 10 s.
        let window = polysync_tests::bench_size(Duration::from_secs(10), Duration::from_secs(2));
        cluster.sandbox.stats().reset();
        let pollers: Vec<_> = ids
            .iter()
            .map(|id| {
                let (p, id) = (provider.clone(), id.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        tick.tick().await;
                        let _ = p.poll(PollRequest { run_id: id.clone() }).await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(window).await;
        let poll_rate = cluster.sandbox.stats().total() as f64 / window.as_secs_f64();
        for p in pollers {
            p.abort();
        }
        (watch_rate, poll_rate)
    });
    println!();
    println!("| sandbox: steady API load of tracking {tracked} runs ({refused} refused) | requests/s |");
    println!("|---|---|");
    println!("| polysync watch (informer; refusals read with back-off) | {watch_rate:.2} |");
    println!("| 1-second poll loop per run | {poll_rate:.1} |");
    println!("| ratio (watch / poll) | {:.5} |", watch_rate / poll_rate);
}

fn main() {
    if let Ok(settings) = std::env::var("POLYSYNC_BENCH_CHILD") {
        return child_discover(&settings);
    }
    if let Ok(kubeconfig) = std::env::var("POLYSYNC_BENCH_RAW") {
        return child_raw_pages(&kubeconfig);
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::args().any(|a| a == "tracking") {
        return tracking_load();
    }
    let jobs = jobs();
    let cluster = SandboxCluster::start_with(SandboxConfig {
        cronjob_controller: false,
        seed: SeedConfig { namespace: "bench".into(), jobs, ..SeedConfig::default() },
        ..SandboxConfig::default()
    });
    discovery("sandbox", &cluster.kubeconfig, cluster.settings("bench"));
    drop(cluster);
    let cluster = SandboxCluster::start_with(SandboxConfig {
        time_scale: 0.01,
        seed: SeedConfig { namespace: "latency".into(), jobs: 1, ..SeedConfig::default() },
        ..SandboxConfig::default()
    });
    let written = record_from_sandbox(&cluster);
    latency("sandbox", cluster.settings("latency"), written);
    drop(cluster);

    // The same against the real control plane, whose node agent runs the
    // pods at the same time scale.
    let real = Cluster::real(RealKubeConfig { time_scale: 0.01, ..RealKubeConfig::default() }).unwrap();
    real.ensure_namespace("bench");
    let started = Instant::now();
    polysync_clusters::seed::seed_blocking(&real, "bench", jobs, 0);
    eprintln!("seeded {jobs} Jobs into kube-apiserver in {:.1} s", started.elapsed().as_secs_f64());
    // Measure a quiet cluster: the job controller marks each new suspended
    // Job Suspended, 10,000 status writes that would otherwise compete with
    // whichever client is measured first.
    let settled = Instant::now();
    loop {
        let mut marked = 0;
        let mut token = String::new();
        loop {
            let page = real
                .call("GET", &format!("/apis/batch/v1/namespaces/bench/jobs?limit=500&continue={token}"), None)
                .unwrap();
            marked += page["items"].as_array().unwrap().iter().filter(|j| j["status"]["conditions"].is_array()).count();
            token = page["metadata"]["continue"].as_str().unwrap_or_default().to_owned();
            if token.is_empty() {
                break;
            }
        }
        if marked >= jobs || settled.elapsed() > Duration::from_secs(600) {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    std::thread::sleep(Duration::from_secs(3));
    eprintln!("the job controller settled in {:.1} s more", settled.elapsed().as_secs_f64());
    discovery("kube-apiserver v1.36", real.kubeconfig(), real.settings("bench"));
    real.ensure_namespace("latency");
    polysync_clusters::seed::seed_blocking(&real, "latency", 1, 0);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let written = record_from_watch(real.kubeconfig_text("latency"), &rt);
    latency("kube-apiserver v1.36", real.settings("latency"), written);
    drop(real);
    tracking_load();
}
