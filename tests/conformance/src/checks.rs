//! The checks. Each takes the target and panics with a message that names
//! the rule it found broken.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use polysync_provider_api::abi::{EMIT_ITEM, Op};
use polysync_provider_api::{
    API_VERSION, CancelOutcome, CancelRequest, DiscoverRequest, ErrorKind, EventsRequest, LogRequest, PollRequest,
    Provider, ProviderError, RunHandle, RunState, RunStatus, UrlRequest, WatchRequest,
};
use serde_json::json;

use crate::raw::{assert_one_terminal_last, error_kind};
use crate::{Promise, Target};

/// Run one check on a fresh multi-threaded runtime.
pub fn run(name: &str, target: &Target, check: fn(&Cx<'_>)) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let provider = target.provider();
    eprintln!("conformance: {} / {name}", target.plugin);
    check(&Cx { target, provider: &provider, rt: &rt });
}

/// What a check works with.
#[allow(missing_debug_implementations)]
pub struct Cx<'a> {
    pub target: &'a Target,
    pub provider: &'a dyn Provider,
    rt: &'a tokio::runtime::Runtime,
}

impl Cx<'_> {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(async { tokio::time::timeout(self.target.timeout, f).await.expect("check timed out") })
    }

    fn start_quick(&self) -> RunHandle {
        let req = self.target.fresh(&self.target.quick_run);
        self.block_on(self.provider.run(req)).unwrap_or_else(|e| panic!("quick run failed: {e} ({:?})", e.kind()))
    }

    fn start_long(&self) -> RunHandle {
        let req = self.target.fresh(&self.target.long_run);
        self.block_on(self.provider.run(req)).unwrap_or_else(|e| panic!("long run failed: {e} ({:?})", e.kind()))
    }

    /// Watch `run_id` to its terminal status, checking it never moves back.
    fn follow_to_terminal(&self, run_id: &str) -> Vec<RunStatus> {
        self.block_on(async {
            let stream = self.provider.watch(WatchRequest { run_ids: vec![run_id.to_owned()] }).await.unwrap();
            let mut seen = Vec::new();
            futures::pin_mut!(stream);
            while let Some(status) = stream.next().await {
                let status = status.unwrap_or_else(|e| panic!("watch failed: {e}"));
                seen.push(status.clone());
                if status.state.is_terminal() {
                    break;
                }
            }
            seen
        })
    }

    fn cleanup(&self, run_id: &str) {
        let _ = self.block_on(self.provider.cancel(CancelRequest {
            run_id: run_id.to_owned(),
            reason: None,
            delete: true,
        }));
    }
}

fn expect_kind<T: std::fmt::Debug>(what: &str, result: Result<T, ProviderError>, kind: ErrorKind) {
    match result {
        Err(e) => {
            assert_eq!(e.kind(), kind, "{what}: expected {kind}, got {} ({e})", e.kind());
            assert!(!e.message().is_empty(), "{what}: the error has no message");
        }
        Ok(v) => panic!("{what}: expected {kind}, got Ok({v:?})"),
    }
}

pub fn manifest_is_valid(cx: &Cx<'_>) {
    let m = cx.provider.manifest();
    assert_eq!(m.name, cx.target.plugin);
    let api = semver::Version::parse(&m.api_version).expect("api_version is semver");
    let ours = semver::Version::parse(API_VERSION).unwrap();
    assert_eq!(api.major, ours.major, "api major");
    semver::Version::parse(&m.version).expect("version is semver");
    assert!(!m.description.is_empty(), "a manifest says what the provider is for");
}

pub fn paging_terminates_without_duplicates(cx: &Cx<'_>) {
    let mut seen = HashSet::new();
    let mut tokens = HashSet::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let req = DiscoverRequest { page_token: token.clone(), page_size: Some(cx.target.page_size) };
        let page = cx.block_on(cx.provider.discover(req)).unwrap_or_else(|e| panic!("discover: {e}"));
        pages += 1;
        assert!(page.entries.len() <= cx.target.page_size as usize, "a page is larger than asked for");
        if page.restarted {
            seen.clear();
        }
        for entry in page.entries {
            assert!(!entry.external_id.is_empty(), "an entry has no external id");
            assert!(seen.insert(entry.external_id.clone()), "entry {} came twice", entry.external_id);
            let names: HashSet<_> = entry.parameters.iter().map(|p| &p.name).collect();
            assert_eq!(names.len(), entry.parameters.len(), "entry {} repeats a parameter", entry.external_id);
        }
        match page.next_page_token {
            None => break,
            Some(t) => {
                assert!(tokens.insert(t.clone()), "page token {t:?} repeated: paging would not terminate");
                token = Some(t);
            }
        }
        assert!(pages < 100_000, "paging did not terminate");
    }
    if let Some(n) = cx.target.expected_entries {
        assert_eq!(seen.len(), n, "discover found {} entries, expected {n}", seen.len());
    }
    expect_kind(
        "a page token the provider never issued",
        cx.block_on(
            cx.provider.discover(DiscoverRequest { page_token: Some("\u{1}not-a-token".into()), page_size: None }),
        ),
        ErrorKind::InvalidInput,
    );
}

