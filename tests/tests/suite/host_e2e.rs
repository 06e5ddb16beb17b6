//! The `polysync` binary end to end against the sandbox: config errors,
//! idempotent syncs, missing entries that still run, interrupted syncs,
//! parameters, exit codes, crash recovery, JSON output, and secrets kept
//! out of the catalog and the logs.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use polysync_conformance::artifacts;
use polysync_sandbox::resources::Kind;
use polysync_sandbox::store::Key;
use polysync_sandbox::{FaultSettings, SeedConfig, seed};
use polysync_tests::{COMMAND_LIMIT, OutputWithin, SandboxCluster};
use serde_json::{Value, json};

/// A sandbox, config and catalog of one test: tests inject faults, so none
/// shares a cluster with another.
struct Env {
    cluster: SandboxCluster,
    dir: tempfile::TempDir,
    config: PathBuf,
    ns: String,
}

fn plugin_dir() -> PathBuf {
    artifacts::cdylib("polysync-provider-kubernetes").parent().unwrap().to_path_buf()
}

impl Env {
    fn new(ns: &str) -> Self {
        let cluster = SandboxCluster::start(SeedConfig { namespace: ns.into(), ..SeedConfig::default() }, 0.02);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "plugin_dir = {:?}\ncatalog = {:?}\n\n[connections.sandbox]\nprovider = \"kubernetes\"\nkubeconfig = {:?}\nnamespace = \"{ns}\"\n",
                plugin_dir().display().to_string(),
                dir.path().join("catalog.db").display().to_string(),
                cluster.kubeconfig.display().to_string()
            ),
        )
        .unwrap();
        Self { cluster, dir, config, ns: ns.to_owned() }
    }

    fn source(&self, name: &str, script: &str) {
        let mut job = seed::finished_job(&self.ns, name, 1);
        job["spec"]["template"]["spec"]["containers"][0]["args"] = json!([script]);
        job["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "GREETING", "value": "hello"}, {"name": "TARGET", "value": "world"}]);
        self.cluster.sandbox.store().create(Kind::Job, job).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(artifacts::executable("polysync", "polysync"));
        cmd.arg("--config").arg(&self.config).args(args).env_remove("POLYSYNC_CONFIG").env("NO_COLOR", "1");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output_within(COMMAND_LIMIT)
    }

    /// Run with another config file than the test's own.
    fn run_with_config(&self, config: &std::path::Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(artifacts::executable("polysync", "polysync"));
        cmd.arg("--config").arg(config).args(args).env_remove("POLYSYNC_CONFIG").env("NO_COLOR", "1");
        cmd.output_within(COMMAND_LIMIT)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "polysync {args:?} exited {:?}:\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap_or_else(|e| panic!("polysync {args:?} -o json is not JSON: {e}"))
    }

    fn jobs_of_source(&self, source: &str) -> usize {
        let ns = self.ns.clone();
        let source = source.to_owned();
        self.cluster
            .sandbox
            .store()
            .list(
                Kind::Job,
                Some(&ns),
                None,
                None,
                Some(&|j: &Value| j["metadata"]["labels"]["polysync.io/source"] == source.as_str()),
                &[],
            )
            .items
            .len()
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn config_errors_name_the_field_and_exit_20() {
    let env = Env::new("host-config");
    std::fs::write(&env.config, "catalg = \"x.db\"\n").unwrap();
    let out = env.run(&["runs"]);
    assert_eq!(code(&out), 20);
    assert!(stderr(&out).contains("catalg"), "{}", stderr(&out));

    std::fs::write(&env.config, "[connections.sandbox]\nnamespace = \"x\"\n").unwrap();
    let out = env.run(&["discover", "sandbox"]);
    assert_eq!(code(&out), 20);
    assert!(stderr(&out).contains("connections.sandbox.provider"), "{}", stderr(&out));

    std::fs::write(
        &env.config,
        format!("plugin_dir = {:?}\n[connections.sandbox]\nprovider = \"kubernetes\"\nkubeconfig = \"/nonexistent/kubeconfig\"\n", plugin_dir().display().to_string()),
    )
    .unwrap();
    let out = env.run(&["discover", "sandbox"]);
    assert_eq!(code(&out), 20);
    assert!(stderr(&out).contains("`kubeconfig`"), "{}", stderr(&out));

    std::fs::write(
        &env.config,
        format!(
            "plugin_dir = {:?}\n[connections.sandbox]\nprovider = \"kubernetes\"\nnamspace = \"x\"\n",
            plugin_dir().display().to_string()
        ),
    )
    .unwrap();
    let out = env.run(&["discover", "sandbox"]);
    assert_eq!(code(&out), 20);
    assert!(stderr(&out).contains("namspace"), "{}", stderr(&out));

    let out = env.run(&["discover", "nope"]);
    assert_eq!(code(&out), 20);

    // Command-line mistakes are invalid input too, never 2 (authentication).
    for args in [
        vec!["run", "sandbox", "x", "-p", "no-equals-sign"],
        vec!["--no-such-flag"],
        vec!["run", "sandbox", "x", "--timeout", "soon"],
    ] {
        let out = env.run(&args);
        assert_eq!(code(&out), 20, "{args:?}: {}", stderr(&out));
    }
    assert_eq!(code(&env.run(&["--help"])), 0);
    assert!(stderr(&out).contains("sandbox"), "lists the configured connections: {}", stderr(&out));
}

#[test]
fn syncs_are_idempotent_and_missing_entries_still_run() {
    let env = Env::new("host-sync");
    env.source("alpha", "echo alpha $GREETING");
    env.source("beta", "echo beta says $GREETING to $TARGET");
    let first = env.json(&["discover", "sandbox"]);
    assert_eq!((first["added"].as_u64(), first["missing"].as_u64()), (Some(2), Some(0)), "{first}");
    let second = env.json(&["discover", "sandbox"]);
    assert_eq!(
        (second["added"].as_u64(), second["unchanged"].as_u64(), second["updated"].as_u64()),
        (Some(0), Some(2), Some(0)),
        "{second}"
    );

    env.cluster.sandbox.store().remove(Kind::Job, &Key::new(&env.ns, "beta")).unwrap();
    let third = env.json(&["discover", "sandbox"]);
    assert_eq!(third["missing"], 1, "{third}");
    let missing = env.json(&["catalog", "sandbox", "--missing"]);
    assert_eq!(missing.as_array().unwrap().len(), 1);
    assert_eq!(missing[0]["external_id"], "beta");
    assert_eq!(missing[0]["state"], "missing");

    // It still runs, from the stored fallback attributes.
    let out = env.ok(&["run", "sandbox", "beta", "-p", "TARGET=the fallback", "--wait", "--logs", "--timeout", "60s"]);
    assert!(out.contains("beta says hello to the fallback"), "{out}");
    assert!(out.contains("Success"), "{out}");
}

#[test]
fn an_interrupted_sync_marks_nothing_missing() {
    let env = Env::new("host-interrupted");
    for name in ["a1", "a2", "a3", "a4", "a5"] {
        env.source(name, "true");
    }
    env.json(&["discover", "sandbox", "--page-size", "2"]);
    env.cluster.sandbox.store().remove(Kind::Job, &Key::new(&env.ns, "a5")).unwrap();
    env.cluster.sandbox.faults().set(FaultSettings { fail_list_after_pages: Some(1), ..Default::default() });
    let out = env.run(&["discover", "sandbox", "--page-size", "2"]);
    env.cluster.sandbox.faults().clear();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("after 1 pages (2 entries)") && stderr(&out).contains("nothing was marked missing"),
        "{}",
        stderr(&out)
    );
    let missing = env.json(&["catalog", "sandbox", "--missing"]);
    assert_eq!(missing.as_array().unwrap().len(), 0, "an interrupted sync marks nothing missing");
    let done = env.json(&["discover", "sandbox", "--page-size", "2"]);
    assert_eq!(done["missing"], 1, "the next complete sync does");
}

#[test]
fn parameters_exit_codes_and_timeouts() {
    let env = Env::new("host-params");
    env.source("greeter", "echo \"$GREETING, $TARGET\"");
    env.source("sleeper", "sleep 100000");
    env.json(&["discover", "sandbox"]);
    let out = env.ok(&["run", "sandbox", "greeter", "-p", "GREETING=bonjour", "--wait", "--logs", "--timeout", "60s"]);
    assert!(out.contains("bonjour, world"), "{out}");

    let out = env.run(&["run", "sandbox", "greeter", "-p", "NOPE=1"]);
    assert_eq!(code(&out), 20);
    assert!(
        stderr(&out).contains("NOPE") && stderr(&out).contains("GREETING, TARGET"),
        "lists the valid names: {}",
        stderr(&out)
    );
    let out = env.run(&["run", "sandbox", "no-such-entry"]);
    assert_eq!(code(&out), 20);
    assert!(stderr(&out).contains("polysync discover sandbox"), "{}", stderr(&out));

    let out = env.run(&["run", "sandbox", "sleeper", "--wait", "--timeout", "1s"]);
    assert_eq!(code(&out), 40, "{}", stderr(&out));
    assert!(stderr(&out).contains("polysync cancel"), "{}", stderr(&out));
    let runs = env.json(&["runs", "--entry", "sleeper"]);
    let id = runs[0]["id"].to_string();
    let cancelled = env.json(&["cancel", &id]);
    assert_eq!(cancelled["outcome"], "Cancelled");
    assert_eq!(cancelled["run"]["state"], "Cancelled");
}

#[test]
fn a_killed_host_resumes_and_creates_exactly_one_job() {
    let env = Env::new("host-crash");
    env.source("steady", "echo working; sleep 50; echo finished");
    env.json(&["discover", "sandbox"]);
    let mut child = env
        .command(&["run", "sandbox", "steady", "--wait"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if env.jobs_of_source("steady") > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(env.jobs_of_source("steady"), 1);
    let out = env.ok(&["watch"]);
    assert!(out.contains("Success"), "{out}");
    assert_eq!(env.jobs_of_source("steady"), 1, "nothing created twice");
    let runs = env.json(&["runs"]);
    assert_eq!(runs[0]["state"], "Success");

    // A crash before the platform answered: the run stays Submitting and
    // `watch` submits it with the same idempotency key.
    env.source("later", "echo later");
    env.json(&["discover", "sandbox"]);
    env.cluster.sandbox.faults().set(FaultSettings { error_rate: 1.0, error_codes: vec![503], ..Default::default() });
    let out = env.run(&["run", "sandbox", "later"]);
    env.cluster.sandbox.faults().clear();
    // Pending (3), not failed (1): a scheduler must not read it as "will not run".
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let pending = env.json(&["runs", "--entry", "later"]);
    assert_eq!(pending[0]["state"], "Submitting", "{pending}");
    env.ok(&["watch"]);
    assert_eq!(env.jobs_of_source("later"), 1);
    assert_eq!(env.json(&["runs", "--entry", "later"])[0]["state"], "Success");
}

#[test]
fn a_run_against_a_server_that_refuses_the_connection_is_submit_failed_not_pending() {
    let env = Env::new("host-refused");
    env.source("unreached", "echo never");
    env.json(&["discover", "sandbox"]);
    // The same connection, now pointing at a port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = std::fs::read_to_string(&env.cluster.kubeconfig).unwrap();
    let server = text.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap().trim().to_owned();
    let moved = text.replace(&server, &format!("https://127.0.0.1:{dead}"));
    std::fs::write(&env.cluster.kubeconfig, moved).unwrap();
    let out = env.run(&["-o", "json", "run", "sandbox", "unreached"]);
    // Nothing reached the platform: the run failed (1), it is not pending
    // (3), and no later `watch` submits it.
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("could not reach the API server"), "{}", stderr(&out));
    let runs = env.json(&["runs", "--entry", "unreached"]);
    assert_eq!(runs[0]["state"], "SubmitFailed", "{runs}");
    assert!(runs[0]["message"].as_str().unwrap().contains("Connection refused"), "{runs}");
}

#[test]
fn json_output_parses_for_every_command() {
    let env = Env::new("host-json");
    env.source("json-job", "echo json");
    for args in [
        vec!["plugins"],
        vec!["connections"],
        vec!["connections", "test", "sandbox"],
        vec!["discover", "sandbox"],
        vec!["catalog"],
        vec!["catalog", "sandbox", "--entry", "json-job"],
    ] {
        env.json(&args);
    }
    let run = env.json(&["run", "sandbox", "json-job", "--wait", "--timeout", "60s"]);
    let id = run["id"].to_string();
    assert_eq!(run["state"], "Success");
    for args in [
        vec!["status", id.as_str()],
        vec!["runs"],
        vec!["url", "sandbox", "json-job"],
        vec!["url", "--run", id.as_str()],
        vec!["watch"],
        vec!["cancel", id.as_str()],
    ] {
        env.json(&args);
    }
    for args in [vec!["logs", id.as_str()], vec!["events", id.as_str()]] {
        let mut all = vec!["-o", "json"];
        all.extend(args.iter().copied());
        let out = env.ok(&all);
        assert!(!out.trim().is_empty());
        for line in out.lines() {
            serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{args:?}: {line}: {e}"));
        }
    }
    let out = env.run(&["-o", "json", "status", "9999"]);
    assert_eq!(code(&out), 20);
    let err: Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(err["error"]["kind"], "not_found");
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn no_secret_reaches_the_catalog_or_the_logs() {
    let env = Env::new("host-secrets");
    env.source("quiet", "echo quiet");
    // The kubeconfig (with the cluster's bearer token) inline in the config.
    let kubeconfig = std::fs::read_to_string(&env.cluster.kubeconfig).unwrap();
    let token = env.cluster.sandbox.token().to_owned();
    assert!(kubeconfig.contains(&token));
    let planted = "planted-secret-9f8e7d6c";
    std::fs::write(
        &env.config,
        format!(
            "plugin_dir = {:?}\ncatalog = {:?}\n[connections.sandbox]\nprovider = \"kubernetes\"\nnamespace = \"{}\"\nkubeconfig_inline = '''\n{kubeconfig}'''\n",
            plugin_dir().display().to_string(),
            env.dir.path().join("catalog.db").display().to_string(),
            env.ns
        ),
    )
    .unwrap();
    let mut outputs = Vec::new();
    for args in [
        vec!["discover", "sandbox"],
        vec!["run", "sandbox", "quiet", "--wait", "--logs", "--events", "--timeout", "60s"],
        vec!["runs"],
        vec!["connections"],
    ] {
        let out = env
            .command(&args)
            .env("POLYSYNC_LOG", "trace")
            .env("AWS_SECRET_ACCESS_KEY", planted)
            .output_within(COMMAND_LIMIT);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        outputs.push(out.stdout);
        outputs.push(out.stderr);
    }
    assert!(outputs.iter().any(|o| !o.is_empty()), "the commands logged something at trace level");
    for file in std::fs::read_dir(env.dir.path()).unwrap().filter_map(|e| e.ok()).map(|e| e.path()) {
        if file.file_name().unwrap().to_string_lossy().starts_with("catalog.db") {
            let bytes = std::fs::read(&file).unwrap();
            assert!(!contains(&bytes, &token), "{} holds the cluster token", file.display());
            assert!(!contains(&bytes, planted), "{} holds the planted secret", file.display());
        }
    }
    for o in &outputs {
        assert!(!contains(o, &token), "a log or output line shows the cluster token");
        assert!(!contains(o, planted), "a log or output line shows the planted secret");
    }
}

#[test]
fn odd_numbers_and_unknown_names_are_invalid_input_not_panics() {
    let env = Env::new("host-odd-input");
    env.source("greeter", "echo hi");
    env.json(&["discover", "sandbox"]);
    for args in [
        &["run", "sandbox", "greeter", "--wait", "--timeout", "99999999999999999999999"][..],
        &["run", "sandbox", "greeter", "--startup-timeout", "inf"],
        &["demo", "--time-scale", "-1"],
        &["demo", "--time-scale", "NaN"],
        &["sandbox", "--time-scale", "0"],
        &["runs", "--state", "bogus"],
        &["watch", "nosuch"],
    ] {
        let out = env.run(args);
        assert_eq!(code(&out), 20, "polysync {args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "polysync {args:?}: {}", stderr(&out));
    }
}

#[test]
fn discovery_ends_when_every_continue_token_expires() {
    let env = Env::new("host-expiring");
    for i in 0..25 {
        env.source(&format!("job-{i:02}"), "true");
    }
    env.cluster.sandbox.faults().set(FaultSettings { expire_continue: true, ..Default::default() });
    // A discovery that loops on expired tokens fails here after a minute
    // instead of hanging the suite.
    let mut child = env
        .command(&["-o", "json", "discover", "sandbox", "--page-size", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("discovery never ended with every continue token expiring");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    env.cluster.sandbox.faults().clear();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["seen"], 25, "entries, not re-reads: {report}");
    assert!(report["pages"].as_u64().unwrap() <= 4, "{report}");
    assert!(env.cluster.sandbox.stats().get("list", "jobs") <= 4, "{:?}", env.cluster.sandbox.stats().snapshot());
}

#[test]
fn an_idempotency_key_reused_for_another_request_is_a_conflict() {
    let env = Env::new("host-key-reuse");
    env.source("first", "true");
    env.source("second", "true");
    env.json(&["discover", "sandbox"]);
    let a = env.json(&["run", "sandbox", "first", "--idempotency-key", "K"]);
    let again = env.json(&["run", "sandbox", "first", "--idempotency-key", "K"]);
    assert_eq!(a["id"], again["id"], "the same request with the same key is the same run");
    for args in [
        &["run", "sandbox", "second", "--idempotency-key", "K"][..],
        &["run", "sandbox", "first", "-p", "GREETING=x", "--idempotency-key", "K"],
    ] {
        let out = env.run(args);
        assert_eq!(code(&out), 21, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(&format!("run #{}", a["id"])), "names the run: {}", stderr(&out));
    }
    assert_eq!(env.jobs_of_source("second"), 0, "the conflicting request ran nothing");
}

#[test]
fn the_catalog_is_private_and_foreign_or_newer_files_are_refused_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("host-catalog-files");
    let nested = env.dir.path().join("fresh/dir/catalog.db");
    let config = env.dir.path().join("nested.toml");
    let text = std::fs::read_to_string(&env.config).unwrap();
    let old = env.dir.path().join("catalog.db").display().to_string();
    std::fs::write(&config, text.replace(&old, &nested.display().to_string())).unwrap();
    let out = env.run_with_config(&config, &["runs"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&nested), 0o600);
    assert_eq!(mode(nested.parent().unwrap()), 0o700);

    // A newer schema, and a database that is not ours: refused, unchanged.
    for (name, setup) in [
        ("newer.db", "CREATE TABLE runs (id INTEGER); PRAGMA user_version = 99;"),
        ("foreign.db", "CREATE TABLE invoices (id INTEGER);"),
    ] {
        let path = env.dir.path().join(name);
        let status = Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import sqlite3; c = sqlite3.connect({:?}); c.executescript({setup:?}); c.commit()",
                    path.display().to_string()
                ),
            ])
            .output_within(COMMAND_LIMIT)
            .status;
        assert!(status.success());
        let before = std::fs::read(&path).unwrap();
        std::fs::write(&config, text.replace(&old, &path.display().to_string())).unwrap();
        let out = env.run_with_config(&config, &["runs"]);
        assert_eq!(code(&out), 20, "{name}: {}", stderr(&out));
        let why = stderr(&out);
        assert!(why.contains("schema version 99") || why.contains("not a polysync catalog"), "{name}: {why}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "{name} was modified");
        assert!(!env.dir.path().join(format!("{name}-wal")).exists(), "{name} was switched to WAL");
    }

    // A catalog whose tables are ahead of the version it says (a newer
    // polysync changed them): named as such, not "duplicate column name".
    let ahead = env.dir.path().join("ahead.db");
    std::fs::copy(&nested, &ahead).unwrap();
    let script = format!(
        "import sqlite3; c = sqlite3.connect({:?}); c.execute('PRAGMA user_version = 7'); c.commit()",
        ahead.display().to_string()
    );
    assert!(Command::new("python3").args(["-c", &script]).output_within(COMMAND_LIMIT).status.success());
    std::fs::write(&config, text.replace(&old, &ahead.display().to_string())).unwrap();
    let out = env.run_with_config(&config, &["runs"]);
    assert_eq!(code(&out), 20, "{}", stderr(&out));
    let why = stderr(&out);
    assert!(why.contains("says schema version 7") && why.contains("likely a newer one"), "{why}");
}

#[test]
fn path_settings_expand_home_and_variables() {
    let env = Env::new("host-paths");
    let text = std::fs::read_to_string(&env.config).unwrap();
    let old = env.dir.path().join("catalog.db").display().to_string();
    std::fs::write(&env.config, text.replace(&format!("{old:?}"), "\"$POLYSYNC_TEST_DIR/expanded.db\"")).unwrap();
    let out = env.command(&["runs"]).env("POLYSYNC_TEST_DIR", env.dir.path()).output_within(COMMAND_LIMIT);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(env.dir.path().join("expanded.db").exists());
    let out = env.command(&["runs"]).env_remove("POLYSYNC_TEST_DIR").output_within(COMMAND_LIMIT);
    assert_eq!(code(&out), 20);
    assert!(stderr(&out).contains("POLYSYNC_TEST_DIR"), "{}", stderr(&out));
}

#[test]
fn four_discovers_and_twenty_waiting_runs_at_once_share_one_catalog() {
    let env = Env::new("host-concurrent");
    for i in 0..20 {
        env.source(&format!("c-{i:02}"), "echo ok");
    }
    env.json(&["discover", "sandbox"]);
    let mut children = Vec::new();
    for _ in 0..4 {
        children.push(
            env.command(&["discover", "sandbox", "--page-size", "3"])
                .stderr(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    for i in 0..20 {
        let entry = format!("c-{i:02}");
        children.push(
            env.command(&["run", "sandbox", &entry, "--wait", "--timeout", "120s"])
                .stderr(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(!stderr(&out).contains("locked"), "{}", stderr(&out));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import sqlite3; print(sqlite3.connect({:?}).execute(\"SELECT count(*) FROM syncs WHERE status = 'running'\").fetchone()[0])",
                env.dir.path().join("catalog.db").display().to_string()
            ),
        ])
        .output_within(COMMAND_LIMIT);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "no sync is left running");
}

#[test]
fn a_retired_connection_does_not_stop_watch_for_the_others() {
    let env = Env::new("host-retired");
    env.source("kept", "sleep 50; echo done");
    env.json(&["discover", "sandbox"]);
    let text = std::fs::read_to_string(&env.config).unwrap();
    // The same cluster under a second name, which is then retired.
    let old_conn = text[text.find("[connections.sandbox]").unwrap()..].to_owned();
    std::fs::write(&env.config, format!("{text}\n{}", old_conn.replace("[connections.sandbox]", "[connections.old]")))
        .unwrap();
    env.json(&["discover", "old"]);
    env.json(&["run", "old", "kept"]);
    let followed = env.json(&["run", "sandbox", "kept"]);
    std::fs::write(&env.config, &text).unwrap();
    let out = env.run(&["watch"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("\"old\"") && stderr(&out).contains("[connections.old]"), "{}", stderr(&out));
    let run = env.json(&["status", &followed["id"].to_string()]);
    assert_eq!(run["state"], "Success", "the other connection's run was followed to its end");
}

#[test]
fn a_broken_library_in_the_plugin_directory_breaks_nothing_else() {
    let env = Env::new("host-broken-plugins");
    env.source("fine", "echo fine");
    let plugins = env.dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let real = artifacts::cdylib("polysync-provider-kubernetes");
    std::fs::copy(&real, plugins.join(real.file_name().unwrap())).unwrap();
    let bytes = std::fs::read(&real).unwrap();
    std::fs::write(plugins.join("libpolysync_provider_truncated.so"), &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(plugins.join("libnot_a_library.so"), b"#!/bin/sh\necho hello\n").unwrap();
    // A library whose initializer aborts the process that loads it.
    polysync_tests::compile_c(
        "abort_on_load.c",
        &plugins.join("libpolysync_provider_aborts.so"),
        &["-shared", "-fPIC"],
    );
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(
            &format!("{:?}", plugin_dir().display().to_string()),
            &format!("{:?}", plugins.display().to_string()),
        ),
    )
    .unwrap();

    // Commands that need no provider load none; the one needed is loaded alone.
    assert_eq!(code(&env.run(&["runs"])), 0);
    let out = env.json(&["discover", "sandbox"]);
    assert_eq!(out["added"], 1, "{out}");
    let out = env.run(&["run", "sandbox", "fine", "--wait"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // `plugins` reports each bad file with a reason: checked before loading,
    // and each loaded first in a child process (the aborting one).
    let report = env.json(&["plugins"]);
    let refused = report["refused"].as_array().unwrap();
    let why = |name: &str| {
        refused
            .iter()
            .find(|r| r["path"].as_str().unwrap().ends_with(name))
            .map(|r| r["reason"].as_str().unwrap().to_owned())
    };
    assert!(why("libpolysync_provider_truncated.so").is_some_and(|r| r.contains("truncated")), "{report}");
    assert!(why("libnot_a_library.so").is_some_and(|r| r.contains("not an ELF")), "{report}");
    assert!(why("libpolysync_provider_aborts.so").is_some_and(|r| r.contains("crashed the process")), "{report}");
    assert_eq!(report["plugins"].as_array().unwrap().len(), 1, "{report}");
}

#[test]
fn a_submission_without_an_answer_is_pending_and_can_be_withdrawn_or_finished() {
    let env = Env::new("host-pending");
    env.source("maybe", "echo ran");
    env.json(&["discover", "sandbox"]);
    let down = FaultSettings { error_rate: 1.0, error_codes: vec![503], ..Default::default() };
    env.cluster.sandbox.faults().set(down.clone());
    let out = env.run(&["run", "sandbox", "maybe", "--idempotency-key", "p1"]);
    let out2 = env.run(&["run", "sandbox", "maybe", "--idempotency-key", "p2"]);
    env.cluster.sandbox.faults().clear();
    for o in [&out, &out2] {
        assert_eq!(code(o), 3, "{}", stderr(o));
        assert!(stderr(o).contains("pending") && stderr(o).contains("polysync cancel"), "{}", stderr(o));
    }
    let runs = env.json(&["runs"]);
    let id_of =
        |key: &str| runs.as_array().unwrap().iter().find(|r| r["idempotency_key"] == key).unwrap()["id"].to_string();
    // Withdraw one; finish the other: exactly one Job, never two.
    let withdrawn = env.json(&["cancel", &id_of("p1")]);
    assert_eq!(withdrawn["outcome"], "Withdrawn");
    let out = env.run(&["watch"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(env.json(&["status", &id_of("p1")])["state"], "Withdrawn");
    assert_eq!(env.json(&["status", &id_of("p2")])["state"], "Success");
    assert_eq!(env.jobs_of_source("maybe"), 1);
}

#[test]
fn secret_looking_parameters_are_redacted_unless_asked_for() {
    let env = Env::new("host-secret-params");
    let mut job = seed::finished_job(&env.ns, "dbjob", 1);
    job["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "api_token", "value": "t0k3n"}, {"name": "TABLE", "value": "orders"}]);
    env.cluster.sandbox.store().create(Kind::Job, job).unwrap();
    env.json(&["discover", "sandbox"]);
    for args in [
        &["catalog", "sandbox", "--entry", "dbjob"][..],
        &["catalog", "sandbox"],
        &["-o", "json", "catalog", "sandbox"],
        &["-o", "json", "catalog", "sandbox", "--entry", "dbjob"],
    ] {
        let out = env.ok(args);
        assert!(!out.contains("hunter2") && !out.contains("t0k3n"), "{args:?}: {out}");
    }
    let shown = env.ok(&["catalog", "sandbox", "--entry", "dbjob", "--show-secrets"]);
    assert!(shown.contains("hunter2") && shown.contains("orders"), "{shown}");
    let out = env.run(&["-o", "json", "run", "sandbox", "dbjob", "-p", "DB_PASSWORD=s3cr3t", "--wait"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cr3t"), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!env.ok(&["-o", "json", "runs"]).contains("s3cr3t"));
    assert!(env.ok(&["-o", "json", "runs", "--show-secrets"]).contains("s3cr3t"));
}

#[test]
fn a_server_that_never_answers_times_out_naming_it_and_a_missing_exec_helper_is_named() {
    let env = Env::new("host-silent-server");
    // Accepts connections, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let _held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().take(50) {
            held.push(s);
        }
    });
    let kubeconfig = env.dir.path().join("silent.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"https://127.0.0.1:{port}\", insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {{token: x}}}}, {{name: e, user: {{exec: {{apiVersion: client.authentication.k8s.io/v1beta1, command: kubelogin-not-installed, args: [get-token]}}}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u}}}}, {{name: e, context: {{cluster: c, user: e}}}}]\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!(
            "{text}\n[connections.silent]\nprovider = \"kubernetes\"\nkubeconfig = {:?}\nrequest_timeout = \"2s\"\n\n[connections.exec]\nprovider = \"kubernetes\"\nkubeconfig = {:?}\ncontext = \"e\"\n",
            kubeconfig.display().to_string(),
            kubeconfig.display().to_string()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = env.run(&["discover", "silent"]);
    assert_eq!(code(&out), 40, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("127.0.0.1:{port}")) && stderr(&out).contains("did not answer within"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    let out = env.run(&["discover", "exec"]);
    assert_eq!(code(&out), 20, "{}", stderr(&out));
    assert!(stderr(&out).contains("kubelogin-not-installed"), "{}", stderr(&out));
}

/// The test run's PostgreSQL server (one per test binary, a database per
/// test).
fn postgres() -> &'static polysync_clusters::postgres::Postgres {
    static SERVER: std::sync::OnceLock<polysync_clusters::postgres::Postgres> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        polysync_clusters::postgres::Postgres::start().unwrap_or_else(|e| panic!("the test PostgreSQL server: {e}"))
    })
}

/// The environment variable the tests' configs name for the catalog password.
const PG_PASSWORD_ENV: &str = "POLYSYNC_TEST_CATALOG_PASSWORD";

impl Env {
    /// [`Env::new`] with the catalog in a fresh PostgreSQL database, its
    /// password read from an environment variable, and a short run lease.
    fn on_postgres(ns: &str, lease: &str) -> Self {
        let mut env = Self::new(ns);
        let url = postgres().database(&ns.replace('-', "_")).unwrap();
        let config = env.dir.path().join("config-pg.toml");
        std::fs::write(
            &config,
            format!(
                "plugin_dir = {:?}\ncatalog = {url:?}\ncatalog_password_env = \"{PG_PASSWORD_ENV}\"\nrun_lease = \"{lease}\"\n\n[connections.sandbox]\nprovider = \"kubernetes\"\nkubeconfig = {:?}\nnamespace = \"{ns}\"\n",
                plugin_dir().display().to_string(),
                env.cluster.kubeconfig.display().to_string()
            ),
        )
        .unwrap();
        env.config = config;
        env
    }

    fn kubectl_count_jobs(&self, source: &str) -> usize {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.cluster.kubeconfig)
            .args(["get", "jobs", "-n", &self.ns, "-o", "name", "-l", &format!("polysync.io/source={source}")])
            .output_within(COMMAND_LIMIT);
        assert!(out.status.success(), "kubectl: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).count()
    }
}

#[test]
fn the_readme_tour_runs_on_a_postgresql_catalog() {
    let env = Env::on_postgres("host-pg-tour", "30s");
    env.source("report", "echo \"report for $TARGET\"; sleep 2; echo done");
    env.source("long", "sleep 3000");
    // Without the password the catalog refuses, naming the variable.
    let out = env.command(&["runs"]).env_remove(PG_PASSWORD_ENV).output_within(COMMAND_LIMIT);
    assert_eq!(code(&out), 20, "{}", stderr(&out));
    assert!(stderr(&out).contains(PG_PASSWORD_ENV), "{}", stderr(&out));
    // A password in the URL itself is refused.
    let inline = env.dir.path().join("inline.toml");
    std::fs::write(&inline, "catalog = \"postgres://polysync:secret@127.0.0.1:1/x\"\n").unwrap();
    let out = env.run_with_config(&inline, &["runs"]);
    assert_eq!(code(&out), 20);
    assert!(stderr(&out).contains("catalog_password_env") && !stderr(&out).contains("secret"), "{}", stderr(&out));

    let pw = polysync_clusters::postgres::PASSWORD;
    let ok = |args: &[&str]| {
        let out = env.command(args).env(PG_PASSWORD_ENV, pw).output_within(COMMAND_LIMIT);
        assert!(out.status.success(), "polysync {args:?}: {}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let sync: Value = serde_json::from_str(&ok(&["-o", "json", "discover", "sandbox"])).unwrap();
    assert!(sync["seen"].as_u64().unwrap() >= 2, "{sync}");
    assert!(ok(&["catalog", "sandbox"]).contains("report"));
    assert!(ok(&["catalog", "sandbox", "--entry", "report"]).contains("TARGET"));
    let run = ok(&["run", "sandbox", "report", "-p", "TARGET=postgres", "--wait", "--logs"]);
    assert!(run.contains("report for postgres") && run.contains("Success"), "{run}");
    let started: Value = serde_json::from_str(&ok(&["-o", "json", "run", "sandbox", "long"])).unwrap();
    let id = started["id"].to_string();
    let cancelled = ok(&["cancel", &id]);
    assert!(cancelled.contains("Cancelled"), "{cancelled}");
    // `watch` finishes the cancelled run (archives its logs) and ends.
    ok(&["watch"]);
    let runs: Value = serde_json::from_str(&ok(&["-o", "json", "runs"])).unwrap();
    let states: Vec<&str> = runs.as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["Cancelled", "Success"], "{runs}");
    let logs = ok(&["logs", &runs[1]["id"].to_string()]);
    assert!(logs.contains("report for postgres"), "{logs}");
    // Nothing secret reached the database: the password is not stored.
    let dump = postgres().psql("host_pg_tour", "SELECT string_agg(t::text, ' ') FROM runs t").unwrap();
    assert!(!dump.contains(pw));
}

/// Two `polysync watch` processes on one PostgreSQL catalog with 200
/// active runs: each run is followed by one of them; one is killed with
/// SIGKILL and the other takes its runs over within the lease; no run is
/// lost and no Job created twice.
#[test]
fn two_watchers_share_the_runs_and_one_takes_over_when_the_other_is_killed() {
    const RUNS: usize = 200;
    let env = Env::on_postgres("host-pg-watchers", "3s");
    env.source("sleepy", "echo start; sleep 1000; echo done");
    let pw = polysync_clusters::postgres::PASSWORD;
    let run_ok = |args: &[&str]| {
        let out = env.command(args).env(PG_PASSWORD_ENV, pw).output_within(COMMAND_LIMIT);
        assert!(out.status.success(), "polysync {args:?}: {}", stderr(&out));
    };
    run_ok(&["discover", "sandbox"]);
    std::thread::scope(|s| {
        for t in 0..8 {
            let run_ok = &run_ok;
            s.spawn(move || {
                for i in (t..RUNS).step_by(8) {
                    run_ok(&["run", "sandbox", "sleepy", "--idempotency-key", &format!("watchers-{i}")]);
                }
            });
        }
    });
    assert_eq!(env.kubectl_count_jobs("sleepy"), RUNS);
    let watcher = |name: &str| {
        let log = env.dir.path().join(format!("{name}.out"));
        let child = env
            .command(&["watch"])
            .env(PG_PASSWORD_ENV, pw)
            // As if on two machines: the survivor cannot see that the
            // other process died, only that its lease lapsed.
            .env("POLYSYNC_HOST_NAME", format!("machine-{name}"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        (child, log)
    };
    let (mut a, a_log) = watcher("a");
    let (mut b, b_log) = watcher("b");
    let ids_in = |text: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    };
    // Let both claim and follow, then kill one mid-way.
    let started = std::time::Instant::now();
    loop {
        let (ta, tb) = (std::fs::read_to_string(&a_log).unwrap(), std::fs::read_to_string(&b_log).unwrap());
        if !ids_in(&ta).is_empty() && !ids_in(&tb).is_empty() && ids_in(&ta).len() + ids_in(&tb).len() >= RUNS {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the watchers did not pick up the runs:\n{ta}\n{tb}");
        std::thread::sleep(Duration::from_millis(100));
    }
    a.kill().unwrap();
    a.wait().unwrap();
    let killed_at = std::time::Instant::now();
    let a_seen = ids_in(&std::fs::read_to_string(&a_log).unwrap());
    let b_before = ids_in(&std::fs::read_to_string(&b_log).unwrap());
    assert!(
        a_seen.is_disjoint(&b_before),
        "a run was followed by both: {:?}",
        a_seen.intersection(&b_before).collect::<Vec<_>>()
    );
    // B takes A's runs over; measure how soon.
    let takeover = loop {
        let now_b = ids_in(&std::fs::read_to_string(&b_log).unwrap());
        if a_seen.iter().any(|id| now_b.contains(id)) {
            break killed_at.elapsed();
        }
        assert!(killed_at.elapsed() < Duration::from_secs(60), "B never took over A's runs");
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = b.wait_timeout_or_kill(Duration::from_secs(180));
    assert!(status, "the surviving watcher did not finish");
    eprintln!("takeover after SIGKILL: {:.2} s (lease 3 s); A held {} runs", takeover.as_secs_f64(), a_seen.len());
    assert!(takeover < Duration::from_secs(10), "takeover took {takeover:?} with a 3 s lease");
    let out =
        env.command(&["-o", "json", "runs", "--limit", "1000"]).env(PG_PASSWORD_ENV, pw).output_within(COMMAND_LIMIT);
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), RUNS);
    let not_done: Vec<&Value> = runs.iter().filter(|r| r["state"] != "Success").collect();
    assert!(not_done.is_empty(), "runs lost or unfinished: {not_done:?}");
    assert_eq!(env.kubectl_count_jobs("sleepy"), RUNS, "a Job was created twice");
}

trait WaitTimeout {
    /// Wait up to `limit`; kill and return false if it is still running.
    fn wait_timeout_or_kill(&mut self, limit: Duration) -> bool;
}

impl WaitTimeout for std::process::Child {
    fn wait_timeout_or_kill(&mut self, limit: Duration) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.kill();
        let _ = self.wait();
        false
    }
}
