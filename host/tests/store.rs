//! The store contract, on both engines: every test runs once on SQLite and
//! once on PostgreSQL (a server of this test binary's own, a fresh
//! database per test) through [`store_test!`].

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use polysync::config::{CatalogLocation, PasswordSource, PostgresCatalog};
use polysync::store::{
    self, ArchivedLog, CANCELLED_BY_USER, DeleteAfter, EntryFilter, EntryState, NewRun, RunFilter, RunState, Store,
    SyncStatus,
};
use polysync::{Clash, Error};
use polysync_clusters::postgres::{self, Postgres};
use polysync_provider_api::{CatalogEntry, EntryKind, RunHandle, RunSource, RunStatus};

fn server() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(|| Postgres::start().unwrap_or_else(|e| panic!("the test PostgreSQL server: {e}")))
}

/// A fresh store of `engine`; the SQLite file lives as long as the guard.
async fn fresh(engine: &str, name: &str) -> (Arc<dyn Store>, Option<tempfile::TempDir>) {
    match engine {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let store = store::open(&CatalogLocation::Sqlite(dir.path().join("catalog.db"))).await.unwrap();
            (store, Some(dir))
        }
        _ => {
            let db = format!("t_{name}_{}", std::process::id());
            let url = server().database(&db).unwrap();
            let pw = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(pw.path(), format!("{}\n", postgres::PASSWORD)).unwrap();
            let location = PostgresCatalog::new(&url, Some(PasswordSource::File(pw.path().to_owned()))).unwrap();
            (store::open(&CatalogLocation::Postgres(location)).await.unwrap(), None)
        }
    }
}

/// `store_test!(name, |store| async move { ... })` runs the body against
/// each engine as `name::sqlite` and `name::postgres`.
macro_rules! store_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            async fn body(store: Arc<dyn Store>) {
                let f = $body;
                f(store).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (store, _dir) = fresh("sqlite", stringify!($name)).await;
                body(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let (store, _dir) = fresh("postgres", stringify!($name)).await;
                body(store).await;
            }
        }
    };
}

fn entry(id: &str, fingerprint: &str) -> CatalogEntry {
    CatalogEntry {
        external_id: id.into(),
        kind: EntryKind::Job,
        display_name: id.into(),
        namespace: Some("batch".into()),
        cluster: None,
        parameters: vec![],
        fallback: Default::default(),
        fingerprint: fingerprint.into(),
        labels: BTreeMap::new(),
    }
}

fn new_run(key: &str, entry: &str) -> NewRun {
    NewRun {
        connection: "prod".into(),
        external_id: entry.into(),
        idempotency_key: key.into(),
        parameters: BTreeMap::from([("DATE".to_owned(), "2026-11-30".to_owned())]),
        delete_after: DeleteAfter::Success,
        startup_timeout: Some(Duration::from_secs(60)),
        callback_url: None,
    }
}

fn handle(run_id: &str) -> RunHandle {
    RunHandle {
        run_id: run_id.into(),
        external_id: "nightly".into(),
        source: RunSource::Live,
        adopted: false,
        monitor_url: None,
    }
}

const LEASE: Duration = Duration::from_secs(30);

