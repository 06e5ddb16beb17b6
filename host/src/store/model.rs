//! What the store keeps, as typed values: every engine reads and writes
//! these, and the workflows and renderers see nothing else.

use std::collections::BTreeMap;

use polysync_provider_api::{CatalogEntry, RunStatus};
use serde::{Deserialize, Serialize};

use crate::stamp::Stamp;

/// The state of a run as the host keeps it: the provider's normalized
/// states plus the host's own (before submission, and after the platform
/// lost the run). Adding a state means a variant here, its word in
/// [`RunState::as_str`]/[`RunState::parse`], and nothing else: the stores
/// keep the word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(
    description = "Where a run is. Final: SubmitFailed (the platform refused it; nothing was created), Withdrawn (cancelled before it was submitted), Success, Failed, Cancelled, Lost (the platform lost it before its end was seen). Not final: Submitting (recorded; the platform has not confirmed it), Starting (submitted; no container running yet), Running, Unknown (the platform's state cannot be read now)."
)]
pub enum RunState {
    /// Recorded; the platform has not (yet) confirmed it.
    Submitting,
    /// The provider refused the run; nothing was created.
    SubmitFailed,
    /// A pending submission the user withdrew: final, never submitted again.
    Withdrawn,
    Starting,
    Running,
    Success,
    Failed,
    Cancelled,
    Unknown,
    /// The platform lost the run before its end was seen (a Job deleted by
    /// its TTL before anyone watched): final, with the last state seen in
    /// the reason.
    Lost,
}

impl RunState {
    /// Every state, in the order a run can go through them.
    pub const ALL: [Self; 10] = [
        Self::Submitting,
        Self::SubmitFailed,
        Self::Withdrawn,
        Self::Starting,
        Self::Running,
        Self::Success,
        Self::Failed,
        Self::Cancelled,
        Self::Unknown,
        Self::Lost,
    ];

    /// The stored and printed word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitting => "Submitting",
            Self::SubmitFailed => "SubmitFailed",
            Self::Withdrawn => "Withdrawn",
            Self::Starting => "Starting",
            Self::Running => "Running",
            Self::Success => "Success",
            Self::Failed => "Failed",
            Self::Cancelled => "Cancelled",
            Self::Unknown => "Unknown",
            Self::Lost => "Lost",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == word)
    }

    /// Finished for good: nothing moves it again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failed | Self::Cancelled | Self::SubmitFailed | Self::Lost | Self::Withdrawn
        )
    }

    /// The host state for a provider's normalized state.
    pub fn from_api(state: polysync_provider_api::RunState) -> Self {
        use polysync_provider_api::RunState as Api;
        match state {
            Api::Starting => Self::Starting,
            Api::Running => Self::Running,
            Api::Success => Self::Success,
            Api::Failed => Self::Failed,
            Api::Cancelled => Self::Cancelled,
            _ => Self::Unknown,
        }
    }

    /// The words of the final states, for queries.
    pub fn finals() -> impl Iterator<Item = &'static str> {
        Self::ALL.into_iter().filter(|s| s.is_final()).map(Self::as_str)
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a finished run's Job (or task) is deleted from the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeleteAfter {
    /// Not chosen: kept, except a run that never started (its pending pod
    /// holds quota) is deleted when its startup timeout fails it.
    #[default]
    Default,
    /// Never deleted, not even after a startup timeout.
    Never,
    /// Deleted once it succeeded.
    Success,
    /// Deleted once it ended, whatever the outcome.
    Always,
}

impl DeleteAfter {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Never => "never",
            Self::Success => "success",
            Self::Always => "always",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "default" => Self::Default,
            "never" => Self::Never,
            "success" => Self::Success,
            "always" => Self::Always,
            _ => return None,
        })
    }

    /// Whether a run that ended in `state` is deleted.
    pub fn deletes(self, state: RunState) -> bool {
        match self {
            Self::Always => state != RunState::Lost,
            Self::Success => state == RunState::Success,
            Self::Default | Self::Never => false,
        }
    }
}

/// Whether an entry was seen by the latest complete sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    Active,
    Missing,
}

impl EntryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Missing => "missing",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "active" => Some(Self::Active),
            "missing" => Some(Self::Missing),
            _ => None,
        }
    }
}

/// An entry as the catalog keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEntry {
    pub connection: String,
    #[serde(flatten)]
    pub entry: CatalogEntry,
    pub state: EntryState,
    pub first_seen: Stamp,
    pub last_seen: Stamp,
}

/// What one page did to the catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PageCounts {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// Where a run's spec came from.
// Stored as its name (`as_str`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SpecSource {
    /// The source object as the platform has it now.
    Live,
    /// The attributes the catalog kept: the source object was gone.
    Fallback,
}

