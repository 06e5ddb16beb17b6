//! Per-call overhead of the C ABI.
//!
//! The same provider (the fake) answers the same request two ways in one
//! run: called in-process through `Arc<dyn Provider>`, and through its real
//! dynamic library via the host's `PluginProvider` (JSON encode, `start`,
//! the plugin's runtime, `emit`, JSON decode). The request is a discover of
//! three entries, a ~1 KB JSON answer. Target: the ABI adds under 10 µs.
//!
//! Run: `cargo bench -p polysync-tests --bench abi_roundtrip`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::hint::black_box;

use criterion::Criterion;
use polysync::plugins::Registry;
use polysync_conformance::artifacts;
use polysync_fake_provider::{FakeConfig, FakeProvider};
use polysync_provider_api::{DiscoverRequest, Provider};

/// (iterations, elapsed) of every sample, per benchmark, for the summary.
static SAMPLES: Mutex<Vec<(&'static str, u64, Duration)>> = Mutex::new(Vec::new());

fn request() -> DiscoverRequest {
    DiscoverRequest { page_token: Some("10".into()), page_size: Some(3) }
}

fn bench(c: &mut Criterion, name: &'static str, provider: Arc<dyn Provider>, rt: &tokio::runtime::Runtime) {
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            rt.block_on(async {
                for _ in 0..iters {
                    black_box(provider.discover(request()).await.unwrap());
                }
            });
            let elapsed = start.elapsed();
            SAMPLES.lock().unwrap().push((name, iters, elapsed));
            elapsed
        })
    });
}

fn median_per_call(name: &str) -> f64 {
    let mut per: Vec<f64> = SAMPLES
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _, _)| *n == name)
        .map(|(_, iters, d)| d.as_secs_f64() * 1e6 / *iters as f64)
        .collect();
    per.sort_by(|a, b| a.total_cmp(b));
    per.get(per.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let in_process: Arc<dyn Provider> = Arc::new(FakeProvider::new(FakeConfig::default()));
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-fake-provider"));
    let plugin: Arc<dyn Provider> = Arc::new(registry.connect("fake", &serde_json::json!({})).unwrap());
    let payload = serde_json::to_vec(&rt.block_on(plugin.discover(request())).unwrap()).unwrap().len();

    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, "discover_in_process", in_process, &rt);
    bench(&mut c, "discover_through_abi", plugin, &rt);
    c.final_summary();

    let local = median_per_call("discover_in_process");
    let abi = median_per_call("discover_through_abi");
    println!();
    println!("| path | median per call | payload |");
    println!("|---|---|---|");
    println!("| in-process `Arc<dyn Provider>` | {local:.2} µs | {payload} B |");
    println!("| through the C ABI (dylib) | {abi:.2} µs | {payload} B |");
    println!("ABI overhead: {:.2} µs per call ({:.1}x in-process); target < 10 µs", abi - local, abi / local);
}
