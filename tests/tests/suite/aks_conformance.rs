//! The conformance suite against the `aks` plugin through its dynamic
//! library, for both kinds of kubeconfig ARM returns: one that runs
//! kubelogin (Entra ID tokens for the AKS server application) and one with
//! a client certificate (local accounts). The Azure fake answers Entra ID
//! and ARM; the cluster is the sandbox and then the real control plane.

use std::sync::OnceLock;

use polysync_conformance::Target;
use polysync_tests::aks::AksWorld;
use polysync_tests::azure_fake::{RESOURCE_GROUP, SUBSCRIPTION};
use polysync_tests::{Flavor, seeded_target};

fn world(flavor: Flavor) -> &'static AksWorld {
    static SANDBOX: OnceLock<AksWorld> = OnceLock::new();
    static REAL: OnceLock<AksWorld> = OnceLock::new();
    let cell = if flavor == Flavor::Sandbox { &SANDBOX } else { &REAL };
    cell.get_or_init(|| AksWorld::start(flavor, "aks-conformance", 20, 1))
}

fn target(flavor: Flavor, cluster: &str) -> Target {
    seeded_target("aks", world(flavor).settings(cluster), 21).monitor_url(&format!(
        "https://portal.azure.com/#resource/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.ContainerService/managedClusters/{cluster}/workloads"
    ))
}

mod kubelogin {
    mod sandbox {
        polysync_conformance::conformance_suite!(super::super::target(
            polysync_tests::Flavor::Sandbox,
            "entra-cluster"
        ));
    }
    mod real {
        polysync_conformance::conformance_suite!(super::super::target(polysync_tests::Flavor::Real, "entra-cluster"));
    }
}

mod client_certificate {
    mod sandbox {
        polysync_conformance::conformance_suite!(super::super::target(polysync_tests::Flavor::Sandbox, "cert-cluster"));
    }
    mod real {
        polysync_conformance::conformance_suite!(super::super::target(polysync_tests::Flavor::Real, "cert-cluster"));
    }
}
