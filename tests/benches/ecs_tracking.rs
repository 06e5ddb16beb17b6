//! How many DescribeTasks calls it takes to track 1,000 concurrent ECS runs
//! to completion: the `ecs` plugin's watch (through its dylib; one call per
//! 100 runs per round) next to one-call-per-run polling, which is what a
//! poll-per-task integration does. Both against the project's ECS stub in
//! the same run, where task n stops after it was described 1 + n % 3 times,
//! so both see the same rounds. Target: at most one call per 100 runs per
//! round.
//!
//! Run: `cargo bench -p polysync-tests --bench ecs_tracking`

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use polysync::plugins::Registry;
use polysync_conformance::artifacts;
use polysync_provider_api::{PollRequest, Provider, WatchRequest};
use polysync_tests::ecs_stub::EcsStub;

fn main() {
    let runs = polysync_tests::bench_size(1_000, 100);
    let stub = EcsStub::start(1, 1);
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-provider-ecs"));
    let settings =
        polysync_tests::moto::with_aws(serde_json::json!({"cluster": "stub", "poll_interval_ms": 100}), &stub.url);
    let provider = registry.connect("ecs", &settings).expect("plugin connects");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let arns = |tag: &str| -> Vec<String> {
        (0..runs).map(|n| format!("arn:aws:ecs:eu-west-1:123456789012:task/stub/{tag}-stub-{n}")).collect()
    };

    // polysync: one watch over every run.
    let started = Instant::now();
    let ids = arns("watch");
    let statuses: Vec<_> = rt.block_on(async {
        provider.watch(WatchRequest { run_ids: ids.clone() }).await.unwrap().map(|s| s.unwrap()).collect().await
    });
    let watch_time = started.elapsed();
    let ended: BTreeSet<_> = statuses.iter().filter(|s| s.state.is_terminal()).map(|s| s.run_id.clone()).collect();
    assert_eq!(ended.len(), runs, "every run ended");
    let watch_calls = stub.calls("DescribeTasks");

    // One call per run per round.
    stub.reset();
    let started = Instant::now();
    let mut pending = arns("poll");
    let mut rounds = 0;
    while !pending.is_empty() {
        rounds += 1;
        let results: Vec<_> = rt.block_on(futures::future::join_all(
            pending.iter().map(|id| provider.poll(PollRequest { run_id: id.clone() })),
        ));
        pending = pending
            .into_iter()
            .zip(results)
            .filter(|(_, r)| !r.as_ref().expect("poll").state.is_terminal())
            .map(|(id, _)| id)
            .collect();
        std::thread::sleep(Duration::from_millis(100));
    }
    let poll_time = started.elapsed();
    let poll_calls = stub.calls("DescribeTasks");
    let watch_rounds = watch_calls.div_ceil(runs.div_ceil(100));

    println!("\nTracking {runs} concurrent ECS runs to completion (DescribeTasks calls)");
    println!("| client | rounds | DescribeTasks calls | calls per 100 runs per round | wall time |");
    println!("|---|---|---|---|---|");
    println!(
        "| polysync ecs watch (batched) | {watch_rounds} | {watch_calls} | {:.2} | {:.2} s |",
        watch_calls as f64 / watch_rounds as f64 / (runs as f64 / 100.0),
        watch_time.as_secs_f64()
    );
    println!(
        "| one call per run per round | {rounds} | {poll_calls} | {:.2} | {:.2} s |",
        poll_calls as f64 / rounds as f64 / (runs as f64 / 100.0),
        poll_time.as_secs_f64()
    );
    println!("ratio (polysync / per-run): {:.3}x the calls", watch_calls as f64 / poll_calls as f64);
    // The bound from the stub's rule alone, not from anything measured:
    // task n is described 1 + n % 3 times running and once more stopped,
    // and round r describes the tasks not yet seen stopped, in calls of at
    // most 100.
    let bound: usize = (1..=4).map(|round| (0..runs).filter(|n| 2 + n % 3 >= round).count().div_ceil(100)).sum();
    assert!(watch_calls <= bound, "{watch_calls} DescribeTasks calls; one per 100 runs per round is {bound}");
}