impl SpecSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "Live",
            Self::Fallback => "Fallback",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "Live" => Some(Self::Live),
            "Fallback" => Some(Self::Fallback),
            _ => None,
        }
    }

    /// What a plugin said; a source this host does not know is not stored.
    pub fn of(source: polysync_provider_api::RunSource) -> Option<Self> {
        match source {
            polysync_provider_api::RunSource::Live => Some(Self::Live),
            polysync_provider_api::RunSource::Fallback => Some(Self::Fallback),
            _ => None,
        }
    }
}

/// Where a sync is; stored as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncStatus {
    /// Reading pages.
    #[default]
    Running,
    /// Every page read; entries it did not see are marked missing.
    Complete,
    /// Stopped by an error, or its host went away; nothing marked missing.
    Failed,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Complete => "complete",
            Self::Failed => "failed",
        }
    }

    /// How a sync that read `complete`ly (or not) ends.
    pub fn ended(complete: bool) -> Self {
        if complete { Self::Complete } else { Self::Failed }
    }

    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "running" => Some(Self::Running),
            "complete" => Some(Self::Complete),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One sync, as recorded.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SyncRecord {
    pub id: i64,
    pub connection: String,
    pub status: SyncStatus,
    pub pages: u64,
    pub seen: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub missing: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A run to record before the provider is called.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub connection: String,
    pub external_id: String,
    pub idempotency_key: String,
    pub parameters: BTreeMap<String, String>,
    pub delete_after: DeleteAfter,
    pub startup_timeout: Option<std::time::Duration>,
    /// Where the run's final status is POSTed.
    pub callback_url: Option<String>,
}

/// A run as the catalog keeps it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredRun {
    /// The catalog's own number for the run.
    pub id: i64,
    pub connection: String,
    pub external_id: String,
    pub idempotency_key: String,
    pub parameters: BTreeMap<String, String>,
    /// The platform's id (Job name, task ARN) once submitted.
    pub run_id: Option<String>,
    pub state: RunState,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub source: Option<SpecSource>,
    pub monitor_url: Option<String>,
    pub delete_after: DeleteAfter,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Stamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Stamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Stamp>,
    /// When it was first seen running (or, for a run that ended before it
    /// was seen running, when the platform says it started).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Stamp>,
    /// The exit code of each container that ended, by `unit/container`
    /// (pod or task, then container).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exit_codes: BTreeMap<String, i32>,
    /// Fail the run if it is still Starting this long after submission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_timeout_ms: Option<i64>,
    /// Where the run's final status is POSTed (signed), once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// The host that follows the run while its lease lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub owner: Option<super::HostId>,
    /// What the run reported as outputs (API 1.3 providers), once final.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// Why some outputs could not be read; the run's state is unaffected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_error: Option<String>,
    /// Its logs are archived and its delete-after applied: nothing is left
    /// to do for it.
    #[serde(skip)]
    pub finalized: bool,
}

/// What [`Store::heartbeat`](super::Store::heartbeat) found.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// Whether the host had a heartbeat before this one.
    pub known: bool,
    /// Whether that heartbeat had lapsed: other hosts may have taken over
    /// runs it held (check them with
    /// [`Store::renew_leases`](super::Store::renew_leases)).
    pub lapsed: bool,
    /// Those of the runs taken on that are still the host's.
    pub kept: Vec<i64>,
}

/// What [`Store::record_intent`](super::Store::record_intent) did.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub run: StoredRun,
    /// False when the idempotency key named a run recorded before.
    pub created: bool,
}

impl StoredRun {
    /// Finished for good (terminal, never submitted, or lost).
    pub fn is_final(&self) -> bool {
        self.state.is_final()
    }

    pub fn succeeded(&self) -> bool {
        self.state == RunState::Success
    }
}

/// Which runs to list (newest first).
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub connection: Option<String>,
    pub external_id: Option<String>,
    pub state: Option<RunState>,
    /// Only runs numbered below this (paging back through history).
    pub before: Option<i64>,
    /// Only runs a host still has work for: active, or ended but not yet
    /// finished (logs archived, delete-after applied).
    pub open: bool,
    pub limit: Option<usize>,
}

/// Which entries to list (by connection, then id).
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    pub connection: Option<String>,
    pub state: Option<EntryState>,
    /// Only entries after this (connection, external id): paging.
    pub after: Option<(String, String)>,
    pub limit: Option<usize>,
}

/// The reason of a vanished run begins so; the state last seen follows.
pub(crate) const VANISHED_AFTER: &str = "Vanished after ";

