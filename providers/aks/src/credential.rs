//! The Entra ID credential named by the connection's `credential`
//! setting, built with azure_identity on polysync's own transport.

use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, Transport};
use polysync_provider_api::{ErrorKind, ProviderError, Result};

use crate::transport::Https;

/// Which credential a connection uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A service principal's client secret from AZURE_TENANT_ID,
    /// AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.
    Environment,
    /// A service principal named in the connection, its secret in a file
    /// (a mounted secret), read again whenever a credential is built so a
    /// rotated secret is picked up. One host can hold connections of
    /// different principals, which the environment cannot.
    ClientSecret { tenant_id: String, client_id: String, secret_file: String },
    /// A federated token file (AKS workload identity, GitHub OIDC).
    WorkloadIdentity,
    /// The host's managed identity, optionally a user-assigned one.
    ManagedIdentity { client_id: Option<String> },
    /// `az login` on the host.
    AzureCli,
}

/// The settings a credential kind may take.
#[derive(Debug, Default)]
pub struct Identity {
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<String>,
    pub managed_identity_client_id: Option<String>,
}

impl Kind {
    pub fn parse(name: &str, identity: Identity) -> Result<Self> {
        let unused = |setting: &str, value: &Option<String>| match value {
            Some(_) => Err(ProviderError::invalid_input(format!(
                "setting `{setting}` is for credential = \"client_secret\"; remove it or set that credential"
            ))),
            None => Ok(()),
        };
        if name != "client_secret" {
            unused("tenant_id", &identity.tenant_id)?;
            unused("client_id", &identity.client_id)?;
            unused("client_secret_file", &identity.client_secret_file)?;
        }
        Ok(match name {
            "environment" => Self::Environment,
            "client_secret" => {
                let need = |value: Option<String>, setting: &str| {
                    value.filter(|v| !v.is_empty()).ok_or_else(|| {
                        ProviderError::invalid_input(format!(
                            "credential = \"client_secret\" needs `{setting}`; set tenant_id, client_id and client_secret_file"
                        ))
                    })
                };
                Self::ClientSecret {
                    tenant_id: need(identity.tenant_id, "tenant_id")?,
                    client_id: need(identity.client_id, "client_id")?,
                    secret_file: need(identity.client_secret_file, "client_secret_file")?,
                }
            }
            "workload_identity" => Self::WorkloadIdentity,
            "managed_identity" => Self::ManagedIdentity { client_id: identity.managed_identity_client_id },
            "azure_cli" => Self::AzureCli,
            other => {
                return Err(ProviderError::invalid_input(format!(
                    "setting `credential`: {other:?} is not one of environment, client_secret, workload_identity, managed_identity, azure_cli"
                )));
            }
        })
    }
}

fn options(https: &Https, authority_host: Option<&str>) -> ClientOptions {
    // azure_core retries for minutes by default; a token request here is
    // one step of a scheduler call, so fail within seconds and say why.
    let retry = azure_core::http::RetryOptions::exponential(azure_core::http::ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(200),
        max_retries: 2,
        max_total_elapsed: azure_core::time::Duration::seconds(10),
        max_delay: azure_core::time::Duration::seconds(2),
    });
    let mut options =
        ClientOptions { transport: Some(Transport::new(Arc::new(https.clone()))), retry, ..Default::default() };
    if let Some(host) = authority_host {
        let mut custom = azure_core::cloud::CustomConfiguration::default();
        custom.authority_host = host.to_owned();
        options.cloud = Some(Arc::new(custom.into()));
    }
    options
}

fn env(name: &str, kind: &str) -> Result<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
        ProviderError::new(
            ErrorKind::Unauthorized,
            format!(
                "credential = \"{kind}\" needs {name} in the host's environment; set it, or choose another `credential`"
            ),
        )
    })
}

/// A fresh credential (with an empty token cache).
pub fn build(kind: &Kind, https: &Https, authority_host: Option<&str>) -> Result<Arc<dyn TokenCredential>> {
    let bad = |e: azure_core::Error| {
        ProviderError::new(ErrorKind::InvalidInput, format!("the Azure credential cannot be built: {e}"))
    };
    let client_options = options(https, authority_host);
    Ok(match kind {
        Kind::Environment => {
            let tenant = env("AZURE_TENANT_ID", "environment")?;
            let client = env("AZURE_CLIENT_ID", "environment")?;
            let secret = std::env::var("AZURE_CLIENT_SECRET").ok().filter(|s| !s.is_empty());
            let Some(secret) = secret else {
                let hint = if std::env::var_os("AZURE_CLIENT_CERTIFICATE_PATH").is_some() {
                    "AZURE_CLIENT_CERTIFICATE_PATH is set, but certificate credentials need OpenSSL, which polysync does not ship; use a client secret or workload identity"
                } else {
                    "set AZURE_CLIENT_SECRET, or choose another `credential`"
                };
                return Err(ProviderError::new(
                    ErrorKind::Unauthorized,
                    format!("credential = \"environment\": {hint}"),
                ));
            };
            let options = azure_identity::ClientSecretCredentialOptions { client_options };
            azure_identity::ClientSecretCredential::new(&tenant, client, Secret::new(secret), Some(options))
                .map_err(bad)?
        }
        Kind::ClientSecret { tenant_id, client_id, secret_file } => {
            let secret = std::fs::read_to_string(secret_file).map_err(|e| {
                ProviderError::new(
                    ErrorKind::Unauthorized,
                    format!("setting `client_secret_file`: cannot read {secret_file}: {e}"),
                )
            })?;
            let secret = secret.trim_end_matches(['\r', '\n']).to_owned();
            if secret.is_empty() {
                return Err(ProviderError::new(
                    ErrorKind::Unauthorized,
                    format!("setting `client_secret_file`: {secret_file} is empty; it must hold the client secret"),
                ));
            }
            let options = azure_identity::ClientSecretCredentialOptions { client_options };
            azure_identity::ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                Secret::new(secret),
                Some(options),
            )
            .map_err(bad)?
        }
        Kind::WorkloadIdentity => {
            // Checked here so the message names what to set.
            env("AZURE_FEDERATED_TOKEN_FILE", "workload_identity")?;
            env("AZURE_CLIENT_ID", "workload_identity")?;
            env("AZURE_TENANT_ID", "workload_identity")?;
            let options = azure_identity::WorkloadIdentityCredentialOptions {
                credential_options: azure_identity::ClientAssertionCredentialOptions { client_options },
                ..Default::default()
            };
            azure_identity::WorkloadIdentityCredential::new(Some(options)).map_err(bad)?
        }
        Kind::ManagedIdentity { client_id } => {
            let options = azure_identity::ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(azure_identity::UserAssignedId::ClientId),
                client_options,
            };
            azure_identity::ManagedIdentityCredential::new(Some(options)).map_err(bad)?
        }
        Kind::AzureCli => azure_identity::AzureCliCredential::new(None).map_err(bad)?,
    })
}