store_test!(syncs_count_pages_and_only_a_complete_one_marks_missing, |store: Arc<dyn Store>| async move {
    let id = store.begin_sync("prod", "host-a", LEASE).await.unwrap();
    let counts = store.upsert_page(id, &[entry("a", "1"), entry("b", "1"), entry("c", "1")], LEASE).await.unwrap();
    assert_eq!((counts.added, counts.updated, counts.unchanged), (3, 0, 0));
    let done = store.finish_sync(id, true, None).await.unwrap();
    assert_eq!(done.status, SyncStatus::Complete);
    assert_eq!((done.seen, done.pages, done.added, done.missing), (3, 1, 3, 0));

    // One sync per connection at a time; another connection is free.
    let before = polysync::store::Stamp::now();
    let second = store.begin_sync("prod", "host-a", LEASE).await.unwrap();
    let busy = store.begin_sync("prod", "host-b", LEASE).await.unwrap_err();
    assert_eq!(busy.kind(), "conflict", "{busy}");
    match &busy {
        Error::Conflict(Clash::SyncRunning { connection, holder, since }) => {
            assert_eq!((connection.as_str(), holder.as_deref()), ("prod", Some("host-a")));
            assert!(
                *since >= before && *since <= polysync::store::Stamp::now(),
                "the sync's start, read back: {since}"
            );
        }
        other => panic!("a busy sync is SyncRunning, not {other:?}"),
    }
    assert!(busy.to_string().contains("host-a"), "{busy}");
    store.begin_sync("other", "host-b", LEASE).await.unwrap();

    let counts = store.upsert_page(second, &[entry("a", "1"), entry("b", "2")], LEASE).await.unwrap();
    assert_eq!((counts.added, counts.updated, counts.unchanged), (0, 1, 1));
    // Failed midway: nothing marked missing.
    let failed = store.finish_sync(second, false, Some("boom")).await.unwrap();
    assert_eq!(failed.status, SyncStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("boom"));
    let missing = store.entries(&EntryFilter { state: Some(EntryState::Missing), ..Default::default() }).await.unwrap();
    assert!(missing.is_empty());

    let third = store.begin_sync("prod", "host-a", LEASE).await.unwrap();
    store.upsert_page(third, &[entry("a", "1")], LEASE).await.unwrap();
    let done = store.finish_sync(third, true, None).await.unwrap();
    assert_eq!(done.missing, 2);
    let b = store.entry("prod", "b").await.unwrap().unwrap();
    assert_eq!(b.state, EntryState::Missing);
    assert_eq!(b.entry.fingerprint, "2", "an entry is never deleted and keeps what was last seen");
    let all = store.entries(&EntryFilter { connection: Some("prod".into()), ..Default::default() }).await.unwrap();
    assert_eq!(all.iter().map(|e| e.entry.external_id.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
});

store_test!(
    a_sync_whose_owner_stopped_renewing_is_failed_and_the_connection_freed,
    |store: Arc<dyn Store>| async move {
        let stale = store.begin_sync("prod", "elsewhere/1/dead", Duration::from_millis(200)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let next = store.begin_sync("prod", "host-b", LEASE).await.unwrap();
        assert_ne!(next, stale);
        let old = store.sync_record(stale).await.unwrap().unwrap();
        assert_eq!(old.status, SyncStatus::Failed);
        assert!(old.error.unwrap().contains("interrupted"));
    }
);

store_test!(an_idempotency_key_returns_the_same_run_and_refuses_another_request, |store: Arc<dyn Store>| async move {
    let recorded = store.record_intent(&new_run("k1", "nightly"), "host-a", LEASE).await.unwrap();
    assert!(recorded.created);
    let first = recorded.run;
    assert_eq!(first.state, RunState::Submitting);
    assert_eq!(first.delete_after, DeleteAfter::Success);
    assert_eq!(first.startup_timeout_ms, Some(60_000));
    assert_eq!(first.owner.as_ref().map(|o| o.as_str()), Some("host-a"));
    let again = store.record_intent(&new_run("k1", "nightly"), "host-b", LEASE).await.unwrap();
    assert!(!again.created, "the same key names the run recorded before");
    assert_eq!(again.run.id, first.id);
    let mut other = new_run("k1", "nightly");
    other.parameters.insert("DATE".into(), "2026-12-01".into());
    let err = store.record_intent(&other, "host-a", LEASE).await.unwrap_err();
    assert_eq!(err.kind(), "conflict");
    match &err {
        Error::Conflict(Clash::KeyReused { key, run, entry, parameters, .. }) => {
            assert_eq!((key.as_str(), *run, entry.as_str()), ("k1", first.id, "nightly"));
            assert_eq!(parameters, &["DATE"], "the names of the stored run's parameters, never their values");
        }
        other => panic!("a reused key is KeyReused, not {other:?}"),
    }
    assert!(err.to_string().contains(&format!("run #{}", first.id)), "{err}");
    assert_eq!(store.runs(&RunFilter::default()).await.unwrap().len(), 1);
});

store_test!(a_cancel_polysync_makes_is_the_users_whoever_records_it_first, |store: Arc<dyn Store>| async move {
    let deleted = || {
        let mut s = RunStatus::new("nightly-abc", polysync_provider_api::RunState::Cancelled);
        s.reason = Some("Deleted".into());
        s.message = Some("the run's Job was deleted before it finished".into());
        s
    };
    // Someone else deleted it: that is what the run says.
    let other = store.record_intent(&new_run("k0", "nightly"), "host-a", LEASE).await.unwrap().run;
    store.record_submitted(other.id, &handle("nightly-xyz")).await.unwrap();
    let by_others = store.record_status(other.id, &deleted()).await.unwrap().unwrap();
    assert_eq!(by_others.reason.as_deref(), Some("Deleted"));
    // polysync's cancel, seen first by a follower: still the user's.
    let run = store.record_intent(&new_run("k", "nightly"), "host-a", LEASE).await.unwrap().run;
    store.record_submitted(run.id, &handle("nightly-abc")).await.unwrap();
    store.mark_cancelling(run.id, true).await.unwrap();
    let seen = store.record_status(run.id, &deleted()).await.unwrap().unwrap();
    assert_eq!(
        (seen.state, seen.reason.as_deref(), seen.message),
        (RunState::Cancelled, Some(CANCELLED_BY_USER), None)
    );
    // A cancel the platform refused is unmarked: a later deletion is not the user's.
    let refused = store.record_intent(&new_run("k2", "nightly"), "host-a", LEASE).await.unwrap().run;
    store.record_submitted(refused.id, &handle("nightly-def")).await.unwrap();
    store.mark_cancelling(refused.id, true).await.unwrap();
    store.mark_cancelling(refused.id, false).await.unwrap();
    assert_eq!(store.record_status(refused.id, &deleted()).await.unwrap().unwrap().reason.as_deref(), Some("Deleted"));
});

store_test!(a_run_keeps_when_it_started_and_its_exit_codes_in_order, |store: Arc<dyn Store>| async move {
    use polysync_provider_api::{ContainerStatus, UnitStatus};
    let exited = |unit: &str, code: i32| UnitStatus {
        name: unit.into(),
        phase: "Failed".into(),
        containers: vec![ContainerStatus {
            name: "main".into(),
            state: "terminated".into(),
            exit_code: Some(code),
            ..Default::default()
        }],
        ..Default::default()
    };
    // Seen running: started then.
    let run = store.record_intent(&new_run("k", "nightly"), "host-a", LEASE).await.unwrap().run;
    store.record_submitted(run.id, &handle("nightly-abc")).await.unwrap();
    let starting = RunStatus::new("nightly-abc", polysync_provider_api::RunState::Starting);
    assert_eq!(store.record_status(run.id, &starting).await.unwrap().unwrap().started_at, None);
    let running = RunStatus::new("nightly-abc", polysync_provider_api::RunState::Running);
    let seen = store.record_status(run.id, &running).await.unwrap().unwrap();
    let started = seen.started_at.expect("started when seen running");
    assert!(started >= seen.created_at, "{seen:?}");
    // Its attempts' exit codes, by unit and container; the start stays.
    let mut failed = RunStatus::new("nightly-abc", polysync_provider_api::RunState::Failed);
    failed.units = vec![exited("nightly-abc-1", 1), exited("nightly-abc-2", 3)];
    let ended = store.record_status(run.id, &failed).await.unwrap().unwrap();
    assert_eq!(ended.started_at, Some(started));
    let codes: Vec<(&str, i32)> = ended.exit_codes.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(codes, [("nightly-abc-1/main", 1), ("nightly-abc-2/main", 3)]);
    assert_eq!(store.run(run.id).await.unwrap().unwrap().exit_codes, ended.exit_codes, "as stored");

    // Seen only once it ended, with the platform's whole-second times from
    // before polysync recorded it: never before its own creation, and
    // started, created and finished in order.
    let quick = store.record_intent(&new_run("k2", "nightly"), "host-a", LEASE).await.unwrap().run;
    store.record_submitted(quick.id, &handle("nightly-def")).await.unwrap();
    let mut done = RunStatus::new("nightly-def", polysync_provider_api::RunState::Success);
    done.started_at = Some("2000-01-01T00:00:00Z".into());
    done.finished_at = Some("2000-01-01T00:00:01Z".into());
    done.units = vec![exited("nightly-def-1", 0)];
    let done = store.record_status(quick.id, &done).await.unwrap().unwrap();
    let (s, f) = (done.started_at.unwrap(), done.finished_at.unwrap());
    assert!(done.created_at <= s && s <= f, "{done:?}");
    // A run that never ran has no start.
    let never = store.record_intent(&new_run("k3", "nightly"), "host-a", LEASE).await.unwrap().run;
    store.record_submitted(never.id, &handle("nightly-ghi")).await.unwrap();
    let refused = RunStatus::new("nightly-ghi", polysync_provider_api::RunState::Failed);
    let refused = store.record_status(never.id, &refused).await.unwrap().unwrap();
    assert_eq!((refused.started_at, refused.exit_codes.len()), (None, 0));
    assert!(refused.finished_at.is_some());
});

store_test!(a_run_moves_through_its_states_and_never_leaves_a_final_one, |store: Arc<dyn Store>| async move {
    let run = store.record_intent(&new_run("k", "nightly"), "host-a", LEASE).await.unwrap().run;
    let submitted = store.record_submitted(run.id, &handle("nightly-abc")).await.unwrap();
    let run = store.run(run.id).await.unwrap().unwrap();
    assert_eq!((run.state, run.run_id.as_deref()), (RunState::Starting, Some("nightly-abc")));
    assert_eq!((submitted.state, submitted.run_id), (run.state, run.run_id.clone()), "it returns the run as stored");
    assert_eq!(store.run_by_platform_id("nightly-abc").await.unwrap().unwrap().id, run.id);

    let mut running = RunStatus::new("nightly-abc", polysync_provider_api::RunState::Running);
    running.reason = Some("PodRunning".into());
    assert_eq!(store.record_status(run.id, &running).await.unwrap().unwrap().state, RunState::Running);
    let mut failed = RunStatus::new("nightly-abc", polysync_provider_api::RunState::Failed);
    failed.reason = Some("BackoffLimitExceeded".into());
    let ended = store.record_status(run.id, &failed).await.unwrap().unwrap();
    assert_eq!(ended.state, RunState::Failed);
    assert!(ended.finished_at.is_some());
    // A late Success from a stale watch does not rewrite history.
    let late = RunStatus::new("nightly-abc", polysync_provider_api::RunState::Success);
    let kept = store.record_status(run.id, &late).await.unwrap().unwrap();
    assert_eq!((kept.state, kept.reason.as_deref()), (RunState::Failed, Some("BackoffLimitExceeded")));

    // A run the platform lost is Lost, saying what it was last seen as.
    let other = store.record_intent(&new_run("k2", "nightly"), "host-a", LEASE).await.unwrap().run;
    store.record_submitted(other.id, &handle("nightly-def")).await.unwrap();
    store.record_status(other.id, &running).await.unwrap();
    let mut vanished = RunStatus::new("nightly-def", polysync_provider_api::RunState::Unknown);
    vanished.reason = Some(polysync_provider_api::REASON_VANISHED.into());
    let lost = store.record_status(other.id, &vanished).await.unwrap().unwrap();
    assert_eq!((lost.state, lost.reason.as_deref()), (RunState::Lost, Some("Vanished after Running")));

    // Withdrawn only while nothing was submitted; SubmitFailed is final.
    let pending = store.record_intent(&new_run("k3", "nightly"), "host-a", LEASE).await.unwrap().run;
    assert!(!store.withdraw(run.id).await.unwrap());
    assert!(store.withdraw(pending.id).await.unwrap());
    let withdrawn = store.run(pending.id).await.unwrap().unwrap();
    assert_eq!((withdrawn.reason.as_deref(), withdrawn.finished_at.is_some()), (Some("WithdrawnByUser"), true));
    let refused = store.record_intent(&new_run("k4", "nightly"), "host-a", LEASE).await.unwrap().run;
    store.record_submit_failed(refused.id, "forbidden").await.unwrap();
    let states: Vec<RunState> = store.runs(&RunFilter::default()).await.unwrap().iter().map(|r| r.state).collect();
    assert_eq!(states, [RunState::SubmitFailed, RunState::Withdrawn, RunState::Lost, RunState::Failed]);
    let failed_only = RunFilter { state: Some(RunState::Failed), ..RunFilter::default() };
    assert_eq!(store.runs(&failed_only).await.unwrap().len(), 1);
    let page = RunFilter { before: Some(refused.id), limit: Some(2), ..RunFilter::default() };
    let ids: Vec<i64> = store.runs(&page).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(ids, [pending.id, other.id]);
    // Withdrawn and refused runs need no host; the failed and lost ones do
    // until they are finished.
    let open = RunFilter { open: true, ..RunFilter::default() };
    let ids: Vec<i64> = store.runs(&open).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(ids, [other.id, run.id]);
    store.mark_finalized(run.id).await.unwrap();
    assert_eq!(store.runs(&open).await.unwrap().len(), 1);
});

store_test!(hosts_claiming_at_once_never_share_a_run_and_take_over_lapsed_leases, |store: Arc<dyn Store>| async move {
    for i in 0..60 {
        let run =
            store.record_intent(&new_run(&format!("k{i}"), "nightly"), "creator", Duration::ZERO).await.unwrap().run;
        store.record_submitted(run.id, &handle(&format!("job-{i}"))).await.unwrap();
    }
    // Six hosts claim at once, in batches of 7, until nothing is left.
    let mut tasks = Vec::new();
    for h in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim_runs(&format!("host-{h}"), Some("prod"), LEASE, 7).await.unwrap();
                let new: Vec<i64> = got.iter().map(|r| r.id).filter(|id| !mine.contains(id)).collect();
                if new.is_empty() {
                    return mine;
                }
                mine.extend(new);
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a run was claimed by two hosts");
    assert_eq!(all.len(), 60);

    // A held run is nobody else's; a lapsed one is taken over; a host
    // learns on renewal which of its runs are no longer its own.
    let owner_of = |id: i64| {
        let store = store.clone();
        async move { store.run(id).await.unwrap().unwrap().owner.unwrap().as_str().to_owned() }
    };
    let first = all[0];
    let holder = owner_of(first).await;
    let others: Vec<i64> =
        store.claim_runs("late", Some("prod"), LEASE, 100).await.unwrap().iter().map(|r| r.id).collect();
    assert!(others.is_empty(), "runs under lease were claimed: {others:?}");
    let short = Duration::from_millis(300);
    assert!(
        store.claim_runs(&holder, Some("prod"), short, 100).await.unwrap().is_empty(),
        "held runs are not returned again"
    );
    let mine = vec![first];
    assert_eq!(store.renew_leases(&holder, &mine, short).await.unwrap(), mine);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let taken: Vec<i64> =
        store.claim_runs("late", Some("prod"), LEASE, 100).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(taken, mine, "lapsed leases are taken over, and only those");
    assert!(store.renew_leases(&holder, &mine, LEASE).await.unwrap().is_empty());
    assert_eq!(store.renew_leases("late", &mine, LEASE).await.unwrap(), mine);

    // Released runs are free at once; finalized ones are never claimed.
    let second = all[1];
    let holder = owner_of(second).await;
    assert_eq!(store.release_runs(&holder, Some(&[second])).await.unwrap(), 1);
    let again: Vec<i64> =
        store.claim_runs("third", Some("prod"), LEASE, 100).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(again, [second]);
    store.mark_finalized(first).await.unwrap();
    assert_eq!(store.release_runs("late", None).await.unwrap(), 0, "finalizing let the run go");
    assert!(store.claim_runs("fourth", None, LEASE, 100).await.unwrap().is_empty());

    // The owners of open runs, each once: "late" let its only run go
    // (finalized), "third" holds one, the first claimers the rest.
    let mut owners = store.open_owners(Some("prod")).await.unwrap();
    owners.sort();
    let before = owners.len();
    owners.dedup();
    assert_eq!(before, owners.len(), "an owner is named once");
    assert!(owners.contains(&"third".to_owned()));
    assert!(!owners.contains(&"late".to_owned()), "a finalized run has no owner");
    assert!(store.open_owners(Some("elsewhere")).await.unwrap().is_empty());
    assert_eq!(store.release_runs("third", None).await.unwrap(), 1);
    assert!(!store.open_owners(None).await.unwrap().contains(&"third".to_owned()), "released runs have none");
});

store_test!(a_heartbeat_holds_every_run_handed_to_it_until_it_lapses, |store: Arc<dyn Store>| async move {
    let short = Duration::from_millis(300);
    let claim = |owner: &'static str, lease: Duration| {
        let store = store.clone();
        async move {
            store.claim_runs(owner, Some("prod"), lease, 100).await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>()
        }
    };
    for i in 0..3 {
        let run = store.record_intent(&new_run(&format!("k{i}"), "nightly"), "x", short).await.unwrap().run;
        store.record_submitted(run.id, &handle(&format!("job-{i}"))).await.unwrap();
    }
    let ids: Vec<i64> = store.runs(&RunFilter::default()).await.unwrap().iter().map(|r| r.id).rev().collect();
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    // Runs a and b are handed to x's heartbeat; c keeps its own lease.
    let beat = store.heartbeat("x", LEASE, &[a, b], &[]).await.unwrap();
    assert!(!beat.known && !beat.lapsed, "{beat:?}");
    assert_eq!(beat.kept, [a, b]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(claim("y", LEASE).await, [c], "only the run on its own lapsed lease is taken");
    // Let go, b gets a lease of its own again, and is taken once it lapses.
    let beat = store.heartbeat("x", LEASE, &[], &[b]).await.unwrap();
    assert!(beat.known && !beat.lapsed, "{beat:?}");
    assert!(claim("y", LEASE).await.is_empty(), "a run let go keeps its lease for a while");
    store.heartbeat("x", short, &[], &[b]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // x's heartbeat lapsed too: a, held by it, goes with b.
    assert_eq!(claim("y", LEASE).await, [a, b]);
    // x learns it stalled, and which runs are no longer its own.
    let beat = store.heartbeat("x", LEASE, &[], &[]).await.unwrap();
    assert!(beat.known && beat.lapsed, "{beat:?}");
    assert!(store.renew_leases("x", &[a], LEASE).await.unwrap().is_empty());
    // A run handed over that another host had taken is not kept.
    assert!(store.heartbeat("x", LEASE, &[a], &[]).await.unwrap().kept.is_empty());
    // y's runs, handed to its heartbeat, are y's; its claims return nothing new.
    assert_eq!(store.heartbeat("y", LEASE, &[a, b, c], &[]).await.unwrap().kept, [a, b, c]);
    assert!(claim("z", LEASE).await.is_empty());
});

store_test!(archived_logs_come_back_whole_and_in_order, |store: Arc<dyn Store>| async move {
    let run = store.record_intent(&new_run("k", "nightly"), "host-a", LEASE).await.unwrap().run;
    assert!(store.archived_logs(run.id).await.unwrap().is_none());
    let big = "line\n".repeat(50_000);
    let logs = vec![
        ArchivedLog { unit: "pod-b".into(), container: "main".into(), text: "b\n".into(), truncated: false },
        ArchivedLog { unit: "pod-a".into(), container: "main".into(), text: big.clone(), truncated: true },
    ];
    store.archive_logs(run.id, &logs).await.unwrap();
    let back = store.archived_logs(run.id).await.unwrap().unwrap();
    assert_eq!(back.iter().map(|l| l.unit.as_str()).collect::<Vec<_>>(), ["pod-b", "pod-a"]);
    assert_eq!(back[1].text, big);
    assert!(back[1].truncated);
    // Archiving again replaces.
    let again =
        vec![ArchivedLog { unit: "pod-b".into(), container: "main".into(), text: "b2\n".into(), truncated: false }];
    store.archive_logs(run.id, &again).await.unwrap();
    assert_eq!(store.archived_logs(run.id).await.unwrap().unwrap()[0].text, "b2\n");
});

/// A row holding what polysync never writes (a catalog edited by hand, or
/// by a newer polysync) is an error naming the table, row and column, on
/// both engines: never a run read as `Unknown` and followed for ever.
#[tokio::test]
async fn a_corrupt_row_is_an_error_that_names_it() {
    const STATE: &str = "UPDATE runs SET state = 'Exploded' WHERE id = 1";
    const TIME: &str = "UPDATE runs SET state = 'Submitting', finished_at = 'soon' WHERE id = 1";
    let check = |err: polysync::Error, what: &str| {
        let text = err.to_string();
        assert_eq!(err.kind(), "catalog", "{text}");
        assert!(text.contains(&format!("runs row #1: column {what}")), "{text}");
        let cause = std::error::Error::source(&err).and_then(|c| c.downcast_ref::<polysync::store::RowError>());
        assert!(matches!(cause, Some(polysync::store::RowError::Corrupt { table: "runs", .. })), "{err:?}");
    };
    let (sqlite, dir) = fresh("sqlite", "corrupt_rows").await;
    sqlite.record_intent(&new_run("k", "nightly"), "host", LEASE).await.unwrap();
    let conn = rusqlite::Connection::open(dir.as_ref().unwrap().path().join("catalog.db")).unwrap();
    conn.execute(STATE, []).unwrap();
    check(sqlite.run(1).await.unwrap_err(), "state holds \"Exploded\", which is not a run state");
    check(sqlite.runs(&RunFilter::default()).await.unwrap_err(), "state holds");
    conn.execute(TIME, []).unwrap();
    check(sqlite.run(1).await.unwrap_err(), "finished_at holds \"soon\", which is not a time");

    let (pg, _) = fresh("postgres", "corrupt_rows").await;
    pg.record_intent(&new_run("k", "nightly"), "host", LEASE).await.unwrap();
    let db = format!("t_corrupt_rows_{}", std::process::id());
    server().psql(&db, STATE).unwrap();
    check(pg.run(1).await.unwrap_err(), "state holds \"Exploded\", which is not a run state");
    check(pg.runs(&RunFilter::default()).await.unwrap_err(), "state holds");
    server().psql(&db, TIME).unwrap();
    check(pg.run(1).await.unwrap_err(), "finished_at holds \"soon\", which is not a time");
}

/// A catalog written by the previous schema (version 2) opens with
/// everything in it, its finished runs marked as such.
#[tokio::test]
async fn a_version_2_sqlite_catalog_migrates_forward_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("fixtures/catalog-v2.sql")).unwrap();
    }
    let store = store::open(&CatalogLocation::Sqlite(path.clone())).await.unwrap();
    let runs = store.runs(&RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 2);
    let done = runs.iter().find(|r| r.state == RunState::Success).unwrap();
    assert_eq!(done.parameters.get("DATE").map(String::as_str), Some("2026-10-01"));
    assert_eq!(done.delete_after, DeleteAfter::Default);
    assert!(done.finalized, "a run already finished is not finished again");
    let live = runs.iter().find(|r| r.state == RunState::Running).unwrap();
    assert!(!live.finalized);
    assert_eq!(store.archived_logs(done.id).await.unwrap().unwrap()[0].text, "hello\n");
    assert_eq!(store.entry("prod", "nightly").await.unwrap().unwrap().entry.display_name, "nightly");
    // The next host to watch claims the live run.
    let claimed = store.claim_runs("host", None, LEASE, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|r| r.id).collect::<Vec<_>>(), [live.id]);
}

