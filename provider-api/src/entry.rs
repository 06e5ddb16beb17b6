//! Catalog entries: what `discover` finds on a platform.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What kind of platform object an entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EntryKind {
    /// A Kubernetes `batch/v1` Job.
    Job,
    /// A Kubernetes `batch/v1` CronJob (runs are made from its `jobTemplate`).
    CronJob,
    /// An ECS task definition family.
    TaskDefinition,
    #[serde(other)]
    Unknown,
}

/// One job on the platform, as the host stores it in its catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// Stable id within the connection: the source Job's name, `cronjob/<name>`,
    /// or the ECS task definition family.
    pub external_id: String,
    pub kind: EntryKind,
    #[serde(default)]
    pub display_name: String,
    /// Kubernetes namespace, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Cluster name or ARN, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The run-time parameters: container[0]'s literal environment.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// Enough of the spec to run the entry again if the source disappears.
    #[serde(default)]
    pub fallback: FallbackAttributes,
    /// Changes whenever the part of the spec a run depends on changes.
    #[serde(default)]
    pub fingerprint: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One parameter of an entry. All values are strings; `data_type` is
/// informational for schedulers that display it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub data_type: DataType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl Parameter {
    /// An output the run reports (API 1.3).
    pub fn output(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            default: None,
            direction: Direction::Output,
            data_type: DataType::String,
            description: String::new(),
        }
    }

    /// An input string parameter with a default value.
    pub fn input(name: impl Into<String>, default: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            default: Some(default.into()),
            direction: Direction::Input,
            data_type: DataType::String,
            description: String::new(),
        }
    }
}

/// Which way a parameter's value flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Direction {
    /// Sent to the run (container[0]'s environment).
    #[default]
    Input,
    /// Produced by the run and read back into [`RunStatus::outputs`]. (API 1.3)
    ///
    /// [`RunStatus::outputs`]: crate::RunStatus::outputs
    Output,
    /// Sent to the run and updated from its outputs. An older host reads it
    /// as `Unknown` and treats the parameter as an input. (API 1.3)
    InputOutput,
    #[serde(other)]
    Unknown,
}

impl Direction {
    /// Whether a run takes a value for this parameter.
    pub fn is_input(self) -> bool {
        !matches!(self, Self::Output)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DataType {
    #[default]
    String,
    #[serde(other)]
    Unknown,
}

/// The attributes a run is rebuilt from when its source is gone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FallbackAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// The literal environment of the first container at discovery time,
    /// so a rebuilt run starts from the same defaults. (API 1.1)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The whole template the source ran from, minus what the platform
    /// owns (Kubernetes: the Job's `metadata` labels/annotations and
    /// `spec`), so a rerun of a deleted source is the same job — service
    /// account, volumes, init containers, `valueFrom`, restart policy — not
    /// a bare image + command. Opaque to the host, which stores it as is.
    /// (API 1.3)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<serde_json::Value>,
}

/// Ask for one page of entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverRequest {
    /// The `next_page_token` of the previous page; `None` starts a listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    /// Requested page size; the provider may return fewer (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
}

/// One page of entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverPage {
    #[serde(default)]
    pub entries: Vec<CatalogEntry>,
    /// `None` on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    /// True when the provider had to restart the listing from the beginning
    /// (for example a Kubernetes `410 Expired` continue token): entries
    /// already seen may come again and the host must de-duplicate.
    #[serde(default)]
    pub restarted: bool,
}
