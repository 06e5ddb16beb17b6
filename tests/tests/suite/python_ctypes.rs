//! A host in another language: Python's ctypes, the C header, and the real
//! fake plugin run discover → run → poll → watch.

use std::process::Command;

use polysync_conformance::artifacts;
use polysync_tests::workspace;

#[test]
fn python_ctypes_host_runs_discover_run_poll() {
    let root = workspace();
    let plugin = artifacts::cdylib("polysync-fake-provider");
    let out = Command::new("python3")
        .arg(root.join("tests/python/ctypes_host.py"))
        .arg(&plugin)
        .arg(root.join("provider-api/include/polysync_provider.h"))
        .output()
        .expect("python3 is needed for the ctypes host test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ctypes host failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let steps: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let step = |name: &str| steps.iter().find(|s| s["step"] == name).unwrap_or_else(|| panic!("no {name} in {stdout}"));
    assert_eq!(step("manifest")["name"], "fake");
    assert_eq!(step("discover")["entries"].as_array().unwrap().len(), 5);
    assert_eq!(step("discover")["next"], "5");
    assert!(step("run")["run_id"].as_str().unwrap().starts_with("job-0000-"));
    assert!(["Starting", "Running"].contains(&step("poll")["state"].as_str().unwrap()));
    let states: Vec<_> = step("watch")["states"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(states.last(), Some(&"Success"), "{states:?}");
    assert_eq!(step("poll-unknown")["kind"], "NotFound");
    step("done");
}
