//! The EKS API calls: DescribeCluster (endpoint and CA) to connect, and
//! ListClusters for a host choosing a cluster.

use std::sync::Arc;

use async_trait::async_trait;
use polysync_aws::from_sdk;
use polysync_kube_jobs::bearer::TokenCache;
use polysync_kube_jobs::{Clusters, Connector};
use polysync_provider_api::{ClustersPage, ClustersRequest, ErrorKind, ProviderError, Result};

use crate::token::{REFRESH_MARGIN, StsTokens, sts_endpoint};

/// The connection's AWS configuration, with the EKS client.
pub type Aws = polysync_aws::Connection;

async fn eks(aws: &Aws) -> Result<aws_sdk_eks::Client> {
    Ok(aws_sdk_eks::Client::new(aws.config().await?))
}

/// Connects to the cluster named in the connection.
#[derive(Debug)]
pub struct EksConnector {
    pub aws: Arc<Aws>,
    pub cluster: String,
}

#[async_trait]
impl Connector for EksConnector {
    async fn connect(&self) -> Result<kube::Client> {
        let what = format!("describing EKS cluster {}", self.cluster);
        let described = eks(&self.aws).await?.describe_cluster().name(&self.cluster).send().await.map_err(|e| {
            let err = from_sdk(e, "eks:DescribeCluster", &what);
            if err.kind() == ErrorKind::NotFound {
                ProviderError::not_found(format!(
                    "{what}: there is no EKS cluster {:?} in region {} for this account; check `cluster` and `region` (`polysync connections clusters` lists them)",
                    self.cluster,
                    self.aws.settings.region.as_deref().unwrap_or("(from the AWS chain)")
                ))
            } else {
                err
            }
        })?;
        let cluster =
            described.cluster.ok_or_else(|| ProviderError::internal(format!("{what}: no cluster in the answer")))?;
        let status = cluster.status.as_ref().map(|s| s.as_str().to_owned()).unwrap_or_default();
        let (Some(endpoint), Some(ca)) =
            (cluster.endpoint.as_deref(), cluster.certificate_authority.as_ref().and_then(|c| c.data.as_deref()))
        else {
            return Err(ProviderError::new(
                ErrorKind::Unavailable,
                format!("{what}: the cluster has no API endpoint yet (status {status}); retry once it is ACTIVE"),
            ));
        };
        let config = self.aws.config().await?;
        let region = polysync_aws::region(config);
        let sts = self.aws.settings.endpoint_url.clone().unwrap_or_else(|| sts_endpoint(&region));
        let tokens = StsTokens { config: config.clone(), region, cluster: self.cluster.clone(), sts_endpoint: sts };
        let kube_config = polysync_kube_jobs::connect::server_config(endpoint, ca).await?;
        polysync_kube_jobs::bearer::client(kube_config, Arc::new(TokenCache::new(tokens, REFRESH_MARGIN)))
    }
}

/// ListClusters, one page per call.
#[derive(Debug)]
pub struct EksClusters {
    pub aws: Arc<Aws>,
}

#[async_trait]
impl Clusters for EksClusters {
    async fn list(&self, request: ClustersRequest) -> Result<ClustersPage> {
        let config = self.aws.config().await?;
        let region = polysync_aws::region(config);
        let page = eks(&self.aws)
            .await?
            .list_clusters()
            .set_next_token(request.page_token)
            .max_results(polysync_aws::page_size(request.page_size))
            .send()
            .await
            .map_err(|e| from_sdk(e, "eks:ListClusters", &format!("listing EKS clusters in {region}")))?;
        Ok(polysync_aws::clusters_page(&region, page.clusters.unwrap_or_default(), page.next_token))
    }
}
