//! What a provider says about itself before the host calls anything else.

use serde::{Deserialize, Serialize};

/// The API version of the JSON payloads this crate defines. A host accepts
/// a plugin whose `api_version` has the same major version and a minor
/// version it knows how to talk to (see the host's loader).
pub const API_VERSION: &str = "1.2.0";

/// A provider's self-description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The provider name connections refer to (`kubernetes`, `aks`, ...).
    pub name: String,
    /// The plugin's own version (its crate version).
    pub version: String,
    /// The contract version the plugin was built against ([`API_VERSION`]).
    pub api_version: String,
    /// One line for `polysync plugins`.
    #[serde(default)]
    pub description: String,
    /// The connection settings the provider accepts, for help text.
    #[serde(default)]
    pub settings: Vec<SettingDoc>,
    /// Optional capabilities beyond the core operations.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

/// Documentation of one connection setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingDoc {
    pub name: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: String,
}

impl SettingDoc {
    /// A setting the connection must have.
    pub fn required(name: &str, description: &str) -> Self {
        Self { name: name.into(), required: true, description: description.into() }
    }

    /// A setting with a default.
    pub fn optional(name: &str, description: &str) -> Self {
        Self { name: name.into(), required: false, description: description.into() }
    }
}

/// Optional behaviour a provider may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Capability {
    /// `watch` pushes changes from the platform instead of polling.
    PushWatch,
    /// `logs` supports `follow`.
    FollowLogs,
    /// Runs can be rebuilt from fallback attributes when the source is gone.
    FallbackRun,
    /// `list_clusters` lists the clusters the credentials reach (API 1.2).
    ListClusters,
    #[serde(other)]
    Unknown,
}

impl Manifest {
    /// A manifest for `name` built against this crate's [`API_VERSION`].
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            api_version: API_VERSION.to_owned(),
            description: String::new(),
            settings: Vec::new(),
            capabilities: Vec::new(),
        }
    }
}
