//! Hosts in C and Go, built against `provider-api/include/polysync_provider.h`,
//! drive the real kubernetes plugin on the sandbox: the header's layout
//! matches the Rust definitions (checked at compile time) and is enough to
//! write a host.

use std::mem::{offset_of, size_of};
use std::process::Command;

use polysync_conformance::artifacts;
use polysync_provider_api::abi::{Buf, HostCallbacks, PluginTable};
use polysync_tests::compile_c;

#[test]
fn a_c_host_drives_a_real_plugin_through_the_header() {
    let cluster = polysync_tests::shared(polysync_tests::Flavor::Sandbox);
    let ns = "c-host";
    for name in ["c-first", "c-second", "c-third"] {
        polysync_tests::source_job(cluster, ns, name, "echo \"hello $GREETING\"", |_| {});
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("host");
    compile_c(
        "host.c",
        &exe,
        &[
            &format!("-DEXPECT_TABLE_SIZE={}", size_of::<PluginTable>()),
            &format!("-DEXPECT_CALLBACKS_SIZE={}", size_of::<HostCallbacks>()),
            &format!("-DEXPECT_BUF_SIZE={}", size_of::<Buf>()),
            &format!("-DEXPECT_FREE_BUF_OFFSET={}", offset_of!(PluginTable, free_buf)),
        ],
    );
    let plugin = artifacts::cdylib("polysync-provider-kubernetes");
    let out = Command::new(&exe).arg(&plugin).arg(cluster.settings(ns).to_string()).arg("c-second").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "C host failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |step: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{step} ")))
            .unwrap_or_else(|| panic!("no {step} line in {stdout}"))
    };
    assert!(line("manifest").contains(r#""name":"kubernetes""#));
    let discover = line("discover");
    assert!(discover.starts_with("discover 2 "), "{discover}");
    let page: serde_json::Value = serde_json::from_str(discover.splitn(3, ' ').nth(2).unwrap()).unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2, "{page}");
    assert!(page["next_page_token"].is_string(), "a second page: {page}");
    assert!(line("run").starts_with("run 2 ") && line("run").contains(r#""run_id":"c-second-"#));
    assert!(line("poll").starts_with("poll 2 ") && line("poll").contains(r#""state":"#));
    let watch = line("watch");
    assert!(watch.starts_with("watch 2 items="), "{watch}");
    let last: serde_json::Value = serde_json::from_str(line("last").trim_start_matches("last ")).unwrap();
    assert_eq!(last["state"], "Success", "the watch ends with the run's end: {last}");
    assert!(line("unknown").starts_with("unknown 3 ") && line("unknown").contains("Unsupported"));
}

/// The Go host (`tests/go`, cgo over the same header) loads the real
/// kubernetes plugin and, against the sandbox, discovers, runs an entry
/// with a parameter, watches the run to its end and prints its outputs.
#[test]
fn a_go_host_runs_a_job_and_reads_its_outputs_through_the_header() {
    let cluster = polysync_tests::shared(polysync_tests::Flavor::Sandbox);
    let ns = "go-host";
    polysync_tests::source_job(
        cluster,
        ns,
        "go-report",
        "echo \"working for $GREETING\"; echo \"ROWS=${GREETING}-42\" > /dev/termination-log",
        |job| {
            job["metadata"]["annotations"] = serde_json::json!({"polysync.io/outputs": "ROWS"});
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("gohost");
    let src = polysync_tests::workspace().join("tests/go");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&exe)
        .arg(".")
        .current_dir(&src)
        .env("CGO_ENABLED", "1")
        .output()
        .expect("the Go host needs Go 1.26 (`go`); scripts/test checks for it");
    assert!(built.status.success(), "go build of tests/go failed:\n{}", String::from_utf8_lossy(&built.stderr));
    let plugin = artifacts::cdylib("polysync-provider-kubernetes");
    let out = Command::new(&exe)
        .arg(&plugin)
        .arg(cluster.settings(ns).to_string())
        .args(["go-report", "GREETING=gopher"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "Go host failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("manifest kubernetes api {}", polysync_provider_api::API_VERSION)), "{stdout}");
    assert!(stdout.contains("entry go-report parameter ROWS Output"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("run go-report-")), "{stdout}");
    assert!(stdout.contains("status Success"), "{stdout}");
    assert!(stdout.contains(r#"outputs {"ROWS":"gopher-42"}"#), "{stdout}");
}
