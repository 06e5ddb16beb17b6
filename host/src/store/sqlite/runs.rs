//! Runs and their leases in SQLite.

use std::time::Duration;

use polysync_provider_api::{RunHandle, RunStatus};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::Result as HostResult;
use crate::store::rows::{self, RUN_COLUMNS};
use crate::store::{
    HOSTS_FORGOTTEN_MS, Heartbeat, NewRun, Recorded, RunFilter, RunState, SpecSource, Stamp, StoredRun, json,
    key_conflict, ms, next_state, now_ms, same_request,
};

fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRun> {
    super::readable(rows::run(r))
}

pub(super) fn record_intent(
    c: &mut Connection,
    run: &NewRun,
    owner: &str,
    lease: Duration,
) -> rusqlite::Result<HostResult<Recorded>> {
    let at = Stamp::now();
    let timeout_ms = run.startup_timeout.map(ms);
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let inserted = tx.execute(
        "INSERT INTO runs (connection, external_id, idempotency_key, parameters, state, delete_after, created_at, updated_at, startup_timeout_ms, owner, lease_until, callback_url)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (idempotency_key) DO NOTHING",
        params![
            run.connection,
            run.external_id,
            run.idempotency_key,
            json(&run.parameters),
            RunState::Submitting,
            run.delete_after,
            at,
            timeout_ms,
            owner,
            now_ms() + ms(lease),
            run.callback_url
        ],
    )?;
    let stored = by_key(&tx, &run.idempotency_key)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    tx.commit()?;
    // A retry must be the same request; a key reused for another one would
    // silently return a run the caller did not ask for.
    if !same_request(&stored, run) {
        return Ok(Err(key_conflict(&run.idempotency_key, &stored)));
    }
    Ok(Ok(Recorded { run: stored, created: inserted == 1 }))
}

pub(super) fn record_submitted(c: &mut Connection, id: i64, handle: &RunHandle) -> rusqlite::Result<StoredRun> {
    c.query_row(
        &format!(
            "UPDATE runs SET run_id = ?2, state = CASE WHEN state = ?6 THEN ?7 ELSE state END, source = ?3, monitor_url = ?4, updated_at = ?5 WHERE id = ?1 RETURNING {RUN_COLUMNS}"
        ),
        params![
            id,
            handle.run_id,
            SpecSource::of(handle.source),
            handle.monitor_url,
            Stamp::now(),
            RunState::Submitting,
            RunState::Starting
        ],
        row_to_run,
    )
}

pub(super) fn record_submit_failed(c: &mut Connection, id: i64, message: &str) -> rusqlite::Result<()> {
    let at = Stamp::now();
    c.execute(
        "UPDATE runs SET state = ?4, message = ?2, updated_at = ?3, finished_at = ?3, finalized = 1, owner = NULL, lease_until = NULL WHERE id = ?1",
        params![id, message, at, RunState::SubmitFailed],
    )
    .map(drop)
}

pub(super) fn withdraw(c: &mut Connection, id: i64) -> rusqlite::Result<bool> {
    let at = Stamp::now();
    let n = c.execute(
        "UPDATE runs SET state = ?3, reason = ?4, updated_at = ?2, finished_at = ?2, finalized = 1, owner = NULL, lease_until = NULL
         WHERE id = ?1 AND state = ?5 AND run_id IS NULL",
        params![id, at, RunState::Withdrawn, crate::store::model::WITHDRAWN_BY_USER, RunState::Submitting],
    )?;
    Ok(n == 1)
}

pub(super) fn record_status(c: &mut Connection, id: i64, status: &RunStatus) -> rusqlite::Result<Option<StoredRun>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(current) = by_id(&tx, id)? else { return Ok(None) };
    if !current.is_final() {
        let at = Stamp::now();
        let (state, reason, final_now) = next_state(current.state, status);
        let finished = final_now.then(|| crate::store::model::finished_at(status, at));
        tx.execute(
            "UPDATE runs SET state = ?2,
                 reason = CASE WHEN ?2 = ?12 AND cancelling = 1 THEN ?9 ELSE ?3 END,
                 message = CASE WHEN ?2 = ?12 AND cancelling = 1 THEN NULL ELSE ?4 END,
                 updated_at = ?5,
                 finished_at = COALESCE(finished_at, MAX(?6, COALESCE(started_at, MAX(?10, created_at), created_at))),
                 outputs = COALESCE(?7, outputs), output_error = COALESCE(?8, output_error),
                 started_at = COALESCE(started_at, MAX(?10, created_at)), exit_codes = COALESCE(?11, exit_codes) WHERE id = ?1",
            params![
                id,
                state,
                reason,
                status.message,
                at,
                finished,
                crate::store::model::outputs_json(status),
                status.output_error,
                crate::store::model::CANCELLED_BY_USER,
                crate::store::model::started_at(status, at),
                crate::store::model::exit_codes_json(status),
                RunState::Cancelled
            ],
        )?;
    }
    let after = by_id(&tx, id)?;
    tx.commit()?;
    Ok(after)
}

pub(super) fn by_id(c: &Connection, id: i64) -> rusqlite::Result<Option<StoredRun>> {
    c.query_row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"), [id], row_to_run).optional()
}

