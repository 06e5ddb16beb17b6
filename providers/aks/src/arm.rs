//! The ARM calls: a cluster's kubeconfig (listClusterUserCredential, or
//! listClusterAdminCredential) and the subscription's clusters. Made
//! directly on a GA api-version rather than through
//! azure_mgmt_containerservice, which is unmaintained, knows only preview
//! api-versions and brings a second HTTP/TLS stack.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use polysync_provider_api::{ClusterInfo, ClustersPage, ErrorKind, ProviderError, Result};
use serde::Deserialize;

use crate::transport::{Answer, Https};

/// A generally available api-version of Microsoft.ContainerService.
pub const API_VERSION: &str = "2024-09-01";

/// Where a cluster is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRef {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
}

impl ClusterRef {
    /// The cluster's ARM resource id.
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
}

/// ARM with a credential.
#[derive(Clone)]
pub struct Arm {
    pub https: Https,
    /// e.g. `https://management.azure.com`, no trailing slash.
    pub endpoint: String,
    pub credential: Arc<dyn TokenCredential>,
}

impl std::fmt::Debug for Arm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arm").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Credentials {
    #[serde(default)]
    kubeconfigs: Vec<NamedValue>,
}

#[derive(Deserialize)]
struct NamedValue {
    value: String,
}

#[derive(Deserialize)]
struct ClusterList {
    #[serde(default)]
    value: Vec<ManagedCluster>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct ManagedCluster {
    name: String,
    #[serde(default)]
    location: String,
    id: Option<String>,
}

#[derive(Deserialize)]
struct ArmError {
    error: ArmErrorBody,
}

#[derive(Deserialize)]
struct ArmErrorBody {
    code: String,
    #[serde(default)]
    message: String,
}

impl Arm {
    async fn token(&self) -> Result<String> {
        let scope = format!("{}/.default", self.endpoint);
        let token =
            self.credential.get_token(&[&scope], None).await.map_err(|e| entra_error(&e, "Azure Resource Manager"))?;
        Ok(token.token.secret().to_owned())
    }

    async fn call(&self, method: &str, path_and_query: &str) -> Result<Answer> {
        let token = self.token().await?;
        let mut auth = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ProviderError::internal("the ARM token is not a valid header value"))?;
        auth.set_sensitive(true);
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.endpoint))
            .header(http::header::AUTHORIZATION, auth)
            .header(http::header::CONTENT_LENGTH, "0")
            .body(Full::new(Bytes::new()))
            .map_err(|e| ProviderError::invalid_input(format!("setting `arm_endpoint`: {e}")))?;
        self.https.send(request).await
    }

    /// The kubeconfig (YAML) ARM gives for the cluster.
    pub async fn kubeconfig(&self, cluster: &ClusterRef, admin: bool) -> Result<String> {
        let action = if admin { "listClusterAdminCredential" } else { "listClusterUserCredential" };
        let answer = self.call("POST", &format!("{}/{action}?api-version={API_VERSION}", cluster.id())).await?;
        let what = format!("getting the kubeconfig of AKS cluster {} ({action})", cluster.name);
        if answer.status != 200 {
            return Err(arm_error(&answer, &what, admin));
        }
        let creds: Credentials = serde_json::from_slice(&answer.body)
            .map_err(|e| ProviderError::internal(format!("{what}: unexpected answer: {e}")))?;
        let first = creds
            .kubeconfigs
            .first()
            .ok_or_else(|| ProviderError::internal(format!("{what}: ARM returned no kubeconfig")))?;
        let yaml = base64::engine::general_purpose::STANDARD
            .decode(&first.value)
            .map_err(|e| ProviderError::internal(format!("{what}: the kubeconfig is not base64: {e}")))?;
        String::from_utf8(yaml).map_err(|_| ProviderError::internal(format!("{what}: the kubeconfig is not UTF-8")))
    }

    /// One page of the subscription's AKS clusters; `page` is a nextLink.
    pub async fn clusters(&self, subscription_id: &str, page: Option<String>) -> Result<ClustersPage> {
        let path = match page {
            Some(link) => link
                .strip_prefix(&self.endpoint)
                .map(str::to_owned)
                .ok_or_else(|| ProviderError::invalid_input("the page token was not issued by this aks connection"))?,
            None => format!(
                "/subscriptions/{subscription_id}/providers/Microsoft.ContainerService/managedClusters?api-version={API_VERSION}"
            ),
        };
        let answer = self.call("GET", &path).await?;
        if answer.status != 200 {
            return Err(arm_error(
                &answer,
                &format!("listing the AKS clusters of subscription {subscription_id}"),
                false,
            ));
        }
        let list: ClusterList = serde_json::from_slice(&answer.body)
            .map_err(|e| ProviderError::internal(format!("listing AKS clusters: unexpected answer: {e}")))?;
        Ok(ClustersPage {
            clusters: list
                .value
                .into_iter()
                .map(|c| ClusterInfo { name: c.name, location: c.location, id: c.id })
                .collect(),
            next_page_token: list.next_link,
        })
    }
}

/// An ARM error answer, with ARM's code and message and what to fix.
fn arm_error(answer: &Answer, what: &str, admin: bool) -> ProviderError {
    let (code, message) = match serde_json::from_slice::<ArmError>(&answer.body) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => (answer.status.to_string(), String::from_utf8_lossy(&answer.body).chars().take(300).collect()),
    };
    let role = if admin {
        "Azure Kubernetes Service Cluster Admin Role"
    } else {
        "Azure Kubernetes Service Cluster User Role"
    };
    match answer.status {
        401 => ProviderError::new(
            ErrorKind::Unauthorized,
            format!(
                "{what}: ARM refused the token ({code}: {message}); check the credential's tenant and that it is still valid"
            ),
        ),
        403 => ProviderError::new(
            ErrorKind::Forbidden,
            format!("{what}: ARM denied it ({code}: {message}); assign the identity the {role} on the cluster"),
        ),
        404 => ProviderError::not_found(format!(
            "{what}: {code}: {message}; check `subscription_id`, `resource_group` and `cluster` (`polysync connections clusters` lists them)"
        )),
        429 => {
            ProviderError::new(ErrorKind::Throttled, format!("{what}: ARM is throttling requests ({code}: {message})"))
        }
        s if s >= 500 => ProviderError::new(
            ErrorKind::Unavailable,
            format!("{what}: ARM failed ({s} {code}: {message}); retry later"),
        ),
        s => ProviderError::new(ErrorKind::Internal, format!("{what}: unexpected answer {s} ({code}: {message})")),
    }
}

/// An azure_identity failure: the credential could not get a token.
pub fn entra_error(e: &azure_core::Error, audience: &str) -> ProviderError {
    let text = polysync_provider_api::error::chain(e);
    // Our transport's own words when the endpoint cannot be reached.
    let kind = if matches!(e.kind(), azure_core::error::ErrorKind::Io) || text.contains("could not reach") {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Unauthorized
    };
    ProviderError::new(
        kind,
        format!(
            "could not get an Entra ID token for {audience}: {text}; check the `credential` setting and its AZURE_* variables"
        ),
    )
}
