//! What a provider says about itself before the host calls anything else.

use serde::{Deserialize, Serialize};

/// The API version of the JSON payloads this crate defines. A host accepts
/// a plugin whose `api_version` has the same major version and a minor
/// version it knows how to talk to (see the host's loader).
pub const API_VERSION: &str = "1.4.0";

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

/// Declare a provider's connection settings once: the serde struct (every
/// field optional, unknown keys refused), its key list ([`KEYS`]) for
/// "the settings are ..." messages, and its manifest documentation
/// ([`docs`]) all come from the one declaration, so they cannot drift.
///
/// ```
/// polysync_provider_api::settings! {
///     /// The example provider's settings.
///     pub struct Settings {
///         /// the cluster's name
///         required cluster: String,
///         /// namespace of the Jobs (default: default)
///         optional namespace: String,
///     }
/// }
/// assert_eq!(Settings::KEYS, ["cluster", "namespace"]);
/// assert!(Settings::docs()[0].required);
/// ```
///
/// [`KEYS`]: #associatedconstant.KEYS
/// [`docs`]: #method.docs
#[macro_export]
macro_rules! settings {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $(
                #[doc = $doc:literal]
                $(#[$field_attr:meta])*
                $presence:ident $field:ident : $ty:ty,
            )*
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Default, $crate::__private::serde::Deserialize)]
        #[serde(crate = "polysync_provider_api::__private::serde", deny_unknown_fields)]
        $vis struct $name {
            $(
                #[doc = $doc]
                $(#[$field_attr])*
                pub $field: Option<$ty>,
            )*
        }

        impl $name {
            /// Every setting's name, in declaration order.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The manifest's documentation of these settings.
            pub fn docs() -> Vec<$crate::SettingDoc> {
                vec![$(
                    $crate::SettingDoc {
                        name: stringify!($field).into(),
                        required: $crate::settings!(@required $presence),
                        description: $doc.trim().into(),
                    }
                ),*]
            }
        }
    };
    (@required required) => { true };
    (@required optional) => { false };
}
