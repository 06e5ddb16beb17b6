//! Runs: recorded before the provider is called, updated after.

use std::collections::BTreeMap;

use polysync_provider_api::{RunHandle, RunState, RunStatus};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Catalog, now};
use crate::error::Result;

/// The state of a run not yet known to the platform.
pub const SUBMITTING: &str = "Submitting";
/// The provider refused the run; nothing was created.
pub const SUBMIT_FAILED: &str = "SubmitFailed";
/// A pending submission the user withdrew (`polysync cancel`): final, never
/// submitted again.
pub const WITHDRAWN: &str = "Withdrawn";
/// The platform lost the run before its end was seen (a Job deleted by its
/// TTL before anyone watched): final, with the last state seen in `reason`.
pub const LOST: &str = "Lost";

/// A run as the catalog keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRun {
    /// The catalog's own number for the run.
    pub id: i64,
    pub connection: String,
    pub external_id: String,
    pub idempotency_key: String,
    pub parameters: BTreeMap<String, String>,
    /// The platform's id (Job name, task ARN) once submitted.
    pub run_id: Option<String>,
    /// `Submitting`, `SubmitFailed`, or a normalized run state.
    pub state: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub source: Option<String>,
    pub monitor_url: Option<String>,
    pub delete_after: String,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    /// Fail the run if it is still Starting this long after submission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_timeout_ms: Option<i64>,
}

impl StoredRun {
    /// Finished for good (terminal, never submitted, or lost).
    pub fn is_final(&self) -> bool {
        matches!(self.state.as_str(), "Success" | "Failed" | "Cancelled" | SUBMIT_FAILED | LOST | WITHDRAWN)
    }

    /// The exit code of a CLI that waited for this run.
    pub fn succeeded(&self) -> bool {
        self.state == "Success"
    }
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub connection: Option<String>,
    pub external_id: Option<String>,
    pub state: Option<String>,
    pub limit: Option<usize>,
}

const RUN_COLUMNS: &str = "id, connection, external_id, idempotency_key, parameters, run_id, state, reason, message, source, monitor_url, delete_after, created_at, updated_at, finished_at, startup_timeout_ms";

fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRun> {
    Ok(StoredRun {
        id: r.get(0)?,
        connection: r.get(1)?,
        external_id: r.get(2)?,
        idempotency_key: r.get(3)?,
        parameters: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
        run_id: r.get(5)?,
        state: r.get(6)?,
        reason: r.get(7)?,
        message: r.get(8)?,
        source: r.get(9)?,
        monitor_url: r.get(10)?,
        delete_after: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        finished_at: r.get(14)?,
        startup_timeout_ms: r.get(15)?,
    })
}

fn state_name(state: RunState) -> &'static str {
    state.as_str()
}

impl Catalog {
    /// Record the intent to run, before calling the provider. The same key
    /// twice returns the existing run (a scheduler retrying its request).
    pub fn record_intent(
        &self,
        connection: &str,
        external_id: &str,
        idempotency_key: &str,
        parameters: &BTreeMap<String, String>,
        delete_after: &str,
        startup_timeout: Option<std::time::Duration>,
    ) -> Result<StoredRun> {
        let at = now();
        let timeout_ms = startup_timeout.map(|d| d.as_millis() as i64);
        self.conn
            .execute(
                "INSERT INTO runs (connection, external_id, idempotency_key, parameters, state, delete_after, created_at, updated_at, startup_timeout_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8) ON CONFLICT (idempotency_key) DO NOTHING",
                params![connection, external_id, idempotency_key, serde_json::to_string(parameters).unwrap_or_default(), SUBMITTING, delete_after, at, timeout_ms],
            )
            .map_err(|e| self.err(e))?;
        let run = self
            .run_by_key(idempotency_key)?
            .ok_or_else(|| crate::error::Error::Io("the run vanished right after it was recorded".into()))?;
        // A retry must be the same request; a key reused for another one
        // would silently return a run the caller did not ask for.
        if run.connection != connection || run.external_id != external_id || &run.parameters != parameters {
            return Err(crate::error::Error::Conflict(format!(
                "idempotency key {idempotency_key:?} already belongs to run #{} ({} {} with {}); use a new key for a different request",
                run.id,
                run.connection,
                run.external_id,
                if run.parameters.is_empty() {
                    "no parameters".to_owned()
                } else {
                    run.parameters.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
                }
            )));
        }
        Ok(run)
    }

