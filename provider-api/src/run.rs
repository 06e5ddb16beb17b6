//! Runs: parameterized reruns of catalog entries, and their normalized status.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::entry::FallbackAttributes;

/// Start a run of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    pub external_id: String,
    /// Parameter values overlaid on container[0]'s environment: an existing
    /// variable is replaced by name, a new one is appended.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Chosen by the host before it calls the provider, and recorded first.
    /// The same key always yields the same run: a retried `run` adopts what
    /// the first attempt created instead of starting a second one.
    pub idempotency_key: String,
    /// What the host stored at discovery time, for rebuilding a run whose
    /// source no longer exists on the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<FallbackAttributes>,
}

/// Where the spec of a run came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RunSource {
    /// Cloned from the live source object.
    #[default]
    Live,
    /// Rebuilt from the stored fallback attributes: the source was gone.
    Fallback,
    #[serde(other)]
    Unknown,
}

/// What `run` returns: the platform id of the new run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHandle {
    /// The new Job's name, or the ECS task ARN.
    pub run_id: String,
    pub external_id: String,
    #[serde(default)]
    pub source: RunSource,
    /// True when the run already existed for this idempotency key.
    #[serde(default)]
    pub adopted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_url: Option<String>,
}

/// The six normalized states every provider maps its platform's states to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RunState {
    Starting,
    Running,
    Success,
    Failed,
    Cancelled,
    #[serde(other)]
    Unknown,
}

/// The reason of an `Unknown` status that is final: the platform no longer
/// has the run (a Kubernetes Job deleted by `ttlSecondsAfterFinished` or a
/// person before anyone saw how it ended) and never will again. A host
/// stops following it. (API 1.3)
pub const REASON_VANISHED: &str = "Vanished";

impl RunState {
    /// Success, Failed and Cancelled are final: a run never leaves them.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::Failed | Self::Cancelled)
    }

    /// Position on the one-way path Starting → Running → terminal, used to
    /// check that a status never moves backwards. `Unknown` has no rank.
    pub fn rank(self) -> Option<u8> {
        match self {
            Self::Starting => Some(0),
            Self::Running => Some(1),
            Self::Success | Self::Failed | Self::Cancelled => Some(2),
            Self::Unknown => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "Starting",
            Self::Running => "Running",
            Self::Success => "Success",
            Self::Failed => "Failed",
            Self::Cancelled => "Cancelled",
            Self::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ask for the current status of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRequest {
    pub run_id: String,
}

/// A run's normalized status, with enough detail to say why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStatus {
    pub run_id: String,
    pub state: RunState,
    /// Short machine-ish reason (`BackoffLimitExceeded`, `ImagePullBackOff`,
    /// `EssentialContainerExited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Per pod / task detail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<UnitStatus>,
    /// What the run reported as its outputs (name → value), declared or
    /// not. Filled once the run is final. (API 1.3)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// Why some outputs could not be read (a malformed or over-long
    /// termination message, an unreadable log). It never changes `state`:
    /// a run that succeeded stays a success. (API 1.3)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_error: Option<String>,
}

impl RunStatus {
    pub fn new(run_id: impl Into<String>, state: RunState) -> Self {
        Self {
            run_id: run_id.into(),
            state,
            reason: None,
            message: None,
            started_at: None,
            finished_at: None,
            units: Vec::new(),
            outputs: BTreeMap::new(),
            output_error: None,
        }
    }
}

/// One pod of a Job, or one ECS task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitStatus {
    pub name: String,
    /// Pod phase or task lastStatus.
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub containers: Vec<ContainerStatus>,
    /// Why the pod (task) as a whole is where it is, when the platform says
    /// so: not scheduled (`Unschedulable`, with the scheduler's message),
    /// disrupted (`EvictionByEvictionAPI`, `DeletionByPodGC`,
    /// `PreemptionByScheduler`), or ended by the node (`Evicted`). API 1.4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One container's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub name: String,
    /// `waiting`, `running` or `terminated`.
    #[serde(default)]
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub restarts: u32,
    #[serde(default)]
    pub init: bool,
}

/// Stop a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Also remove a run that already finished (its Job and pods), as
    /// `--delete-after` does once logs are read. Without it a finished run
    /// is left alone so its logs stay readable. (API 1.1)
    #[serde(default)]
    pub delete: bool,
}

/// What `cancel` did. Cancelling a run that is already gone or finished
/// succeeds: cancel is idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The platform accepted the stop / delete.
    Cancelled,
    /// The run had already finished or was already gone.
    AlreadyDone,
    #[serde(other)]
    Unknown,
}

/// Watch a set of runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRequest {
    pub run_ids: Vec<String>,
}
