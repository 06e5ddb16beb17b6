//! What the `eks` and `ecs` providers share: the AWS part of their
//! connection settings, an `SdkConfig` built from them the way the AWS CLI
//! would, and SDK errors mapped to the contract's kinds.
//!
//! Credentials come from the standard chain (environment, shared files,
//! SSO, web identity, container and instance metadata), optionally through
//! an assumed role. A connection may instead name where its own keys are:
//! *environment variables* or a *credentials file* (a mounted secret),
//! never the keys themselves: the catalog stores connection settings, and
//! it must never hold a secret. Naming a file per connection also lets one
//! host serve accounts with different keys side by side.

mod connection;
mod error;
mod settings;

pub use connection::{Connection, console_base};
pub use error::{from_code, from_sdk};
pub use settings::AwsSettings;

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_smithy_http_client::tls;
use polysync_provider_api::{ErrorKind, ProviderError};

/// The one HTTPS client of every AWS SDK client: hyper + rustls with ring,
/// the TLS stack the rest of polysync uses (the SDK's default would add
/// aws-lc to the build).
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// The `SdkConfig` for a connection: region, profile, endpoint override,
/// environment-variable keys and role assumption applied in that order.
pub async fn sdk_config(settings: &AwsSettings) -> Result<SdkConfig, ProviderError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(credentials) = settings.env_credentials()? {
        loader = loader.credentials_provider(credentials);
    }
    if let Some(path) = &settings.credentials_file {
        // This file alone: no environment keys, no ~/.aws, no instance
        // metadata behind it, so a wrong file fails instead of quietly
        // using whatever identity the host has.
        let text = std::fs::read_to_string(path).map_err(|e| {
            ProviderError::invalid_input(format!("setting `credentials_file`: {path} is not a readable file: {e}"))
        })?;
        // Its profiles are `[name]` lines; a profile it lacks would read as
        // "no credentials", which names the wrong thing.
        let profile = settings.profile.as_deref().unwrap_or("default");
        let profiles: Vec<&str> =
            text.lines().filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']')).map(str::trim).collect();
        if !profiles.contains(&profile) {
            return Err(ProviderError::invalid_input(format!(
                "setting `profile`: {path} has no profile {profile:?} (it has {}); set `profile` to one of them",
                if profiles.is_empty() { "none".to_owned() } else { profiles.join(", ") }
            )));
        }
        let files = EnvConfigFiles::builder()
            .with_file(EnvConfigFileKind::Credentials, path)
            .with_contents(EnvConfigFileKind::Config, "")
            .build();
        let mut provider_config = ProviderConfig::default().with_http_client(http_client());
        if let Some(region) = &settings.region {
            provider_config = provider_config.with_region(Some(Region::new(region.clone())));
        }
        let provider = ProfileFileCredentialsProvider::builder()
            .configure(&provider_config)
            .profile_files(files.clone())
            .profile_name(settings.profile.as_deref().unwrap_or("default"))
            .build();
        loader = loader.profile_files(files).credentials_provider(provider);
    }
    let base = loader.load().await;
    if base.region().is_none() {
        return Err(ProviderError::new(
            ErrorKind::InvalidInput,
            "no AWS region: set `region` in the connection, or AWS_REGION, or a region in the AWS profile",
        ));
    }
    let Some(role_arn) = &settings.role_arn else { return Ok(base) };
    let mut assume = aws_config::sts::AssumeRoleProvider::builder(role_arn).configure(&base);
    if let Some(id) = &settings.external_id {
        assume = assume.external_id(id);
    }
    assume = assume.session_name(settings.session_name.clone().unwrap_or_else(|| "polysync".into()));
    let provider = assume.build().await;
    Ok(base.into_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build())
}

/// The region a config resolved to ([`sdk_config`] guarantees one).
pub fn region(config: &SdkConfig) -> String {
    config.region().map(|r| r.as_ref().to_owned()).unwrap_or_default()
}

/// Credentials resolved now, for code that signs by hand (the EKS token).
pub async fn credentials(config: &SdkConfig) -> Result<Credentials, ProviderError> {
    use aws_credential_types::provider::ProvideCredentials;
    let provider = config
        .credentials_provider()
        .ok_or_else(|| ProviderError::new(ErrorKind::Unauthorized, error::NO_CREDENTIALS))?;
    provider.provide_credentials().await.map_err(|e| error::from_credentials(&e))
}

/// A page size for AWS list APIs, which take 1 to 100 (default 100).
pub fn page_size(requested: Option<u32>) -> i32 {
    requested.unwrap_or(100).clamp(1, 100) as i32
}

/// A ListClusters page (EKS answers names, ECS ARNs) in the contract's terms.
pub fn clusters_page(
    region: &str,
    names_or_arns: Vec<String>,
    next_token: Option<String>,
) -> polysync_provider_api::ClustersPage {
    polysync_provider_api::ClustersPage {
        clusters: names_or_arns
            .into_iter()
            .map(|item| {
                let is_arn = item.starts_with("arn:");
                polysync_provider_api::ClusterInfo {
                    name: item.rsplit('/').next().unwrap_or(&item).to_owned(),
                    location: region.to_owned(),
                    id: is_arn.then_some(item),
                }
            })
            .collect(),
        next_page_token: next_token,
    }
}