pub fn bad_parameters_are_invalid_input(cx: &Cx<'_>) {
    let mut req = cx.target.fresh(&cx.target.quick_run);
    req.parameters.insert("NOT A NAME=".into(), "x".into());
    expect_kind("a parameter name that is no env var name", cx.block_on(cx.provider.run(req)), ErrorKind::InvalidInput);
    let mut req = cx.target.fresh(&cx.target.quick_run);
    req.idempotency_key.clear();
    expect_kind("an empty idempotency key", cx.block_on(cx.provider.run(req)), ErrorKind::InvalidInput);
}

pub fn unknown_run_is_not_found(cx: &Cx<'_>) {
    let run_id = "polysync-conformance-no-such-run".to_owned();
    expect_kind(
        "poll of an unknown run",
        cx.block_on(cx.provider.poll(PollRequest { run_id: run_id.clone() })),
        ErrorKind::NotFound,
    );
    let logs = cx.block_on(cx.provider.logs(LogRequest { run_id: run_id.clone(), ..Default::default() }));
    expect_kind("logs of an unknown run", logs.map(|_| ()), ErrorKind::NotFound);
    let watch = cx.block_on(cx.provider.watch(WatchRequest { run_ids: vec![run_id] }));
    expect_kind("watch of an unknown run", watch.map(|_| ()), ErrorKind::NotFound);
}

pub fn run_moves_only_toward_terminal(cx: &Cx<'_>) {
    let handle = cx.start_quick();
    assert!(!handle.run_id.is_empty());
    assert!(!handle.adopted, "a fresh idempotency key adopted an existing run");
    let seen = cx.follow_to_terminal(&handle.run_id);
    let ranks: Vec<_> = seen.iter().map(|s| s.state.rank()).collect();
    assert!(ranks.iter().all(Option::is_some), "watch reported Unknown: {seen:?}");
    assert!(
        ranks.windows(2).all(|w| w[0] <= w[1]),
        "status moved backwards: {:?}",
        seen.iter().map(|s| s.state).collect::<Vec<_>>()
    );
    let last = seen.last().expect("watch reported nothing");
    assert_eq!(last.state, RunState::Success, "the quick run did not succeed: {last:?}");
    let polled = cx.block_on(cx.provider.poll(PollRequest { run_id: handle.run_id.clone() })).unwrap();
    assert_eq!(polled.state, RunState::Success, "poll disagrees with watch");
    cx.cleanup(&handle.run_id);
}

pub fn same_idempotency_key_gives_same_run(cx: &Cx<'_>) {
    let req = cx.target.fresh(&cx.target.quick_run);
    let first = cx.block_on(cx.provider.run(req.clone())).unwrap();
    let second = cx.block_on(cx.provider.run(req)).unwrap();
    assert_eq!(first.run_id, second.run_id, "the same key started two runs");
    assert!(second.adopted, "the repeated run was not marked adopted");
    cx.cleanup(&first.run_id);
}

