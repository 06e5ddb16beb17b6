//! The `aks` provider: Kubernetes Jobs on Azure Kubernetes Service.
//!
//! An Entra ID credential (azure_identity) asks ARM for the cluster's
//! kubeconfig (listClusterUserCredential, or the admin one); a certificate
//! or token in it is used as it is, and a `kubelogin` one is replaced by a
//! token for the AKS server application from the same credential. Then
//! everything is `polysync-kube-jobs`.
//!
//! Settings: `subscription_id`, `resource_group`, `cluster` (required),
//! `namespace` (default `default`), `credential` (`environment` |
//! `client_secret` | `workload_identity` | `managed_identity` |
//! `azure_cli`; default `environment`), `tenant_id`, `client_id` and
//! `client_secret_file` (for `client_secret`), `managed_identity_client_id`,
//! `admin` (default false),
//! `arm_endpoint`, `authority_host`, `ca_file` (sovereign and private
//! clouds), `include_cronjobs`.

pub mod arm;
pub mod credential;
pub mod kubeconfig;
mod transport;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use polysync_kube_jobs::{Clusters, Connector, KubeJobs, Monitor};
use polysync_provider_api::{Capability, ClustersPage, ClustersRequest, Manifest, ProviderError, Result};

use crate::arm::{Arm, ClusterRef};
use crate::credential::Kind;
use crate::kubeconfig::EntraTokens;
use crate::transport::Https;

polysync_provider_api::settings! {
    /// The aks connection's settings.
    struct Settings {
        /// Azure subscription id of the cluster
        required subscription_id: String,
        /// resource group of the cluster
        required resource_group: String,
        /// AKS cluster name
        required cluster: String,
        /// namespace of the Jobs (default: default)
        optional namespace: String,
        /// environment | client_secret | workload_identity | managed_identity | azure_cli (default environment)
        optional credential: String,
        /// tenant of the service principal (credential = client_secret)
        optional tenant_id: String,
        /// application (client) id of the service principal (credential = client_secret)
        optional client_id: String,
        /// file holding the service principal's secret (credential = client_secret)
        optional client_secret_file: String,
        /// client id of a user-assigned managed identity
        optional managed_identity_client_id: String,
        /// use listClusterAdminCredential (default false)
        optional admin: bool,
        /// ARM endpoint (default https://management.azure.com)
        optional arm_endpoint: String,
        /// Entra ID authority (default https://login.microsoftonline.com)
        optional authority_host: String,
        /// PEM file of extra CAs to trust for ARM and Entra ID
        optional ca_file: String,
        /// discover CronJobs too (default true)
        optional include_cronjobs: bool,
    }
}

const UNAUTHORIZED_HINT: &str = "the cluster refused the Entra ID token: give the identity a Kubernetes role binding (or Azure RBAC for Kubernetes) and check that the cluster's Entra integration is enabled";

fn manifest() -> Manifest {
    let mut m = Manifest::new("aks", env!("CARGO_PKG_VERSION"));
    m.description = "Kubernetes Jobs and CronJobs on Azure Kubernetes Service, with Entra ID credentials".into();
    m.settings = Settings::docs();
    m.capabilities = polysync_kube_jobs::capabilities();
    m.capabilities.push(Capability::ListClusters);
    m
}

/// What a connection needs to reach ARM.
struct Azure {
    kind: Kind,
    https: Https,
    arm_endpoint: String,
    authority_host: Option<String>,
    /// ARM's credential, built on first use.
    arm: Mutex<Option<Arm>>,
}

impl Azure {
    fn arm(&self) -> Result<Arm> {
        let mut arm = self.arm.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = arm.as_ref() {
            return Ok(a.clone());
        }
        let credential = credential::build(&self.kind, &self.https, self.authority_host.as_deref())?;
        let built = Arm { https: self.https.clone(), endpoint: self.arm_endpoint.clone(), credential };
        *arm = Some(built.clone());
        Ok(built)
    }
}

struct AksConnector {
    azure: Arc<Azure>,
    cluster: ClusterRef,
    admin: bool,
}

#[async_trait]
impl Connector for AksConnector {
    async fn connect(&self) -> Result<kube::Client> {
        let yaml = self.azure.arm()?.kubeconfig(&self.cluster, self.admin).await?;
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml)
            .map_err(|e| ProviderError::internal(format!("the kubeconfig ARM returned is not valid: {e}")))?;
        let azure = self.azure.clone();
        kubeconfig::client(kubeconfig, move |scope| EntraTokens {
            scope,
            make: Box::new(move || credential::build(&azure.kind, &azure.https, azure.authority_host.as_deref())),
            current: Mutex::new(None),
        })
        .await
    }
}

