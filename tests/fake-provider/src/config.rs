//! Connection settings of the fake provider, validated with errors that name
//! the setting.

use std::time::Duration;

use polysync_provider_api::{ProviderError, Result};
use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub entries: usize,
    pub namespace: String,
    pub tick: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self { entries: 250, namespace: "fake".into(), tick: Duration::from_millis(20) }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    entries: Option<usize>,
    namespace: Option<String>,
    tick_ms: Option<u64>,
}

impl FakeConfig {
    pub fn from_json(value: serde_json::Value) -> Result<Self> {
        let raw: Raw = serde_json::from_value(value).map_err(|e| {
            ProviderError::invalid_input(format!(
                "fake connection settings: {e}; the settings are entries, namespace and tick_ms"
            ))
        })?;
        let mut config = Self::default();
        if let Some(n) = raw.entries {
            if n > 1_000_000 {
                return Err(ProviderError::invalid_input("setting `entries` must be at most 1000000"));
            }
            config.entries = n;
        }
        if let Some(ns) = raw.namespace {
            config.namespace = ns;
        }
        if let Some(ms) = raw.tick_ms {
            if ms == 0 {
                return Err(ProviderError::invalid_input("setting `tick_ms` must be at least 1"));
            }
            config.tick = Duration::from_millis(ms);
        }
        Ok(config)
    }
}
