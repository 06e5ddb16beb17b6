//! Runs, their leases and hosts' heartbeats in PostgreSQL.

use std::time::Duration;

use polysync_provider_api::{RunHandle, RunStatus};
use tokio_postgres::types::ToSql;

use super::PostgresStore;
use crate::error::Result;
use crate::store::rows::RUN_COLUMNS;
use crate::store::{
    HOSTS_FORGOTTEN_MS, Heartbeat, NewRun, Recorded, RunFilter, RunState, SpecSource, Stamp, StoredRun, json,
    key_conflict, ms, next_state, now_ms, same_request,
};

/// Runs unowned or on a lease of their own: the claimable ones while no
/// heartbeat has lapsed, found through the partial index `runs_unheld`
/// (the rest of the open runs are held by heartbeats). `$4` is now.
const UNHELD: &str = "SELECT id FROM runs WHERE NOT finalized AND (owner IS NULL OR lease_until IS NOT NULL)
                                        AND (owner IS NULL OR lease_until < $4)";

/// Hosts whose heartbeat lapsed and that still hold open runs, each found
/// by one probe of `runs_open_by_owner` in owner order (the form the
/// planner reliably takes the index for: it expects an owner to hold many
/// runs and would read them all to learn one holds none).
const LAPSED_HOLDERS: &str = "SELECT h.owner FROM hosts h WHERE h.lease_until < $1
     AND h.owner = (SELECT r.owner FROM runs r WHERE NOT r.finalized AND r.owner >= h.owner ORDER BY r.owner LIMIT 1)";

pub(super) async fn record_intent(
    store: &PostgresStore,
    run: &NewRun,
    owner: &str,
    lease: Duration,
) -> Result<Recorded> {
    let at = Stamp::now();
    let timeout_ms = run.startup_timeout.map(ms);
    // One round trip for a new run: the insert returns it.
    let inserted = store.query_runs(
        &format!("INSERT INTO runs (connection, external_id, idempotency_key, parameters, state, delete_after, created_at, updated_at, startup_timeout_ms, owner, lease_until, callback_url)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11) ON CONFLICT (idempotency_key) DO NOTHING RETURNING {RUN_COLUMNS}"),
        &[
            &run.connection,
            &run.external_id,
            &run.idempotency_key,
            &json(&run.parameters),
            &RunState::Submitting,
            &run.delete_after,
            &at,
            &timeout_ms,
            &owner,
            &(now_ms() + ms(lease)),
            &run.callback_url,
        ],
    )
    .await?
    .pop();
    if let Some(run) = inserted {
        return Ok(Recorded { run, created: true });
    }
    let stored = run_by_key(store, &run.idempotency_key).await?.ok_or_else(|| {
        store.vanished(format!("the run of key {:?}, right after it was recorded,", run.idempotency_key))
    })?;
    if !same_request(&stored, run) {
        return Err(key_conflict(&run.idempotency_key, &stored));
    }
    Ok(Recorded { run: stored, created: false })
}

pub(super) async fn record_submitted(store: &PostgresStore, id: i64, handle: &RunHandle) -> Result<StoredRun> {
    store.query_runs(
        &format!(
            "UPDATE runs SET run_id = $2, state = CASE WHEN state = $6 THEN $7 ELSE state END, source = $3, monitor_url = $4, updated_at = $5 WHERE id = $1 RETURNING {RUN_COLUMNS}"
        ),
        &[
            &id,
            &handle.run_id,
            &SpecSource::of(handle.source),
            &handle.monitor_url,
            &Stamp::now(),
            &RunState::Submitting,
            &RunState::Starting,
        ],
    )
    .await?
    .pop()
    .ok_or_else(|| store.vanished(format!("run #{id}")))
}

