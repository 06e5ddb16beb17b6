//! The ecs provider's own behaviour: overrides reach the task, every way a
//! task ends maps to the right status, cancel, CloudWatch logs, events,
//! the 8 KiB limit before any call, and paging that follows every token.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt;
use polysync::plugins::Registry;
use polysync_conformance::artifacts;
use polysync_provider_api::abi::host::PluginProvider;
use polysync_provider_api::{
    CancelRequest, DiscoverRequest, ErrorKind, EventsRequest, LogRequest, PollRequest, Provider, RunRequest, RunState,
    RunStatus, WatchRequest,
};
use polysync_tests::ecs::EcsWorld;
use polysync_tests::ecs_stub::EcsStub;
use polysync_tests::moto::with_aws;
use serde_json::json;

fn world() -> &'static EcsWorld {
    static WORLD: OnceLock<EcsWorld> = OnceLock::new();
    WORLD.get_or_init(|| EcsWorld::start("e2e", 2))
}

fn connect(settings: &serde_json::Value) -> PluginProvider {
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-provider-ecs"));
    registry.connect("ecs", settings).unwrap_or_else(|e| panic!("{e}"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

fn request(family: &str, key: &str, params: &[(&str, &str)]) -> RunRequest {
    RunRequest {
        external_id: family.into(),
        parameters: params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        idempotency_key: key.into(),
        fallback: None,
    }
}

async fn until_end(p: &PluginProvider, run_id: &str) -> Vec<RunStatus> {
    let stream = p.watch(WatchRequest { run_ids: vec![run_id.into()] }).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), stream.map(|s| s.unwrap()).collect()).await.expect("the run ends")
}

#[test]
fn the_overlay_reaches_the_task_and_a_clean_exit_is_success() {
    let w = world();
    let p = connect(&w.settings());
    let rt = rt();
    let run = rt.block_on(p.run(request("quick", "overlay-1", &[("GREETING", "bonjour"), ("EXTRA", "1")]))).unwrap();
    assert!(run.run_id.starts_with("arn:aws:ecs:eu-west-1:"), "{run:?}");
    w.moto.python(&format!(
        r#"
import boto3
t = boto3.client("ecs", endpoint_url={url:?}, region_name="eu-west-1").describe_tasks(cluster="e2e", tasks=[{arn:?}], include=["TAGS"])["tasks"][0]
env = {{kv["name"]: kv["value"] for kv in t["overrides"]["containerOverrides"][0]["environment"]}}
assert t["overrides"]["containerOverrides"][0]["name"] == "main", t
assert env == {{"GREETING": "bonjour", "EXTRA": "1"}}, env
assert t["startedBy"].startswith("polysync-"), t["startedBy"]
tags = {{x["key"]: x["value"] for x in t.get("tags", [])}}
assert tags.get("polysync:source") == "quick", tags
"#,
        url = w.moto.url,
        arn = run.run_id
    ));
    let states = rt.block_on(until_end(&p, &run.run_id));
    let last = states.last().unwrap();
    assert_eq!(last.state, RunState::Success, "{states:?}");
    assert!(states.iter().any(|s| s.state == RunState::Running), "seen running first: {states:?}");
}

#[test]
fn an_essential_container_exiting_3_fails_the_run_with_the_code() {
    let w = world();
    let p = connect(&w.settings());
    let rt = rt();
    let run = rt.block_on(p.run(request("quick", "exit-3", &[("EXIT_CODE", "3")]))).unwrap();
    let last = rt.block_on(until_end(&p, &run.run_id)).pop().unwrap();
    assert_eq!(last.state, RunState::Failed, "{last:?}");
    assert_eq!(last.reason.as_deref(), Some("EssentialContainerExited"));
    assert!(last.message.as_deref().unwrap_or_default().contains("container main: exit code 3"), "{last:?}");
}

#[test]
fn cancel_stops_the_task_and_it_ends_cancelled() {
    let w = world();
    let p = connect(&w.settings());
    let rt = rt();
    let run = rt.block_on(p.run(request("long", "cancel-1", &[("SLEEP_SECONDS", "3600")]))).unwrap();
    let status = rt.block_on(p.poll(PollRequest { run_id: run.run_id.clone() })).unwrap();
    assert_eq!(status.state, RunState::Running);
    let outcome = rt
        .block_on(p.cancel(CancelRequest {
            run_id: run.run_id.clone(),
            reason: Some("operator".into()),
            delete: false,
        }))
        .unwrap();
    assert_eq!(outcome, polysync_provider_api::CancelOutcome::Cancelled);
    let last = rt.block_on(until_end(&p, &run.run_id)).pop().unwrap();
    assert_eq!(last.state, RunState::Cancelled, "{last:?}");
    assert_eq!(last.reason.as_deref(), Some("UserInitiated"));
    assert!(last.message.unwrap_or_default().contains("operator"));
    let again = rt.block_on(p.cancel(CancelRequest { run_id: run.run_id, reason: None, delete: false })).unwrap();
    assert_eq!(again, polysync_provider_api::CancelOutcome::AlreadyDone);
}

#[test]
fn logs_come_from_the_tasks_cloudwatch_stream_and_say_when_there_is_none() {
    let w = world();
    let p = connect(&w.settings());
    let rt = rt();
    let run = rt.block_on(p.run(request("quick", "logs-1", &[]))).unwrap();
    w.write_log(&run.run_id, &["first line", "second line"]);
    let chunks: Vec<_> = rt.block_on(async {
        p.logs(LogRequest { run_id: run.run_id.clone(), ..Default::default() }).await.unwrap().collect().await
    });
    let text: String = chunks.iter().map(|c| c.as_ref().unwrap().text.clone()).collect();
    assert_eq!(text, "first line\nsecond line\n");
    assert_eq!(chunks[0].as_ref().unwrap().container, "main");
    let tail: Vec<_> = rt.block_on(async {
        p.logs(LogRequest { run_id: run.run_id.clone(), tail_lines: Some(1), ..Default::default() })
            .await
            .unwrap()
            .collect()
            .await
    });
    assert_eq!(tail.into_iter().map(|c| c.unwrap().text).collect::<String>(), "second line\n");
    // Followed logs end once the task has stopped.
    let followed: Vec<_> = rt.block_on(async {
        let s = p.logs(LogRequest { run_id: run.run_id.clone(), follow: true, ..Default::default() }).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), s.collect::<Vec<_>>()).await.expect("follow ends with the task")
    });
    assert!(followed.iter().all(|c| c.is_ok()));

    let plain = rt.block_on(p.run(request("plain", "logs-2", &[]))).unwrap();
    let err = rt.block_on(p.logs(LogRequest { run_id: plain.run_id, ..Default::default() })).err().expect("no awslogs");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.message().contains("awslogs"), "{err}");
}

