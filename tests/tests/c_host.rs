//! A C program built against `provider-api/include/polysync_provider.h`
//! drives the real fake plugin: the header's layout matches the Rust
//! definitions (checked at compile time) and is enough to write a host.

use std::mem::{offset_of, size_of};
use std::process::Command;

use polysync_conformance::artifacts;
use polysync_provider_api::abi::{Buf, HostCallbacks, PluginTable};
use polysync_tests::compile_c;

#[test]
fn a_c_host_drives_a_real_plugin_through_the_header() {
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
    let plugin = artifacts::cdylib("polysync-fake-provider");
    let out = Command::new(&exe).arg(&plugin).arg(r#"{"namespace":"c-host","tick_ms":5}"#).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "C host failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |step: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{step} ")))
            .unwrap_or_else(|| panic!("no {step} line in {stdout}"))
    };
    assert!(line("manifest").contains(r#""name":"fake""#));
    let discover = line("discover");
    assert!(discover.starts_with("discover 2 "), "{discover}");
    let page: serde_json::Value = serde_json::from_str(discover.splitn(3, ' ').nth(2).unwrap()).unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_page_token"], "2");
    assert!(line("run").starts_with("run 2 ") && line("run").contains(r#""run_id":"job-0003-"#));
    assert!(line("poll").starts_with("poll 2 ") && line("poll").contains(r#""state":"#));
    let watch = line("watch");
    assert!(watch.starts_with("watch 2 items="), "{watch}");
    let items: u32 = watch.rsplit('=').next().unwrap().parse().unwrap();
    assert!(items >= 2, "watch reports at least the first and the terminal status: {watch}");
    assert!(line("unknown").starts_with("unknown 3 ") && line("unknown").contains("Unsupported"));
}