pub(super) async fn record_submit_failed(store: &PostgresStore, id: i64, message: &str) -> Result<()> {
    store.execute(
        "UPDATE runs SET state = $4, message = $2, updated_at = $3, finished_at = $3, finalized = true, owner = NULL, lease_until = NULL WHERE id = $1",
        &[&id, &message, &Stamp::now(), &RunState::SubmitFailed],
    )
    .await
    .map(drop)
}

pub(super) async fn withdraw(store: &PostgresStore, id: i64) -> Result<bool> {
    let n = store
        .execute(
            "UPDATE runs SET state = $3, reason = $4, updated_at = $2, finished_at = $2, finalized = true, owner = NULL, lease_until = NULL
             WHERE id = $1 AND state = $5 AND run_id IS NULL",
            &[&id, &Stamp::now(), &RunState::Withdrawn, &crate::store::model::WITHDRAWN_BY_USER, &RunState::Submitting],
        )
        .await?;
    Ok(n == 1)
}

pub(super) async fn record_status(store: &PostgresStore, id: i64, status: &RunStatus) -> Result<Option<StoredRun>> {
    // One statement takes the row lock, checks that the run is not final
    // and writes: a status costs one round trip, not four (a transaction
    // around SELECT … FOR UPDATE). Only the reason of a vanished run
    // depends on the stored state; SET reads the row as it was.
    let at = Stamp::now();
    let (state, reason, final_now) = next_state(RunState::Unknown, status);
    let finished = final_now.then(|| crate::store::model::finished_at(status, at));
    let finals: Vec<&str> = RunState::finals().collect();
    let written = store
        .query_runs(
            &format!(
                "UPDATE runs SET state = $2,
                     reason = CASE WHEN $9 THEN $14::text || state WHEN $2 = $15::text AND cancelling THEN $11 ELSE $3 END,
                     message = CASE WHEN $2 = $15::text AND cancelling THEN NULL ELSE $4 END, updated_at = $5,
                     finished_at = COALESCE(finished_at, CASE WHEN $6::text IS NULL THEN NULL ELSE GREATEST($6, started_at, $12, created_at) END),
                     outputs = COALESCE($7, outputs), output_error = COALESCE($8, output_error),
                     started_at = COALESCE(started_at, CASE WHEN $12::text IS NULL THEN NULL ELSE GREATEST($12, created_at) END), exit_codes = COALESCE($13, exit_codes)
                 WHERE id = $1 AND state <> ALL($10) RETURNING {RUN_COLUMNS}"
            ),
            &[
                &id,
                &state,
                &reason,
                &status.message,
                &at,
                &finished,
                &crate::store::model::outputs_json(status),
                &status.output_error,
                &crate::store::model::vanished(status),
                &finals,
                &crate::store::model::CANCELLED_BY_USER,
                &crate::store::model::started_at(status, at),
                &crate::store::model::exit_codes_json(status),
                &crate::store::model::VANISHED_AFTER,
                &RunState::Cancelled,
            ],
        )
        .await?
        .pop();
    match written {
        Some(run) => Ok(Some(run)),
        // Final already (it stays as it is), or no such run.
        None => run(store, id).await,
    }
}

pub(super) async fn mark_cancelling(store: &PostgresStore, id: i64, cancelling: bool) -> Result<()> {
    store.execute("UPDATE runs SET cancelling = $2 WHERE id = $1", &[&id, &cancelling]).await.map(drop)
}

pub(super) async fn mark_finalized(store: &PostgresStore, id: i64) -> Result<()> {
    store
        .execute("UPDATE runs SET finalized = true, owner = NULL, lease_until = NULL WHERE id = $1", &[&id])
        .await
        .map(drop)
}