#[test]
fn events_follow_the_task_to_stopped() {
    let w = world();
    let p = connect(&w.settings());
    let rt = rt();
    let run = rt.block_on(p.run(request("quick", "events-1", &[]))).unwrap();
    let events: Vec<_> = rt.block_on(async {
        let s = p.events(EventsRequest { run_id: run.run_id.clone(), follow: true }).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), s.map(|e| e.unwrap()).collect::<Vec<_>>()).await.unwrap()
    });
    // Each observed state once, in order, ending with STOPPED.
    assert!(events.len() >= 2, "{events:?}");
    assert!(!events.first().unwrap().phase.starts_with("STOPPED"), "{events:?}");
    let last = events.last().unwrap();
    assert!(last.phase.starts_with("STOPPED"), "{events:?}");
    assert_eq!(last.reason.as_deref(), Some("EssentialContainerExited"));
    let phases: std::collections::HashSet<_> = events.iter().map(|e| e.phase.clone()).collect();
    assert_eq!(phases.len(), events.len(), "no state repeated: {events:?}");
}

#[test]
fn overrides_over_ecs_limit_are_refused_before_any_task_starts() {
    let w = world();
    let p = connect(&w.settings());
    let big = "x".repeat(9000);
    let err = rt().block_on(p.run(request("quick", "too-big", &[("BLOB", &big)]))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("ECS allows 8192"), "{err}");
}

