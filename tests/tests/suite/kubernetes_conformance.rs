//! The conformance suite against the `kubernetes` plugin, through its real
//! dynamic library, on the sandbox and on the real control plane.

use polysync_conformance::{Target, artifacts};
use polysync_tests::{Flavor, seed_once, shared};

fn target(flavor: Flavor) -> Target {
    let cluster = shared(flavor);
    seed_once(cluster, "conformance", 40, 2);
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

mod sandbox {
    polysync_conformance::conformance_suite!(super::target(polysync_tests::Flavor::Sandbox));
}

mod real {
    polysync_conformance::conformance_suite!(super::target(polysync_tests::Flavor::Real));
}