/// TLS to a PostgreSQL catalog as libpq does it: one server of this
/// binary's own that takes TLS only, with a certificate for `localhost`
/// signed by a test CA, and a role that logs in with a client certificate.
mod tls {
    use super::*;
    use polysync_clusters::postgres::{CERT_USER, ServerTls};
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    struct Ca {
        issuer: Issuer<'static, KeyPair>,
        pem: String,
    }

    fn ca(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { issuer: Issuer::new(params, key), pem }
    }

    fn issue(ca: &Ca, names: Vec<String>, cn: &str) -> (String, String) {
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        (params.signed_by(&key, &ca.issuer).unwrap().pem(), key.serialize_pem())
    }

    /// The server, and the files a client is given: the server's CA,
    /// another CA, and the certificate role's certificate and key.
    struct Setup {
        server: Postgres,
        files: tempfile::TempDir,
    }

    fn setup() -> &'static Setup {
        static SETUP: OnceLock<Setup> = OnceLock::new();
        SETUP.get_or_init(|| {
            let (ca, other) = (ca("polysync test CA"), ca("another CA"));
            // Named for `localhost` only: 127.0.0.1 is not its name.
            let (cert_pem, key_pem) = issue(&ca, vec!["localhost".into()], "polysync test PostgreSQL");
            let tls = ServerTls { cert_pem, key_pem, client_ca_pem: ca.pem.clone() };
            let server = Postgres::start_with(Some(&tls)).unwrap_or_else(|e| panic!("the TLS PostgreSQL server: {e}"));
            server.psql("postgres", &format!("CREATE ROLE {CERT_USER} LOGIN")).unwrap();
            server.psql("postgres", &format!("CREATE DATABASE certdb OWNER {CERT_USER}")).unwrap();
            let files = tempfile::tempdir().unwrap();
            let (client_cert, client_key) = issue(&ca, vec![], CERT_USER);
            for (name, pem) in [
                ("ca.pem", &ca.pem),
                ("other-ca.pem", &other.pem),
                ("client.pem", &client_cert),
                ("client.key", &client_key),
            ] {
                std::fs::write(files.path().join(name), pem).unwrap();
            }
            Setup { server, files }
        })
    }

    fn file(name: &str) -> String {
        setup().files.path().join(name).display().to_string()
    }

    /// Open a catalog in a fresh database on `host` with `params`, with the
    /// test role's password or without one.
    async fn open(host: &str, params: &str, password: bool) -> Result<Arc<dyn Store>, String> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let db = format!("tls_{}", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        setup().server.database(&db).unwrap();
        let url = format!("postgres://{}@{host}:{}/{db}{params}", postgres::USER, setup().server.port());
        let pw = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(pw.path(), postgres::PASSWORD).unwrap();
        let source = password.then(|| PasswordSource::File(pw.path().to_owned()));
        let location = PostgresCatalog::new(&url, source).map_err(|e| e.to_string())?;
        store::open(&CatalogLocation::Postgres(location)).await.map_err(|e| e.to_string())
    }

    async fn works(host: &str, params: &str) {
        let store = open(host, params, true).await.unwrap_or_else(|e| panic!("{params}: {e}"));
        assert!(store.runs(&RunFilter::default()).await.unwrap().is_empty());
    }

    async fn fails(host: &str, params: &str, says: &str) {
        match open(host, params, true).await {
            Ok(_) => panic!("{host} {params} connected"),
            Err(e) => assert!(e.contains(says), "{host} {params}: {e}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prefer_and_require_encrypt_without_checking_the_certificate() {
        // Debian's default server (a certificate no system root signed)
        // with no sslmode: libpq's default, prefer.
        works("127.0.0.1", "").await;
        works("127.0.0.1", "?sslmode=prefer").await;
        works("127.0.0.1", "?sslmode=require").await;
        // With a root certificate, require checks the chain (libpq).
        works("127.0.0.1", &format!("?sslmode=require&sslrootcert={}", file("ca.pem"))).await;
        fails("127.0.0.1", &format!("?sslmode=require&sslrootcert={}", file("other-ca.pem")), "UnknownIssuer").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn disable_is_refused_by_a_tls_only_server_and_allow_falls_back_to_tls() {
        fails("127.0.0.1", "?sslmode=disable", "takes TLS connections only").await;
        works("127.0.0.1", "?sslmode=allow").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_ca_checks_the_chain_and_verify_full_the_name_too() {
        works("127.0.0.1", &format!("?sslmode=verify-ca&sslrootcert={}", file("ca.pem"))).await;
        fails("127.0.0.1", &format!("?sslmode=verify-ca&sslrootcert={}", file("other-ca.pem")), "UnknownIssuer").await;
        works("localhost", &format!("?sslmode=verify-full&sslrootcert={}", file("ca.pem"))).await;
        fails(
            "127.0.0.1",
            &format!("?sslmode=verify-full&sslrootcert={}", file("ca.pem")),
            "certificate not valid for name \"127.0.0.1\"",
        )
        .await;
        // The system's roots did not sign it.
        fails("localhost", "?sslmode=verify-full&sslrootcert=system", "UnknownIssuer").await;
        let e = open("localhost", "?sslmode=verify-full", true).await.err().unwrap();
        assert!(e.contains("set sslrootcert"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_certificate_logs_in_without_a_password() {
        let url = format!(
            "postgres://{CERT_USER}@localhost:{}/certdb?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            setup().server.port(),
            file("ca.pem"),
            file("client.pem"),
            file("client.key")
        );
        let store = store::open(&CatalogLocation::Postgres(PostgresCatalog::new(&url, None).unwrap())).await.unwrap();
        assert!(store.runs(&RunFilter::default()).await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_asking_for_a_password_polysync_was_not_given_says_so() {
        let e = open("127.0.0.1", "?sslmode=require", false).await.err().unwrap();
        assert!(e.contains("asks for a password and none is configured"), "{e}");
        assert!(e.contains("catalog_password_env"), "{e}");
    }
}
