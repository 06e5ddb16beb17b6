//! The conformance suite against the `kubernetes` plugin, through its real
//! dynamic library, against the sandbox cluster.

use polysync_conformance::{Target, artifacts, conformance_suite};
use polysync_sandbox::SeedConfig;
use polysync_tests::shared_cluster;

fn target() -> Target {
    let cluster =
        shared_cluster(|| SeedConfig { namespace: "conformance".into(), jobs: 40, cronjobs: 2, file: None }, 0.02);
    Target::new(
        "kubernetes",
        artifacts::cdylib("polysync-provider-kubernetes"),
        cluster.settings("conformance"),
        ("batch-00001", &[("GREETING", "hi")]),
        ("batch-00002", &[("SLEEP_SECONDS", "100000")]),
    )
    // 40 Jobs and 2 CronJobs; the Jobs the CronJobs own are skipped.
    .expect_entries(42)
}

conformance_suite!(target());
