//! Parameters whose names say they hold secrets (`DB_PASSWORD`, `API_TOKEN`,
//! `AWS_SECRET_ACCESS_KEY`, ...): their values are shown as `<redacted>` —
//! in entries, their stored templates and runs — unless the caller asks for
//! them explicitly (`--show-secrets`). The name patterns are configurable
//! (`secret_patterns` in the config file).

use polysync_provider_api::CatalogEntry;

/// What a redacted value reads as.
pub const REDACTED: &str = "<redacted>";

/// Name fragments that mark a secret (case-insensitive), by default.
pub const DEFAULT_PATTERNS: [&str; 8] =
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE", "AUTH"];

/// Which parameter names are secret.
#[derive(Debug, Clone)]
pub struct SecretNames(Vec<String>);

impl Default for SecretNames {
    fn default() -> Self {
        Self(DEFAULT_PATTERNS.iter().map(|p| (*p).to_owned()).collect())
    }
}

impl SecretNames {
    pub fn new(patterns: Vec<String>) -> Self {
        Self(patterns.into_iter().map(|p| p.to_ascii_uppercase()).collect())
    }

    pub fn is_secret(&self, name: &str) -> bool {
        let upper = name.to_ascii_uppercase();
        self.0.iter().any(|p| upper.contains(p.as_str()))
    }

    /// `values` (parameters, outputs) with the secret ones redacted.
    pub fn redact_values(&self, values: &mut std::collections::BTreeMap<String, String>) {
        for (k, v) in values.iter_mut() {
            if self.is_secret(k) {
                *v = REDACTED.to_owned();
            }
        }
    }
}

/// `entry` with secret values redacted: parameter defaults, the fallback
/// env, and `env` values in the stored template.
pub fn redact_entry(names: &SecretNames, entry: &mut CatalogEntry) {
    for p in &mut entry.parameters {
        if names.is_secret(&p.name) && p.default.is_some() {
            p.default = Some(REDACTED.to_owned());
        }
    }
    for (k, v) in entry.fallback.env.iter_mut() {
        if names.is_secret(k) {
            *v = REDACTED.to_owned();
        }
    }
    if let Some(template) = entry.fallback.template.as_mut() {
        redact_env_values(names, template);
    }
}

/// Every `{"name": N, "value": V}` with a secret N, anywhere in `value`.
fn redact_env_values(names: &SecretNames, value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let secret = map.get("name").and_then(|n| n.as_str()).is_some_and(|n| names.is_secret(n));
            if secret && map.get("value").is_some_and(serde_json::Value::is_string) {
                map.insert("value".into(), serde_json::Value::String(REDACTED.into()));
            }
            for v in map.values_mut() {
                redact_env_values(names, v);
            }
        }
        serde_json::Value::Array(list) => list.iter_mut().for_each(|v| redact_env_values(names, v)),
        _ => {}
    }
}
