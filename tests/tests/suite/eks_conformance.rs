//! The conformance suite against the `eks` plugin through its dynamic
//! library: moto answers EKS (ListClusters, DescribeCluster) and STS; the
//! cluster, the sandbox and then the real control plane, checks every
//! `k8s-aws-v1.` token.

use std::sync::OnceLock;

use polysync_conformance::Target;
use polysync_tests::eks::EksWorld;
use polysync_tests::{Flavor, seeded_target};

fn world(flavor: Flavor) -> &'static EksWorld {
    static SANDBOX: OnceLock<EksWorld> = OnceLock::new();
    static REAL: OnceLock<EksWorld> = OnceLock::new();
    let (cell, name) = match flavor {
        Flavor::Sandbox => (&SANDBOX, "batch-eks"),
        Flavor::Real => (&REAL, "batch-eks-real"),
    };
    cell.get_or_init(|| EksWorld::start(flavor, name, "eks-conformance", 20, 1))
}

fn target(flavor: Flavor) -> Target {
    let world = world(flavor);
    seeded_target("eks", world.settings("eks-conformance"), 21).monitor_url(&format!(
        "https://eu-west-1.console.aws.amazon.com/eks/home?region=eu-west-1#/clusters/{}/jobs/batch-00001?namespace=eks-conformance",
        world.name
    ))
}

mod sandbox {
    polysync_conformance::conformance_suite!(super::target(polysync_tests::Flavor::Sandbox));
}

mod real {
    polysync_conformance::conformance_suite!(super::target(polysync_tests::Flavor::Real));
}
