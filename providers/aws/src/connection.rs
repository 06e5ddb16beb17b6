//! One connection's AWS configuration, loaded on first use (so a bad
//! credential is reported by the first operation, with its own message)
//! and shared by every client the provider makes.

use std::sync::Arc;

use aws_config::SdkConfig;
use polysync_provider_api::Result;
use tokio::sync::OnceCell;

use crate::AwsSettings;

#[derive(Debug)]
pub struct Connection {
    pub settings: AwsSettings,
    config: OnceCell<SdkConfig>,
}

impl Connection {
    pub fn new(settings: AwsSettings) -> Arc<Self> {
        Arc::new(Self { settings, config: OnceCell::new() })
    }

    pub async fn config(&self) -> Result<&SdkConfig> {
        self.config.get_or_try_init(|| crate::sdk_config(&self.settings)).await
    }

    /// The region for console URLs: the setting, else the one the chain
    /// resolved (known once connected), else the environment's.
    pub fn console_region(&self) -> String {
        self.settings
            .region
            .clone()
            .or_else(|| self.config.get().map(crate::region))
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into())
    }
}

/// The AWS console's address for `region` (the partition decides it).
pub fn console_base(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://{region}.console.amazonaws.cn")
    } else if region.starts_with("us-gov-") {
        "https://console.amazonaws-us-gov.com".to_owned()
    } else {
        format!("https://{region}.console.aws.amazon.com")
    }
}