    pub fn record_submitted(&self, id: i64, handle: &RunHandle) -> Result<()> {
        let source = serde_json::to_value(handle.source).ok().and_then(|v| v.as_str().map(str::to_owned));
        self.conn
            .execute(
                "UPDATE runs SET run_id = ?2, state = CASE WHEN state = ?6 THEN 'Starting' ELSE state END, source = ?3, monitor_url = ?4, updated_at = ?5 WHERE id = ?1",
                params![id, handle.run_id, source, handle.monitor_url, now(), SUBMITTING],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Withdraw a run still `Submitting`; false if it was submitted meanwhile.
    pub fn withdraw(&self, id: i64) -> Result<bool> {
        let at = now();
        let n = self
            .conn
            .execute(
                "UPDATE runs SET state = ?2, reason = 'WithdrawnByUser', updated_at = ?3, finished_at = ?3 WHERE id = ?1 AND state = ?4 AND run_id IS NULL",
                params![id, WITHDRAWN, at, SUBMITTING],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    pub fn record_submit_failed(&self, id: i64, message: &str) -> Result<()> {
        let at = now();
        self.conn
            .execute(
                "UPDATE runs SET state = ?2, message = ?3, updated_at = ?4, finished_at = ?4 WHERE id = ?1",
                params![id, SUBMIT_FAILED, message, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Store the latest status. A run never leaves a final state. A
    /// vanished run (the platform no longer has it) becomes `Lost`, keeping
    /// the last state seen in its reason.
    pub fn record_status(&self, id: i64, status: &RunStatus) -> Result<()> {
        let at = now();
        let vanished = status.state == RunState::Unknown
            && status.reason.as_deref() == Some(polysync_provider_api::REASON_VANISHED);
        let final_now = status.state.is_terminal() || vanished;
        let finished = final_now.then(|| status.finished_at.clone().unwrap_or_else(|| at.clone()));
        let state = if vanished { LOST } else { state_name(status.state) };
        let reason = if vanished {
            // Keep what was last known: "Lost (last seen Running)".
            self.find_run(&id.to_string())?.map(|r| format!("Vanished after {}", r.state))
        } else {
            status.reason.clone()
        };
        self.conn
            .execute(
                "UPDATE runs SET state = ?2, reason = ?3, message = ?4, updated_at = ?5, finished_at = COALESCE(finished_at, ?6)
                 WHERE id = ?1 AND state NOT IN ('Success', 'Failed', 'Cancelled', 'SubmitFailed', 'Lost', 'Withdrawn')",
                params![id, state, reason, status.message, at, finished],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn run_by_key(&self, key: &str) -> Result<Option<StoredRun>> {
        self.conn
            .query_row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE idempotency_key = ?1"), [key], row_to_run)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// A run by the catalog's number (`12` or `#12`) or the platform's run id.
    pub fn find_run(&self, reference: &str) -> Result<Option<StoredRun>> {
        if let Ok(id) = reference.trim_start_matches('#').parse::<i64>()
            && let Some(run) = self
                .conn
                .query_row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"), [id], row_to_run)
                .optional()
                .map_err(|e| self.err(e))?
        {
            return Ok(Some(run));
        }
        self.conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1 ORDER BY id DESC LIMIT 1"),
                [reference],
                row_to_run,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Runs, newest first.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<StoredRun>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR connection = ?1) AND (?2 IS NULL OR external_id = ?2) AND (?3 IS NULL OR state = ?3)
                 ORDER BY id DESC LIMIT ?4"
            ))
            .map_err(|e| self.err(e))?;
        let limit = filter.limit.map_or(-1, |l| l as i64);
        let rows = stmt
            .query_map(params![filter.connection, filter.external_id, filter.state, limit], row_to_run)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// Runs not finished: being submitted, or live on the platform.
    pub fn active_runs(&self, connection: Option<&str>) -> Result<Vec<StoredRun>> {
        Ok(self
            .runs(&RunFilter { connection: connection.map(str::to_owned), ..RunFilter::default() })?
            .into_iter()
            .filter(|r| !r.is_final())
            .collect())
    }
}