pub fn cancel_is_idempotent(cx: &Cx<'_>) {
    let handle = cx.start_long();
    let cancel = || {
        cx.block_on(cx.provider.cancel(CancelRequest {
            run_id: handle.run_id.clone(),
            reason: Some("conformance".into()),
            delete: false,
        }))
    };
    // The long run cannot have ended by itself: the first cancel stops it,
    // the second finds nothing left to stop.
    let first = cancel().unwrap_or_else(|e| panic!("first cancel: {e}"));
    assert_eq!(first, CancelOutcome::Cancelled, "the first cancel of a running run");
    let second = cancel().unwrap_or_else(|e| panic!("second cancel: {e}"));
    assert!(matches!(second, CancelOutcome::Cancelled | CancelOutcome::AlreadyDone), "the second cancel: {second:?}");
    // Then the run is Cancelled, or gone where stopping means deleting (a
    // Kubernetes Job): never another terminal state, and never running.
    for _ in 0..2 {
        match cx.block_on(cx.provider.poll(PollRequest { run_id: handle.run_id.clone() })) {
            Ok(s) => assert_eq!(s.state, RunState::Cancelled, "a cancelled run must be Cancelled: {s:?}"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound, "poll after cancel: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    cx.block_on(
        cx.provider.cancel(CancelRequest { run_id: "polysync-conformance-never-existed".into(), ..Default::default() }),
    )
    .unwrap_or_else(|e| panic!("cancel of a run that is gone must succeed: {e}"));
}

pub fn monitor_url_answers(cx: &Cx<'_>) {
    let url = cx
        .block_on(cx.provider.monitor_url(UrlRequest::Entry { external_id: cx.target.quick_run.external_id.clone() }));
    let url = url.unwrap_or_else(|e| panic!("monitor_url: {e}"));
    match (&cx.target.monitor_url, url.url) {
        (Promise::Has(prefix), Some(u)) => {
            assert!(u.starts_with("https://"), "a monitor URL is an https URL: {u}");
            assert!(u.starts_with(prefix.as_str()), "the entry's monitor URL {u} does not start with {prefix}");
        }
        (Promise::Has(prefix), None) => panic!("no monitor URL; the target promises one starting with {prefix}"),
        (Promise::Nothing(_), None) => {}
        (Promise::Nothing(why), Some(u)) => panic!("a monitor URL {u}, where the target says there is none: {why}"),
        (Promise::Undeclared, _) => undeclared("monitor_url(prefix) or no_monitor_url(why)"),
    }
}

fn undeclared(what: &str) -> ! {
    panic!("the target does not say what to expect here: declare {what} on its Target")
}

pub fn streams_end_and_stop_when_dropped(cx: &Cx<'_>) {
    let handle = cx.start_quick();
    cx.follow_to_terminal(&handle.run_id);
    let run_id = handle.run_id.clone();
    let logs: Vec<_> = cx.block_on(async {
        cx.provider.logs(LogRequest { run_id: run_id.clone(), ..Default::default() }).await.unwrap().collect().await
    });
    assert!(logs.iter().all(Result::is_ok), "logs of a finished run failed: {logs:?}");
    let text: String = logs.into_iter().flatten().map(|chunk| chunk.text).collect();
    match &cx.target.quick_logs {
        Promise::Has(line) => assert!(text.contains(line.as_str()), "the quick run's logs lack {line:?}: {text:?}"),
        Promise::Nothing(why) => assert!(text.is_empty(), "logs {text:?}, where the target says none: {why}"),
        Promise::Undeclared => undeclared("quick_logs(text) or no_quick_logs(why)"),
    }
    let events: Vec<_> = cx.block_on(async {
        cx.provider.events(EventsRequest { run_id: run_id.clone(), follow: false }).await.unwrap().collect().await
    });
    assert!(events.iter().all(Result::is_ok), "events of a finished run failed: {events:?}");
    let events: Vec<_> = events.into_iter().flatten().collect();
    match &cx.target.quick_events {
        Promise::Has(text) => {
            assert!(
                events.iter().any(|e| e.phase.contains(text.as_str())
                    || e.reason.as_deref().is_some_and(|r| r.contains(text.as_str()))),
                "no event of the quick run has {text:?} in its phase or reason: {events:?}"
            )
        }
        Promise::Nothing(why) => assert!(events.is_empty(), "events {events:?}, where the target says none: {why}"),
        Promise::Undeclared => undeclared("quick_events(text)"),
    }
    cx.cleanup(&handle.run_id);

    // A follow stream on a long run is dropped after its first item; the
    // provider must go on answering (no leaked lock, no stuck runtime).
    let long = cx.start_long();
    cx.block_on(async {
        let stream = cx.provider.watch(WatchRequest { run_ids: vec![long.run_id.clone()] }).await.unwrap();
        futures::pin_mut!(stream);
        stream.next().await.expect("watch gives the current status first").unwrap();
    });
    for _ in 0..20 {
        cx.block_on(cx.provider.poll(PollRequest { run_id: long.run_id.clone() })).unwrap();
    }
    // And through the bare ABI: the dropped call's terminal is Cancelled and
    // nothing follows it.
    let raw = cx.target.raw();
    let id = raw.start(Op::Watch as u32, &json!({"run_ids": [long.run_id]}));
    let first = raw.wait_first(id, cx.target.timeout);
    assert_eq!(first.code, EMIT_ITEM, "watch of a live run starts with its status: {first:?}");
    raw.abort(id);
    std::thread::sleep(Duration::from_millis(300));
    let all = raw.emissions(id);
    assert_one_terminal_last(id, &all);
    assert_eq!(error_kind(all.last().unwrap()), Some(ErrorKind::Cancelled));
    cx.cleanup(&long.run_id);
}

pub fn aborted_calls_end_cancelled(cx: &Cx<'_>) {
    let raw = cx.target.raw();
    let long = cx.target.fresh(&cx.target.long_run);
    let run = raw.call(Op::Run as u32, &serde_json::to_value(&long).unwrap(), cx.target.timeout).expect("run");
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    // Abort right after start, and after the first item of a follow stream.
    for follow_first in [false, true] {
        let id = raw.start(Op::Logs as u32, &json!({"run_id": run_id, "follow": true}));
        if follow_first {
            let id2 = raw.start(Op::Watch as u32, &json!({"run_ids": [run_id]}));
            raw.wait_first(id2, cx.target.timeout);
            raw.abort(id2);
            let t = raw.wait_terminal(id2, cx.target.timeout);
            assert_eq!(error_kind(&t), Some(ErrorKind::Cancelled), "aborted watch ended {t:?}");
        }
        raw.abort(id);
        let t = raw.wait_terminal(id, cx.target.timeout);
        assert_eq!(error_kind(&t), Some(ErrorKind::Cancelled), "aborted logs ended {t:?}");
        std::thread::sleep(Duration::from_millis(100));
        assert_one_terminal_last(id, &raw.emissions(id));
    }
    // Aborting a finished or unknown call changes nothing.
    let id = raw.start(Op::MonitorUrl as u32, &json!({"target": "run", "run_id": run_id}));
    raw.wait_terminal(id, cx.target.timeout);
    raw.abort(id);
    raw.abort(987_654_321);
    assert_one_terminal_last(id, &raw.emissions(id));
    let _ = raw.call(Op::Cancel as u32, &json!({"run_id": run_id}), cx.target.timeout);
}

pub fn every_call_gets_exactly_one_terminal(cx: &Cx<'_>) {
    let raw = cx.target.raw();
    let quick = serde_json::to_value(cx.target.fresh(&cx.target.quick_run)).unwrap();
    let mut bad = cx.target.fresh(&cx.target.quick_run);
    bad.parameters.insert("NOT A NAME=".into(), "x".into());
    let calls = vec![
        (Op::Discover as u32, json!({"page_size": 3})),
        (Op::Discover as u32, json!({"page_token": "\u{1}not-a-token"})),
        (Op::Run as u32, quick),
        (Op::Run as u32, serde_json::to_value(bad).unwrap()),
        (Op::Run as u32, json!({"not": "a run request"})),
        (Op::Poll as u32, json!({"run_id": "polysync-conformance-no-such-run"})),
        (Op::Cancel as u32, json!({"run_id": "polysync-conformance-no-such-run"})),
        (Op::MonitorUrl as u32, json!({"target": "entry", "external_id": cx.target.quick_run.external_id})),
        (Op::Logs as u32, json!({"run_id": "polysync-conformance-no-such-run"})),
        (Op::Events as u32, json!({"run_id": "polysync-conformance-no-such-run"})),
        (Op::Watch as u32, json!({"run_ids": []})),
        (999, json!({})),
    ];
    let ids: Vec<_> = calls.iter().map(|(op, req)| (raw.start(*op, req), *op)).collect();
    for (id, _) in &ids {
        raw.wait_terminal(*id, cx.target.timeout);
    }
    std::thread::sleep(Duration::from_millis(200));
    for (id, op) in &ids {
        let all = raw.emissions(*id);
        assert_one_terminal_last(*id, &all);
        if *op == Op::Run as u32
            && let Ok(v) =
                raw.call(Op::Poll as u32, &json!({"run_id": all.last().unwrap().json()["run_id"]}), cx.target.timeout)
        {
            let _ = raw.call(Op::Cancel as u32, &json!({"run_id": v["run_id"]}), cx.target.timeout);
        }
    }
}

pub fn unknown_operation_is_unsupported(cx: &Cx<'_>) {
    let raw = cx.target.raw();
    let err = raw.call(4242, &json!({}), cx.target.timeout).expect_err("op 4242 does not exist");
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    let err = raw.call(Op::Poll as u32, &json!([1, 2]), cx.target.timeout).expect_err("a malformed request");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

pub fn panic_comes_back_as_internal(cx: &Cx<'_>) {
    let template = cx
        .target
        .panic_run
        .as_ref()
        .expect("conformance_suite!(.., panics) needs a target with .panic_run(..): a run the plugin panics on");
    for _ in 0..3 {
        let err = cx.block_on(cx.provider.run(cx.target.fresh(template))).expect_err("the provider panics");
        assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
        assert!(err.message().contains("panicked"), "the message says it panicked: {err}");
    }
    // The host and the plugin keep working.
    cx.block_on(cx.provider.discover(DiscoverRequest::default())).expect("discover after a panic");
    let handle = cx.start_quick();
    cx.cleanup(&handle.run_id);
}

pub fn two_hundred_concurrent_calls(cx: &Cx<'_>) {
    let handle = cx.start_quick();
    let results = cx.block_on(async {
        let calls = (0..200).map(|i| {
            let run_id = handle.run_id.clone();
            async move {
                match i % 3 {
                    0 => {
                        cx.provider.discover(DiscoverRequest { page_token: None, page_size: Some(5) }).await.map(|_| ())
                    }
                    1 => cx.provider.poll(PollRequest { run_id }).await.map(|_| ()),
                    _ => cx.provider.monitor_url(UrlRequest::Run { run_id }).await.map(|_| ()),
                }
            }
        });
        futures::future::join_all(calls).await
    });
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} of 200 concurrent calls failed, first: {}", failed.len(), failed[0]);
    cx.cleanup(&handle.run_id);
}

/// A provider that declares `ListClusters` pages through at least one
/// cluster without duplicates; one that does not answers `Unsupported`.
pub fn list_clusters_matches_the_manifest(cx: &Cx<'_>) {
    let declared = cx.provider.manifest().capabilities.contains(&polysync_provider_api::Capability::ListClusters);
    let mut request = polysync_provider_api::ClustersRequest { page_token: None, page_size: Some(2) };
    if !declared {
        let err = cx.block_on(cx.provider.list_clusters(request)).expect_err("no ListClusters capability");
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        return;
    }
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let page = cx.block_on(cx.provider.list_clusters(request.clone())).expect("list_clusters");
        for c in page.clusters {
            assert!(!c.name.is_empty(), "a cluster has a name");
            assert!(seen.insert(c.name.clone()), "cluster {} listed twice", c.name);
        }
        match page.next_page_token {
            Some(token) => request.page_token = Some(token),
            None => break,
        }
    }
    assert!(!seen.is_empty(), "the target's credentials reach at least its own cluster");
}

/// An API 1.2 host keeps working with this plugin: its discover pages and
/// run statuses parse as 1.2 payloads, with the same ids, parameters and
/// states (1.3's outputs and `InputOutput` are what it does not know).
pub fn payloads_parse_as_api_1_2(cx: &Cx<'_>) {
    use crate::compat::v1_2;
    let req = DiscoverRequest { page_token: None, page_size: Some(cx.target.page_size) };
    let page = cx.block_on(cx.provider.discover(req)).unwrap_or_else(|e| panic!("discover: {e}"));
    let old: v1_2::DiscoverPage = serde_json::from_value(serde_json::to_value(&page).unwrap())
        .unwrap_or_else(|e| panic!("a discover page does not parse as API 1.2: {e}"));
    assert_eq!(old.entries.len(), page.entries.len());
    assert_eq!(old.next_page_token, page.next_page_token);
    for (new, old) in page.entries.iter().zip(&old.entries) {
        assert_eq!(new.external_id, old.external_id);
        let names: Vec<_> = new.parameters.iter().map(|p| &p.name).collect();
        assert_eq!(names, old.parameters.iter().map(|p| &p.name).collect::<Vec<_>>());
    }
    let run = cx.start_quick();
    let last = cx.follow_to_terminal(&run.run_id).pop().expect("a terminal status");
    let old: v1_2::RunStatus = serde_json::from_value(serde_json::to_value(&last).unwrap())
        .unwrap_or_else(|e| panic!("a run status does not parse as API 1.2: {e}"));
    assert_eq!(old.run_id, last.run_id);
    assert_eq!(old.state.as_str(), last.state.as_str());
}