/// The state a status moves a run to, and its reason: a vanished run
/// becomes `Lost`, keeping the state last seen.
pub fn next_state(current: RunState, status: &RunStatus) -> (RunState, Option<String>, bool) {
    if vanished(status) {
        (RunState::Lost, Some(format!("{VANISHED_AFTER}{current}")), true)
    } else {
        let state = RunState::from_api(status.state);
        (state, status.reason.clone(), state.is_final())
    }
}

/// The message a sync whose owner went away is closed with (both engines).
pub(crate) const INTERRUPTED: &str =
    "interrupted: the process running it ended before it finished; nothing was marked missing";

/// The reason of a run polysync cancelled (see `Store::mark_cancelling`).
pub const CANCELLED_BY_USER: &str = "CancelledByUser";

/// The reason of a run withdrawn before it reached the platform (see
/// `Store::withdraw`).
pub const WITHDRAWN_BY_USER: &str = "WithdrawnByUser";

/// The platform no longer has the run (its Job or task is gone).
pub fn vanished(status: &RunStatus) -> bool {
    status.state == polysync_provider_api::RunState::Unknown
        && status.reason.as_deref() == Some(polysync_provider_api::REASON_VANISHED)
}

/// Now in milliseconds since the epoch (lease expiries).
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// When a status says the run started, for a run not yet known to have:
/// the first time it is seen running (`at`), or, for a run seen only once
/// it had ended, the platform's start time (a container that exited did
/// run).
pub(crate) fn started_at(status: &RunStatus, at: Stamp) -> Option<Stamp> {
    let ran = status.units.iter().flat_map(|u| &u.containers).any(|c| c.exit_code.is_some() && !c.init);
    match status.state {
        polysync_provider_api::RunState::Running => Some(at),
        s if s.is_terminal() && ran => Some(platform_time(status.started_at.as_deref(), at)),
        _ => None,
    }
}

/// When a final status says the run ended: the platform's time, else `at`.
pub(crate) fn finished_at(status: &RunStatus, at: Stamp) -> Stamp {
    platform_time(status.finished_at.as_deref(), at)
}

/// A platform's RFC 3339 time, or `at` when it gave none or one that is
/// not a time. (The stores also keep a platform time, often whole seconds,
/// from going before the run's own creation: see `record_status`.)
fn platform_time(text: Option<&str>, at: Stamp) -> Stamp {
    text.and_then(Stamp::parse).unwrap_or(at)
}

/// The exit codes of a status's containers (`unit/container` → code), as
/// both stores keep them (a JSON object); `None` when there are none, so an
/// update keeps what is stored.
pub(crate) fn exit_codes_json(status: &RunStatus) -> Option<String> {
    let codes: BTreeMap<String, i32> = status
        .units
        .iter()
        .flat_map(|u| u.containers.iter().filter(|c| !c.init).map(move |c| (u, c)))
        .filter_map(|(u, c)| c.exit_code.map(|code| (format!("{}/{}", u.name, c.name), code)))
        .collect();
    (!codes.is_empty()).then(|| serde_json::to_string(&codes).unwrap_or_default())
}

/// A status's outputs as both stores keep them (a JSON object); `None`
/// when it has none, so an update keeps what is stored.
pub(crate) fn outputs_json(status: &polysync_provider_api::RunStatus) -> Option<String> {
    (!status.outputs.is_empty()).then(|| serde_json::to_string(&status.outputs).unwrap_or_default())
}

/// A migration that does not apply ("duplicate column name", "already
/// exists", "no such column"): the tables are not those of the version the
/// catalog says it has — another polysync, newer or changed, wrote them.
/// Nothing was changed (the migration's transaction rolled back).
pub(crate) fn out_of_step(shown: impl std::fmt::Display, version: usize, why: &str) -> crate::Error {
    crate::Error::InvalidInput(format!(
        "the catalog {shown} says schema version {version}, but its tables are not that version's ({why}): another polysync, likely a newer one, changed them; use the polysync that wrote it, or another catalog. Nothing was changed"
    ))
}

/// Redaction of what the store keeps (the store knows the names that are
/// secret; the names know nothing of the store).
impl crate::secrets::SecretNames {
    /// The entry with secret values redacted: parameter defaults, the
    /// fallback env, and `env` values in the stored template.
    pub fn entry(&self, stored: &StoredEntry) -> StoredEntry {
        let mut out = stored.clone();
        crate::secrets::redact_entry(self, &mut out.entry);
        out
    }

    /// The run with secret parameter and output values redacted.
    pub fn run(&self, run: &StoredRun) -> StoredRun {
        let mut out = run.clone();
        self.redact_values(&mut out.parameters);
        self.redact_values(&mut out.outputs);
        out
    }
}
