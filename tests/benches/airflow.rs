//! How long after a run's end Apache Airflow sees it, through the provider
//! of `integrations/airflow` (the deferred PolysyncRunOperator's trigger on
//! the status stream) and through the peer a DAG uses without it
//! (HttpOperator to start the run, HttpSensor polling it every 5 s). Each
//! run's container prints when it ended (`date +ENDED_AT=%s.%N`) as an
//! output; the DAGs print when Airflow learned of the end
//! (`integrations/airflow/tests/bench_dags`). Goal: <= 1 s.
//!
//! Run: `cargo bench -p polysync-tests --bench airflow` (with
//! POLYSYNC_AIRFLOW set to the bin directory of an Airflow venv, as
//! scripts/test makes it; BENCH_RUNS runs per way, default 5).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use polysync_clusters::process::Child;
use polysync_sandbox::resources::Kind;
use polysync_sandbox::{SeedConfig, seed};
use polysync_tests::SandboxCluster;
use serde_json::{Value, json};

const TOKEN: &str = "bench-token-airflow-0123456789";
const NS: &str = "airflow-bench";

fn curl(base: &str, method: &str, path: &str) -> Value {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "30", "-X", method, "-H", &format!("Authorization: Bearer {TOKEN}")])
        .arg(format!("{base}{path}"))
        .output()
        .expect("curl runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The SEEN_AFTER seconds of each run `how` followed, from a DAG's output.
fn seen(text: &str, how: &str) -> Vec<f64> {
    let prefix = format!("SEEN_AFTER {how} ");
    text.lines().filter_map(|l| l.strip_prefix(&prefix)).filter_map(|v| v.trim().parse().ok()).collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let airflow = PathBuf::from(std::env::var("POLYSYNC_AIRFLOW").expect(
        "set POLYSYNC_AIRFLOW to the bin directory of an Apache Airflow venv (scripts/test makes one and prints nothing else)",
    ));
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| polysync_tests::bench_size(5, 1));
    let cluster = SandboxCluster::start(SeedConfig { namespace: NS.into(), ..SeedConfig::default() }, 1.0);
    let mut job = seed::finished_job(NS, "bench", 1);
    job["spec"]["template"]["spec"]["containers"][0]["args"] =
        json!(["sleep 1; date +ENDED_AT=%s.%N > /dev/termination-log"]);
    cluster.sandbox.store().create(Kind::Job, job).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let connection = format!(
        "provider = \"kubernetes\"\nkubeconfig = {:?}\nnamespace = \"{NS}\"",
        cluster.kubeconfig.display().to_string()
    );
    let config =
        polysync_tests::write_config(dir.path(), "polysync-provider-kubernetes", None, "", "bench", &connection);
    let server = polysync_tests::start_server(&config, "1s", &[("POLYSYNC_API_TOKEN", TOKEN.into())]);
    let sync = curl(&server.base, "POST", "/v1/connections/bench/syncs");
    let started = Instant::now();
    while curl(&server.base, "GET", &format!("/v1/syncs/{}", sync["id"]))["status"] == "running" {
        assert!(started.elapsed() < Duration::from_secs(60), "the sync did not end");
        std::thread::sleep(Duration::from_millis(100));
    }

    let (host, port) = server.base.trim_start_matches("http://").split_once(':').unwrap();
    let mut envs = polysync_tests::airflow_env(dir.path(), "bench_dags", &server.base, TOKEN);
    envs.push(("POLYSYNC_BENCH_RUNS", runs.to_string()));
    envs.push((
        "AIRFLOW_CONN_POLYSYNC_HTTP",
        json!({"conn_type": "http", "host": host, "port": port.parse::<u16>().unwrap(), "schema": "http", "password": TOKEN})
            .to_string(),
    ));
    let bin = airflow.join("airflow");
    let airflow_cmd = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Child::run_to_end("airflow", &bin, &args, &envs, dir.path(), Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    airflow_cmd(&["db", "migrate"]);
    let trigger = airflow_cmd(&["dags", "test", "latency_trigger"]);
    let sensor = airflow_cmd(&["dags", "test", "latency_sensor"]);
    let (mut t, mut s) = (seen(&trigger, "trigger"), seen(&sensor, "sensor"));
    assert_eq!((t.len(), s.len()), (runs, runs), "every run is seen once:\n{trigger}\n{sensor}");
    let (t_max, s_max) = (t.iter().copied().fold(0.0, f64::max), s.iter().copied().fold(0.0, f64::max));
    let (t_med, s_med) = (median(&mut t), median(&mut s));
    println!("\nAirflow sees a run's end, {runs} runs each (seconds after the container ended):");
    println!("| way                                         | median | max   | vs peer |");
    println!("|---------------------------------------------|--------|-------|---------|");
    println!("| PolysyncRunOperator, deferred (SSE trigger) | {t_med:6.3} | {t_max:5.3} | {:6.3}x |", t_med / s_med);
    println!("| peer: HttpSensor, poke_interval 5 s          | {s_med:6.3} | {s_max:5.3} | 1x      |");
    println!("goal: <= 1 s: {}", if t_max <= 1.0 { "met" } else { "NOT met" });
}