pub(super) fn by_key(c: &Connection, key: &str) -> rusqlite::Result<Option<StoredRun>> {
    c.query_row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE idempotency_key = ?1"), [key], row_to_run).optional()
}

pub(super) fn by_platform_id(c: &Connection, run_id: &str) -> rusqlite::Result<Option<StoredRun>> {
    c.query_row(
        &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1 ORDER BY id DESC LIMIT 1"),
        [run_id],
        row_to_run,
    )
    .optional()
}

pub(super) fn list(c: &Connection, filter: &RunFilter) -> rusqlite::Result<Vec<StoredRun>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR connection = ?1) AND (?2 IS NULL OR external_id = ?2) AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR id < ?4) AND (?6 = 0 OR finalized = 0)
         ORDER BY id DESC LIMIT ?5"
    ))?;
    let limit = filter.limit.map_or(-1, |l| l as i64);
    let rows = stmt.query_map(
        params![filter.connection, filter.external_id, filter.state, filter.before, limit, filter.open],
        row_to_run,
    )?;
    rows.collect()
}

pub(super) fn claim(
    c: &mut Connection,
    owner: &str,
    connection: Option<&str>,
    lease: Duration,
    limit: usize,
) -> rusqlite::Result<Vec<StoredRun>> {
    let now = now_ms();
    // One IMMEDIATE transaction is the whole claim: SQLite has one writer,
    // so two hosts never take the same run.
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let claimed = {
        let mut stmt = tx.prepare_cached(&format!(
            "UPDATE runs SET owner = ?1, lease_until = ?2
             WHERE id IN (SELECT id FROM runs WHERE finalized = 0 AND (?3 IS NULL OR connection = ?3)
                          AND id IN (SELECT id FROM runs WHERE finalized = 0 AND (owner IS NULL OR lease_until IS NOT NULL)
                                                             AND (owner IS NULL OR lease_until < ?4)
                                     UNION ALL
                                     SELECT r.id FROM hosts h JOIN runs r ON r.owner = h.owner AND r.finalized = 0 AND r.lease_until IS NULL
                                     WHERE h.lease_until < ?4)
                          AND (owner IS NULL OR lease_until < ?4
                               OR lease_until IS NULL AND NOT EXISTS
                                  (SELECT 1 FROM hosts h WHERE h.owner = runs.owner AND h.lease_until >= ?4))
                          ORDER BY id LIMIT ?5)
             RETURNING {RUN_COLUMNS}"
        ))?;
        let rows = stmt.query_map(params![owner, now + ms(lease), connection, now, limit as i64], row_to_run)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    tx.commit()?;
    let mut claimed = claimed;
    claimed.sort_by_key(|r| r.id);
    Ok(claimed)
}

/// One IMMEDIATE transaction: the heartbeat, the runs taken on handed
/// over to it, the runs let go given a lease of their own.
pub(super) fn heartbeat(
    c: &mut Connection,
    owner: &str,
    lease: Duration,
    taken_on: &[i64],
    let_go: &[i64],
) -> rusqlite::Result<Heartbeat> {
    let now = now_ms();
    let until = now + ms(lease);
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let previous: Option<i64> =
        tx.query_row("SELECT lease_until FROM hosts WHERE owner = ?1", [owner], |r| r.get(0)).optional()?;
    tx.execute(
        "INSERT INTO hosts (owner, lease_until) VALUES (?1, ?2) ON CONFLICT (owner) DO UPDATE SET lease_until = excluded.lease_until",
        params![owner, until],
    )?;
    let mut kept = {
        let mut stmt = tx.prepare_cached(
            "UPDATE runs SET lease_until = NULL WHERE owner = ?1 AND id IN (SELECT value FROM json_each(?2)) RETURNING id",
        )?;
        let rows = stmt.query_map(params![owner, json(&taken_on)], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<Vec<i64>>>()?
    };
    kept.sort_unstable();
    tx.execute(
        "UPDATE runs SET lease_until = ?3 WHERE owner = ?1 AND id IN (SELECT value FROM json_each(?2)) AND finalized = 0",
        params![owner, json(&let_go), until],
    )?;
    // Heartbeats lapsed long ago, of hosts that hold nothing, go.
    tx.execute(
        "DELETE FROM hosts WHERE lease_until < ?1
         AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.finalized = 0 AND r.owner = hosts.owner)",
        [now - HOSTS_FORGOTTEN_MS],
    )?;
    tx.commit()?;
    Ok(Heartbeat { known: previous.is_some(), lapsed: previous.is_some_and(|p| p < now), kept })
}

pub(super) fn renew(c: &mut Connection, owner: &str, ids: &[i64], lease: Duration) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = c.prepare_cached(
        "UPDATE runs SET lease_until = ?1 WHERE owner = ?2 AND id IN (SELECT value FROM json_each(?3)) RETURNING id",
    )?;
    let rows = stmt.query_map(params![now_ms() + ms(lease), owner, json(&ids)], |r| r.get(0))?;
    let mut kept = rows.collect::<rusqlite::Result<Vec<i64>>>()?;
    kept.sort_unstable();
    Ok(kept)
}

pub(super) fn changed(
    c: &Connection,
    since: Stamp,
    run: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<StoredRun>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE updated_at >= ?1 AND (?2 IS NULL OR id = ?2) ORDER BY updated_at, id LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![since, run, limit as i64], row_to_run)?;
    rows.collect()
}
