//! Catalog writes per second and run-claim latency, SQLite against
//! PostgreSQL in the same run and with the same durability, with 10,000
//! entries and 10,000 runs.
//!
//! `cargo bench -p polysync --bench store` (PostgreSQL binaries as for the
//! tests: `POLYSYNC_PG_BIN`, `pg_config`, or /usr/lib/postgresql).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use polysync::config::{CatalogLocation, PasswordSource, PostgresCatalog};
use polysync::store::{self, DeleteAfter, NewRun, Store};
use polysync_provider_api::{CatalogEntry, EntryKind, Parameter, RunHandle, RunSource, RunStatus};

/// Entries and runs: 10,000 under `cargo bench` (which passes `--bench`);
/// run any other way (`cargo test --benches`, as scripts/test does) once
/// at a tiny size, so CI proves the benchmark still works.
fn size() -> usize {
    if std::env::args().any(|a| a == "--bench") { 10_000 } else { 300 }
}
const PAGE: usize = 500;
const LEASE: Duration = Duration::from_secs(30);

fn entry(i: usize, generation: usize) -> CatalogEntry {
    CatalogEntry {
        external_id: format!("job-{i:05}"),
        kind: EntryKind::Job,
        display_name: format!("job-{i:05}"),
        namespace: Some("batch".into()),
        cluster: None,
        parameters: vec![Parameter::input("DATE", "2026-11-30"), Parameter::input("REGION", "eu-west-1")],
        fallback: Default::default(),
        fingerprint: format!("{generation}-{i}"),
        labels: BTreeMap::from([("team".to_owned(), "data".to_owned())]),
    }
}

struct Numbers {
    sync_entries_per_s: f64,
    resync_entries_per_s: f64,
    run_writes_per_s: f64,
    status_writes_per_s: f64,
    claim_p50_ms: f64,
    claim_p99_ms: f64,
}

async fn measure(store: Arc<dyn Store>) -> Numbers {
    let (entries_n, runs_n) = (size(), size());
    let entries: Vec<CatalogEntry> = (0..entries_n).map(|i| entry(i, 0)).collect();
    let sync = |generation: usize| {
        let store = store.clone();
        let entries: Vec<CatalogEntry> =
            if generation == 0 { entries.clone() } else { (0..entries_n).map(|i| entry(i, i % 10)).collect() };
        async move {
            let t = Instant::now();
            let id = store.begin_sync("prod", "bench", LEASE).await.unwrap();
            for page in entries.chunks(PAGE) {
                store.upsert_page(id, page, LEASE).await.unwrap();
            }
            store.finish_sync(id, true, None).await.unwrap();
            entries_n as f64 / t.elapsed().as_secs_f64()
        }
    };
    let sync_entries_per_s = sync(0).await;
    let resync_entries_per_s = sync(1).await;

    // 10,000 runs recorded and submitted, 4 writers at once (a service's
    // request handlers).
    let t = Instant::now();
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in (w..runs_n).step_by(4) {
                let run = NewRun {
                    connection: "prod".into(),
                    external_id: format!("job-{:05}", i % entries_n),
                    idempotency_key: format!("key-{i}"),
                    parameters: BTreeMap::from([("DATE".to_owned(), format!("2026-11-{:02}", i % 28 + 1))]),
                    delete_after: DeleteAfter::Default,
                    startup_timeout: None,
                    callback_url: None,
                };
                let r = store.record_intent(&run, "creator", Duration::ZERO).await.unwrap();
                let handle = RunHandle {
                    run_id: format!("job-{i}"),
                    external_id: run.external_id.clone(),
                    source: RunSource::Live,
                    adopted: false,
                    monitor_url: None,
                };
                store.record_submitted(r.run.id, &handle).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let run_writes_per_s = (2 * runs_n) as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let updates = runs_n.min(2000);
    for id in 1..=updates as i64 {
        let s = RunStatus::new(format!("job-{id}"), polysync_provider_api::RunState::Running);
        store.record_status(id, &s).await.unwrap();
    }
    let status_writes_per_s = updates as f64 / t.elapsed().as_secs_f64();

    // Claims of 100 runs by 4 hosts at once out of 10,000 active ones.
    let mut latencies = Vec::new();
    let mut claimers = Vec::new();
    for h in 0..4 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let mut times = Vec::new();
            loop {
                let t = Instant::now();
                let got = store.claim_runs(&format!("host-{h}"), Some("prod"), LEASE, 100).await.unwrap();
                times.push(t.elapsed());
                if got.is_empty() {
                    return times;
                }
            }
        }));
    }
    for c in claimers {
        latencies.extend(c.await.unwrap());
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
    Numbers {
        sync_entries_per_s,
        resync_entries_per_s,
        run_writes_per_s,
        status_writes_per_s,
        claim_p50_ms: pct(0.50),
        claim_p99_ms: pct(0.99),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The same durability on both sides: SQLite runs in WAL mode with
    // synchronous=NORMAL (a commit survives the process, the last ones may
    // be lost with the machine, the file never corrupts); PostgreSQL with
    // fsync on, full-page writes on and synchronous_commit off promises
    // exactly that. The test servers turn fsync off, which would flatter it.
    let server =
        polysync_clusters::postgres::Postgres::start_as_sqlite_durable().expect("the benchmark's PostgreSQL server");
    let (sqlite, postgres) = rt.block_on(async {
        let sqlite = store::open(&CatalogLocation::Sqlite(dir.path().join("bench.db"))).await.unwrap();
        let url = server.database("bench").unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, polysync_clusters::postgres::PASSWORD).unwrap();
        let pg = PostgresCatalog::new(&url, Some(PasswordSource::File(pw))).unwrap();
        let postgres = store::open(&CatalogLocation::Postgres(pg)).await.unwrap();
        (measure(sqlite).await, measure(postgres).await)
    });
    let (entries_n, runs_n) = (size(), size());
    println!("| catalog, {entries_n} entries / {runs_n} runs | SQLite | PostgreSQL | PostgreSQL / SQLite |");
    println!("|---|---|---|---|");
    let row = |what: &str, s: f64, p: f64, unit: &str| {
        println!("| {what} | {s:.0} {unit} | {p:.0} {unit} | {:.2}× |", p / s);
    };
    row("first sync (entries/s)", sqlite.sync_entries_per_s, postgres.sync_entries_per_s, "/s");
    row("resync, 90% changed (entries/s)", sqlite.resync_entries_per_s, postgres.resync_entries_per_s, "/s");
    row("run record + submit, 4 writers (writes/s)", sqlite.run_writes_per_s, postgres.run_writes_per_s, "/s");
    row("status updates (writes/s)", sqlite.status_writes_per_s, postgres.status_writes_per_s, "/s");
    println!(
        "| claim 100 of {runs_n} runs, 4 hosts: p50 | {:.2} ms | {:.2} ms | {:.2}× |",
        sqlite.claim_p50_ms,
        postgres.claim_p50_ms,
        postgres.claim_p50_ms / sqlite.claim_p50_ms
    );
    println!(
        "| claim 100 of {runs_n} runs, 4 hosts: p99 | {:.2} ms | {:.2} ms | {:.2}× |",
        sqlite.claim_p99_ms,
        postgres.claim_p99_ms,
        postgres.claim_p99_ms / sqlite.claim_p99_ms
    );
}
