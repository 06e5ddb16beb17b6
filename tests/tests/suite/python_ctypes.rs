//! A host in another language: Python's ctypes and the C header drive the
//! real kubernetes plugin on the sandbox: discover → run → poll → watch →
//! logs.

use std::process::Command;

use polysync_conformance::artifacts;
use polysync_tests::workspace;

#[test]
fn python_ctypes_host_runs_discover_run_poll() {
    let cluster = polysync_tests::shared(polysync_tests::Flavor::Sandbox);
    let ns = "python-ctypes";
    for name in ["py-first", "py-second", "py-third", "py-fourth", "py-fifth", "py-sixth"] {
        polysync_tests::source_job(cluster, ns, name, "echo \"hello $GREETING\"", |_| {});
    }
    let root = workspace();
    let plugin = artifacts::cdylib("polysync-provider-kubernetes");
    let out = Command::new("python3")
        .arg(root.join("tests/python/ctypes_host.py"))
        .arg(&plugin)
        .arg(root.join("provider-api/include/polysync_provider.h"))
        .arg(cluster.settings(ns).to_string())
        .output()
        .expect("python3 is needed for the ctypes host test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ctypes host failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let steps: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let step = |name: &str| steps.iter().find(|s| s["step"] == name).unwrap_or_else(|| panic!("no {name} in {stdout}"));
    assert_eq!(step("manifest")["name"], "kubernetes");
    let first = step("discover")["entries"][0].as_str().unwrap().to_owned();
    assert_eq!(step("discover")["entries"].as_array().unwrap().len(), 5);
    assert!(step("discover")["next"].is_string(), "a second page");
    assert!(step("run")["run_id"].as_str().unwrap().starts_with(&format!("{first}-")));
    let polled = step("poll")["state"].as_str().unwrap().to_owned();
    assert!(["Pending", "Starting", "Running", "Success"].contains(&polled.as_str()), "{polled}");
    let states: Vec<_> = step("watch")["states"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(states.last(), Some(&"Success"), "{states:?}");
    let logs = step("logs")["text"].as_str().unwrap();
    assert!(logs.contains("hello from python"), "the parameter reached the pod: {logs:?}");
    assert_eq!(step("poll-unknown")["kind"], "NotFound");
    step("done");
}
