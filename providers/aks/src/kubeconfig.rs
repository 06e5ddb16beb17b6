//! The kubeconfig ARM returns, turned into a client. Local accounts and
//! admin credentials carry a client certificate or a static token, which
//! kube uses as they are. Entra ID clusters return a kubeconfig that runs
//! `kubelogin` (or, from older clusters, the `azure` auth provider); its
//! only job is to get a token for the AKS server application, which the
//! connection's own credential does here, without a subprocess, refreshed
//! before expiry and after a 401.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use kube::config::{KubeConfigOptions, Kubeconfig};
use polysync_kube_jobs::bearer::{Token, TokenCache, TokenSource};
use polysync_provider_api::{ProviderError, Result};

/// The AKS server application of Entra ID-enabled clusters.
pub const AKS_SERVER_APP: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";
/// Tokens are replaced this long before they expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// How the returned kubeconfig authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Client certificate or token: use the kubeconfig as it is.
    AsIs,
    /// Entra ID: a token for `server_id` (the AKS server application).
    Entra { server_id: String },
}

/// What the kubeconfig's current user does.
pub fn auth(kubeconfig: &Kubeconfig) -> Result<Auth> {
    let context = kubeconfig
        .current_context
        .as_ref()
        .and_then(|name| kubeconfig.contexts.iter().find(|c| &c.name == name))
        .or_else(|| kubeconfig.contexts.first())
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| ProviderError::internal("the kubeconfig ARM returned has no context"))?;
    let user = kubeconfig
        .auth_infos
        .iter()
        .find(|u| Some(&u.name) == context.user.as_ref())
        .and_then(|u| u.auth_info.as_ref())
        .ok_or_else(|| ProviderError::internal("the kubeconfig ARM returned has no user for its context"))?;
    if let Some(exec) = &user.exec {
        let command = exec.command.clone().unwrap_or_default();
        if !command.ends_with("kubelogin") {
            return Err(ProviderError::invalid_input(format!(
                "the cluster's kubeconfig runs {command:?}, which polysync does not run; use `admin = true` or an Entra ID-enabled cluster"
            )));
        }
        let args = exec.args.clone().unwrap_or_default();
        let server_id = args
            .iter()
            .position(|a| a == "--server-id")
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| AKS_SERVER_APP.to_owned());
        return Ok(Auth::Entra { server_id });
    }
    if let Some(provider) = &user.auth_provider
        && provider.name == "azure"
    {
        let server_id = provider.config.get("apiserver-id").cloned().unwrap_or_else(|| AKS_SERVER_APP.to_owned());
        return Ok(Auth::Entra { server_id });
    }
    Ok(Auth::AsIs)
}

/// A client for the cluster the kubeconfig describes.
pub async fn client(kubeconfig: Kubeconfig, tokens: impl FnOnce(String) -> EntraTokens) -> Result<kube::Client> {
    match auth(&kubeconfig)? {
        Auth::AsIs => {
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| ProviderError::internal(format!("the kubeconfig ARM returned cannot be used: {e}")))?;
            polysync_kube_jobs::connect::client(config)
        }
        Auth::Entra { server_id } => {
            let cluster = kubeconfig
                .clusters
                .first()
                .and_then(|c| c.cluster.clone())
                .ok_or_else(|| ProviderError::internal("the kubeconfig ARM returned has no cluster"))?;
            let server = cluster.server.unwrap_or_default();
            let ca = cluster.certificate_authority_data.unwrap_or_default();
            let config = polysync_kube_jobs::connect::server_config(&server, &ca).await?;
            let cache = TokenCache::new(tokens(format!("{server_id}/.default")), REFRESH_MARGIN);
            polysync_kube_jobs::bearer::client(config, Arc::new(cache))
        }
    }
}

/// Tokens for the AKS server application from the connection's credential.
pub struct EntraTokens {
    pub scope: String,
    /// Makes a fresh credential: a 401 throws the old one (and the token
    /// azure_identity cached in it) away.
    pub make: Box<dyn Fn() -> Result<Arc<dyn TokenCredential>> + Send + Sync>,
    pub current: Mutex<Option<Arc<dyn TokenCredential>>>,
}

impl std::fmt::Debug for EntraTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraTokens").field("scope", &self.scope).finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenSource for EntraTokens {
    async fn fetch(&self) -> Result<Token> {
        let credential = {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            match current.as_ref() {
                Some(c) => c.clone(),
                None => {
                    let c = (self.make)()?;
                    *current = Some(c.clone());
                    c
                }
            }
        };
        let token = credential
            .get_token(&[&self.scope], None)
            .await
            .map_err(|e| crate::arm::entra_error(&e, "the AKS cluster"))?;
        Ok(Token { secret: token.token.secret().to_owned(), expires_at: SystemTime::from(token.expires_on) })
    }

    fn invalidate(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(user: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(&format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://x\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n{user}"
        ))
        .unwrap()
    }

    #[test]
    fn kubelogin_and_the_azure_provider_mean_entra_tokens() {
        let exec = kubeconfig(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubelogin\n      args: [get-token, --environment, AzurePublicCloud, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630, --login, devicecode]\n",
        );
        assert_eq!(auth(&exec).unwrap(), Auth::Entra { server_id: AKS_SERVER_APP.into() });
        let legacy = kubeconfig("    auth-provider:\n      name: azure\n      config:\n        apiserver-id: abc\n");
        assert_eq!(auth(&legacy).unwrap(), Auth::Entra { server_id: "abc".into() });
    }

    #[test]
    fn certificates_and_tokens_are_used_as_they_are() {
        assert_eq!(auth(&kubeconfig("    token: t\n")).unwrap(), Auth::AsIs);
        assert_eq!(
            auth(&kubeconfig("    client-certificate-data: QQ==\n    client-key-data: QQ==\n")).unwrap(),
            Auth::AsIs
        );
    }

    #[test]
    fn other_exec_plugins_are_refused() {
        let other =
            kubeconfig("    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n");
        assert!(auth(&other).unwrap_err().message().contains("does not run"));
    }
}
