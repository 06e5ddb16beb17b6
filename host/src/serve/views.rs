//! What `/v1` answers and takes, as the OpenAPI document declares it: the
//! API's own shapes, made from the catalog's typed values. They are kept
//! apart from the store's types so the wire names are chosen for callers
//! (`entry`, `platform_id`, `final`, `links`) and the store can change
//! without changing the API. Descriptions here are the document's, so they
//! speak of the API, not of the code.

use std::collections::BTreeMap;

use polysync_provider_api::{CancelOutcome, ContainerStatus, RunEvent};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use crate::runs::{RunLinks, RunView};
use crate::runs::{entry_path, segment};
use crate::store::{DeleteAfter, EntryState, RunState, Stamp, StoredEntry, SyncRecord, SyncStatus};

/// A configured connection: its name and provider (never its settings).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub name: String,
    /// The provider plugin that serves it (`kubernetes`, `aks`, `eks`, `ecs`).
    pub provider: String,
}

/// A connection test: it connected, and these are the first entries it found.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestView {
    pub connection: String,
    pub ok: bool,
    /// Up to five entry ids.
    pub sample: Vec<String>,
}

/// A cluster a cloud connection's credentials reach.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    pub name: String,
    /// The region or location.
    pub location: String,
    /// The cloud's id for it (an ARN, an Azure resource id), when it has one.
    #[schema(required = true)]
    pub id: Option<String>,
}

/// A discovery of one connection: its progress, then its result.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncView {
    /// The sync's number (the `{id}` of `/v1/syncs/{id}`).
    pub id: i64,
    pub connection: String,
    pub status: SyncStatus,
    /// Pages of entries read so far.
    pub pages: u64,
    /// Entries seen so far.
    pub seen: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Entries of the catalog not seen by a complete sync (marked `missing`).
    pub missing: u64,
    /// Why it failed.
    #[schema(required = true)]
    pub error: Option<String>,
    pub links: SyncLinks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncLinks {
    #[serde(rename = "self")]
    pub self_: String,
    /// The catalog's entries of this connection.
    pub entries: String,
}

impl SyncView {
    pub fn of(record: SyncRecord) -> Self {
        let status = record.status;
        Self {
            links: SyncLinks {
                self_: format!("/v1/syncs/{}", record.id),
                entries: format!("/v1/entries?connection={}", segment(&record.connection)),
            },
            id: record.id,
            connection: record.connection,
            status,
            pages: record.pages,
            seen: record.seen,
            added: record.added,
            updated: record.updated,
            unchanged: record.unchanged,
            missing: record.missing,
            error: record.error,
        }
    }
}

/// One parameter of an entry. The default of a secret one reads `<redacted>`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParameterView {
    pub name: String,
    #[schema(required = true)]
    pub default: Option<String>,
    /// `Input`, or `Output` (a value the run reports back).
    pub direction: String,
    /// `String` (every value is text today).
    pub data_type: String,
    /// What it is for, when the platform says.
    #[schema(required = true)]
    pub description: Option<String>,
}

/// A catalog entry: a batch job found on a platform, which runs rerun.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    pub connection: String,
    /// The entry's id within its connection (`cronjob/nightly`,
    /// `job/report`, a task definition family). With `connection` it names
    /// the entry everywhere: in runs, in `POST /v1/runs`, in filters.
    pub entry: String,
    /// What it is on the platform: `Job`, `CronJob` or `TaskDefinition`.
    pub kind: String,
    pub display_name: String,
    #[schema(required = true)]
    pub namespace: Option<String>,
    #[schema(required = true)]
    pub cluster: Option<String>,
    pub parameters: Vec<ParameterView>,
    pub labels: BTreeMap<String, String>,
    pub state: EntryState,
    #[schema(value_type = String, format = DateTime)]
    pub first_seen: Stamp,
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: Stamp,
    pub links: EntryLinks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntryLinks {
    #[serde(rename = "self")]
    pub self_: String,
    /// Its runs, newest first.
    pub runs: String,
}

impl EntryView {
    /// `stored` as the API shows it (secret defaults already redacted).
    pub fn of(stored: StoredEntry) -> Self {
        let word = |v: serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_default();
        let e = stored.entry;
        Self {
            links: EntryLinks {
                self_: entry_path(&stored.connection, &e.external_id),
                runs: format!("/v1/runs?connection={}&entry={}", segment(&stored.connection), segment(&e.external_id)),
            },
            connection: stored.connection,
            kind: word(serde_json::to_value(e.kind).unwrap_or_default()),
            entry: e.external_id,
            display_name: e.display_name,
            namespace: e.namespace,
            cluster: e.cluster,
            parameters: e
                .parameters
                .into_iter()
                .map(|p| ParameterView {
                    name: p.name,
                    default: p.default,
                    direction: word(serde_json::to_value(p.direction).unwrap_or_default()),
                    data_type: word(serde_json::to_value(p.data_type).unwrap_or_default()),
                    description: Some(p.description).filter(|d| !d.is_empty()),
                })
                .collect(),
            labels: e.labels,
            state: stored.state,
            first_seen: stored.first_seen,
            last_seen: stored.last_seen,
        }
    }
}

/// A page of entries; `next_after` continues it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryList {
    pub entries: Vec<EntryView>,
    /// Pass as `after` for the next page; null on the last one.
    #[schema(required = true)]
    pub next_after: Option<String>,
}

