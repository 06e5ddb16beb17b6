//! Requests and items of the streaming operations: logs, events, monitor URLs.

use serde::{Deserialize, Serialize};

use crate::run::ContainerStatus;

/// Container logs of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    pub run_id: String,
    /// Only this container (default: every container, init containers first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_lines: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
    /// Keep the stream open and deliver new output until the run ends.
    #[serde(default)]
    pub follow: bool,
}

/// A piece of one container's log. Text is decoded lossily as UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// Pod name or ECS task id.
    pub unit: String,
    pub container: String,
    pub text: String,
}

/// State changes of a run's pods or tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsRequest {
    pub run_id: String,
    /// Keep the stream open until the run ends (default: what has happened so far).
    #[serde(default)]
    pub follow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
    /// A platform event record (Kubernetes `Event`, ECS task state change).
    Platform,
    #[serde(other)]
    Unknown,
}

/// One observed change of a pod or task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEvent {
    pub run_id: String,
    pub kind: EventKind,
    /// Pod name or task id.
    pub unit: String,
    #[serde(default)]
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub containers: Vec<ContainerStatus>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// What a monitor URL is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "target", rename_all = "snake_case")]
pub enum UrlRequest {
    Entry { external_id: String },
    Run { run_id: String },
}

/// The console page for an entry or a run; `None` when the platform has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorUrl {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
