//! Listing the clusters a connection's credentials can reach (EKS, AKS and
//! ECS clusters), so a host can offer a choice when a connection is set up
//! instead of asking the user to type a name. Added in API 1.2; a provider
//! without it answers `Unsupported`.

use serde::{Deserialize, Serialize};

/// One page of clusters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClustersRequest {
    /// The previous page's `next_page_token`; none for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    /// A hint; providers cap it at their platform's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
}

/// A cluster the credentials can see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The name a connection's `cluster` setting takes.
    pub name: String,
    /// Region or Azure location.
    #[serde(default)]
    pub location: String,
    /// ARN or Azure resource id, where the platform has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClustersPage {
    #[serde(default)]
    pub clusters: Vec<ClusterInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