/// A page of runs, newest first; `next_before` continues it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunView>,
    /// Pass as `before` for the next page; null on the last one.
    #[schema(required = true)]
    pub next_before: Option<i64>,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum CancelResult {
    /// It was never submitted: withdrawn, and it never will be.
    Withdrawn,
    /// The platform stopped it.
    Cancelled,
    /// It had already ended (or was already gone): nothing was stopped.
    AlreadyDone,
}

impl CancelResult {
    pub fn of(outcome: CancelOutcome) -> Self {
        match outcome {
            CancelOutcome::Cancelled => Self::Cancelled,
            _ => Self::AlreadyDone,
        }
    }
}

/// A cancel's result and the run after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelView {
    pub outcome: CancelResult,
    pub run: RunView,
}

/// One Server-Sent Event of a stream, as a client parses it: `event`
/// names it, `data` is one JSON document, `id` marks its place.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerSentEvent {
    /// `status` (`data`: a `RunView`), `event` (`data`: an `EventView`), or
    /// `error` (`data`: a `Problem`; the stream ends).
    pub event: String,
    /// One JSON document, as text.
    #[schema(content_media_type = "application/json")]
    pub data: String,
    /// On status streams: `<run id>:<updated_at>`.
    pub id: Option<String>,
}

/// A run to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    pub connection: String,
    /// The entry to rerun (an `entry` of `GET /v1/entries`).
    pub entry: String,
    /// Values for the entry's parameters, by name; the others keep their
    /// defaults.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// When the platform's Job (or task) is deleted: kept by default.
    #[serde(default)]
    pub delete_after: Option<DeleteAfter>,
    /// Fail the run if it has not started this long after submission
    /// (`"10m"`, `"90s"`: 1-4 digits and a unit, ms, s, m or h).
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{1,4}(ms|s|m|h)$")]
    pub startup_timeout: Option<String>,
    /// Where the run's final status is POSTed, signed with the server's
    /// callback secret (`http://` or `https://`). A server without a
    /// callback secret refuses it (422).
    #[serde(default)]
    #[schema(format = "uri", pattern = r"^https?://[^/?#\s]+")]
    pub callback_url: Option<String>,
}

/// One of a run's platform events (a pod scheduled, an image pulled, a
/// container started or ended, a task stopped).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// The run's `platform_id`.
    pub platform_id: String,
    /// `Added`, `Modified` or `Deleted` (the unit), or `Platform` (an
    /// event the platform recorded: a Kubernetes Event, an ECS state change).
    pub kind: String,
    /// The pod or task.
    pub unit: String,
    pub phase: String,
    #[schema(required = true)]
    pub reason: Option<String>,
    #[schema(required = true)]
    pub message: Option<String>,
    pub containers: Vec<ContainerView>,
    #[schema(required = true, format = DateTime)]
    pub at: Option<String>,
}

/// One container of a unit.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContainerView {
    pub name: String,
    /// `waiting`, `running` or `terminated`.
    pub state: String,
    #[schema(required = true)]
    pub reason: Option<String>,
    #[schema(required = true)]
    pub message: Option<String>,
    #[schema(required = true)]
    pub exit_code: Option<i32>,
    pub restarts: u32,
    /// An init (or sidecar) container.
    pub init: bool,
}

impl EventView {
    pub fn of(e: RunEvent) -> Self {
        let word = |v: serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_default();
        Self {
            platform_id: e.run_id,
            kind: word(serde_json::to_value(e.kind).unwrap_or_default()),
            unit: e.unit,
            phase: e.phase,
            reason: e.reason,
            message: e.message,
            containers: e.containers.into_iter().map(ContainerView::of).collect(),
            at: e.at,
        }
    }
}

impl ContainerView {
    fn of(c: ContainerStatus) -> Self {
        Self {
            name: c.name,
            state: c.state,
            reason: c.reason,
            message: c.message,
            exit_code: c.exit_code,
            restarts: c.restarts,
            init: c.init,
        }
    }
}

// ---- queries: what the handlers parse is what the document declares

/// Filters of the entry list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntryQuery {
    /// Only this connection's entries.
    pub connection: Option<String>,
    /// Only entries in this state.
    pub state: Option<EntryState>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u16>,
    /// Continue after this: the `next_after` of the previous page.
    #[param(pattern = "^[^/]+/")]
    pub after: Option<String>,
}

/// Filters of the run list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Only this connection's runs.
    pub connection: Option<String>,
    /// Only the runs of this entry.
    pub entry: Option<String>,
    /// Only runs in this state.
    pub state: Option<RunState>,
    /// Only the run created with this `Idempotency-Key` (at most one): how
    /// a scheduler finds the run an earlier attempt of its task created.
    #[param(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u16>,
    /// Only runs numbered below this: the `next_before` of the previous page.
    #[param(minimum = 1)]
    pub before: Option<i64>,
}

/// How to read a run's logs.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Stream until the run ends.
    pub follow: Option<bool>,
    /// Only this container (by default: every container of every unit).
    #[param(pattern = "^[A-Za-z0-9_-]{1,255}$")]
    pub container: Option<String>,
    /// Only the last lines of each container.
    #[param(minimum = 0, maximum = 1000000)]
    pub tail: Option<u64>,
}

/// Whether `text` is a startup timeout as the document writes it (1-4
/// digits and a unit): what the pattern of `CreateRun.startup_timeout`
/// allows is exactly what is accepted.
pub fn is_startup_timeout(text: &str) -> bool {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    (1..=4).contains(&digits) && matches!(&text[digits..], "ms" | "s" | "m" | "h")
}

/// The largest page.
pub const MAX_LIMIT: u16 = 1000;