#[test]
fn discovery_follows_every_next_token_of_a_paging_api() {
    let stub = EcsStub::start(7, 3);
    let p = connect(&with_aws(json!({"cluster": "stub"}), &stub.url));
    let rt = rt();
    let mut ids = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = rt.block_on(p.discover(DiscoverRequest { page_token: token, page_size: Some(3) })).unwrap();
        pages += 1;
        ids.extend(page.entries.iter().map(|e| e.external_id.clone()));
        assert_eq!(page.entries.first().map(|e| e.parameters[0].name.as_str()), Some("FAMILY"));
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids, (0..7).map(|i| format!("fam-{i:02}")).collect::<Vec<_>>());
    assert_eq!(stub.calls("ListTaskDefinitionFamilies"), 3);
}

/// The `polysync` binary with a config whose connection `batch` is the
/// moto world's cluster and a catalog in `dir`; runs `--output json ARGS`,
/// asserts success and returns the last JSON document it printed (`run
/// --wait` prints its progress first).
fn cli(w: &EcsWorld, dir: &std::path::Path) -> impl Fn(&[&str]) -> serde_json::Value {
    let connection = format!(
        "provider = \"ecs\"\ncluster = \"e2e\"\nlaunch_type = \"FARGATE\"\npoll_interval_ms = 100\n{}",
        polysync_tests::moto::aws_toml(&w.moto.url)
    );
    let config = polysync_tests::write_config(dir, "polysync-provider-ecs", None, "", "batch", &connection);
    move |args: &[&str]| {
        let out = polysync_tests::polysync_command(&config).args(["--output", "json"]).args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "polysync {args:?}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        serde_json::Deserializer::from_str(&stdout)
            .into_iter::<serde_json::Value>()
            .filter_map(Result::ok)
            .last()
            .unwrap_or_else(|| panic!("no JSON from polysync {args:?}: {stdout}"))
    }
}

/// The host end to end on ECS: discover into the catalog, a parameterized
/// run followed to its end, its console URL and its history.
#[test]
fn the_cli_discovers_runs_and_follows_an_ecs_task() {
    let dir = tempfile::tempdir().unwrap();
    let polysync = cli(world(), dir.path());
    let report = polysync(&["discover", "batch"]);
    assert_eq!(report["added"], 7, "{report}");
    let entry = polysync(&["catalog", "batch", "--entry", "quick"]);
    assert!(entry.to_string().contains("GREETING"), "{entry}");
    let run = polysync(&["run", "batch", "quick", "-p", "GREETING=from-cli", "--wait", "--timeout", "60s"]);
    assert!(run.to_string().contains("Success"), "{run}");
    let runs = polysync(&["runs", "--connection", "batch"]);
    assert!(runs.to_string().contains("arn:aws:ecs:eu-west-1"), "{runs}");
}

