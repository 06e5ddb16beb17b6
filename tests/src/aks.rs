//! An AKS world for the aks tests: the Azure fake (Entra ID + ARM) whose
//! clusters' kubeconfigs point at one cluster (the sandbox or the real
//! control plane): `entra-cluster` returns a kubelogin kubeconfig (the
//! cluster accepts the fake's tokens for the AKS server application),
//! `cert-cluster` a client-certificate one (the cluster's CA issued it).

use std::sync::Arc;

use polysync_sandbox::{Access, Identity};

use crate::azure_fake::{AKS_APP, AzureFake, certificate_kubeconfig, kubelogin_kubeconfig};
use crate::{Cluster, Flavor, TIME_SCALE};

#[derive(Debug)]
pub struct AksWorld {
    pub fake: AzureFake,
    pub cluster: Cluster,
    pub namespace: String,
}

impl AksWorld {
    /// `jobs` source Jobs and `cronjobs` CronJobs in `namespace`.
    pub fn start(flavor: Flavor, namespace: &str, jobs: usize, cronjobs: usize) -> Self {
        let fake = AzureFake::start();
        let state = fake.state.clone();
        let ns = namespace.to_owned();
        let scope = format!("{AKS_APP}/.default");
        let validator = Arc::new(move |token: &str| {
            state
                .valid(token, &scope)
                .then(|| Identity { user: "entra:polysync-sp".into(), access: Access::Namespaces(vec![ns.clone()]) })
        });
        let cluster = Cluster::with_token_validator(flavor, TIME_SCALE, validator)
            .unwrap_or_else(|e| panic!("the {} cluster did not start: {e}", flavor.name()));
        cluster.grant_namespace(namespace);
        cluster.grant_user("aks-local-admin", namespace);
        polysync_clusters::seed::seed_blocking(&cluster, namespace, jobs, cronjobs);
        let ca = cluster.ca_pem().expect("https cluster").to_owned();
        let (cert, key) = cluster
            .issue_client_cert(Identity {
                user: "aks-local-admin".into(),
                access: Access::Namespaces(vec![namespace.to_owned()]),
            })
            .unwrap();
        let mut clusters = fake.state.clusters.lock().unwrap();
        clusters.insert("entra-cluster".into(), kubelogin_kubeconfig(cluster.url(), &ca));
        clusters.insert("cert-cluster".into(), certificate_kubeconfig(cluster.url(), &ca, &cert, &key));
        drop(clusters);
        Self { fake, cluster, namespace: namespace.to_owned() }
    }

    pub fn settings(&self, cluster: &str) -> serde_json::Value {
        self.fake.settings(cluster, &self.namespace)
    }
}