struct AksClusters {
    azure: Arc<Azure>,
    subscription_id: String,
}

#[async_trait]
impl Clusters for AksClusters {
    async fn list(&self, request: ClustersRequest) -> Result<ClustersPage> {
        self.azure.arm()?.clusters(&self.subscription_id, request.page_token).await
    }
}

/// The portal's Workloads blade of the cluster, for entries and runs alike.
#[derive(Debug, Clone)]
pub struct Portal {
    pub cluster: ClusterRef,
}

impl Portal {
    pub fn url(&self) -> String {
        format!("https://portal.azure.com/#resource{}/workloads", self.cluster.id())
    }
}

impl Monitor for Portal {
    fn entry(&self, _namespace: &str, _external_id: &str) -> Option<String> {
        Some(self.url())
    }
    fn run(&self, _namespace: &str, _run_id: &str) -> Option<String> {
        Some(self.url())
    }
}

fn required(value: Option<String>, name: &str, what: &str) -> Result<String> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ProviderError::invalid_input(format!("aks connection settings: `{name}` is required ({what})")))
}

fn https_url(value: Option<String>, name: &str, default: Option<&str>) -> Result<Option<String>> {
    match value.or(default.map(str::to_owned)) {
        Some(url) if !url.starts_with("https://") => {
            Err(ProviderError::invalid_input(format!("setting `{name}`: {url:?} must be an https URL")))
        }
        other => Ok(other.map(|u| u.trim_end_matches('/').to_owned())),
    }
}

/// Validate settings and build the provider (no network yet).
pub fn build(settings: serde_json::Value) -> Result<KubeJobs> {
    let s: Settings = serde_json::from_value(settings).map_err(|e| {
        ProviderError::invalid_input(format!(
            "aks connection settings: {e}; the settings are {}",
            Settings::KEYS.join(", ")
        ))
    })?;
    let cluster = ClusterRef {
        subscription_id: required(s.subscription_id, "subscription_id", "the cluster's subscription id")?,
        resource_group: required(s.resource_group, "resource_group", "the cluster's resource group")?,
        name: required(s.cluster, "cluster", "the AKS cluster name")?,
    };
    let identity = credential::Identity {
        tenant_id: s.tenant_id,
        client_id: s.client_id,
        client_secret_file: s.client_secret_file,
        managed_identity_client_id: s.managed_identity_client_id,
    };
    let kind = Kind::parse(s.credential.as_deref().unwrap_or("environment"), identity)?;
    let namespace = s.namespace.unwrap_or_else(|| "default".into());
    polysync_kube_jobs::naming::check_namespace(&namespace)?;
    let ca = match &s.ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| ProviderError::invalid_input(format!("setting `ca_file`: cannot read {path}: {e}")))?,
        ),
        None => None,
    };
    let azure = Arc::new(Azure {
        kind,
        https: Https::new(ca.as_deref())?,
        arm_endpoint: https_url(s.arm_endpoint, "arm_endpoint", Some("https://management.azure.com"))?
            .unwrap_or_default(),
        authority_host: https_url(s.authority_host, "authority_host", None)?,
        arm: Mutex::new(None),
    });
    let portal = Portal { cluster: cluster.clone() };
    let clusters = AksClusters { azure: azure.clone(), subscription_id: cluster.subscription_id.clone() };
    let connector = AksConnector { azure, cluster, admin: s.admin.unwrap_or(false) };
    Ok(KubeJobs::new(manifest(), namespace, connector, portal)
        .with_cronjobs(s.include_cronjobs.unwrap_or(true))
        .with_clusters(clusters)
        .with_unauthorized_hint(UNAUTHORIZED_HINT))
}

polysync_provider_api::export_provider!(manifest = manifest, build = build);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portal_url_is_the_clusters_workloads_blade() {
        let portal = Portal {
            cluster: ClusterRef {
                subscription_id: "00000000-0000-0000-0000-000000000001".into(),
                resource_group: "batch-rg".into(),
                name: "prod-aks".into(),
            },
        };
        assert_eq!(
            portal.url(),
            "https://portal.azure.com/#resource/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/batch-rg/providers/Microsoft.ContainerService/managedClusters/prod-aks/workloads"
        );
    }
}
