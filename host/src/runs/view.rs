//! The run as every answer, stream and callback shows it: the API's shape
//! of a [`StoredRun`], named for schedulers (`entry`, `platform_id`,
//! `final`, `exit_code`, `links`). It lives with the workflows because the
//! completion callback sends it too; the server's other shapes are in
//! `serve`.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{DeleteAfter, RunState, SpecSource, Stamp, StoredRun};

/// What stays as it is in a path segment: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `value` as one path segment (`cronjob/x` → `cronjob%2Fx`).
pub fn segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// A run: what was asked, where it is on the platform, and how it ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    /// polysync's number for the run: the `{id}` of its URLs.
    pub id: i64,
    pub connection: String,
    /// The catalog entry it reruns.
    pub entry: String,
    /// The `Idempotency-Key` it was created with (or one polysync made).
    pub idempotency_key: String,
    /// The values it was started with, by name; secret ones read `<redacted>`.
    pub parameters: BTreeMap<String, String>,
    /// The platform's name for it (the Job's name, the ECS task's ARN),
    /// once submitted. Not a scheduler's run id: that is `idempotency_key`.
    #[schema(required = true)]
    pub platform_id: Option<String>,
    pub state: RunState,
    /// Whether `state` is final: nothing changes the run any more.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Why it is in this state (`BackoffLimitExceeded`, `Unschedulable`,
    /// `FailedCreate`, `CancelledByUser`, ...).
    #[schema(required = true)]
    pub reason: Option<String>,
    /// The platform's words about it.
    #[schema(required = true)]
    pub message: Option<String>,
    /// Where its spec came from: the source object as it is now, or the
    /// attributes the catalog kept when the source was gone. Null until
    /// submitted.
    #[schema(required = true)]
    pub source: Option<SpecSource>,
    pub delete_after: DeleteAfter,
    /// Fail it if it has not started this long after submission.
    #[schema(required = true)]
    pub startup_timeout_ms: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Stamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Stamp,
    /// When it was first seen running.
    #[schema(required = true, value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Stamp>,
    #[schema(required = true, value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Stamp>,
    /// Once final: 0 when it succeeded, else the first non-zero exit code
    /// of its containers; null when none exited (it never started, or was
    /// stopped from outside).
    #[schema(required = true)]
    pub exit_code: Option<i32>,
    /// Each container's exit code, by `unit/container` (pod or task, then
    /// container): the attempts of a retried run included.
    pub exit_codes: BTreeMap<String, i32>,
    /// What the run reported back, by name (empty until it is final);
    /// secret ones read `<redacted>`.
    pub outputs: BTreeMap<String, String>,
    /// Why some outputs could not be read (the run's state is unaffected).
    #[schema(required = true)]
    pub output_error: Option<String>,
    /// Where its final status is POSTed.
    #[schema(required = true)]
    pub callback_url: Option<String>,
    pub links: RunLinks,
}

/// Where to find the run and what belongs to it (paths on this server, and
/// the platform's console).
#[derive(Debug, Serialize, ToSchema)]
pub struct RunLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub logs: String,
    /// Its platform events, as Server-Sent Events.
    pub events: String,
    /// Its status changes, as Server-Sent Events.
    pub status_stream: String,
    /// `POST` to cancel it.
    pub cancel: String,
    pub entry: String,
    /// The platform's console page for it, when it has one.
    #[schema(required = true)]
    pub console: Option<String>,
}

impl RunView {
    /// `run` as the API shows it (secret values already redacted).
    pub fn of(run: StoredRun) -> Self {
        let exit_code = exit_code(&run);
        let base = format!("/v1/runs/{}", run.id);
        Self {
            links: RunLinks {
                logs: format!("{base}/logs"),
                events: format!("{base}/events"),
                status_stream: format!("{base}/status-stream"),
                cancel: format!("{base}/cancel"),
                entry: entry_path(&run.connection, &run.external_id),
                console: run.monitor_url,
                self_: base,
            },
            id: run.id,
            connection: run.connection,
            entry: run.external_id,
            idempotency_key: run.idempotency_key,
            parameters: run.parameters,
            platform_id: run.run_id,
            is_final: run.state.is_final(),
            state: run.state,
            reason: run.reason,
            message: run.message,
            source: run.source,
            delete_after: run.delete_after,
            startup_timeout_ms: run.startup_timeout_ms,
            created_at: run.created_at,
            updated_at: run.updated_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
            exit_code,
            exit_codes: run.exit_codes,
            outputs: run.outputs,
            output_error: run.output_error,
            callback_url: run.callback_url,
        }
    }
}

/// The run's one exit code, as a scheduler's task would have it.
fn exit_code(run: &StoredRun) -> Option<i32> {
    match run.state {
        RunState::Success => Some(0),
        s if s.is_final() => run.exit_codes.values().copied().find(|c| *c != 0),
        _ => None,
    }
}

pub fn entry_path(connection: &str, entry: &str) -> String {
    format!("/v1/connections/{}/entries/{}", segment(connection), segment(entry))
}