/// Outputs of ECS runs come from `::polysync-output` lines in container[0]'s
/// CloudWatch Logs stream (moto's), declared by a docker label or a tag,
/// through the binary: discovery shows the directions, `status` reads the
/// outputs once the task stopped.
#[test]
fn outputs_come_from_log_markers_in_cloudwatch_through_the_binary() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let polysync = cli(w, dir.path());
    polysync(&["discover", "batch"]);
    let directions = |entry: &str| -> Vec<(String, String)> {
        polysync(&["catalog", "batch", "--entry", entry])["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p["direction"].as_str().unwrap().to_owned()))
            .collect()
    };
    assert_eq!(
        directions("reporter"),
        [("GREETING".into(), "Input".into()), ("ROWS".into(), "Output".into()), ("REPORT_URL".into(), "Output".into())]
    );
    assert_eq!(directions("counter"), [("COUNT".into(), "InputOutput".into())]);

    let finish = |entry: &str, params: &[&str], lines: &[&str]| -> serde_json::Value {
        let mut args = vec!["run", "batch", entry];
        for p in params {
            args.extend(["-p", p]);
        }
        let run = polysync(&args);
        let arn = run["run_id"].as_str().unwrap().to_owned();
        w.write_log(&arn, lines);
        let id = run["id"].as_i64().unwrap().to_string();
        for _ in 0..40 {
            let now = polysync(&["status", &id]);
            if now["finished_at"].is_string() {
                return now;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("run {id} of {entry} did not finish");
    };
    let run =
        finish("reporter", &[], &["working", "::polysync-output ROWS=42", "::polysync-output EXTRA=kept", "done"]);
    assert_eq!(run["state"], "Success", "{run}");
    assert_eq!(run["outputs"], serde_json::json!({"ROWS": "42", "EXTRA": "kept"}), "{run}");
    assert!(
        run["output_error"].as_str().unwrap().contains("REPORT_URL"),
        "a declared output never written is named: {run}"
    );

    let run = finish("counter", &["COUNT=5"], &["::polysync-output COUNT=6"]);
    assert_eq!(run["outputs"], serde_json::json!({"COUNT": "6"}), "{run}");
    assert!(run.get("output_error").is_none(), "{run}");
    let logs = polysync(&["logs", &run["id"].as_i64().unwrap().to_string()]);
    assert!(logs.to_string().contains("::polysync-output COUNT=6"), "markers stay in the log: {logs}");
}

/// Statuses of one run to its end, checking they never move backwards.
async fn forward_to_end(p: &PluginProvider, run_id: &str) -> Vec<RunStatus> {
    let states = until_end(p, run_id).await;
    let ranks: Vec<u8> = states.iter().filter_map(|s| s.state.rank()).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "a status moved backwards: {states:?}");
    states
}

/// A Fargate Spot interruption (the project's stub: moto has no Spot) fails
/// the run with its reason; with `retry_on_interruption` the task starts
/// again as further attempts of the same run, which any other process
/// finds, and the last attempt decides.
#[test]
fn spot_interruptions_fail_the_run_or_start_it_again_as_attempts() {
    let stub = EcsStub::start(1, 1);
    let settings = |retries: u32| {
        with_aws(
            json!({"cluster": "stub", "poll_interval_ms": 100, "launch_type": "FARGATE", "retry_on_interruption": retries}),
            &stub.url,
        )
    };
    let rt = rt();
    // Without retries: Failed, SpotInterruption, although the container exited 0.
    let p = connect(&settings(0));
    let run = rt.block_on(p.run(request("spot-1", "spot-a", &[("DATE", "2026-11-30")]))).unwrap();
    let last = rt.block_on(forward_to_end(&p, &run.run_id)).pop().unwrap();
    assert_eq!((last.state, last.reason.as_deref()), (RunState::Failed, Some("SpotInterruption")), "{last:?}");
    assert!(last.message.unwrap().contains("retry_on_interruption"));
    assert_eq!(stub.calls("RunTask"), 1);

    // Two interruptions, two retries allowed: the third attempt succeeds.
    stub.reset();
    let p = connect(&settings(2));
    let run = rt.block_on(p.run(request("spot-2", "spot-b", &[("DATE", "2026-11-30")]))).unwrap();
    let states = rt.block_on(forward_to_end(&p, &run.run_id));
    let last = states.last().unwrap();
    assert_eq!(last.state, RunState::Success, "{states:?}");
    assert_eq!(last.run_id, run.run_id, "the run keeps its id");
    assert!(last.message.as_deref().unwrap().starts_with("attempt 3 of 3"), "{last:?}");
    assert_eq!(last.units.len(), 3, "every attempt is a unit: {last:?}");
    assert!(
        states.iter().any(|s| s.message.as_deref().is_some_and(|m| m.starts_with("attempt 2 of 3 started as task"))),
        "{states:?}"
    );
    assert_eq!(stub.calls("RunTask"), 3, "one task per attempt");
    // Another process (a replica, a restarted host) finds the same attempts
    // and reports the same end, starting nothing.
    let other = connect(&settings(2));
    let polled = rt.block_on(other.poll(PollRequest { run_id: run.run_id.clone() })).unwrap();
    assert_eq!((polled.state, polled.units.len()), (RunState::Success, 3), "{polled:?}");
    assert_eq!(stub.calls("RunTask"), 3);
    // Its logs and events are every attempt's, not only the first task's.
    let chunks = rt.block_on(async {
        let stream =
            other.logs(LogRequest { run_id: run.run_id.clone(), follow: false, ..Default::default() }).await.unwrap();
        stream.map(|c| c.unwrap()).collect::<Vec<_>>().await
    });
    let lines: Vec<&str> = chunks.iter().map(|c| c.text.trim_end()).collect();
    assert_eq!(lines, ["attempt 1 of spot-2", "attempt 2 of spot-2", "attempt 3 of spot-2"], "{chunks:?}");
    let units: std::collections::HashSet<&str> = chunks.iter().map(|c| c.unit.as_str()).collect();
    assert_eq!(units.len(), 3, "each attempt is its own unit: {chunks:?}");
    assert_eq!(chunks.last().unwrap().unit, last.units.last().unwrap().name, "{chunks:?} {last:?}");
    let event = rt.block_on(async {
        let mut stream = other.events(EventsRequest { run_id: run.run_id.clone(), follow: false }).await.unwrap();
        stream.next().await.unwrap().unwrap()
    });
    assert_eq!(event.unit, chunks[2].unit, "events are the current attempt's: {event:?}");
    assert_eq!(stub.calls("RunTask"), 3, "reading logs and events starts nothing");

    // Out of retries: the last interruption stands.
    let run = rt.block_on(p.run(request("spot-5", "spot-c", &[]))).unwrap();
    let last = rt.block_on(forward_to_end(&p, &run.run_id)).pop().unwrap();
    assert_eq!((last.state, last.reason.as_deref()), (RunState::Failed, Some("SpotInterruption")), "{last:?}");
    assert!(last.message.as_deref().unwrap().starts_with("attempt 3 of 3"), "{last:?}");
}

/// Each way ECS cannot place a task comes back with its reason and what to
/// do; throttled RunTasks are retried to one task; a task that cannot
/// start for capacity fails with advice.
#[test]
fn capacity_failures_say_what_to_do_and_throttling_is_retried() {
    let stub = EcsStub::start(1, 1);
    let p = connect(&with_aws(json!({"cluster": "stub", "poll_interval_ms": 100}), &stub.url));
    let rt = rt();
    for (family, kind, says) in [
        ("fail-RESOURCE_MEMORY", ErrorKind::Unavailable, "enough free memory"),
        ("fail-RESOURCE_CPU", ErrorKind::Unavailable, "enough free cpu"),
        ("fail-AGENT", ErrorKind::Unavailable, "agent"),
        ("fail-ATTRIBUTE", ErrorKind::InvalidInput, "placement constraints"),
    ] {
        let err = rt.block_on(p.run(request(family, family, &[]))).unwrap_err();
        assert_eq!(err.kind(), kind, "{family}: {err}");
        assert!(err.message().contains(says), "{family}: {err}");
    }
    let run = rt.block_on(p.run(request("throttled", "throttled", &[]))).unwrap();
    assert_eq!(stub.calls("RunTask"), 4 + 3, "two throttled answers, then the task");
    assert_eq!(rt.block_on(forward_to_end(&p, &run.run_id)).pop().unwrap().state, RunState::Success);

    let run = rt.block_on(p.run(request("nocapacity", "nocapacity", &[]))).unwrap();
    let last = rt.block_on(forward_to_end(&p, &run.run_id)).pop().unwrap();
    assert_eq!((last.state, last.reason.as_deref()), (RunState::Failed, Some("TaskFailedToStart")));
    assert!(last.message.unwrap().contains("had no capacity for it"));
}

/// A task placed through a capacity provider that starts without the
/// overrides polysync sent is stopped and the run fails as OverridesLost,
/// also when read again after the stop.
#[test]
fn a_task_that_lost_its_overrides_is_stopped_and_fails() {
    let stub = EcsStub::start(1, 1);
    let p = connect(&with_aws(
        json!({"cluster": "stub", "poll_interval_ms": 100,
                   "capacity_provider_strategy": [{"capacity_provider": "spot-pool", "weight": 1}]}),
        &stub.url,
    ));
    let rt = rt();
    let run = rt.block_on(p.run(request("lost", "lost-1", &[("DATE", "2026-11-30")]))).unwrap();
    let states = rt.block_on(forward_to_end(&p, &run.run_id));
    let last = states.last().unwrap();
    assert_eq!((last.state, last.reason.as_deref()), (RunState::Failed, Some("OverridesLost")), "{states:?}");
    assert!(last.message.as_deref().unwrap().contains("without the container overrides"), "{last:?}");
    assert!(states.iter().any(|s| s.state == RunState::Starting), "seen provisioning first: {states:?}");
    assert_eq!(stub.calls("StopTask"), 1, "the task was stopped");
    let again = rt.block_on(p.poll(PollRequest { run_id: run.run_id.clone() })).unwrap();
    assert_eq!((again.state, again.reason.as_deref()), (RunState::Failed, Some("OverridesLost")), "{again:?}");
}
