//! The conformance suite against the `kubernetes` plugin, through its real
//! dynamic library, on the sandbox and on the real control plane.

use polysync_conformance::Target;
use polysync_tests::{Flavor, seed_once, seeded_target, shared};

fn target(flavor: Flavor) -> Target {
    let cluster = shared(flavor);
    seed_once(cluster, "conformance", 40, 2);
    let mut settings = cluster.settings("conformance");
    settings["monitor_url_template"] = "https://dashboard.polysync.test/{namespace}/{name}?kind={kind}".into();
    // 40 Jobs and 2 CronJobs; the Jobs the CronJobs own are skipped.
    seeded_target("kubernetes", settings, 42)
        .monitor_url("https://dashboard.polysync.test/conformance/batch-00001?kind=")
}

mod sandbox {
    polysync_conformance::conformance_suite!(super::target(polysync_tests::Flavor::Sandbox));
}

mod real {
    polysync_conformance::conformance_suite!(super::target(polysync_tests::Flavor::Real));
}
