//! The conformance suite against the `eks` plugin through its dynamic
//! library: moto answers EKS (ListClusters, DescribeCluster) and STS, the
//! sandbox is the cluster and checks every `k8s-aws-v1.` token.

use std::sync::OnceLock;

use polysync_conformance::{Target, artifacts, conformance_suite};
use polysync_sandbox::SeedConfig;
use polysync_tests::eks::EksWorld;

fn world() -> &'static EksWorld {
    static WORLD: OnceLock<EksWorld> = OnceLock::new();
    WORLD.get_or_init(|| {
        let seed = SeedConfig { namespace: "eks-conformance".into(), jobs: 20, cronjobs: 1, file: None };
        EksWorld::start("batch-eks", "eks-conformance", seed, 0.02)
    })
}

fn target() -> Target {
    let world = world();
    Target::new(
        "eks",
        artifacts::cdylib("polysync-provider-eks"),
        world.settings("eks-conformance"),
        ("batch-00001", &[("GREETING", "hi")]),
        ("batch-00002", &[("SLEEP_SECONDS", "100000")]),
    )
    .expect_entries(21)
}

conformance_suite!(target());
