//! An AKS world for the aks tests: the Azure fake (Entra ID + ARM) whose
//! clusters' kubeconfigs point at one sandbox: `entra-cluster` returns a
//! kubelogin kubeconfig (the sandbox accepts the fake's tokens for the AKS
//! server application), `cert-cluster` a client-certificate one (the
//! sandbox issued the certificate).

use std::sync::Arc;

use polysync_sandbox::{Access, Identity, SandboxConfig, SeedConfig};

use crate::SandboxCluster;
use crate::azure_fake::{AKS_APP, AzureFake, certificate_kubeconfig, kubelogin_kubeconfig};

#[derive(Debug)]
pub struct AksWorld {
    pub fake: AzureFake,
    pub cluster: SandboxCluster,
    pub namespace: String,
}

impl AksWorld {
    pub fn start(namespace: &str, seed: SeedConfig, time_scale: f64) -> Self {
        AzureFake::use_test_credentials();
        let fake = AzureFake::start();
        let state = fake.state.clone();
        let ns = namespace.to_owned();
        let scope = format!("{AKS_APP}/.default");
        let validator = Arc::new(move |token: &str| {
            state
                .valid(token, &scope)
                .then(|| Identity { user: "entra:polysync-sp".into(), access: Access::Namespaces(vec![ns.clone()]) })
        });
        let cluster = SandboxCluster::start_with(SandboxConfig {
            time_scale,
            seed,
            token_validator: Some(validator),
            ..SandboxConfig::default()
        });
        let sandbox = &cluster.sandbox;
        let ca = sandbox.ca_pem().expect("https sandbox");
        let (cert, key) = sandbox
            .issue_client_cert(Identity {
                user: "aks-local-admin".into(),
                access: Access::Namespaces(vec![namespace.to_owned()]),
            })
            .unwrap();
        let mut clusters = fake.state.clusters.lock().unwrap();
        clusters.insert("entra-cluster".into(), kubelogin_kubeconfig(sandbox.url(), ca));
        clusters.insert("cert-cluster".into(), certificate_kubeconfig(sandbox.url(), ca, &cert, &key));
        drop(clusters);
        Self { fake, cluster, namespace: namespace.to_owned() }
    }

    pub fn settings(&self, cluster: &str) -> serde_json::Value {
        self.fake.settings(cluster, &self.namespace)
    }
}
