//! The conformance suite against the `fake` test provider, through its real
//! dynamic library and the host's loader.

use polysync_conformance::{Target, artifacts, conformance_suite};
use serde_json::json;

fn target() -> Target {
    Target::new(
        "fake",
        artifacts::cdylib("polysync-fake-provider"),
        json!({"entries": 250, "tick_ms": 20}),
        ("job-0001", &[("GREETING", "hi")]),
        ("job-0002", &[("DURATION_MS", "600000")]),
    )
    .expect_entries(250)
    .monitor_url("https://fake.invalid/entries/job-0001")
    .quick_logs("GREETING=hi")
    .quick_events("Succeeded")
    .panic_run("__panic__")
}

conformance_suite!(target(), panics);
