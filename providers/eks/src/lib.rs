//! The `eks` provider: Kubernetes Jobs on Amazon EKS.
//!
//! The connection is made the way AWS's own tools make it: credentials
//! from the standard chain (optionally an assumed role), DescribeCluster
//! for the API endpoint and its CA (the client trusts exactly that CA), and
//! the bearer token `aws eks get-token` would print, refreshed before it
//! expires and whenever the cluster answers 401. Everything after that is
//! `polysync-kube-jobs`.
//!
//! Settings: `cluster` (required), `namespace` (default `default`),
//! `include_cronjobs` (default true), and the AWS settings of
//! [`polysync_aws::AwsSettings`] (`region`, `profile`, `role_arn`,
//! `external_id`, `session_name`, `endpoint_url`, `*_env`).

pub mod cluster;
pub mod console;
pub mod token;

use polysync_aws::AwsSettings;
use polysync_kube_jobs::KubeJobs;
use polysync_provider_api::{Capability, Manifest, ProviderError, Result};

use crate::cluster::{Aws, EksClusters, EksConnector};
use crate::console::EksConsole;

polysync_provider_api::settings! {
    /// The eks connection's own settings (the AWS ones are [`AwsSettings`]).
    struct Settings {
        /// EKS cluster name
        required cluster: String,
        /// namespace of the Jobs (default: default)
        optional namespace: String,
        /// discover CronJobs too (default true)
        optional include_cronjobs: bool,
    }
}

const UNAUTHORIZED_HINT: &str = "the cluster does not know this IAM identity: give it an EKS access entry (aws eks create-access-entry) or an aws-auth mapping, and check that the token's region and cluster are right";

fn manifest() -> Manifest {
    let mut m = Manifest::new("eks", env!("CARGO_PKG_VERSION"));
    m.description = "Kubernetes Jobs and CronJobs on Amazon EKS, with AWS credentials".into();
    m.settings = Settings::docs();
    m.settings.extend(AwsSettings::docs());
    m.capabilities = polysync_kube_jobs::capabilities();
    m.capabilities.push(Capability::ListClusters);
    m
}

/// Validate settings and build the provider (no network yet).
pub fn build(settings: serde_json::Value) -> Result<KubeJobs> {
    let (aws, rest) = AwsSettings::split("eks", settings)?;
    let s: Settings = serde_json::from_value(rest).map_err(|e| {
        ProviderError::invalid_input(format!(
            "eks connection settings: {e}; the settings are {}, {}",
            Settings::KEYS.join(", "),
            AwsSettings::KEYS.join(", ")
        ))
    })?;
    let cluster = s.cluster.filter(|c| !c.is_empty()).ok_or_else(|| {
        ProviderError::invalid_input("eks connection settings: `cluster` is required (the EKS cluster name)")
    })?;
    if cluster.len() > 100 || !cluster.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ProviderError::invalid_input(format!(
            "setting `cluster`: {cluster:?} is not an EKS cluster name (letters, digits, - and _, at most 100)"
        )));
    }
    let namespace = s.namespace.unwrap_or_else(|| "default".into());
    polysync_kube_jobs::naming::check_namespace(&namespace)?;
    let aws = Aws::new(aws);
    let console = EksConsole { aws: aws.clone(), cluster: cluster.clone() };
    let connector = EksConnector { aws: aws.clone(), cluster };
    Ok(KubeJobs::new(manifest(), namespace, connector, console)
        .with_cronjobs(s.include_cronjobs.unwrap_or(true))
        .with_clusters(EksClusters { aws })
        .with_unauthorized_hint(UNAUTHORIZED_HINT))
}

polysync_provider_api::export_provider!(manifest = manifest, build = build);