pub(super) async fn run(store: &PostgresStore, id: i64) -> Result<Option<StoredRun>> {
    Ok(store.query_runs(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"), &[&id]).await?.pop())
}

pub(super) async fn run_by_key(store: &PostgresStore, key: &str) -> Result<Option<StoredRun>> {
    Ok(store.query_runs(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE idempotency_key = $1"), &[&key]).await?.pop())
}

pub(super) async fn run_by_platform_id(store: &PostgresStore, run_id: &str) -> Result<Option<StoredRun>> {
    Ok(store
        .query_runs(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1 ORDER BY id DESC LIMIT 1"), &[&run_id])
        .await?
        .pop())
}

pub(super) async fn runs(store: &PostgresStore, filter: &RunFilter) -> Result<Vec<StoredRun>> {
    let limit = filter.limit.map(|l| l as i64);
    store.query_runs(
        &format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE ($1::text IS NULL OR connection = $1) AND ($2::text IS NULL OR external_id = $2)
             AND ($3::text IS NULL OR state = $3) AND ($4::bigint IS NULL OR id < $4) AND (NOT $6 OR NOT finalized) ORDER BY id DESC LIMIT $5"
        ),
        &[&filter.connection, &filter.external_id, &filter.state, &filter.before, &limit, &filter.open],
    )
    .await
}

pub(super) async fn runs_changed(
    store: &PostgresStore,
    since: Stamp,
    run: Option<i64>,
    limit: usize,
) -> Result<Vec<StoredRun>> {
    store.query_runs(
        &format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE updated_at >= $1 AND ($2::bigint IS NULL OR id = $2) ORDER BY updated_at, id LIMIT $3"
        ),
        &[&since, &run, &(limit as i64)],
    )
    .await
}

pub(super) async fn count_by_state(store: &PostgresStore) -> Result<Vec<(RunState, u64)>> {
    let client = store.client().await?;
    let rows = client.query("SELECT state, count(*) FROM runs GROUP BY state", &[]).await.map_err(store.fail())?;
    Ok(rows.iter().filter_map(|r| Some((RunState::parse(r.get(0))?, r.get::<_, i64>(1) as u64))).collect())
}

pub(super) async fn claim_runs(
    store: &PostgresStore,
    owner: &str,
    connection: Option<&str>,
    lease: Duration,
    limit: usize,
) -> Result<Vec<StoredRun>> {
    let now = now_ms();
    let lapsed: Vec<String> = {
        let client = store.client().await?;
        let stmt = client.prepare_cached(LAPSED_HOLDERS).await.map_err(store.fail())?;
        client.query(&stmt, &[&now]).await.map_err(store.fail())?.iter().map(|r| r.get(0)).collect()
    };
    // Only the runs that may be claimable are read: those of lapsed
    // heartbeats only when there are some. SKIP LOCKED: rows another
    // host is claiming right now are passed over, not waited for; the
    // lock re-checks ownership on the row's latest version, so a run
    // just taken is never taken twice.
    let candidates = if lapsed.is_empty() {
        UNHELD.to_owned()
    } else {
        format!(
            "{UNHELD} UNION ALL SELECT id FROM runs WHERE NOT finalized AND lease_until IS NULL AND owner = ANY($6)"
        )
    };
    let sql = format!(
        "UPDATE runs SET owner = $1, lease_until = $2
         WHERE id IN (SELECT id FROM runs WHERE NOT finalized AND ($3::text IS NULL OR connection = $3)
                      AND id IN ({candidates})
                      AND (owner IS NULL OR lease_until < $4
                           OR lease_until IS NULL AND NOT EXISTS
                              (SELECT 1 FROM hosts h WHERE h.owner = runs.owner AND h.lease_until >= $4))
                      ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED)
         RETURNING {RUN_COLUMNS}"
    );
    let (until, limit) = (now + ms(lease), limit as i64);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&owner, &until, &connection, &now, &limit];
    if !lapsed.is_empty() {
        params.push(&lapsed);
    }
    let mut runs = store.query_runs(&sql, &params).await?;
    runs.sort_by_key(|r| r.id);
    Ok(runs)
}

pub(super) async fn open_owners(store: &PostgresStore, connection: Option<&str>) -> Result<Vec<String>> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "WITH RECURSIVE o(owner) AS (
                 (SELECT owner FROM runs WHERE NOT finalized AND owner IS NOT NULL AND ($1::text IS NULL OR connection = $1)
                  ORDER BY owner LIMIT 1)
                 UNION ALL
                 SELECT (SELECT r.owner FROM runs r WHERE NOT r.finalized AND r.owner > o.owner
                                                    AND ($1::text IS NULL OR r.connection = $1)
                         ORDER BY r.owner LIMIT 1)
                 FROM o WHERE o.owner IS NOT NULL)
             SELECT owner FROM o WHERE owner IS NOT NULL",
        )
        .await
        .map_err(store.fail())?;
    let rows = client.query(&stmt, &[&connection]).await.map_err(store.fail())?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(super) async fn heartbeat(
    store: &PostgresStore,
    owner: &str,
    lease: Duration,
    taken_on: &[i64],
    let_go: &[i64],
) -> Result<Heartbeat> {
    let now = now_ms();
    let until = now + ms(lease);
    let client = store.client().await?;
    // The previous heartbeat, read by the statement that replaces it.
    let previous: Option<i64> = client
        .query_one(
            "WITH previous AS (SELECT lease_until FROM hosts WHERE owner = $1)
             INSERT INTO hosts (owner, lease_until) VALUES ($1, $2)
             ON CONFLICT (owner) DO UPDATE SET lease_until = EXCLUDED.lease_until
             RETURNING (SELECT lease_until FROM previous)",
            &[&owner, &until],
        )
        .await
        .map_err(store.fail())?
        .get(0);
    let mut kept = Vec::new();
    if !taken_on.is_empty() {
        let rows = client
            .query(
                "UPDATE runs SET lease_until = NULL WHERE owner = $1 AND id = ANY($2) RETURNING id",
                &[&owner, &taken_on],
            )
            .await
            .map_err(store.fail())?;
        kept = rows.iter().map(|r| r.get(0)).collect();
        kept.sort_unstable();
    }
    if !let_go.is_empty() {
        client
            .execute(
                "UPDATE runs SET lease_until = $3 WHERE owner = $1 AND id = ANY($2) AND NOT finalized",
                &[&owner, &let_go, &until],
            )
            .await
            .map_err(store.fail())?;
    }
    // Heartbeats lapsed long ago, of hosts that hold nothing, go: hosts
    // are many over time (one per process). One that holds runs stays,
    // so its runs stay claimable (see LAPSED_HOLDERS, whose probe this
    // uses too).
    client
        .execute(
            "DELETE FROM hosts h WHERE lease_until < $1 AND h.owner IS DISTINCT FROM
                 (SELECT r.owner FROM runs r WHERE NOT r.finalized AND r.owner >= h.owner ORDER BY r.owner LIMIT 1)",
            &[&(now - HOSTS_FORGOTTEN_MS)],
        )
        .await
        .map_err(store.fail())?;
    Ok(Heartbeat { known: previous.is_some(), lapsed: previous.is_some_and(|p| p < now), kept })
}

pub(super) async fn renew_leases(store: &PostgresStore, owner: &str, ids: &[i64], lease: Duration) -> Result<Vec<i64>> {
    let client = store.client().await?;
    let rows = client
        .query(
            "UPDATE runs SET lease_until = $1 WHERE owner = $2 AND id = ANY($3) RETURNING id",
            &[&(now_ms() + ms(lease)), &owner, &ids],
        )
        .await
        .map_err(store.fail())?;
    let mut kept: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    kept.sort_unstable();
    Ok(kept)
}

pub(super) async fn release_runs(store: &PostgresStore, owner: &str, ids: Option<&[i64]>) -> Result<u64> {
    let ids: Option<Vec<i64>> = ids.map(<[i64]>::to_vec);
    store.execute(
        "UPDATE runs SET owner = NULL, lease_until = NULL WHERE owner = $1 AND ($2::bigint[] IS NULL OR id = ANY($2))",
        &[&owner, &ids],
    )
    .await
}
