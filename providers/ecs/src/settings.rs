//! The ecs connection settings, checked before any call.

use polysync_aws::AwsSettings;
use polysync_provider_api::{ProviderError, Result};
use serde::Deserialize;

polysync_provider_api::settings! {
    /// The ecs connection's own settings, as written (the AWS ones are
    /// [`AwsSettings`]); [`Settings::parse`] checks them.
    pub struct Raw {
        /// ECS cluster name or ARN
        required cluster: String,
        /// FARGATE, EC2 or EXTERNAL (else the cluster's default capacity provider strategy)
        optional launch_type: String,
        /// [{capacity_provider, weight, base}] instead of launch_type
        optional capacity_provider_strategy: Vec<Strategy>,
        /// awsvpc {subnets, security_groups, assign_public_ip}
        optional network_configuration: Network,
        /// discover only families starting with this
        optional family_prefix: String,
        /// Fargate platform version (default LATEST)
        optional platform_version: String,
        /// how often runs are described while watched, in ms (default 2000)
        optional poll_interval_ms: serde_json::Value,
        /// start a task stopped by a Spot interruption again, up to this many times (default 0)
        optional retry_on_interruption: serde_json::Value,
    }
}

/// One item of a capacity provider strategy.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    pub capacity_provider: String,
    #[serde(default)]
    pub weight: Option<i32>,
    #[serde(default)]
    pub base: Option<i32>,
}

/// awsvpc networking, as the console and RunTask name it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub subnets: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub assign_public_ip: Option<bool>,
}

/// How tasks are placed: a launch type or a capacity provider strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    Default,
    Type(aws_sdk_ecs::types::LaunchType),
    Strategy(Vec<Strategy>),
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub aws: AwsSettings,
    pub cluster: String,
    pub launch: Launch,
    pub network: Option<Network>,
    pub family_prefix: Option<String>,
    pub platform_version: Option<String>,
    /// How often runs are described while watched.
    pub poll_interval: std::time::Duration,
    /// How many times a task stopped by a Spot interruption is started
    /// again, as further attempts of the same run.
    pub retry_on_interruption: u32,
}

impl Settings {
    pub fn parse(value: serde_json::Value) -> Result<Self> {
        let (aws, rest) = AwsSettings::split("ecs", value)?;
        let raw: Raw = serde_json::from_value(rest).map_err(|e| {
            ProviderError::invalid_input(format!(
                "ecs connection settings: {e}; the settings are {}, {}",
                Raw::KEYS.join(", "),
                AwsSettings::KEYS.join(", ")
            ))
        })?;
        let cluster = raw.cluster.filter(|c| !c.is_empty()).ok_or_else(|| {
            ProviderError::invalid_input("ecs connection settings: `cluster` is required (an ECS cluster name or ARN)")
        })?;
        let launch = match (raw.launch_type, raw.capacity_provider_strategy) {
            (Some(_), Some(_)) => {
                return Err(ProviderError::invalid_input(
                    "set either `launch_type` or `capacity_provider_strategy`, not both (ECS refuses both)",
                ));
            }
            (Some(t), None) => match t.to_ascii_uppercase().as_str() {
                "FARGATE" => Launch::Type(aws_sdk_ecs::types::LaunchType::Fargate),
                "EC2" => Launch::Type(aws_sdk_ecs::types::LaunchType::Ec2),
                "EXTERNAL" => Launch::Type(aws_sdk_ecs::types::LaunchType::External),
                _ => {
                    return Err(ProviderError::invalid_input(format!(
                        "setting `launch_type`: {t:?} is not FARGATE, EC2 or EXTERNAL"
                    )));
                }
            },
            (None, Some(s)) if s.is_empty() => {
                return Err(ProviderError::invalid_input("setting `capacity_provider_strategy` is empty"));
            }
            (None, Some(s)) => Launch::Strategy(s),
            (None, None) => Launch::Default,
        };
        if let Some(n) = &raw.network_configuration
            && n.subnets.is_empty()
        {
            return Err(ProviderError::invalid_input(
                "setting `network_configuration`: `subnets` needs at least one subnet id",
            ));
        }
        let poll_interval = match &raw.poll_interval_ms {
            None => std::time::Duration::from_secs(2),
            Some(v) => match v.as_u64() {
                Some(ms) if ms >= 100 => std::time::Duration::from_millis(ms),
                _ => {
                    return Err(ProviderError::invalid_input(
                        "setting `poll_interval_ms` must be a whole number >= 100",
                    ));
                }
            },
        };
        let retry_on_interruption = match &raw.retry_on_interruption {
            None => 0,
            Some(v) => match v.as_u64() {
                Some(n) if n <= 10 => n as u32,
                _ => {
                    return Err(ProviderError::invalid_input(
                        "setting `retry_on_interruption` must be a whole number from 0 to 10",
                    ));
                }
            },
        };
        Ok(Self {
            aws,
            cluster,
            launch,
            poll_interval,
            retry_on_interruption,
            network: raw.network_configuration,
            family_prefix: raw.family_prefix,
            platform_version: raw.platform_version,
        })
    }

    /// The cluster's short name (for console URLs), from a name or an ARN.
    pub fn cluster_name(&self) -> &str {
        self.cluster.rsplit('/').next().unwrap_or(&self.cluster)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_full_fargate_connection() {
        let s = Settings::parse(json!({
            "cluster": "arn:aws:ecs:eu-west-1:123456789012:cluster/batch",
            "region": "eu-west-1",
            "launch_type": "fargate",
            "network_configuration": {"subnets": ["subnet-1"], "security_groups": ["sg-1"], "assign_public_ip": false},
        }))
        .unwrap();
        assert_eq!(s.launch, Launch::Type(aws_sdk_ecs::types::LaunchType::Fargate));
        assert_eq!(s.cluster_name(), "batch");
        assert_eq!(s.aws.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn bad_settings_say_what_to_fix() {
        for (v, says) in [
            (json!({}), "`cluster` is required"),
            (json!({"cluster": "c", "launch_type": "LAMBDA"}), "not FARGATE, EC2 or EXTERNAL"),
            (
                json!({"cluster": "c", "launch_type": "EC2", "capacity_provider_strategy": [{"capacity_provider": "x"}]}),
                "not both",
            ),
            (json!({"cluster": "c", "network_configuration": {"subnets": []}}), "at least one subnet"),
            (json!({"cluster": "c", "subnets": ["s"]}), "unknown field"),
            (json!({"cluster": "c", "retry_on_interruption": -1}), "from 0 to 10"),
            (json!({"cluster": "c", "retry_on_interruption": 11}), "from 0 to 10"),
        ] {
            let err = Settings::parse(v.clone()).unwrap_err();
            assert!(err.message().contains(says), "{v}: {err}");
        }
    }
}
