//! The conformance suite against the `aks` plugin through its dynamic
//! library, for both kinds of kubeconfig ARM returns: one that runs
//! kubelogin (Entra ID tokens for the AKS server application) and one with
//! a client certificate (local accounts). The Azure fake answers Entra ID
//! and ARM; the sandbox is the cluster.

use std::sync::OnceLock;

use polysync_conformance::{Target, artifacts};
use polysync_sandbox::SeedConfig;
use polysync_tests::aks::AksWorld;

fn world() -> &'static AksWorld {
    static WORLD: OnceLock<AksWorld> = OnceLock::new();
    WORLD.get_or_init(|| {
        let seed = SeedConfig { namespace: "aks-conformance".into(), jobs: 20, cronjobs: 1, file: None };
        AksWorld::start("aks-conformance", seed, 0.02)
    })
}

fn target(cluster: &str) -> Target {
    Target::new(
        "aks",
        artifacts::cdylib("polysync-provider-aks"),
        world().settings(cluster),
        ("batch-00001", &[("GREETING", "hi")]),
        ("batch-00002", &[("SLEEP_SECONDS", "100000")]),
    )
    .expect_entries(21)
}

mod kubelogin {
    polysync_conformance::conformance_suite!(super::target("entra-cluster"));
}

mod client_certificate {
    polysync_conformance::conformance_suite!(super::target("cert-cluster"));
}
